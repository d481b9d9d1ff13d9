import { createHash, timingSafeEqual } from 'node:crypto';
import {
  ResultCode,
  ServerStatusRequest,
  ServerStatusResponse,
  SessionListRequest,
  SessionListResponse,
  send,
  type Router,
} from '@fastport/protocol';
import type { Server, Session } from '@fastport/session';

/*
 * Admin packets (status summary, session list) show every client's address,
 * so they are off unless the operator configures them: a token that requests
 * on the public port must carry (--admin-token), and/or a separate listener
 * on loopback (--admin-port) whose requests need none. Everything else is
 * answered RESULT_CODE_UNAUTHORIZED and counted.
 */

export const VERSION = '0.1.0';
export const SESSION_LIST_MAX = 1000;
export const SESSION_LIST_DEFAULT = 100;

/** A server status in plain numbers: what workers send over IPC and what is summed across them. */
export interface StatusSummary {
  engine: string;
  workers: number;
  connections: number;
  totalConnections: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  idleDisconnects: number;
  rssBytes: number;
  cpuPercent: number;
  ioThreads: number;
  uptimeMs: number;
  adminRefused: number;
}

export interface SessionRow {
  id: number;
  worker: number;
  remoteAddress: string;
  remotePort: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  connectedAtMs: number;
  sendQueueBytes: number;
}

export interface SessionPage {
  total: number;
  sessions: SessionRow[];
}

/** Where admin answers come from: this process, or every worker through the supervisor. */
export interface AdminSource {
  /** Local sources answer at once (replies keep the order of requests); the supervisor's over IPC. */
  status(): StatusSummary | Promise<StatusSummary>;
  sessions(offset: number, limit: number): SessionPage | Promise<SessionPage>;
}

/** Calls `then` at once for a plain value, after settling for a promise (a failure is left to the caller). */
function whenReady<T>(v: T | Promise<T>, then: (value: T) => void): void | Promise<void> {
  if (v instanceof Promise) return v.then(then);
  then(v);
}

/** Decides who may ask. `trusted`: the loopback admin listener, whose peers need no token. */
export class AdminGate {
  private readonly digest: Buffer | undefined;
  /** Requests refused on this gate. */
  refused = 0;

  constructor(
    token: string | undefined,
    private readonly trusted = false,
  ) {
    // Comparing digests keeps the comparison constant-time even when the lengths differ.
    this.digest = token !== undefined && token !== '' ? sha256(token) : undefined;
  }

  /** True when admin answers anything on this listener. */
  get enabled(): boolean {
    return this.trusted || this.digest !== undefined;
  }

