import cluster from 'node:cluster';
import type * as http from 'node:http';
import * as os from 'node:os';
import pino from 'pino';
import yargs from 'yargs';
import { ENGINE_KINDS, engineAvailability, type EngineRequest } from '@fastport/native-io';
import { PingRequest, PingResponse, Router, send } from '@fastport/protocol';
import { Server, type FramingOption, type ServerOptions, type Session, type ShutdownReport } from '@fastport/session';
import { AdminGate, installAdminHandlers, localAdminSource, localSessions, localStatus, CpuMeter, type AdminSource, type SessionPage, type StatusSummary } from './admin';
import { installAppHandlers, refusalLog } from './app-handlers';
import { DEFAULT_ERROR_LOG_INTERVAL_MS, ErrorLog, type ErrorLogStats } from './error-log';
import { Rpc, type IpcChannel, type IpcMessage } from './ipc';
import { createServerMetrics, createSupervisorMetrics, serveMetrics, type MetricsJson } from './metrics';
import { ENV_WORKER_ID, ENV_WORKER_PORT, Supervisor } from './supervisor';

const errorLogs = new WeakMap<Server, ErrorLog>();
const adminGates = new WeakMap<Server, AdminGate>();

/** The admin gate of a server started by startServer (its refusal count). */
export function adminGate(server: Server): AdminGate | undefined {
  return adminGates.get(server);
}

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
  /** Worker processes under a supervisor; undefined: this process serves alone. */
  workers: number | undefined;
  /** ms before the first restart of a crashed worker (doubles per crash in a row, up to 30 s). */
  restartDelay: number;
  /** Admin requests on the main port must carry this token; undefined: refused there. */
  adminToken: string | undefined;
  /** Loopback listener whose admin requests need no token. */
  adminPort: number | undefined;
  metricsPort: number | undefined;
  metricsHost: string;
  /** Expect a PROXY protocol v1/v2 header on every connection. */
  proxyProtocol: boolean;
  /** ms a connection has to send its PROXY header. */
  proxyTimeout: number;
}

function parseWorkers(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (v === 'auto') return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > 1024) throw new Error(`--workers must be 'auto' or an integer 1..1024 (got ${String(v)})`);
  return n;
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
    .option('workers', {
      type: 'string',
      describe: "worker processes sharing the port (SO_REUSEPORT), under a supervisor that restarts them; 'auto' = cores. Default: one process, no supervisor",
    })
    .option('restart-delay', { type: 'number', default: 200, describe: 'ms before restarting a crashed worker; doubles per crash in a row, up to 30 s' })
    .option('admin-token', {
      type: 'string',
      describe: 'admin packets (status, session list) on the main port must carry this token (or set FASTPORT_ADMIN_TOKEN). Default: admin refused there',
    })
    .option('admin-port', { type: 'number', describe: 'extra listener on 127.0.0.1 for admin packets without a token (fastport framing)' })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus metrics on http://<metrics-host>:<port>/metrics (and /metrics/sum)' })
    .option('metrics-host', { type: 'string', default: '127.0.0.1', describe: 'address of the metrics listener' })
    .option('proxy-protocol', { type: 'boolean', default: false, describe: 'expect a PROXY protocol v1/v2 header on every connection (behind HAProxy, an NLB...)' })
    .option('proxy-timeout', { type: 'number', default: 5000, describe: 'ms a connection has to send its PROXY header' })
    .strict()
    .help()
    .parseSync();
  const adminToken = args['admin-token'] ?? process.env['FASTPORT_ADMIN_TOKEN'];
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
    workers: parseWorkers(args.workers),
    restartDelay: args['restart-delay'],
    adminToken: adminToken !== undefined && adminToken !== '' ? adminToken : undefined,
    adminPort: args['admin-port'],
    metricsPort: args['metrics-port'],
    metricsHost: args['metrics-host'],
    proxyProtocol: args['proxy-protocol'],
    proxyTimeout: args['proxy-timeout'],
  };
}

/** How a worker process runs startServer. */
export interface StartContext {
  /** The worker id (0 without a supervisor): the `worker` field of admin session rows. */
  worker?: number;
  /** Where admin answers come from (default: this process). */
  adminSource?: AdminSource;
}

