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

const startedAt = Date.now();
const VERSION = '0.1.0';
const SESSION_LIST_MAX = 1000;

function nowUs(): number {
  return Date.now() * 1000;
}

/** The protocol packets FastPort's server answers: ping, echo, benchmark, admin, chat relay. */
export function installAppHandlers(server: Server, logger: pino.Logger, opts: { mode: string }): Router<Session> {
  const router = new Router<Session>({
    onError: (event) => logger.warn({ session: event.session.id, kind: event.kind, packetId: event.packetId, action: event.action }, 'packet rejected'),
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
      send(session, BenchmarkResponse, { seq: msg.seq, clientTimeNs: msg.clientTimeNs, payload: msg.payload, serverTimeNs: 0 });
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
        uptimeMs: now - startedAt,
        engineName: server.engine.info.kind,
        connections: stats.sessions,
        totalConnections: stats.sessionsTotal,
        bytesIn: stats.bytesIn,
        bytesOut: stats.bytesOut,
        packetsIn: stats.framesIn,
        packetsOut: stats.framesOut,
        idleDisconnects: stats.closeReasons['idle-timeout'] ?? 0,
        memoryRssBytes: process.memoryUsage.rss(),
        cpuPercent: ((cpu.user + cpu.system) / elapsedUs) * 100,
        serverTimeMs: now,
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
          id: s.id,
          remoteAddress: s.remote.address,
          remotePort: s.remote.port,
          bytesIn: s.counters.bytesIn,
          bytesOut: s.counters.bytesOut,
          packetsIn: s.counters.framesIn,
          packetsOut: s.counters.framesOut,
          connectedAtMs: s.connectedAt,
          lastRecvMs: 0,
          sendQueueBytes: s.pendingBytes,
        })),
      });
    })
    .on(ChatMessage, (session, msg) => {
      // Relay to everyone else, stamped by the server.
      const payload = ChatMessage.encode({ ...msg, from: msg.from || `session-${session.id}`, timeMs: Date.now() }).finish();
      server.sessions.broadcast(payload, router.registry.idOf(ChatMessage), (s) => s !== session);
    });

  server.on('frame', (session: Session, frame) => {
    router.dispatch(session, frame.id, frame.payload);
  });
  logger.debug({ mode: opts.mode, packets: [...router.registry].map((d) => d.name) }, 'app handlers installed');
  return router;
}
