import type pino from 'pino';
import {
  BenchmarkEnd,
  BenchmarkRequest,
  BenchmarkResponse,
  BenchmarkStart,
  ChatMessage,
  EchoRequest,
  EchoResponse,
  PingRequest,
  PingResponse,
  ResultCode,
  Router,
  ServerStatusRequest,
  ServerStatusResponse,
  SessionListRequest,
  SessionListResponse,
  send,
} from '@fastport/protocol';
import type { Server, Session } from '@fastport/session';
import type { ErrorLog } from './error-log';

const startedAt = Date.now();
const VERSION = '0.1.0';
const SESSION_LIST_MAX = 1000;

/** Wall clock in microseconds since the epoch (uint64 fields are bigint). */
function nowUs(): bigint {
  return BigInt(Date.now()) * 1000n;
}

/** Wall clock in nanoseconds since the epoch: above 2^53, which is why 64-bit fields are bigint. */
function nowNs(): bigint {
  return process.hrtime.bigint() - hrtimeAtStart + epochNsAtStart;
}
const hrtimeAtStart = process.hrtime.bigint();
const epochNsAtStart = BigInt(Date.now()) * 1_000_000n;

/** A non-negative count as a uint64 field. */
function u64(n: number): bigint {
  return BigInt(Math.max(0, Math.trunc(n)));
}

/** The protocol packets FastPort's server answers: ping, echo, benchmark, admin, chat relay. */
export function installAppHandlers(server: Server, logger: pino.Logger, opts: { mode: string }, errors?: ErrorLog): Router<Session> {
  const router = new Router<Session>({
    onError: (event) => {
      // A handler whose reply is refused (backpressure) fails on every packet: count all, log at most once per interval.
      if (errors !== undefined && event.error instanceof Error) {
        errors.report(event.error, event.session.id, `packet rejected (${event.kind}, ${event.action})`);
        return;
      }
      logger.warn({ session: event.session.id, kind: event.kind, packetId: event.packetId, action: event.action }, 'packet rejected');
    },
  });
  let lastCpu = process.cpuUsage();
  let lastCpuAt = Date.now();

  router
    .on(PingRequest, (session, msg) => {
      send(session, PingResponse, { clientTimeUs: msg.clientTimeUs, serverTimeUs: nowUs(), seq: msg.seq });
    })
    .on(EchoRequest, (session, msg) => {
      send(session, EchoResponse, { data: msg.data, seq: msg.seq });
    })
    .on(BenchmarkRequest, (session, msg) => {
      send(session, BenchmarkResponse, { seq: msg.seq, clientTimeNs: msg.clientTimeNs, payload: msg.payload, serverTimeNs: nowNs() });
    })
    .on(BenchmarkStart, (session, msg) => {
      logger.info({ session: session.id, ...msg }, 'benchmark start');
    })
    .on(BenchmarkEnd, (session, msg) => {
      logger.info({ session: session.id, ...msg }, 'benchmark end');
    })
    .on(ServerStatusRequest, (session) => {
      const stats = server.stats();
      const now = Date.now();
      const cpu = process.cpuUsage(lastCpu);
      const elapsedUs = Math.max(1, (now - lastCpuAt) * 1000);
      lastCpu = process.cpuUsage();
      lastCpuAt = now;
      send(session, ServerStatusResponse, {
        result: ResultCode.OK,
        uptimeMs: u64(now - startedAt),
        engineName: server.engine.info.kind,
        connections: stats.sessions,
        totalConnections: u64(stats.sessionsTotal),
        bytesIn: u64(stats.bytesIn),
        bytesOut: u64(stats.bytesOut),
        packetsIn: u64(stats.framesIn),
        packetsOut: u64(stats.framesOut),
        idleDisconnects: u64(stats.closeReasons['idle-timeout'] ?? 0),
        memoryRssBytes: u64(process.memoryUsage.rss()),
        cpuPercent: ((cpu.user + cpu.system) / elapsedUs) * 100,
        serverTimeMs: u64(now),
        ioThreads: server.engine.info.ioThreads,
        version: VERSION,
      });
    })
    .on(SessionListRequest, (session, msg) => {
      const all = [...server.sessions];
      const limit = Math.min(msg.limit > 0 ? msg.limit : 100, SESSION_LIST_MAX);
      const page = all.slice(msg.offset, msg.offset + limit);
      send(session, SessionListResponse, {
        result: ResultCode.OK,
        total: all.length,
        offset: msg.offset,
        sessions: page.map((s) => ({
          id: u64(s.id),
          remoteAddress: s.remote.address,
          remotePort: s.remote.port,
          bytesIn: u64(s.counters.bytesIn),
          bytesOut: u64(s.counters.bytesOut),
          packetsIn: u64(s.counters.framesIn),
          packetsOut: u64(s.counters.framesOut),
          connectedAtMs: u64(s.connectedAt),
          lastRecvMs: 0n,
          sendQueueBytes: u64(s.pendingBytes),
        })),
      });
    })
    .on(ChatMessage, (session, msg) => {
      // Relay to everyone else, stamped by the server.
      const payload = ChatMessage.encode({ ...msg, from: msg.from || `session-${session.id}`, timeMs: BigInt(Date.now()) }).finish();
      server.sessions.broadcast(payload, router.registry.idOf(ChatMessage), (s) => s !== session);
    });

  server.on('frame', (session: Session, frame) => {
    router.dispatch(session, frame.id, frame.payload);
  });
  logger.debug({ mode: opts.mode, packets: [...router.registry].map((d) => d.name) }, 'app handlers installed');
  return router;
}