export async function startServer(opts: ServerCliOptions, logger: pino.Logger, ctx: StartContext = {}): Promise<Server> {
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
    ...(opts.proxyProtocol ? { proxyProtocol: { headerTimeoutMs: opts.proxyTimeout } } : {}),
  } satisfies ServerOptions);
  const gate = new AdminGate(opts.adminToken);
  adminGates.set(server, gate);
  const errors = new ErrorLog(logger, opts.errorLogInterval);
  errorLogs.set(server, errors);
  server.on('error', (err: Error, session?: { id: number }) => errors.report(err, session?.id));
  if (opts.mode === 'echo') {
    // The echo is written the way a user would write it: one handler call per frame.
    server.on('frame', (session, frame) => {
      session.sendFrame(frame.bytes);
    });
  } else {
    installAppHandlers(server, logger, opts, errors, { gate, source: ctx.adminSource ?? localAdminSource(server, ctx.worker ?? 0, () => gate.refused) });
  }
  const lifecycle = logger.isLevelEnabled('debug');
  if (lifecycle) {
    // Per-session lifecycle at debug only: at info and above no listener costs anything per session.
    server.on('session', (session) => logger.debug({ session: session.id, remote: `${session.remote.address}:${session.remote.port}` }, 'session open'));
    server.on('liveness', (session, state, previous) => logger.debug({ session: session.id, liveness: state, previous }, 'session liveness'));
  }
  server.on('close', (session, info) => {
    errors.sessionClosed(session.id);
    if (lifecycle) logger.debug({ session: session.id, ...info, bytesIn: session.counters.bytesIn, bytesOut: session.counters.bytesOut }, 'session closed');
  });
  server.on('proxy-rejected', (remote, err) => {
    if (lifecycle) logger.debug({ remote: `${remote.address}:${remote.port}`, reason: err.reason, message: err.message }, 'connection closed: PROXY header');
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
      admin: opts.adminToken !== undefined ? 'token' : 'off',
      proxyProtocol: opts.proxyProtocol,
    },
    `fastport-server listening on ${address.address}:${address.port} (engine ${server.engine.info.kind})`,
  );
  return server;
}

const STOP_LOG_SESSIONS = 1000;

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
      // One entry per session: past a thousand the line would be megabytes (the not-flushed ones are logged above).
      ...(report.sessions.length <= STOP_LOG_SESSIONS ? { sessions: report.sessions } : { sessionsOmitted: report.sessions.length }),
      stats: server.stats(),
    },
    'stopped',
  );
  return report;
}


/**
 * A listener on 127.0.0.1 for operators: admin packets without a token (its
 * peers are local), and ping. Always fastport framing, node engine: its
 * traffic is a few packets, and the supervisor that may run it has no engine.
 */
export async function startAdminListener(port: number, source: AdminSource, logger: pino.Logger): Promise<Server> {
  const server = new Server({ engine: 'node', framing: 'fastport', memoryBudget: false });
  const router = new Router<Session>({
    onError: (event) => logger.warn({ session: event.session.id, kind: event.kind, packetId: event.packetId }, 'admin listener: packet rejected'),
  });
  const gate = new AdminGate(undefined, true);
  installAdminHandlers(router, source, gate, refusalLog(logger, gate));
  router.on(PingRequest, (session, msg) => send(session, PingResponse, { clientTimeUs: msg.clientTimeUs, serverTimeUs: BigInt(Date.now()) * 1000n, seq: msg.seq }));
  server.on('frame', (session, frame) => router.dispatch(session, frame.id, frame.payload));
  server.on('error', (err) => logger.warn({ err }, 'admin listener error'));
  const address = await server.listen(port, '127.0.0.1');
  logger.info({ adminPort: address.port }, `admin listener on 127.0.0.1:${address.port}`);
  return server;
}

