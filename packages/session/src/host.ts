import type { EventEmitter } from 'node:events';
import { createEngine, type CloseInfo, type ConnectionId, type Engine, type EngineHandler } from '@fastport/native-io';
import { ControlFrameId, U64_UNKNOWN, encodeResumeRefused, type ResumeRequest } from './control';
import type { ControlHost } from './control-handler';
import { EngineEvents } from './engine-events';
import type { HostEvents } from './events';
import { FrameEncoder, type FrameSpec } from './framing';
import { HostMemory } from './host-memory';
import { resolveHostOptions, type SessionHostOptions } from './host-options';
import { HostTotals, type HostStats } from './host-stats';
import { HostTimers, type TimerHost } from './host-timers';
import type { IdleMonitor } from './idle-monitor';
import type { MemoryBudget } from './memory-budget';
import type { ResolvedReplay } from './reliable';
import type { BackpressurePolicy, Session, SessionCloseInfo, SessionHostLink, SessionTiming } from './session';
import { SessionManager } from './session-manager';
import { stopReading, type SessionSlot } from './session-slot';
import { systemClock, type Clock } from './timer-wheel';

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

/** Ends of a session without a connection that lose what it held: not a clean close. */
const UNCLEAN_DETACHED_ENDS: ReadonlySet<string> = new Set(['resume-timeout', 'resume-refused', 'gave-up', 'abort']);

/**
 * @internal What a Server or Client decides for the host it owns; every
 * member is optional (a host without a role accepts, announces, and never
 * resumes).
 */
export interface HostRole {
  /** A new accepted connection (default: announce it at once). */
  onAccept?(session: Session): void;
  /** An outbound connect finished; false: the owner no longer wants it (it closes it; it is never announced). */
  onOutboundOpen?(session: Session): boolean;
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
 * one and receives its events (see HostEvents). The concerns live in their
 * own files: options (host-options.ts), engine events and the receive path
 * (engine-events.ts), timers (host-timers.ts), memory accounting
 * (host-memory.ts), totals (host-stats.ts), control frames (control-handler.ts).
 */
export class SessionHost implements SessionHostLink, TimerHost {
  /** Where the host's events go: the Server or Client that owns it. */
  readonly events: EventEmitter<HostEvents>;
  readonly role: HostRole;
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
  readonly clock: Clock;
  replay: ResolvedReplay | null = null;
  readonly slots = new Map<ConnectionId, SessionSlot>();
  readonly detached = new Set<Session>();
  readonly allowHalfOpen: boolean;
  readonly maxSessions: number;
  /** Called when a connection closes (after the session saw it): used by shutdown to collect outcomes. */
  readonly transportWatchers = new Map<ConnectionId, (info: SessionCloseInfo, raw: CloseInfo) => void>();
  readonly totals = new HostTotals();
  readonly memory: HostMemory;
  /** What the control-frame handler needs of this host. */
  readonly controlHost: ControlHost;
  /** The engine's pause/resume of receiving, when it has them and read backpressure is on. */
  readonly receiveSwitch: ReceiveSwitch | null;
  /** The engine's pause/resume of receiving, whatever readBackpressure says (for-await loops). */
  private readonly engineSwitch: ReceiveSwitch | null;
  private readonly timers: HostTimers;
  private released = false;

  constructor(options: SessionHostOptions, side: 'server' | 'client', events: EventEmitter<HostEvents>, role: HostRole = {}) {
    const o = resolveHostOptions(options, side);
    this.events = events;
    this.role = role;
    this.clock = o.clock ?? systemClock;
    this.frameSpec = o.frameSpec;
    this.encoder = new FrameEncoder(this.frameSpec);
    this.headerScratch = new Uint8Array(this.frameSpec.headerSize);
    this.policy = o.policy;
    this.controlEnabled = o.controlEnabled;
    this.allowHalfOpen = o.allowHalfOpen;
    this.userMaxPending = o.userMaxPending;
    this.sizeCheckThreshold = o.sizeCheckThreshold;
    this.timing = o.timing;
    this.maxSessions = o.maxSessions;
    this.budget = o.budget;
    this.memory = new HostMemory(this);
    this.timers = new HostTimers(this);
    this.budget?.register(this.memory);
    try {
      const handler = new EngineEvents(this, side);
      this.engine = createEngine({ ...o.engine, handler: role.wrapHandler?.(handler, () => this.engine) ?? handler });
    } catch (err) {
      this.budget?.unregister(this.memory);
      throw err;
    }
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
    this.engineSwitch = receiveSwitchOf(this.engine);
    this.receiveSwitch = o.readBackpressure ? this.engineSwitch : null;
  }

