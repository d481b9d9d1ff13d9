import { EventEmitter } from 'node:events';
import {
  FastPortError,
  createEngine,
  toFastPortError,
  type AddressInfo,
  type CloseInfo,
  type ConnectionId,
  type Engine,
  type EngineHandler,
  type EngineOptions,
  type EngineRequest,
  type EngineStats,
  type ListenerId,
  type SocketOptions,
} from '@fastport/native-io';
import {
  ControlFrameId,
  CONTROL_ID_FIRST,
  CONTROL_ID_LAST,
  U64_UNKNOWN,
  decodeAck,
  decodeGoAway,
  decodeNonce,
  decodeResumeOk,
  decodeResumeRefused,
  decodeResumeRequest,
  encodeResumeRefused,
  type ResumeRequest,
} from './control';
import { FrameDecoder, FrameEncoder, resolveFrameSpec, type Frame, type FrameSpec, type FramingOption } from './framing';
import { resolveHeartbeat, type HeartbeatOptions } from './heartbeat';
import { MemoryBudget, type BudgetHolder, type BudgetMember, type MemoryBudgetOptions, type MemoryBudgetStats } from './memory-budget';
import type { ResolvedReplay } from './reliable';
import { Session, type BackpressurePolicy, type SessionCloseInfo, type SessionHostLink, type SessionTiming } from './session';
import { SessionManager } from './session-manager';
import type { HostEvents } from './events';
import { handleControlFrame, malformed, type ControlHost } from './control-handler';
import type { IdleMonitor } from './idle-monitor';
import { systemClock, TimerWheel, type Clock } from './timer-wheel';

export const DEFAULT_MAX_PENDING_BYTES = 10 * 1024 * 1024;
export const DEFAULT_CONTROL_RESERVE_BYTES = 64 * 1024;
export const DEFAULT_FRAME_TIMEOUT_MS = 30_000;
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

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
  /** Default 1 MiB (or maxPendingBytes if lower). */
  highWaterMark?: number;
  /** Default 256 KiB (or highWaterMark / 4 if lower). */
  lowWaterMark?: number;
  /** What a send past maxPendingBytes (or the memory budget) does. Default 'reject' (throws ERR_BACKPRESSURE). */
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

export interface HostStats {
  engine: EngineStats;
  sessions: number;
  /** Resumable sessions waiting for a new connection. */
  detached: number;
  sessionsTotal: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  /** Application sends refused (backpressure, memory budget, replay buffer), whatever the policy. */
  refused: number;
  /** Sessions whose reading was paused by read backpressure (counted per pause). */
  readPauses: number;
  /** Sessions paused now. */
  readPaused: number;
  controlIn: number;
  controlOut: number;
  framingErrors: number;
  handlerErrors: number;
  /** Connections reset at accept because maxSessions was reached. */
  refusedConnections: number;
  closeReasons: Record<string, number>;
  memory: MemoryBudgetStats | null;
}

/** @internal One connection's decoding state. */
export interface SessionSlot {
  conn: ConnectionId;
  session: Session;
  decoder: FrameDecoder;
  /** Reassembly bytes charged to the memory budget. */
  reserved: number;
  closing: boolean;
  /** Closed by the memory budget: its queue no longer counts. */
  evicted: boolean;
  onFrame: (frame: Frame) => void;
  onError: (err: FastPortError) => void;
}

/** Bytes a decoder holds for an incomplete frame: what its peer really sent (up to 2x), never the declared length. */
function reassemblyBytes(d: FrameDecoder): number {
  return d.heldBytes;
}

/** The engine's receive pause/resume (an addition to the engine contract; absent on older engines). */
interface ReceiveSwitch {
  pause(conn: ConnectionId): boolean;
  resume(conn: ConnectionId): boolean;
}

interface ReceivePausable {
  pauseReceiving(conn: ConnectionId): boolean;
  resumeReceiving(conn: ConnectionId): boolean;
}

/** Feature-detects pause/resume of receiving so the session layer runs on engines with and without them. */
function receiveSwitchOf(engine: Engine): ReceiveSwitch | null {
  const e = engine as Engine & Partial<ReceivePausable>;
  if (typeof e.pauseReceiving !== 'function' || typeof e.resumeReceiving !== 'function') return null;
  const pausable = e as Engine & ReceivePausable;
  return {
    pause: (conn) => pausable.pauseReceiving(conn),
    resume: (conn) => pausable.resumeReceiving(conn),
  };
}

