import * as http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { HostStats, Server } from '@fastport/session';

/*
 * Prometheus metrics. The hot path is not touched: every counter is read
 * from the counters the session host and engine keep anyway, at scrape time
 * (`collect`). The one exception is the heartbeat RTT histogram, observed once
 * per pong (a few per session per minute), never per frame.
 */

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface ServerMetricsOptions {
  /** The `worker` label of every series ('0' without a supervisor). */
  worker: string;
  /** Admin requests refused so far. */
  adminRefused: () => number;
}

/** Seconds: heartbeat round trips on loopback are sub-millisecond, across a WAN hundreds of ms. */
const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A registry with the server's metrics and the process's default ones, labelled with the worker. */
export function createServerMetrics(server: Server, opts: ServerMetricsOptions): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: opts.worker });
  collectDefaultMetrics({ register: registry });

  // One snapshot per scrape: each collect() would otherwise recompute stats.
  let snap: HostStats | undefined;
  let snapAt = 0;
  const stats = (): HostStats => {
    const now = Date.now();
    if (snap === undefined || now - snapAt > 100) {
      snap = server.stats();
      snapAt = now;
    }
    return snap;
  };
  const registers = [registry];
  const gauge = (name: string, help: string, read: (s: HostStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(stats()));
      },
    });
  const counter = (name: string, help: string, read: (s: HostStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(Math.max(0, read(stats())));
      },
    });

  gauge('fastport_sessions_active', 'Sessions open now', (s) => s.sessions);
  gauge('fastport_sessions_detached', 'Resumable sessions waiting for a new connection', (s) => s.detached);
  counter('fastport_accepts_total', 'Connections accepted by the engine', (s) => s.engine.accepted);
  counter('fastport_sessions_total', 'Sessions opened', (s) => s.sessionsTotal);
  new Counter({
    name: 'fastport_closes_total',
    help: 'Sessions closed, by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(stats().closeReasons)) this.inc({ reason }, n);
    },
  });
  counter('fastport_bytes_in_total', 'Bytes received', (s) => s.bytesIn);
  counter('fastport_bytes_out_total', 'Bytes sent (session layer)', (s) => s.bytesOut);
  counter('fastport_frames_in_total', 'Application frames received', (s) => s.framesIn);
  counter('fastport_frames_out_total', 'Application frames sent', (s) => s.framesOut);
  counter('fastport_control_frames_in_total', 'Session control frames received (heartbeat, ack, GOAWAY...)', (s) => s.controlIn);
  counter('fastport_control_frames_out_total', 'Session control frames sent', (s) => s.controlOut);
  gauge('fastport_send_queue_bytes', 'Bytes queued in the engine, not yet taken by the kernel', (s) => s.engine.pendingBytes);
  gauge('fastport_send_queue_held_bytes', 'Send-queue memory the native engine holds (whole chunks)', (s) => s.engine.sendChunkBytesHeld ?? s.engine.pendingBytes);
  new Counter({
    name: 'fastport_backpressure_events_total',
    help: 'Backpressure: application sends refused, sessions paused for reading, engine sends refused',
    labelNames: ['kind'],
    registers,
    collect() {
      const s = stats();
      this.reset();
      this.inc({ kind: 'send-refused' }, s.refused);
      this.inc({ kind: 'read-pause' }, s.readPauses);
      this.inc({ kind: 'engine-send-refused' }, s.engine.sendsRefused);
      this.inc({ kind: 'dropped' }, s.dropped);
    },
  });
  gauge('fastport_read_paused_sessions', 'Sessions whose reading is paused now', (s) => s.readPaused);
  gauge('fastport_memory_budget_used_bytes', 'Bytes the memory budget counts now (send queues, reassembly, replay)', (s) => s.memory?.usedBytes ?? 0);
  new Gauge({
    name: 'fastport_memory_budget_limit_bytes',
    help: 'The memory budget (shared by the process)',
    registers,
    // Every worker has its own budget: the limits add up too.
    collect() {
      this.set(stats().memory?.limitBytes ?? 0);
    },
  });
  counter('fastport_memory_budget_evictions_total', 'Sessions closed because the memory budget was full', (s) => s.memory?.evictions ?? 0);
  counter('fastport_engine_events_total', 'Engine events delivered to JS', (s) => s.engine.events);
  counter('fastport_engine_batches_total', 'Engine batches (events per batch = rate(events) / rate(batches))', (s) => s.engine.batches);
  counter('fastport_engine_js_crossings_total', 'Native-to-JS calls (events per crossing = rate(events) / rate(crossings))', (s) => s.engine.jsCrossings);
  counter('fastport_engine_send_submissions_total', 'Kernel submissions of send data after coalescing', (s) => s.engine.sendSubmissions);
  new Gauge({
    name: 'fastport_engine_events_per_batch',
    help: 'Mean engine batch size since start (events / batches); across workers the mean of the workers',
    registers,
    aggregator: 'average',
    collect() {
      const e = stats().engine;
      this.set(e.batches > 0 ? e.events / e.batches : 0);
    },
  });
  new Gauge({
    name: 'fastport_engine_events_per_js_crossing',
    help: 'Events per native-to-JS call since start; across workers the mean of the workers',
    registers,
    aggregator: 'average',
    collect() {
      const e = stats().engine;
      this.set(e.jsCrossings > 0 ? e.events / e.jsCrossings : 0);
    },
  });
  counter('fastport_framing_errors_total', 'Sessions closed for a malformed or oversized frame', (s) => s.framingErrors);
  counter('fastport_handler_errors_total', 'Handler errors', (s) => s.handlerErrors);
  counter('fastport_refused_connections_total', 'Connections reset at accept (maxSessions)', (s) => s.refusedConnections);
  new Counter({
    name: 'fastport_admin_refused_total',
    help: 'Admin requests refused (admin off, no token or a wrong one)',
    registers,
    collect() {
      this.reset();
      this.inc(opts.adminRefused());
    },
  });
  new Counter({
    name: 'fastport_proxy_protocol_total',
    help: 'PROXY protocol headers: accepted (proxy, local, unknown) and rejected connections by reason',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      const p = server.proxyStats();
      if (p === null) return;
      for (const [k, n] of Object.entries(p.accepted)) this.inc({ outcome: k }, n);
      for (const [k, n] of Object.entries(p.rejected)) this.inc({ outcome: k }, n);
    },
  });
  const rtt = new Histogram({
    name: 'fastport_heartbeat_rtt_seconds',
    help: 'Round trip of server heartbeat probes (--heartbeat)',
    buckets: RTT_BUCKETS,
    registers,
  });
  server.on('heartbeat', (_session, e) => {
    if (e.type === 'pong' && e.rttMs !== undefined) rtt.observe(e.rttMs / 1000);
  });
  return registry;
}

