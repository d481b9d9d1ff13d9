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
  Router,
  send,
} from '@fastport/protocol';
import type { Server, Session } from '@fastport/session';
import type { ErrorLog } from './error-log';
import { AdminGate, installAdminHandlers, localAdminSource, type AdminSource } from './admin';

export interface AppAdmin {
  gate: AdminGate;
  /** Default: this process's own sessions. */
  source?: AdminSource;
}

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

/** The protocol packets FastPort's server answers: ping, echo, benchmark, admin, chat relay. */
export function installAppHandlers(
  server: Server,
  logger: pino.Logger,
  opts: { mode: string },
  errors?: ErrorLog,
  admin: AppAdmin = { gate: new AdminGate(undefined) },
): Router<Session> {
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
    .on(ChatMessage, (session, msg) => {
      // Relay to everyone else, stamped by the server.
      const payload = ChatMessage.encode({ ...msg, from: msg.from || `session-${session.id}`, timeMs: BigInt(Date.now()) }).finish();
      server.sessions.broadcast(payload, router.registry.idOf(ChatMessage), (s) => s !== session);
    });

  installAdminHandlers(router, admin.source ?? localAdminSource(server, 0, () => admin.gate.refused), admin.gate, refusalLog(logger, admin.gate));

  server.on('frame', (session: Session, frame) => {
    router.dispatch(session, frame.id, frame.payload);
  });
  logger.debug({ mode: opts.mode, packets: [...router.registry].map((d) => d.name) }, 'app handlers installed');
  return router;
}

/** Every refusal is counted (gate.refused); a peer that floods them gets one warning per 5 s, with the count since the last one. */
export function refusalLog(logger: pino.Logger, gate: AdminGate, intervalMs = 5_000): (session: Session, what: string) => void {
  let lastAt = 0;
  let since = 0;
  return (session, what) => {
    since++;
    const now = Date.now();
    if (now - lastAt < intervalMs) return;
    lastAt = now;
    logger.warn({ session: session.id, remote: session.remote.address, what, adminEnabled: gate.enabled, refusedSinceLastLine: since, refusedTotal: gate.refused }, 'admin request refused');
    since = 0;
  };
}