  /** True when this host pauses reading of sessions over their high watermark (the engine can, and it is on). */
  get readBackpressure(): boolean {
    return this.receiveSwitch !== null;
  }

  stats(): HostStats {
    let readPaused = 0;
    for (const slot of this.slots.values()) if (slot.session.readPaused && slot.session.connectionId === slot.conn) readPaused++;
    return this.totals.snapshot({
      engine: this.engine.stats(),
      sessions: this.sessions.size,
      detached: this.detached.size,
      readPaused,
      memory: this.budget?.stats() ?? null,
    });
  }

  /** Bytes this host holds now (send-queue memory as the engine holds it, reassembly, replay buffers): what the memory budget counts. */
  memoryUsage(): number {
    return this.memory.memoryUsage();
  }

  // ---- SessionHostLink ---------------------------------------------------------

  pauseReceiving(conn: ConnectionId): boolean {
    if (this.receiveSwitch === null || !this.receiveSwitch.pause(conn)) return false;
    this.totals.readPauses++;
    return true;
  }

  resumeReceiving(conn: ConnectionId): boolean {
    return this.receiveSwitch !== null && this.receiveSwitch.resume(conn);
  }

  holdReceiving(conn: ConnectionId): boolean {
    return this.engineSwitch !== null && this.engineSwitch.pause(conn);
  }

  releaseReceiving(conn: ConnectionId): boolean {
    return this.engineSwitch !== null && this.engineSwitch.resume(conn);
  }

  heldBy(session: Session): number {
    return this.memory.heldBy(session);
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

  closeTransport(_session: Session, conn: ConnectionId, mode: 'graceful' | 'abort'): void {
    const slot = this.slots.get(conn);
    if (slot !== undefined) stopReading(slot, this.budget);
    this.engine.close(conn, mode);
  }

  finalizeDetached(session: Session, info: SessionCloseInfo, clean = info.code === undefined && !UNCLEAN_DETACHED_ENDS.has(info.reason)): void {
    if (session.state === 'closed') return;
    this.totals.countClose(info.reason);
    this.finalize(session, info, clean);
  }

  scheduleAck(session: Session): void {
    this.timers.scheduleAck(session);
  }

  scheduleCheck(monitor: IdleMonitor): void {
    this.timers.scheduleCheck(monitor);
  }

  cancelCheck(monitor: IdleMonitor): void {
    this.timers.cancelCheck(monitor);
  }

  relay<K extends keyof HostEvents>(event: K, ...args: HostEvents[K]): void {
    // Emitting costs the argument array even without listeners: skip it then.
    if (this.events.listenerCount(event) > 0) (this.events.emit as (e: K, ...a: HostEvents[K]) => boolean).call(this.events, event, ...args);
  }

  // ---- what the owning Server or Client decides (its HostRole) -------------------

  onAcceptSession(session: Session): void {
    if (this.role.onAccept !== undefined) this.role.onAccept(session);
    else this.announce(session);
  }

  shouldDetach(session: Session, info: SessionCloseInfo): boolean {
    const resumable = session.rel !== null && !session.rel.final;
    return this.role.shouldDetach !== undefined ? this.role.shouldDetach(session, info, resumable) : resumable;
  }

  /** Per-tick work on sessions waiting for a resume (the replay age bound, then the owner's resume window). */
  sweepDetached(now: number): void {
    for (const s of this.detached) s.rel?.expire(now);
    this.role.sweepDetached?.(now);
  }

  extraIntervals(): number[] {
    return this.role.intervals?.() ?? [];
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

  // ---- session lifecycle ----------------------------------------------------------

  reportError(err: Error, session?: Session): void {
    if (this.events.listenerCount('error') > 0) this.events.emit('error', err, session);
    else process.emitWarning(`FastPort: ${err.message}`, { code: 'FASTPORT_UNHANDLED' });
  }

  /** Makes a session visible: adds it to `sessions` and emits 'session'. */
  announce(session: Session): void {
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
  adopt(logical: Session, provisional: Session, open: boolean): void {
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

  /** `clean` false: the close was abnormal (a reset, an error, a timeout); a for-await loop over the session throws. */
  finalize(session: Session, info: SessionCloseInfo, clean: boolean): void {
    this.detached.delete(session);
    this.sessions.delete(session);
    this.role.onSessionFinal?.(session);
    if (session.rel !== null) session.rel.reportUnacknowledged(info.reason);
    session.finish(info, clean);
    if (session.announced) this.events.emit('close', session, info);
  }

  /** Stops timers and leaves the memory budget; the engine is destroyed by the caller. */
  releaseHost(): void {
    if (this.released) return;
    this.released = true;
    this.timers.stop();
    this.budget?.unregister(this.memory);
  }
}