  allows(token: string): boolean {
    if (this.trusted) return true;
    if (this.digest === undefined) return false;
    return timingSafeEqual(this.digest, sha256(token));
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Tracks CPU use between two status requests. */
export class CpuMeter {
  private last = process.cpuUsage();
  private lastAt = Date.now();

  /** Percent of one core used since the previous call (0..100 per core). */
  percent(): number {
    const now = Date.now();
    const cpu = process.cpuUsage(this.last);
    const elapsedUs = Math.max(1, (now - this.lastAt) * 1000);
    this.last = process.cpuUsage();
    this.lastAt = now;
    return ((cpu.user + cpu.system) / elapsedUs) * 100;
  }
}

const startedAt = Date.now();

/** This process's status. */
export function localStatus(server: Server, cpu: CpuMeter, adminRefused: number): StatusSummary {
  const stats = server.stats();
  return {
    engine: server.engine.info.kind,
    workers: 1,
    connections: stats.sessions,
    totalConnections: stats.sessionsTotal,
    bytesIn: stats.bytesIn,
    bytesOut: stats.bytesOut,
    packetsIn: stats.framesIn,
    packetsOut: stats.framesOut,
    idleDisconnects: stats.closeReasons['idle-timeout'] ?? 0,
    rssBytes: process.memoryUsage.rss(),
    cpuPercent: cpu.percent(),
    ioThreads: server.engine.info.ioThreads,
    uptimeMs: Date.now() - startedAt,
    adminRefused,
  };
}

/** One page of this process's sessions. */
export function localSessions(server: Server, worker: number, offset: number, limit: number): SessionPage {
  const total = server.sessions.size;
  const sessions: SessionRow[] = [];
  if (limit <= 0 || offset >= total) return { total, sessions };
  let i = 0;
  for (const s of server.sessions) {
    if (i++ < offset) continue;
    sessions.push({
      id: s.id,
      worker,
      remoteAddress: s.remote.address,
      remotePort: s.remote.port,
      bytesIn: s.counters.bytesIn,
      bytesOut: s.counters.bytesOut,
      packetsIn: s.counters.framesIn,
      packetsOut: s.counters.framesOut,
      connectedAtMs: s.connectedAt,
      sendQueueBytes: s.pendingBytes,
    });
    if (sessions.length >= limit) break;
  }
  return { total, sessions };
}

export function localAdminSource(server: Server, worker: number, refused: () => number): AdminSource {
  const cpu = new CpuMeter();
  return {
    status: () => localStatus(server, cpu, refused()),
    sessions: (offset, limit) => localSessions(server, worker, offset, limit),
  };
}

/** Sums workers' statuses: counts add up, uptime is the longest, engine names are listed once each. */
export function sumStatus(parts: StatusSummary[]): StatusSummary {
  const engines = [...new Set(parts.map((p) => p.engine))];
  const sum = (k: keyof StatusSummary) => parts.reduce((n, p) => n + (p[k] as number), 0);
  return {
    engine: engines.join(','),
    workers: sum('workers'),
    connections: sum('connections'),
    totalConnections: sum('totalConnections'),
    bytesIn: sum('bytesIn'),
    bytesOut: sum('bytesOut'),
    packetsIn: sum('packetsIn'),
    packetsOut: sum('packetsOut'),
    idleDisconnects: sum('idleDisconnects'),
    rssBytes: sum('rssBytes'),
    cpuPercent: sum('cpuPercent'),
    ioThreads: sum('ioThreads'),
    uptimeMs: Math.max(0, ...parts.map((p) => p.uptimeMs)),
    adminRefused: sum('adminRefused'),
  };
}

/**
 * Where a page [offset, offset + limit) of the concatenation of the workers'
 * session lists falls in each worker's own list (worker order).
 */
export function pageAcross(counts: number[], offset: number, limit: number): { offset: number; limit: number }[] {
  const out: { offset: number; limit: number }[] = [];
  let start = 0;
  let want = limit;
  for (const n of counts) {
    const end = start + n;
    if (want <= 0 || offset >= end) {
      out.push({ offset: 0, limit: 0 });
    } else {
      const from = Math.max(0, offset - start);
      const take = Math.min(n - from, want);
      out.push({ offset: from, limit: take });
      want -= take;
    }
    start = end;
  }
  return out;
}

export function clampLimit(limit: number): number {
  return Math.min(limit > 0 ? limit : SESSION_LIST_DEFAULT, SESSION_LIST_MAX);
}

function u64(n: number): bigint {
  return BigInt(Math.max(0, Math.trunc(n)));
}

/**
 * Answers ServerStatusRequest and SessionListRequest on `router` from
 * `source`, when `gate` allows; refusals get RESULT_CODE_UNAUTHORIZED and
 * `onRefused` (logging, counting).
 */
export function installAdminHandlers(
  router: Router<Session>,
  source: AdminSource,
  gate: AdminGate,
  onRefused: (session: Session, what: 'status' | 'sessions') => void = () => {},
): void {
  router
    .on(ServerStatusRequest, (session, msg) => {
      if (!gate.allows(msg.authToken)) {
        gate.refused++;
        onRefused(session, 'status');
        send(session, ServerStatusResponse, { result: ResultCode.UNAUTHORIZED });
        return;
      }
      return whenReady(source.status(), (st) => {
        if (session.state === 'closed') return;
        send(session, ServerStatusResponse, {
          result: ResultCode.OK,
          uptimeMs: u64(st.uptimeMs),
          engineName: st.engine,
          connections: st.connections,
          totalConnections: u64(st.totalConnections),
          bytesIn: u64(st.bytesIn),
          bytesOut: u64(st.bytesOut),
          packetsIn: u64(st.packetsIn),
          packetsOut: u64(st.packetsOut),
          idleDisconnects: u64(st.idleDisconnects),
          memoryRssBytes: u64(st.rssBytes),
          cpuPercent: st.cpuPercent,
          serverTimeMs: u64(Date.now()),
          ioThreads: st.ioThreads,
          version: VERSION,
          workers: st.workers,
          adminRefused: u64(st.adminRefused),
        });
      });
    })
    .on(SessionListRequest, (session, msg) => {
      if (!gate.allows(msg.authToken)) {
        gate.refused++;
        onRefused(session, 'sessions');
        send(session, SessionListResponse, { result: ResultCode.UNAUTHORIZED, offset: msg.offset });
        return;
      }
      return whenReady(source.sessions(msg.offset, clampLimit(msg.limit)), (page) => {
        if (session.state === 'closed') return;
        send(session, SessionListResponse, {
          result: ResultCode.OK,
          total: page.total,
          offset: msg.offset,
          sessions: page.sessions.map((s) => ({
            id: u64(s.id),
            remoteAddress: s.remoteAddress,
            remotePort: s.remotePort,
            bytesIn: u64(s.bytesIn),
            bytesOut: u64(s.bytesOut),
            packetsIn: u64(s.packetsIn),
            packetsOut: u64(s.packetsOut),
            connectedAtMs: u64(s.connectedAtMs),
            lastRecvMs: 0n,
            sendQueueBytes: u64(s.sendQueueBytes),
            worker: s.worker,
          })),
        });
      });
    });
}