function positiveInt(name: string, v: number | undefined, dflt: number, allowZero = true): number {
  const value = v ?? dflt;
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new FastPortError('ERR_INVALID_ARGUMENT', `${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${String(v)})`);
  }
  return value;
}

/**
 * @internal What a Server or Client decides for the host it owns; every
 * member is optional (a host without a role accepts, announces, and never
 * resumes).
 */
export interface HostRole {
  /** A new accepted connection (default: announce it at once). */
  onAccept?(session: Session): void;
  /** An outbound connect finished. */
  onOutboundOpen?(session: Session): void;
  /** An outbound connection closed, before (no session) or after it opened. */
  onOutboundClose?(conn: ConnectionId, info: SessionCloseInfo, session: Session | undefined): void;
  /** Should this session wait for a resume? `resumable`: it is resumable and not ended for good. */
  shouldDetach?(session: Session, info: SessionCloseInfo, resumable: boolean): boolean;
  /** A logical session ended for good. */
  onSessionFinal?(session: Session): void;
  /** Per-tick work on sessions waiting for a resume (after the replay age bound). */
  sweepDetached?(now: number): void;
  /** More periods the timer wheel must resolve. */
  intervals?(): number[];
  /** RESUME_REQUEST (default: refused, 'resume-disabled'). */
  onResumeRequest?(session: Session, req: ResumeRequest): void;
  /** Puts a layer between the engine and the host (the PROXY protocol gate). */
  wrapHandler?(handler: EngineHandler, engine: () => Engine): EngineHandler;
}

/**
 * @internal Owns an engine and the sessions on it; a Server or Client owns
 * one and receives its events.
 * Events: 'session' (session), 'frame' (session, frame), 'close' (session, info), 'error' (err, session?),
 * and, relayed from sessions: 'liveness' (session, state, prev), 'goaway' (session, goaway),
 * 'detach' (session, info), 'resume' (session, info), 'resume-failed' (session, info), 'lost' (session, lost).
 * The 'frame' frame is valid only during the listener call: copy what you keep.
 */
export class SessionHost implements SessionHostLink, BudgetMember {
  /** Where the host's events go: the Server or Client that owns it. */
  readonly events: EventEmitter<HostEvents>;
  private readonly role: HostRole;
  readonly engine: Engine;
  readonly encoder: FrameEncoder;
  readonly frameSpec: FrameSpec;
  readonly policy: BackpressurePolicy;
  readonly headerScratch: Uint8Array;
  readonly sessions = new SessionManager();
  readonly userMaxPending: number;
  readonly sizeCheckThreshold: number;
  readonly controlEnabled: boolean;
  readonly budget: MemoryBudget | null;
  readonly timing: SessionTiming;
  replay: ResolvedReplay | null = null;
  /** @internal */ readonly slots = new Map<ConnectionId, SessionSlot>();
  /** @internal */ readonly detached = new Set<Session>();
  /** @internal */ readonly allowHalfOpen: boolean;
  private readonly maxSessions: number;
  private readonly refused = new Set<ConnectionId>();
  /** Called when a connection closes (after the session saw it): used by shutdown to collect outcomes. */
  /** @internal */ readonly transportWatchers = new Map<ConnectionId, (info: SessionCloseInfo, raw: CloseInfo) => void>();
  readonly clock: Clock;
  /** Every session's timeouts on one timer (created with the first session: Server sets its resume limits after this constructor). */
  private wheel: TimerWheel<IdleMonitor> | undefined;
  private lastRecount = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private ackQueue: Session[] = [];
  private released = false;
  private readonly totals = {
    sessionsTotal: 0,
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    refused: 0,
    controlIn: 0,
    controlOut: 0,
    framingErrors: 0,
    handlerErrors: 0,
    refusedConnections: 0,
    readPauses: 0,
  };
  /** @internal */ readonly closeReasons: Record<string, number> = {};
  /** What the control-frame handler needs of this host. */
  private readonly controlHost: ControlHost;
  /** The engine's pause/resume of receiving, when it has them and read backpressure is on. */
  private readonly receiveSwitch: ReceiveSwitch | null;

