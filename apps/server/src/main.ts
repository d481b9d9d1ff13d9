import pino from 'pino';
import yargs from 'yargs';
import { ENGINE_KINDS, type EngineRequest } from '@fastport/native-io';
import { Server, type FramingOption, type ShutdownReport } from '@fastport/session';
import { installAppHandlers } from './app-handlers';
import { DEFAULT_ERROR_LOG_INTERVAL_MS, ErrorLog, type ErrorLogStats } from './error-log';

const errorLogs = new WeakMap<Server, ErrorLog>();

/** Handler errors of a server started by startServer: every one counted, by code (logged at most once per session per interval). */
export function errorStats(server: Server): ErrorLogStats | undefined {
  return errorLogs.get(server)?.stats();
}

export interface ServerCliOptions {
  engine: EngineRequest;
  host: string;
  port: number;
  threads: number | undefined;
  framing: 'fastport' | 'large' | 'u32le';
  maxFrame: number | undefined;
  mode: 'app' | 'echo';
  reusePort: boolean;
  heartbeat: number;
  idleTimeout: number;
  statsInterval: number;
  grace: number;
  logLevel: string;
  /** ms: at most one error line per session in this long. */
  errorLogInterval: number;
  /** Per-session queue limit (bytes). */
  maxPending: number | undefined;
  /** Stop reading sessions whose queue passed the high watermark (engines that can). */
  readBackpressure: boolean;
  /** What a reply past the queue limit does: drop it (counted), throw ERR_BACKPRESSURE (a handler error), or close the session. */
  backpressure: 'drop' | 'reject' | 'close';
}

export function parseServerArgs(argv: string[]): ServerCliOptions {
  const args = yargs(argv)
    .scriptName('fastport-server')
    .usage('$0 [options]\n\nA FastPort server: protocol handlers (app) or a framed echo (echo).')
    .option('engine', {
      choices: ['auto', ...ENGINE_KINDS] as const,
      default: 'auto' as const,
      describe: 'I/O engine; auto picks uring → epoll (Linux), rio → iocp (Windows), else node',
    })
    .option('rio', { type: 'boolean', default: false, describe: 'alias of --engine rio (FastPort flag)' })
    .option('host', { type: 'string', default: '0.0.0.0', describe: 'address to bind' })
    .option('port', { type: 'number', default: 9000, describe: 'port to listen on (0 = any free port)' })
    .option('threads', { type: 'number', describe: 'native I/O threads (0 = inline on the JS loop)' })
    .option('framing', {
      choices: ['fastport', 'large', 'u32le'] as const,
      default: 'fastport' as const,
      describe: 'fastport: u16 BE size+u16 id; large: u32 BE size+u16 id; u32le: u32 LE payload length',
    })
    .option('max-frame', { type: 'number', describe: 'largest frame accepted (large/u32le; default 16 MiB)' })
    .option('mode', {
      choices: ['app', 'echo'] as const,
      default: 'app' as const,
      describe: 'app: ping/echo/benchmark/admin packets; echo: every frame sent back verbatim',
    })
    .option('heartbeat', {
      type: 'number',
      default: 0,
      describe: 'ms between heartbeat probes to every session (0 = off); the 5th missed probe closes it (peers must speak FastPort session control frames)',
    })
    .option('idle-timeout', { type: 'number', default: 0, describe: 'close sessions silent for this many ms (0 = off)' })
    .option('reuse-port', { type: 'boolean', default: false, describe: 'SO_REUSEPORT (several processes, one port)' })
    .option('stats-interval', { type: 'number', default: 0, describe: 'log stats every N seconds (0 = off)' })
    .option('grace', { type: 'number', default: 5000, describe: 'ms for the graceful stop on SIGINT/SIGTERM (GOAWAY, flush, half-close), then reset' })
    .option('log-level', { type: 'string', default: 'info', describe: 'pino level: trace|debug|info|warn|error' })
    .option('error-log-interval', {
      type: 'number',
      default: DEFAULT_ERROR_LOG_INTERVAL_MS,
      describe: 'ms: handler errors are all counted (stats), but logged at most once per session per interval',
    })
    .option('max-pending', { type: 'number', describe: 'per-session send queue limit in bytes (default 10 MiB)' })
    .option('read-backpressure', {
      type: 'boolean',
      default: true,
      describe: 'stop reading a session whose queue passed its high watermark until it drains (--no-read-backpressure: read at line rate)',
    })
    .option('backpressure', {
      choices: ['drop', 'reject', 'close'] as const,
      default: 'drop' as const,
      describe: 'a reply past --max-pending: drop (counted as dropped in the stats), reject (a handler error ERR_BACKPRESSURE, logged as below), close the session',
    })
    .strict()
    .help()
    .parseSync();
  return {
    engine: args.rio ? 'rio' : args.engine,
    host: args.host,
    port: args.port,
    threads: args.threads,
    framing: args.framing,
    maxFrame: args['max-frame'],
    mode: args.mode,
    reusePort: args['reuse-port'],
    heartbeat: args.heartbeat,
    idleTimeout: args['idle-timeout'],
    statsInterval: args['stats-interval'],
    grace: args.grace,
    logLevel: args['log-level'],
    errorLogInterval: args['error-log-interval'],
    maxPending: args['max-pending'],
    readBackpressure: args['read-backpressure'],
    backpressure: args.backpressure,
  };
}

