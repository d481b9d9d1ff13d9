import { FastPortError, type EngineOptions, type EngineRequest, type SocketOptions } from '@fastport/native-io';
import type { BackpressurePolicy } from './backpressure';
import { resolveFrameSpec, type FrameSpec, type FramingOption } from './framing';
import { resolveHeartbeat, type HeartbeatOptions } from './heartbeat';
import { MemoryBudget, type MemoryBudgetOptions } from './memory-budget';
import type { SessionTiming } from './session';
import type { Clock } from './timer-wheel';

export const DEFAULT_MAX_PENDING_BYTES = 10 * 1024 * 1024;
export const DEFAULT_CONTROL_RESERVE_BYTES = 64 * 1024;
export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** What a send past maxPendingBytes (or the memory budget) does unless `backpressure` says otherwise. */
export const DEFAULT_BACKPRESSURE_POLICY: BackpressurePolicy = 'drop';

export interface SessionHostOptions {
  /** @internal Time source of every timeout (tests inject a manual one). Default: Date.now and unref'd timers. */
  clock?: Clock;
  /** Engine to run on. Default 'auto'. */
  engine?: EngineRequest;
  /** Native I/O threads (0 = inline on the JS loop). Default: the engine's. */
  ioThreads?: number;
  /** Frame format. Default 'fastport' (u16 BE size incl. header + u16 BE id). */
  framing?: FramingOption;
  /** Per-session limit of queued, unsent bytes for application sends. Default 10 MiB. */
  maxPendingBytes?: number;
  /** `send()` returns false above it ('drain' follows at lowWaterMark). Default 1 MiB (or maxPendingBytes if lower). */
  highWaterMark?: number;
  /** Default 256 KiB (or highWaterMark / 4 if lower). */
  lowWaterMark?: number;
  /**
   * What a send past maxPendingBytes (or the memory budget) does. Default
   * 'drop': not queued, `send()` returns false, counted in `dropped`.
   * 'reject' throws ERR_BACKPRESSURE; 'close' resets the session ('backpressure').
   */
  backpressure?: BackpressurePolicy;
  /** Keep a session writable after the peer's FIN. Default false. */
  allowHalfOpen?: boolean;
  /** Socket options for every connection (TCP_NODELAY, keepalive, TCP_USER_TIMEOUT, buffers). Default { noDelay: true }. */
  socket?: SocketOptions;
  /**
   * Session control frames (ids 0xFF00–0xFF0F: heartbeat, GOAWAY, resume, ack).
   * Default true on framings with a packet id of 2+ bytes; unavailable on
   * framings without one (u32le). When false those ids reach the application.
   */
  controlFrames?: boolean;
  /**
   * Bytes above maxPendingBytes that only control frames may use (the
   * priority lane: a full application queue never blocks a heartbeat, ack or
   * GOAWAY). The engine's limit is maxPendingBytes + this. Default 64 KiB.
   */
  controlReserveBytes?: number;
  /** Drive heartbeats on every session of this host (either side may). Default off. */
  heartbeat?: HeartbeatOptions | boolean;
  /** Close a session after this long without an application frame in or out ('idle-timeout'). Default 0 = off. */
  idleTimeoutMs?: number;
  /** Close (or, for a resumable session, rotate) a connection this old ('max-lifetime'). Default 0 = off. */
  maxLifetimeMs?: number;
  /** Close a session whose frame stays incomplete this long ('frame-timeout': slowloris). Default 30,000; 0 = off. */
  frameTimeoutMs?: number;
  /** How long a GOAWAY close waits for the peer before forcing it. Default 5,000 ms. */
  closeTimeoutMs?: number;
  /** Refuse connections past this many sessions on the host (reset at once, counted). Default 0 = unlimited. */
  maxSessions?: number;
  /** Memory budget for reassembly + send queues + replay buffers. Default MemoryBudget.shared (1 GiB, process-wide); false = none. */
  memoryBudget?: MemoryBudget | MemoryBudgetOptions | false;
  /**
   * Read backpressure: a session whose queue passes highWaterMark (or whose
   * send is refused for maxPendingBytes) is not read until it drains to
   * lowWaterMark, on engines that can pause receiving. Default true on a
   * Server, false on clients (both ends pausing could deadlock two peers
   * that pipeline at each other).
   */
  readBackpressure?: boolean;
}

/** @internal The options of a host, checked and with their defaults. */
export interface ResolvedHostOptions {
  clock: Clock | undefined;
  frameSpec: FrameSpec;
  policy: BackpressurePolicy;
  controlEnabled: boolean;
  allowHalfOpen: boolean;
  /** The user-facing pending-bytes limit (the engine's is higher by the control reserve). */
  userMaxPending: number;
  /** Sends larger than this need a pending-bytes check even below the high watermark. */
  sizeCheckThreshold: number;
  timing: SessionTiming;
  maxSessions: number;
  readBackpressure: boolean;
  budget: MemoryBudget | null;
  /** Everything the engine is created with but its handler. */
  engine: Omit<EngineOptions, 'handler'>;
}

