import type { EngineRequest } from '@fastport/native-io';
import type { HistogramData, LatencySummary } from './stats';

export type Framing = 'fastport' | 'large' | 'u32le';
export type Protocol = 'raw' | 'benchmark';
export type Workload = 'rr' | 'open' | 'bandwidth' | 'connect' | 'idle';
/** What the benchmark can start itself: a fastport-server engine, or one of the C reference servers. */
export type ServerKind = 'auto' | 'uring' | 'epoll' | 'iocp' | 'rio' | 'node' | 'ref-uring' | 'ref-epoll';
export const SERVER_KINDS: readonly ServerKind[] = ['auto', 'uring', 'epoll', 'iocp', 'rio', 'node', 'ref-uring', 'ref-epoll'];

/** Everything one load-generator thread needs (sent as workerData). */
export interface LoadConfig {
  workload: Exclude<Workload, 'idle'>;
  host: string;
  port: number;
  /** Source addresses to bind (empty: the kernel's choice). */
  sources: string[];
  clientEngine: EngineRequest;
  clientIoThreads: number | undefined;
  /** engine: frame raw requests on the engine directly; session: through Client/Session. */
  clientLayer: 'engine' | 'session';
  /** Connections of this thread (closed/open loop), or concurrent connect loops (connect). */
  connections: number;
  /** Index of this thread's first connection (to tell connections apart in payloads). */
  firstConnection: number;
  depth: number;
  size: number;
  framing: Framing;
  maxFrame: number;
  protocol: Protocol;
  /** open loop: messages per second for this thread. */
  rate: number;
  /** connect: close gracefully (FIN) or abortively (RST). */
  closeMode: 'graceful' | 'abort';
  threadIndex: number;
}

/** Shared counters a thread updates for the progress bar (Float64Array slots). */
export const COUNTER_SLOTS = 8;
export const C_MESSAGES = 0; // replies received (any phase)
export const C_ERRORS = 1;
export const C_MISMATCH = 2;
export const C_CONNECTED = 3;
export const C_SENT = 4;
export const C_BYTES = 5; // reply bytes received (any phase), as on the wire
export const C_OPEN = 6; // connections open now (opened minus closed)

/** Phases, in the shared Int32Array slot 0. */
export const PHASE_WARMUP = 0;
export const PHASE_MEASURE = 1;
export const PHASE_STOP = 2;

export interface ThreadResult {
  threadIndex: number;
  clientEngine: string;
  clientEngineReason: string;
  /** Replies (or completed connects) counted inside the measured window. */
  messages: number;
  /** Bytes of those replies as received on the wire (frames, headers included). */
  bytes: number;
  /** Requests sent inside the window (open loop: to check the rate was kept). */
  sent: number;
  /** Bytes compared against what was sent, over the whole run. */
  verifiedBytes: number;
  verifiedMessages: number;
  errors: number;
  mismatches: number;
  errorCodes: Record<string, number>;
  connectFailures: number;
  connected: number;
  /** Requests still unanswered when the run stopped (after a drain wait). */
  unanswered: number;
  histogram: HistogramData;
  engineStats: { events: number; batches: number; jsCrossings: number } | undefined;
}

export type WorkerToMain =
  | { type: 'ready'; connected: number; failed: number; clientEngine: string; reason: string; errorCodes: Record<string, number> }
  | { type: 'result'; result: ThreadResult }
  | { type: 'sample'; histogram: HistogramData; cpuTicks: number | undefined }
  | { type: 'fatal'; message: string };

/** pause/resume/sample: the live dashboard's runs (ui/); the CLI uses go and stop only. */
export type MainToWorker = { type: 'go' } | { type: 'stop' } | { type: 'pause' } | { type: 'resume' } | { type: 'sample' };

export interface ServerSample {
  atMs: number;
  /** CPU ticks from /proc/<pid>/stat (all threads). */
  utimeTicks: number;
  stimeTicks: number;
  rssBytes: number;
  hwmBytes: number;
}

export interface EngineCounters {
  events: number;
  batches: number;
  jsCrossings: number;
  connections: number;
}

export interface ServerMetrics {
  pid: number;
  /** Over the measured window, in % of one core. */
  cpuUserPct: number;
  cpuSysPct: number;
  cpuPct: number;
  rssBytes: number;
  hwmBytes: number;
  threads: number | undefined;
  /** Engine counters over the window (fastport-server only). */
  engine?: {
    kind: string;
    events: number;
    batches: number;
    jsCrossings: number;
    eventsPerCrossing: number;
    eventsPerBatch: number;
  };
}

export interface EchoBenchMetrics {
  command: string;
  msgsPerSec: number;
  mbPerSec: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  bad: number;
  errors: number;
  /** fastport-bench msgs/s divided by echo-bench msgs/s on the same target. */
  ratio: number;
  /** CPU used by other processes while echo-bench ran (% of one core). */
  backgroundCpuPct: number | undefined;
}

export interface IdleMetrics {
  requested: number;
  connected: number;
  failed: number;
  processes: number;
  sources: string[];
  connectSeconds: number;
  connectsPerSec: number;
  serverConnections: number | undefined;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number | undefined;
  heapAfterBytes: number | undefined;
  rssPerConnBytes: number;
  heapPerConnBytes: number | undefined;
}

export interface TargetResult {
  /** Row label: the engine, 'ref-uring', or host:port. */
  label: string;
  target: string;
  /** What served: fastport-server (engine it reported), a C reference server, or an external target. */
  server: { kind: 'fastport-server' | 'ref-echo' | 'external'; engine: string | undefined; reason: string | undefined };
  workload: Workload;
  status: 'ok' | 'failed' | 'skipped';
  note: string | undefined;
  clientEngine: string;
  clientThreads: number;
  elapsedSec: number;
  /** Replies received in the window (connect: completed connect+echo cycles). */
  messages: number;
  msgsPerSec: number;
  mbPerSec: number;
  /** open loop: the rate asked for and the send rate kept. */
  targetRate: number | undefined;
  sentPerSec: number | undefined;
  latency: LatencySummary;
  errors: number;
  mismatches: number;
  errorCodes: Record<string, number>;
  connectFailures: number;
  unanswered: number;
  verifiedBytes: number;
  clientCpuPct: number | undefined;
  /** Cores the load generator may run on (its pinning), and whether it used >= 90% of them: then the client, not the server, may be the limit. */
  clientCpus: number | undefined;
  clientSaturated: boolean | undefined;
  /** CPU used by processes other than the server and the load generator during the window, % of one core. */
  backgroundCpuPct: number | undefined;
  serverMetrics: ServerMetrics | undefined;
  echoBench: EchoBenchMetrics | undefined;
  idle: IdleMetrics | undefined;
  /** msgs/s (or, idle: RSS per connection) relative to the first row that succeeded. */
  ratioToFirst: number | undefined;
}

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  kernel: string;
  platform: string;
  node: string;
  clkTck: number;
}

export interface BenchReport {
  tool: 'fastport-bench';
  version: string;
  date: string;
  command: string;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  pinning: { server: string | undefined; client: string | undefined; note: string };
  results: TargetResult[];
}

export type { HistogramData, LatencySummary };
