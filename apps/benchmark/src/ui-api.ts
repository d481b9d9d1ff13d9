/**
 * The live dashboard's API shapes, shared by the UI server (ui-server.ts) and
 * the page (ui/app.ts, which imports these types only).
 */
import type { Framing } from './types';

export type SideId = 'A' | 'B';
export const SIDE_IDS: readonly SideId[] = ['A', 'B'];

export type SideStatus = 'idle' | 'running' | 'paused' | 'stopped' | 'failed';

/** What a person sets per side. rate 0 is closed loop (depth requests in flight per connection); rate > 0 is open loop at that many msgs/s. */
export interface SideSettings {
  /** An engine the bench starts (uring, epoll, node, iocp, rio, ref-uring, ref-epoll) or host:port of a running server. */
  target: string;
  connections: number;
  depth: number;
  size: number;
  rate: number;
  framing: Framing;
  /** Load threads of this side (each a worker with its own engine). */
  threads: number;
}

/** One second of a side's run. Null where the figure is not known (no reply in the second, no /proc for an external server, no engine counters). */
export interface SidePoint {
  /** Unix time in ms of the sample. */
  t: number;
  msgsPerSec: number;
  mbPerSec: number;
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  connections: number;
  /** Errors since the side started. */
  errors: number;
  serverCpuPct: number | null;
  serverRssBytes: number | null;
  eventsPerCrossing: number | null;
  /** CPU of this side's load threads, % of one core. */
  clientCpuPct: number | null;
}

export interface SideState {
  id: SideId;
  settings: SideSettings;
  status: SideStatus;
  /** Why it failed (or stopped, when it was not asked to). */
  reason: string | undefined;
  /** What served: engine reported by the server, its address and pid. */
  server: { kind: string; engine: string | undefined; address: string | undefined; pid: number | undefined; admin: boolean } | undefined;
  clientEngine: string | undefined;
  startedAt: number | undefined;
  /** The load generator used >= 90% of its cores over the last 5 s while this side ran. */
  clientSaturated: boolean;
  points: SidePoint[];
}

export interface ClientCpuState {
  /** Cores the load generator process may run on (its pinning). */
  cores: number;
  cpuList: string | undefined;
  /** Whole process (both sides' load threads and the dashboard), % of one core, over the last 5 s. */
  cpuPct: number | null;
  saturated: boolean;
}

export interface UiState {
  tool: 'fastport-bench';
  version: string;
  now: number;
  client: ClientCpuState;
  sides: SideState[];
}

export interface TargetChoice {
  value: string;
  label: string;
  available: boolean;
  reason: string;
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** SSE events on /api/events. */
export type UiEvent =
  | { type: 'state'; state: UiState }
  | { type: 'point'; side: SideId; point: SidePoint; client: ClientCpuState }
  | { type: 'side'; side: SideState };