function nonNegativeInt(name: string, v: number | undefined, dflt: number, allowZero = true): number {
  const value = v ?? dflt;
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new FastPortError('ERR_INVALID_ARGUMENT', `${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${String(v)})`);
  }
  return value;
}

const POLICIES: readonly BackpressurePolicy[] = ['drop', 'reject', 'close'];

/**
 * @internal Checks every option before anything is allocated (a bad option
 * must not leak an engine or a budget registration) and applies the defaults.
 */
export function resolveHostOptions(options: SessionHostOptions, side: 'server' | 'client'): ResolvedHostOptions {
  const frameSpec = resolveFrameSpec(options.framing ?? 'fastport');
  const policy = options.backpressure ?? DEFAULT_BACKPRESSURE_POLICY;
  if (!POLICIES.includes(policy)) {
    throw new FastPortError('ERR_INVALID_ARGUMENT', `backpressure must be one of ${POLICIES.join(', ')} (got ${String(policy)})`);
  }
  const controlEnabled = (options.controlFrames ?? true) && (frameSpec.idWidth ?? 0) >= 2;

  const userMax = nonNegativeInt('maxPendingBytes', options.maxPendingBytes, DEFAULT_MAX_PENDING_BYTES);
  const high = nonNegativeInt('highWaterMark', options.highWaterMark, Math.min(1024 * 1024, userMax));
  const low = nonNegativeInt('lowWaterMark', options.lowWaterMark, Math.min(256 * 1024, Math.floor(high / 4)));
  if (!(low <= high && high <= userMax)) {
    throw new FastPortError('ERR_INVALID_ARGUMENT', `need lowWaterMark <= highWaterMark <= maxPendingBytes, got ${low}, ${high}, ${userMax}`);
  }
  const reserve = controlEnabled ? nonNegativeInt('controlReserveBytes', options.controlReserveBytes, DEFAULT_CONTROL_RESERVE_BYTES) : 0;

  if (options.heartbeat && !controlEnabled) throw controlFramesError('heartbeat', frameSpec, true);
  const timing: SessionTiming = {
    heartbeat: options.heartbeat ? resolveHeartbeat(options.heartbeat) : null,
    idleTimeoutMs: nonNegativeInt('idleTimeoutMs', options.idleTimeoutMs, 0),
    maxLifetimeMs: nonNegativeInt('maxLifetimeMs', options.maxLifetimeMs, 0),
    frameTimeoutMs: nonNegativeInt('frameTimeoutMs', options.frameTimeoutMs, DEFAULT_FRAME_TIMEOUT_MS),
    closeTimeoutMs: nonNegativeInt('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS, false),
  };
  const maxSessions = nonNegativeInt('maxSessions', options.maxSessions, 0);

  const mb = options.memoryBudget;
  const budget = mb === false ? null : mb instanceof MemoryBudget ? mb : mb === undefined ? MemoryBudget.shared : new MemoryBudget(mb);

  const engine: Omit<EngineOptions, 'handler'> = {
    kind: options.engine ?? 'auto',
    maxPendingBytes: userMax + reserve,
    highWaterMark: high,
    lowWaterMark: low,
  };
  if (options.ioThreads !== undefined) engine.ioThreads = options.ioThreads;
  if (options.allowHalfOpen !== undefined) engine.allowHalfOpen = options.allowHalfOpen;
  if (options.socket !== undefined) engine.socket = options.socket;

  return {
    clock: options.clock,
    frameSpec,
    policy,
    controlEnabled,
    allowHalfOpen: options.allowHalfOpen ?? false,
    userMaxPending: userMax,
    sizeCheckThreshold: userMax - high,
    timing,
    maxSessions,
    // On by default for servers only: if both ends of a connection paused reading while their own queue
    // is high, two peers pipelining at each other could each wait for the other to read (a deadlock).
    // Servers protect themselves; a client keeps reading so the server's queue always drains.
    readBackpressure: options.readBackpressure ?? side === 'server',
    budget,
    engine,
  };
}

/** @internal The error for a feature that needs control frames on a framing (or setting) without them. */
export function controlFramesError(feature: string, spec: FrameSpec, disabled: boolean): FastPortError {
  const why =
    spec.idWidth === undefined
      ? 'this framing has no packet id field (u32le has none): use fastport, large, or a custom spec with a 2- or 4-byte id'
      : spec.idWidth < 2
        ? 'this framing has a 1-byte packet id; control frames need ids 0xFF00-0xFF0F (2+ bytes)'
        : disabled
          ? 'controlFrames is false'
          : 'control frames are unavailable';
  return new FastPortError('ERR_INVALID_ARGUMENT', `${feature} needs session control frames, and ${why}`);
}