/** The node engine has no SO_REUSEPORT before Node 22.12: its workers share the port through cluster's handle instead. */
function resolvesToNode(engine: EngineRequest): boolean {
  if (engine === 'node') return true;
  if (engine !== 'auto') return false;
  const native = process.platform === 'win32' ? (['rio', 'iocp'] as const) : (['uring', 'epoll'] as const);
  return !native.some((k) => engineAvailability(k).available);
}

export async function main(argv: string[]): Promise<void> {
  let opts: ServerCliOptions;
  try {
    opts = parseServerArgs(argv);
  } catch (err) {
    console.error(`fastport-server: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  if (cluster.isWorker && process.env[ENV_WORKER_ID] !== undefined) return runWorker(opts, Number(process.env[ENV_WORKER_ID]));
  if (opts.workers !== undefined) return runSupervisor(opts);
  return runSingle(opts);
}

function closeHttp(server: http.Server | undefined): Promise<void> {
  return new Promise((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
}

/** One process, no supervisor (the default). */
async function runSingle(opts: ServerCliOptions): Promise<void> {
  const logger = pino({ level: opts.logLevel, base: { app: 'fastport-server', pid: process.pid, worker: 0 } });
  let server: Server;
  let admin: Server | undefined;
  let metricsHttp: http.Server | undefined;
  try {
    server = await startServer(opts, logger);
    const gate = adminGates.get(server)!;
    if (opts.adminPort !== undefined) admin = await startAdminListener(opts.adminPort, localAdminSource(server, 0, () => gate.refused), logger);
    if (opts.metricsPort !== undefined) {
      const registry = createServerMetrics(server, { worker: '0', adminRefused: () => gate.refused });
      metricsHttp = await serveMetrics(opts.metricsHost, opts.metricsPort, async () => [await registry.getMetricsAsJSON()]);
      logMetricsListening(logger, metricsHttp);
    }
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
    Promise.all([stopServer(server, logger, opts.grace, signal), admin?.close(100), closeHttp(metricsHttp)]).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  installSnapshotSignal(logger, () => server.stats());
}

function logMetricsListening(logger: pino.Logger, h: http.Server): void {
  const a = h.address();
  const port = typeof a === 'object' && a !== null ? a.port : 0;
  logger.info({ metricsPort: port }, `metrics on http://${typeof a === 'object' && a !== null ? a.address : '?'}:${port}/metrics`);
}

// fastport-bench reads counters (engine events/batches/jsCrossings, heap) without a connection:
// SIGUSR2 logs one 'stats snapshot' line, after a full GC when node runs with --expose-gc.
function installSnapshotSignal(logger: pino.Logger, stats: () => unknown): void {
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    logger.info({ stats: stats(), memory: process.memoryUsage() }, 'stats snapshot');
  });
}