  constructor(options: SessionHostOptions, side: 'server' | 'client', events: EventEmitter<HostEvents>, role: HostRole = {}) {
    this.events = events;
    this.role = role;
    this.clock = options.clock ?? systemClock;
    this.frameSpec = resolveFrameSpec(options.framing ?? 'fastport');
    this.encoder = new FrameEncoder(this.frameSpec);
    this.headerScratch = new Uint8Array(this.frameSpec.headerSize);
    this.policy = options.backpressure ?? 'reject';
    const idWidth = this.frameSpec.idWidth ?? 0;
    this.controlEnabled = (options.controlFrames ?? true) && idWidth >= 2;
    this.allowHalfOpen = options.allowHalfOpen ?? false;

    const userMax = positiveInt('maxPendingBytes', options.maxPendingBytes, DEFAULT_MAX_PENDING_BYTES);
    const high = positiveInt('highWaterMark', options.highWaterMark, Math.min(1024 * 1024, userMax));
    const low = positiveInt('lowWaterMark', options.lowWaterMark, Math.min(256 * 1024, Math.floor(high / 4)));
    if (!(low <= high && high <= userMax)) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `need lowWaterMark <= highWaterMark <= maxPendingBytes, got ${low}, ${high}, ${userMax}`);
    }
    const reserve = this.controlEnabled ? positiveInt('controlReserveBytes', options.controlReserveBytes, DEFAULT_CONTROL_RESERVE_BYTES) : 0;
    this.userMaxPending = userMax;
    this.sizeCheckThreshold = userMax - high;

    if (options.heartbeat && !this.controlEnabled) throw SessionHost.controlError('heartbeat', this.frameSpec, true);
    this.timing = {
      heartbeat: options.heartbeat ? resolveHeartbeat(options.heartbeat) : null,
      idleTimeoutMs: positiveInt('idleTimeoutMs', options.idleTimeoutMs, 0),
      maxLifetimeMs: positiveInt('maxLifetimeMs', options.maxLifetimeMs, 0),
      frameTimeoutMs: positiveInt('frameTimeoutMs', options.frameTimeoutMs, DEFAULT_FRAME_TIMEOUT_MS),
      closeTimeoutMs: positiveInt('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS, false),
    };
    this.maxSessions = positiveInt('maxSessions', options.maxSessions, 0);

    const mb = options.memoryBudget;
    this.budget = mb === false ? null : mb instanceof MemoryBudget ? mb : mb === undefined ? MemoryBudget.shared : new MemoryBudget(mb);
    this.budget?.register(this);

    const engineOptions: EngineOptions = {
      kind: options.engine ?? 'auto',
      maxPendingBytes: userMax + reserve,
      highWaterMark: high,
      lowWaterMark: low,
    };
    if (options.ioThreads !== undefined) engineOptions.ioThreads = options.ioThreads;
    if (options.allowHalfOpen !== undefined) engineOptions.allowHalfOpen = options.allowHalfOpen;
    if (options.socket !== undefined) engineOptions.socket = options.socket;
    try {
      const handler = this.makeHandler(side);
      this.engine = createEngine({ ...engineOptions, handler: role.wrapHandler?.(handler, () => this.engine) ?? handler });
    } catch (err) {
      this.budget?.unregister(this);
      throw err;
    }
    // On by default for servers only: if both ends of a connection paused reading while their own queue
    // is high, two peers pipelining at each other could each wait for the other to read (a deadlock).
    // Servers protect themselves; a client keeps reading so the server's queue always drains.
    this.controlHost = {
      engine: this.engine,
      allowHalfOpen: this.allowHalfOpen,
      now: () => this.clock.now(),
      countControlIn: () => {
        this.totals.controlIn++;
      },
      onResumeRequest: (session, req) => this.onResumeRequest(session, req),
      relay: (event, ...args) => this.relay(event, ...args),
    };
    const readBackpressure = options.readBackpressure ?? side === 'server';
    this.receiveSwitch = readBackpressure ? receiveSwitchOf(this.engine) : null;
  }

  /** True when this host pauses reading of sessions over their high watermark (the engine can, and it is on). */
  get readBackpressure(): boolean {
    return this.receiveSwitch !== null;
  }

  pauseReceiving(conn: ConnectionId): boolean {
    if (this.receiveSwitch === null || !this.receiveSwitch.pause(conn)) return false;
    this.totals.readPauses++;
    return true;
  }

  resumeReceiving(conn: ConnectionId): boolean {
    return this.receiveSwitch !== null && this.receiveSwitch.resume(conn);
  }

  heldBy(session: Session): number {
    const slot = this.slots.get(session.connectionId);
    const replay = session.rel !== null ? session.rel.out.bytes : 0;
    if (slot === undefined || slot.evicted) return replay;
    return this.engine.heldBytes(slot.conn) + slot.reserved + replay;
  }

  sessionCount(): number {
    return this.slots.size + this.detached.size;
  }

  holders(minBytes: number): BudgetHolder[] {
    const out: BudgetHolder[] = [];
    for (const slot of this.slots.values()) {
      const session = slot.session;
      if (slot.evicted || session.connectionId !== slot.conn || session.state === 'closed') continue;
      const bytes = this.heldBy(session);
      if (bytes <= minBytes) continue;
      out.push({ bytes, evict: (message: string) => this.evict(slot, message) });
    }
    return out;
  }

  /** Closes a session that holds the most of a full budget; returns what leaves the budget now. */
  private evict(slot: SessionSlot, message: string): number {
    const session = slot.session;
    const queued = this.engine.heldBytes(slot.conn);
    slot.evicted = true;
    this.stopReading(slot); // gives its reassembly bytes back itself
    if (session.rel !== null) session.rel.final = true; // its replay buffer is given back when it ends
    session.closeWith('abort', { reason: 'memory-budget', code: 'ENOBUFS', message });
    return queued;
  }

  /** @internal */ needsControl(feature: string): FastPortError {
    return SessionHost.controlError(feature, this.frameSpec, true);
  }

  /** The error for a feature that needs control frames on a framing (or setting) without them. */
  static controlError(feature: string, spec: FrameSpec, disabled: boolean): FastPortError {
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

  onSessionSent(frames: number, bytes: number): void {
    this.totals.framesOut += frames;
    this.totals.bytesOut += bytes;
  }

  onSessionDropped(): void {
    this.totals.dropped++;
  }

  onSessionRefused(): void {
    this.totals.refused++;
  }

  onControlSent(): void {
    this.totals.controlOut++;
  }

  stats(): HostStats {
    let readPaused = 0;
    for (const slot of this.slots.values()) if (slot.session.readPaused && slot.session.connectionId === slot.conn) readPaused++;
    return {
      engine: this.engine.stats(),
      sessions: this.sessions.size,
      detached: this.detached.size,
      ...this.totals,
      readPaused,
      closeReasons: { ...this.closeReasons },
      memory: this.budget?.stats() ?? null,
    };
  }

  /** Bytes this host holds now (send-queue memory as the engine holds it, reassembly, replay buffers): what the memory budget counts. */
  memoryUsage(): number {
    let total = 0;
    const engine = this.engine;
    for (const slot of this.slots.values()) {
      const r = slot.closing ? 0 : reassemblyBytes(slot.decoder);
      slot.reserved = r;
      if (slot.evicted) continue;
      total += engine.heldBytes(slot.conn) + r;
      const rel = slot.session.rel;
      if (rel !== null && slot.session.connectionId === slot.conn) total += rel.out.bytes;
    }
    for (const s of this.detached) if (s.connectionId === 0 && s.rel !== null) total += s.rel.out.bytes;
    return total;
  }

  // ---- SessionHostLink ---------------------------------------------------------

  closeTransport(_session: Session, conn: ConnectionId, mode: 'graceful' | 'abort'): void {
    const slot = this.slots.get(conn);
    if (slot !== undefined) this.stopReading(slot);
    this.engine.close(conn, mode);
  }

  /** Input of a closing connection is discarded: free what its decoder holds now, not at the close. */
  private stopReading(slot: SessionSlot): void {
    slot.closing = true;
    slot.decoder.reset();
    if (slot.reserved > 0) {
      this.budget?.release(slot.reserved);
      slot.reserved = 0;
    }
  }

  finalizeDetached(session: Session, info: SessionCloseInfo): void {
    if (session.state === 'closed') return;
    this.closeReasons[info.reason] = (this.closeReasons[info.reason] ?? 0) + 1;
    this.finalize(session, info);
  }

  scheduleAck(session: Session): void {
    this.ackQueue.push(session);
    if (this.ackTimer === undefined) {
      this.ackTimer = setTimeout(() => this.flushAcks(), this.replay?.ackDelayMs ?? 50);
      this.ackTimer.unref();
    }
  }

  relay<K extends keyof HostEvents>(event: K, ...args: HostEvents[K]): void {
    // Emitting costs the argument array even without listeners: skip it then.
    if (this.events.listenerCount(event) > 0) (this.events.emit as (e: K, ...a: HostEvents[K]) => boolean).call(this.events, event, ...args);
  }

  private flushAcks(): void {
    this.ackTimer = undefined;
    const queue = this.ackQueue;
    this.ackQueue = [];
    for (const s of queue) {
      const rel = s.rel;
      if (rel === null) continue;
      rel.ackScheduled = false;
      if (rel.received !== rel.ackedSent) rel.sendAck();
    }
  }

  // ---- what the owning Server or Client decides (its HostRole) -------------------

  private onOutboundOpen(session: Session): void {
    this.role.onOutboundOpen?.(session);
  }

  private onOutboundClose(conn: ConnectionId, info: SessionCloseInfo, session: Session | undefined): void {
    this.role.onOutboundClose?.(conn, info, session);
  }

  private onAcceptSession(session: Session): void {
    if (this.role.onAccept !== undefined) this.role.onAccept(session);
    else this.announce(session);
  }

  private shouldDetach(session: Session, info: SessionCloseInfo): boolean {
    const resumable = session.rel !== null && !session.rel.final;
    return this.role.shouldDetach !== undefined ? this.role.shouldDetach(session, info, resumable) : resumable;
  }

  private sweepDetached(now: number): void {
    for (const s of this.detached) s.rel?.expire(now);
    this.role.sweepDetached?.(now);
  }

  /** Periods (ms) the timer wheel must resolve; it ticks at a quarter of the smallest (5..1000 ms). */
  private sweepIntervals(): number[] {
    const t = this.timing;
    const out = [t.frameTimeoutMs, t.idleTimeoutMs, t.maxLifetimeMs, t.closeTimeoutMs];
    if (t.heartbeat !== null) out.push(t.heartbeat.intervalMs, t.heartbeat.fastIntervalMs);
    if (this.replay !== null) out.push(this.replay.maxReplayAgeMs);
    if (this.role.intervals !== undefined) out.push(...this.role.intervals());
    return out.filter((v) => v > 0);
  }

  private onResumeRequest(session: Session, req: ResumeRequest): void {
    if (this.role.onResumeRequest !== undefined) this.role.onResumeRequest(session, req);
    else this.refuseResume(session);
  }

  /** RESUME_REQUEST on a host that does not resume sessions. */
  refuseResume(session: Session): void {
    session.sendControl(
      ControlFrameId.ResumeRefused,
      encodeResumeRefused({
        reason: 'resume-disabled',
        received: U64_UNKNOWN,
        lostFrom: 1,
        lostTo: 0,
        peerLostFrom: 1,
        peerLostTo: 0,
        message: 'this peer does not resume sessions',
      }),
    );
    if (session.awaitingHello) this.announce(session);
  }

  /** @internal */ reportError(err: Error, session?: Session): void {
    if (this.events.listenerCount('error') > 0) this.events.emit('error', err, session);
    else process.emitWarning(`FastPort: ${err.message}`, { code: 'FASTPORT_UNHANDLED' });
  }

  /** Makes a session visible: adds it to `sessions` and emits 'session'. */
  /** @internal */ announce(session: Session): void {
    if (session.announced) return;
    session.announced = true;
    session.awaitingHello = false;
    this.sessions.add(session);
    this.events.emit('session', session);
  }

  /**
   * Moves the connection of `provisional` under `logical` (a resume): the
   * provisional session disappears without events.
   */
  /** @internal */ adopt(logical: Session, provisional: Session, open: boolean): void {
    const conn = provisional.connectionId;
    const slot = this.slots.get(conn);
    if (slot === undefined) return;
    if (provisional.announced) this.sessions.delete(provisional);
    provisional.announced = false;
    provisional.currentState = 'closed';
    provisional.conn = 0;
    this.cancelCheck(provisional.monitor);
    this.detached.delete(logical);
    slot.session = logical;
    logical.attachTransport(conn, provisional.remote, open);
    if (!this.sessions.get(logical.id)) this.sessions.add(logical);
    logical.announced = true;
  }

  /** @internal */ finalize(session: Session, info: SessionCloseInfo): void {
    this.detached.delete(session);
    this.sessions.delete(session);
    this.role.onSessionFinal?.(session);
    if (session.rel !== null) session.rel.reportUnacknowledged(info.reason);
    session.finish(info);
    if (session.announced) this.events.emit('close', session, info);
  }

  /** Stops timers and leaves the memory budget; the engine is destroyed by the caller. */
  /** @internal */ releaseHost(): void {
    if (this.released) return;
    this.released = true;
    this.wheel?.stop();
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.budget?.unregister(this);
  }

  scheduleCheck(monitor: IdleMonitor): void {
    const wheel = this.wheel ?? this.startWheel();
    if (wheel === null) return;
    wheel.schedule(monitor, monitor.nextCheckAt(this.clock.now()));
  }

  cancelCheck(monitor: IdleMonitor): void {
    this.wheel?.cancel(monitor);
  }

  /** The wheel ticks at a quarter of the smallest period it must resolve (5..1000 ms). */
  private startWheel(): TimerWheel<IdleMonitor> | null {
    if (this.released) return null;
    const intervals = this.sweepIntervals();
    if (intervals.length === 0) return null;
    const tickMs = Math.max(5, Math.min(1000, Math.floor(Math.min(...intervals) / 4)));
    const wheel = new TimerWheel<IdleMonitor>(
      this.clock,
      tickMs,
      (monitor, now) => this.checkSession(monitor, now),
      (now) => this.housekeeping(now),
    );
    this.wheel = wheel;
    wheel.start();
    return wheel;
  }

  /** A session's check came due on the wheel. */
  private checkSession(monitor: IdleMonitor, now: number): void {
    const s = monitor.session;
    const slot = this.slots.get(s.connectionId);
    if (slot === undefined || slot.session !== s) return; // detached or gone: its next connection reschedules it
    if (s.awaitingHello && now >= s.helloDeadline) this.announce(s);
    monitor.check(now, slot.closing ? 0 : slot.decoder.bufferedBytes);
    if (s.state !== 'closed' && s.connectionId === slot.conn && monitor.wheelSlot < 0) this.wheel?.schedule(monitor, monitor.nextCheckAt(now));
  }

  /** Host-wide work once per wheel tick: sessions waiting for a resume, and the memory budget's recount. */
  private housekeeping(now: number): void {
    if (this.detached.size > 0) this.sweepDetached(now);
    if (this.budget !== null && now - this.lastRecount >= Math.max(250, this.wheel?.tickMs ?? 0)) {
      this.lastRecount = now;
      this.budget.recount();
    }
  }

  // ---- engine events -------------------------------------------------------------

  private openSession(conn: ConnectionId, remote: AddressInfo, side: 'server' | 'client'): Session {
    const session = new Session(this, conn, remote, side);
    const slot: SessionSlot = {
      conn,
      session,
      decoder: new FrameDecoder(this.frameSpec),
      reserved: 0,
      closing: false,
      evicted: false,
      onFrame: (frame: Frame) => this.onFrame(slot, frame),
      onError: (err: FastPortError) => {
        this.totals.framingErrors++;
        // ENOBUFS: the reassembly buffer could not be allocated (a huge maxFrameSize); only this session pays.
        const reason = err.code === 'ENOBUFS' ? 'out-of-memory' : 'framing';
        slot.session.closeWith(err.code === 'ENOBUFS' ? 'abort' : 'graceful', { reason, code: err.code, message: err.message });
      },
    };
    this.slots.set(conn, slot);
    this.totals.sessionsTotal++;
    this.scheduleCheck(session.monitor);
    return session;
  }

  private onFrame(slot: SessionSlot, frame: Frame): void {
    const session = slot.session;
    const id = frame.id;
    if (this.controlEnabled && id >= CONTROL_ID_FIRST && id <= CONTROL_ID_LAST) {
      handleControlFrame(this.controlHost, session, frame);
      return;
    }
    if (session.awaitingHello) this.announce(session);
    session.counters.framesIn++;
    this.totals.framesIn++;
    const rel = session.rel;
    if (rel !== null) {
      if (rel.handshake === 'pending') {
        malformed(session, 'application frame before the resume handshake finished');
        return;
      }
      rel.delivered(frame.bytes.byteLength);
    }
    try {
      this.events.emit('frame', session, frame);
    } catch (err) {
      this.totals.handlerErrors++;
      this.reportError(toFastPortError(err), session);
    }
    if (rel !== null && session.rel === rel) rel.maybeAck();
  }

  private makeHandler(side: 'server' | 'client'): EngineHandler {
    return {
      onAccept: (conn, _listener: ListenerId, remote) => {
        if (this.maxSessions > 0 && this.slots.size >= this.maxSessions) {
          this.refused.add(conn);
          this.totals.refusedConnections++;
          this.engine.close(conn, 'abort');
          return;
        }
        const session = this.openSession(conn, remote, side);
        this.onAcceptSession(session);
      },
      onConnect: (conn, remote) => {
        const session = this.openSession(conn, remote, side);
        this.onOutboundOpen(session);
        this.announce(session);
      },
      onData: (conn, data) => {
        const slot = this.slots.get(conn);
        if (slot === undefined) return;
        const session = slot.session;
        session.counters.bytesIn += data.byteLength;
        this.totals.bytesIn += data.byteLength;
        if (slot.closing) return;
        slot.decoder.push(data, slot.onFrame, slot.onError);
        if (this.receiveSwitch !== null && slot.session.connectionId === conn) slot.session.flow.afterRead();
        const budget = this.budget;
        if (budget !== null) {
          const now = slot.closing ? 0 : reassemblyBytes(slot.decoder);
          const before = slot.reserved;
          if (now > before) {
            // A full budget refuses this frame only if its session holds its fair share or more (it pays, not the others).
            if (budget.tryReserve(now - before) || budget.admit(now - before, this.heldBy(session))) slot.reserved = now;
            else {
              this.stopReading(slot);
              slot.session.closeWith('abort', {
                reason: 'memory-budget',
                code: 'ENOBUFS',
                message: `reassembling a frame (${now} bytes held) would pass the memory budget of ${budget.limitBytes} bytes`,
              });
            }
          } else if (now < before) {
            budget.release(before - now);
            slot.reserved = now;
          }
        }
      },
      onEnd: (conn) => {
        const slot = this.slots.get(conn);
        if (slot === undefined) return;
        const session = slot.session;
        if (session.connectionId !== conn) return;
        // The peer finished sending: our final ack covers everything it sent.
        session.rel?.sendAck();
        session.emit('end');
        if (this.allowHalfOpen && session.state === 'closing') session.closeWith('graceful', { reason: session.pendingCloseReason?.reason ?? 'peer' });
      },
      onDrain: (conn) => {
        const slot = this.slots.get(conn);
        if (slot === undefined || slot.session.connectionId !== conn) return;
        const session = slot.session;
        session.handleDrain();
      },
      onClose: (conn, info: CloseInfo) => {
        if (this.refused.delete(conn)) {
          this.closeReasons['max-sessions'] = (this.closeReasons['max-sessions'] ?? 0) + 1;
          return;
        }
        const slot = this.slots.get(conn);
        const own = slot !== undefined && slot.session.connectionId === conn ? slot.session.pendingCloseReason : undefined;
        const closeInfo: SessionCloseInfo = { reason: own?.reason ?? info.reason, unsentBytes: info.unsentBytes };
        const code = own?.code ?? info.code;
        const message = own?.message ?? info.message;
        if (code !== undefined) closeInfo.code = code;
        if (message !== undefined) closeInfo.message = message;
        if (slot === undefined) {
          this.closeReasons[closeInfo.reason] = (this.closeReasons[closeInfo.reason] ?? 0) + 1;
          this.onOutboundClose(conn, closeInfo, undefined);
          return;
        }
        this.slots.delete(conn);
        if (this.budget !== null && slot.reserved > 0) this.budget.release(slot.reserved);
        slot.reserved = 0;
        const watcher = this.transportWatchers.get(conn);
        if (watcher !== undefined) {
          this.transportWatchers.delete(conn);
          watcher(closeInfo, info);
        }
        const session = slot.session;
        if (session.connectionId !== conn) return; // an old connection of a resumed session
        this.closeReasons[closeInfo.reason] = (this.closeReasons[closeInfo.reason] ?? 0) + 1;
        if (session.state !== 'closed' && this.shouldDetach(session, closeInfo)) {
          this.detached.add(session);
          session.detachTransport(closeInfo);
          this.onOutboundClose(conn, closeInfo, session);
          return;
        }
        this.onOutboundClose(conn, closeInfo, session);
        this.finalize(session, closeInfo);
      },
    };
  }
}
