/**
 * The dashboard's admin view: a server's status summary and a page of its
 * session list, asked over FastPort's admin packets (ServerStatusRequest /
 * SessionListRequest, fastport framing) on the server's admin port or on its
 * public port with its admin token (fastport-server --admin-token /
 * --admin-port; apps/client has the same requests on the command line).
 */
import { PacketId, ResultCode, ServerStatusRequest, ServerStatusResponse, SessionListRequest, SessionListResponse, resultCodeToJSON } from '@fastport/protocol';
import { Client, type Frame, type FramingOption, type Session } from '@fastport/session';

export interface AdminStatus {
  engine: string;
  version: string;
  workers: number;
  connections: number;
  totalConnections: number;
  uptimeMs: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  rssBytes: number;
  cpuPercent: number;
  ioThreads: number;
  adminRefused: number;
}

export interface AdminSessionRow {
  id: number;
  worker: number;
  remote: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  connectedAtMs: number;
  sendQueueBytes: number;
}

export interface AdminSessionPage {
  total: number;
  offset: number;
  sessions: AdminSessionRow[];
}

export class AdminError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface RequestReplyOptions {
  framing: FramingOption;
  request: Uint8Array;
  requestId: number;
  /** The reply: the first frame this accepts (others are ignored). */
  accept: (id: number) => boolean;
  timeoutMs: number;
}

/**
 * Connects, sends one request and waits (bounded) for its reply on a
 * connection of its own: the admin view's and the runner's status queries.
 * Rejects with an AdminError (admin-unreachable, admin-timeout,
 * admin-closed); the reply is copied out of the receive buffer.
 */
export async function requestReply(host: string, port: number, o: RequestReplyOptions): Promise<{ id: number; payload: Uint8Array }> {
  const client = new Client({ engine: 'node', framing: o.framing });
  try {
    let session: Session;
    try {
      session = await client.connect({ host, port, timeoutMs: o.timeoutMs });
    } catch (err) {
      throw new AdminError('admin-unreachable', `cannot reach the admin access at ${host}:${port}: ${(err as Error).message}`);
    }
    const reply = new Promise<{ id: number; payload: Uint8Array }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new AdminError('admin-timeout', `no admin answer from ${host}:${port} within ${o.timeoutMs} ms (an echo server without admin access?)`)), o.timeoutMs);
      client.on('frame', (_s: Session, frame: Frame) => {
        if (!o.accept(frame.id)) return;
        clearTimeout(timer);
        resolve({ id: frame.id, payload: frame.payload.slice() });
      });
      client.on('close', () => {
        clearTimeout(timer);
        reject(new AdminError('admin-closed', `${host}:${port} closed the admin connection`));
      });
    });
    session.send(o.request, o.requestId);
    return await reply;
  } finally {
    await client.close(200).catch(() => undefined);
  }
}

/** Sends one admin request (fastport framing) and waits (bounded) for the frame with `replyId`. */
async function adminRoundTrip(host: string, port: number, request: Uint8Array, requestId: number, replyId: number, timeoutMs: number): Promise<Uint8Array> {
  const r = await requestReply(host, port, { framing: 'fastport', request, requestId, accept: (id) => id === replyId, timeoutMs });
  return r.payload;
}

function refused(result: ResultCode): AdminError {
  const code = resultCodeToJSON(result);
  const hint = result === ResultCode.UNAUTHORIZED ? ': admin is off on this port or the token is wrong (FASTPORT_ADMIN_TOKEN)' : '';
  return new AdminError('admin-refused', `the server answered ${code}${hint}`);
}

export async function adminStatus(host: string, port: number, token: string, timeoutMs = 2000): Promise<AdminStatus> {
  const payload = await adminRoundTrip(host, port, ServerStatusRequest.encode(ServerStatusRequest.fromPartial({ authToken: token })).finish(), PacketId.ServerStatusRequest, PacketId.ServerStatusResponse, timeoutMs);
  const m = ServerStatusResponse.decode(payload);
  if (m.result !== ResultCode.OK) throw refused(m.result);
  return {
    engine: m.engineName,
    version: m.version,
    workers: m.workers,
    connections: m.connections,
    totalConnections: Number(m.totalConnections),
    uptimeMs: Number(m.uptimeMs),
    bytesIn: Number(m.bytesIn),
    bytesOut: Number(m.bytesOut),
    packetsIn: Number(m.packetsIn),
    packetsOut: Number(m.packetsOut),
    rssBytes: Number(m.memoryRssBytes),
    cpuPercent: m.cpuPercent,
    ioThreads: m.ioThreads,
    adminRefused: Number(m.adminRefused),
  };
}

export async function adminSessions(host: string, port: number, token: string, offset: number, limit: number, timeoutMs = 2000): Promise<AdminSessionPage> {
  const req = SessionListRequest.encode(SessionListRequest.fromPartial({ offset, limit, authToken: token })).finish();
  const payload = await adminRoundTrip(host, port, req, PacketId.SessionListRequest, PacketId.SessionListResponse, timeoutMs);
  const m = SessionListResponse.decode(payload);
  if (m.result !== ResultCode.OK) throw refused(m.result);
  return {
    total: m.total,
    offset: m.offset,
    sessions: m.sessions.map((s) => ({
      id: Number(s.id),
      worker: s.worker,
      remote: `${s.remoteAddress}:${s.remotePort}`,
      bytesIn: Number(s.bytesIn),
      bytesOut: Number(s.bytesOut),
      packetsIn: Number(s.packetsIn),
      packetsOut: Number(s.packetsOut),
      connectedAtMs: Number(s.connectedAtMs),
      sendQueueBytes: Number(s.sendQueueBytes),
    })),
  };
}