export async function startServer(opts: ServerCliOptions, logger: pino.Logger): Promise<Server> {
  const framing: FramingOption =
    opts.maxFrame !== undefined && opts.framing !== 'fastport'
      ? { preset: opts.framing, maxFrameSize: opts.maxFrame }
      : opts.framing;
  const server = new Server({
    engine: opts.engine,
    framing,
    reusePort: opts.reusePort,
    ...(opts.heartbeat > 0 ? { heartbeat: { intervalMs: opts.heartbeat } } : {}),
    ...(opts.idleTimeout > 0 ? { idleTimeoutMs: opts.idleTimeout } : {}),
    ...(opts.threads !== undefined ? { ioThreads: opts.threads } : {}),
    ...(opts.maxPending !== undefined
      ? // Pausing at half the limit leaves room for the answers to one read batch already taken in.
        { maxPendingBytes: opts.maxPending, highWaterMark: Math.min(1024 * 1024, Math.floor(opts.maxPending / 2)) }
      : {}),
    readBackpressure: opts.readBackpressure,
    backpressure: opts.backpressure,
  });
  const errors = new ErrorLog(logger, opts.errorLogInterval);
  errorLogs.set(server, errors);
  server.on('error', (err: Error, session?: { id: number }) => errors.report(err, session?.id));
  if (opts.mode === 'echo') {
    // The echo is written the way a user would write it: one handler call per frame.
    server.on('frame', (session, frame) => {
      session.sendFrame(frame.bytes);
    });
  } else {
    installAppHandlers(server, logger, opts, errors);
  }
  server.on('close', (session, info) => {
    errors.sessionClosed(session.id);
    if (info.reason !== 'local' && info.reason !== 'peer' && info.reason !== 'shutdown') {
      logger.debug({ session: session.id, ...info }, 'session closed');
    }
  });
  const address = await server.listen(opts.port, opts.host);
  logger.info(
    {
      engine: server.engine.info.kind,
      requested: server.engine.info.requested,
      reason: server.engine.info.reason,
      ioThreads: server.engine.info.ioThreads,
      address: address.address,
      port: address.port,
      framing: opts.framing,
      mode: opts.mode,
    },
    `fastport-server listening on ${address.address}:${address.port} (engine ${server.engine.info.kind})`,
  );
  return server;
}

/**
 * Graceful stop in layers (SIGINT/SIGTERM): stop accepting → GOAWAY to
 * session-protocol peers (they ack, stop sending, half-close) → flush queues
 * → half-close → reset what is left at `graceMs`. Logs one line per session
 * that did not finish cleanly and a summary with the per-session outcomes.
 */
export async function stopServer(server: Server, logger: pino.Logger, graceMs: number, signal: string): Promise<ShutdownReport> {
  logger.info({ signal, sessions: server.sessions.size, graceMs }, 'stopping: no new connections, GOAWAY, flushing sessions');
  const report = await server.shutdown({ deadlineMs: graceMs, message: `server stopping (${signal})` });
  for (const s of report.sessions) {
    if (s.outcome !== 'flushed') logger.warn({ session: s.id, remote: s.remote, outcome: s.outcome, bytesLeft: s.bytesLeft, reason: s.reason }, 'session not flushed');
    else logger.debug({ session: s.id, remote: s.remote, goaway: s.goaway }, 'session flushed');
  }
  logger.info(
    {
      flushed: report.flushed,
      timedOut: report.timedOut,
      failed: report.failed,
      detachedClosed: report.detachedClosed,
      bytesLeft: report.sessions.reduce((n, s) => n + s.bytesLeft, 0),
      durationMs: report.durationMs,
      sessions: report.sessions,
      stats: server.stats(),
    },
    'stopped',
  );
  return report;
}

export async function main(argv: string[]): Promise<void> {
  const opts = parseServerArgs(argv);
  const logger = pino({ level: opts.logLevel, base: { app: 'fastport-server', pid: process.pid } });
  let server: Server;
  try {
    server = await startServer(opts, logger);
  } catch (err) {
    logger.fatal({ err }, 'failed to start');
    process.exitCode = 1;
    return;
  }
  let statsTimer: NodeJS.Timeout | undefined;
  if (opts.statsInterval > 0) {
    statsTimer = setInterval(() => logger.info({ stats: server.stats(), handlerErrors: errorStats(server) }, 'stats'), opts.statsInterval * 1000);
    statsTimer.unref();
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    if (statsTimer) clearInterval(statsTimer);
    stopServer(server, logger, opts.grace, signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // fastport-bench reads counters (engine events/batches/jsCrossings, heap) without a connection:
  // SIGUSR2 logs one 'stats snapshot' line, after a full GC when node runs with --expose-gc.
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    logger.info({ stats: server.stats(), memory: process.memoryUsage() }, 'stats snapshot');
  });
}