/** A worker under the supervisor: one engine, the shared port, answers over IPC. */
async function runWorker(opts: ServerCliOptions, worker: number): Promise<void> {
  const logger = pino({ level: opts.logLevel, base: { app: 'fastport-server', pid: process.pid, worker } });
  const envPort = process.env[ENV_WORKER_PORT];
  const port = envPort !== undefined ? Number(envPort) : opts.port;
  const viaCluster = resolvesToNode(opts.engine);
  let server: Server | undefined;
  let registry: ReturnType<typeof createServerMetrics> | undefined;
  const cpu = new CpuMeter();
  const channel: IpcChannel = {
    send: (m: IpcMessage) => process.send?.(m),
    on: (e, l) => process.on(e, l),
    off: (e, l) => process.off(e, l),
  };
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (server === undefined) process.exit(0);
    stopServer(server, logger, opts.grace, signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  const rpc = new Rpc(
    channel,
    {
      status: (): StatusSummary => localStatus(server!, cpu, adminGates.get(server!)?.refused ?? 0),
      count: (): number => server!.sessions.size,
      sessions: (args): SessionPage => {
        const a = args as { offset: number; limit: number };
        return localSessions(server!, worker, a.offset, a.limit);
      },
      metrics: async (): Promise<MetricsJson> => (registry !== undefined ? registry.getMetricsAsJSON() : []),
      stats: () => ({ ...server!.stats(), handlerErrors: errorStats(server!) }),
    },
    (m) => {
      if (m.fp === 'shutdown') stop(m.signal);
    },
  );
  // A terminal's Ctrl-C reaches the whole process group: the worker stops the same way as when told.
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  const adminSource: AdminSource = {
    status: () => rpc.call<StatusSummary>('admin-status'),
    sessions: (offset, limit) => rpc.call<SessionPage>('admin-sessions', { offset, limit }),
  };
  try {
    server = await startServer({ ...opts, port, reusePort: opts.reusePort || !viaCluster }, logger, { worker, adminSource });
  } catch (err) {
    logger.fatal({ err }, 'worker failed to start');
    process.exit(1);
  }
  const gate = adminGates.get(server)!;
  if (opts.metricsPort !== undefined) registry = createServerMetrics(server, { worker: String(worker), adminRefused: () => gate.refused });
  if (opts.statsInterval > 0) {
    const s = server;
    setInterval(() => logger.info({ stats: s.stats(), handlerErrors: errorStats(s) }, 'stats'), opts.statsInterval * 1000).unref();
  }
  installSnapshotSignal(logger, () => server!.stats());
  const address = server.address!;
  process.send?.({ fp: 'listening', port: address.port, address: address.address, engine: server.engine.info.kind, pid: process.pid } satisfies IpcMessage);
}

/** `--workers N`: forks the workers, restarts them, stops them, answers for all of them. */
async function runSupervisor(opts: ServerCliOptions): Promise<void> {
  const workers = opts.workers!;
  const logger = pino({ level: opts.logLevel, base: { app: 'fastport-server', pid: process.pid, role: 'supervisor' } });
  const sharedByCluster = resolvesToNode(opts.engine);
  if (process.platform === 'win32' && !sharedByCluster && workers > 1) {
    // Windows has no SO_REUSEPORT: several iocp/rio listeners cannot share one port.
    logger.fatal({ engine: opts.engine, workers }, '--workers > 1 on Windows needs --engine node (cluster shares its port); the iocp and rio engines cannot share one');
    process.exitCode = 2;
    return;
  }
  const sup = new Supervisor({ workers, port: opts.port, sharedByCluster, graceMs: opts.grace, restartDelayMs: opts.restartDelay }, logger);
  let admin: Server | undefined;
  let metricsHttp: http.Server | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, workers: sup.running }, 'stopping all workers');
    sup.shutdown(signal).then(
      async (exits) => {
        await Promise.all([admin?.close(100), closeHttp(metricsHttp)]);
        const clean = exits.every((e) => e.code === 0);
        logger.info({ signal, workers: exits, clean }, 'stopped');
        process.exit(clean ? 0 : 1);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Each worker logs its own 'stats snapshot' line.
  process.on('SIGUSR2', () => sup.signalAll('SIGUSR2'));
  try {
    await sup.start();
    if (opts.adminPort !== undefined) {
      admin = await startAdminListener(opts.adminPort, { status: () => sup.status(), sessions: (o, l) => sup.sessions(o, l) }, logger);
    }
    if (opts.metricsPort !== undefined) {
      const own = createSupervisorMetrics(() => sup.running, () => sup.restarts());
      metricsHttp = await serveMetrics(opts.metricsHost, opts.metricsPort, async () => [...(await sup.metrics()), await own.getMetricsAsJSON()]);
      logMetricsListening(logger, metricsHttp);
    }
  } catch (err) {
    logger.fatal({ err }, 'failed to start');
    if (!stopping) {
      await sup.shutdown('startup-failed');
      process.exit(1);
    }
    return;
  }
  logger.info(
    { supervisor: true, workers, port: sup.boundPort, host: opts.host, engine: opts.engine, portSharing: sharedByCluster ? 'cluster' : 'SO_REUSEPORT' },
    `fastport-server listening on ${opts.host}:${sup.boundPort} with ${workers} workers`,
  );
  if (opts.statsInterval > 0) {
    setInterval(() => {
      sup.status().then(
        (total) => logger.info({ total }, 'stats (all workers)'),
        (err: unknown) => logger.warn({ err }, 'stats failed'),
      );
    }, opts.statsInterval * 1000).unref();
  }
}