/** Metrics of the supervisor itself (its own process, workers running, restarts). */
export function createSupervisorMetrics(running: () => number, restarts: () => Map<number, number>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: 'supervisor' });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new Gauge({
    name: 'fastport_workers_running',
    help: 'Worker processes running',
    registers,
    collect() {
      this.set(running());
    },
  });
  new Counter({
    name: 'fastport_worker_restarts_total',
    help: 'Workers restarted after they died, by worker',
    labelNames: ['slot'],
    registers,
    collect() {
      this.reset();
      for (const [slot, n] of restarts()) this.inc({ slot: String(slot) }, n);
    },
  });
  return registry;
}

/**
 * Merges the registries' JSON into one text exposition. `sum`: the worker
 * label is dropped and series that then match are summed (histograms bucket
 * by bucket), so e.g. fastport_sessions_active is the total over workers.
 */
export async function renderMetrics(parts: MetricsJson[], sum: boolean): Promise<string> {
  const input = sum ? parts.map((metrics) => metrics.map((m) => ({ ...m, values: m.values.map((v) => ({ ...v, labels: withoutWorker(v.labels) })) }))) : parts;
  return AggregatorRegistry.aggregate(input as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
}

function withoutWorker(labels: MetricValue<string>['labels']): MetricValue<string>['labels'] {
  const out: MetricValue<string>['labels'] = {};
  for (const [k, v] of Object.entries(labels)) if (k !== 'worker') out[k] = v;
  return out;
}

/**
 * Serves GET /metrics (per-worker series, `worker` label) and GET /metrics/sum
 * (summed over workers) on host:port.
 */
export function serveMetrics(host: string, port: number, collect: () => Promise<MetricsJson[]>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/metrics/sum')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics or /metrics/sum\n');
      return;
    }
    collect()
      .then((parts) => renderMetrics(parts, path === '/metrics/sum'))
      .then(
        (text) => res.writeHead(200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
