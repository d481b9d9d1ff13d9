import { EventEmitter } from 'node:events';
import {
  FastPortError,
  SendStatus,
  type AddressInfo,
  type ConnectionId as EngineConnectionId,
  type Engine,
  type ErrorCode,
  type SocketOptions,
} from '@fastport/native-io';

// Read once: a CommonJS re-export is a getter, and these sit on the per-frame path.
const { Queued: SEND_QUEUED, AboveHighWater: SEND_ABOVE_HIGH, Refused: SEND_REFUSED, Closed: SEND_CLOSED } = SendStatus;
import { ControlFrameId, encodeGoAway, encodePing, isControlId, type GoAway, type GoAwayReason, type ResumeRefused } from './control';
import { Backpressure, type BackpressurePolicy } from './backpressure';
import type { Frame, FrameEncoder, FrameSpec } from './framing';
import { FrameInbox, loopRunningError, type FramesOptions } from './frame-inbox';
import type { Liveness, ResolvedHeartbeat } from './heartbeat';
import type { HostEvents, SessionEvents } from './events';
import { IdleMonitor } from './idle-monitor';
import type { ConnectionId, SessionId } from './ids';
import type { Clock } from './timer-wheel';
import type { MemoryBudget } from './memory-budget';
import { ReliableDelivery, type ResolvedReplay } from './reliable';

export { newToken } from './reliable';

export type { Liveness } from './heartbeat';
export type { BackpressurePolicy } from './backpressure';

/**
 * What `Session.trySend` / `trySendFrame` did (`send()` answers only
 * `result === 'queued'`):
 * - 'queued': accepted, below the high watermark (or, on a resumable session
 *   without a connection, kept for replay);
 * - 'high-water': accepted, but pending bytes passed the high watermark ('drain' follows);
 * - 'dropped': over the limit (or the memory budget) under policy 'drop' — not sent;
 * - 'closed': the session is closing or closed (or was closed by policy 'close') — not sent.
 * Under policy 'reject' an over-limit send throws ERR_BACKPRESSURE instead.
 */
export type SendResult = 'queued' | 'high-water' | 'dropped' | 'closed';

/**
 * Connection state (liveness from heartbeats is tracked separately):
 * 'open' — connected, sends go out; 'detached' — a resumable session without
 * a usable connection (lost, or a resume handshake in progress): sends are kept
 * for replay; 'closing' — being closed; 'closed' — gone for good.
 */
export type SessionState = 'open' | 'detached' | 'closing' | 'closed';

/** Close reasons the engine reports. */
export type EngineCloseReason = 'local' | 'abort' | 'peer' | 'error' | 'destroy';

/** Close reasons the session layer itself gives. */
export type SessionCloseReason =
  | 'framing'
  | 'out-of-memory'
  | 'backpressure'
  | 'memory-budget'
  | 'heartbeat-timeout'
  | 'idle-timeout'
  | 'max-lifetime'
  | 'frame-timeout'
  | 'handshake-timeout'
  | 'close-timeout'
  | 'control-malformed'
  | 'max-sessions'
  | 'replaced'
  | 'resume-timeout'
  | 'resume-refused'
  | 'peer-goaway'
  | 'shutdown'
  | 'shutdown-timeout'
  | 'client-close'
  | 'connect-aborted';

/**
 * Why a session closed: one of the named reasons, or the text the
 * application passed to close()/abort() (`string & {}` keeps editor
 * completion of the named ones while allowing the application's own).
 */
export type CloseReason = EngineCloseReason | SessionCloseReason | (string & {});

export interface SessionCloseInfo {
  reason: CloseReason;
  code?: ErrorCode;
  message?: string;
  /** Bytes that were queued but never reached the kernel. */
  unsentBytes: number;
}

export interface SessionCounters {
  bytesIn: number;
  bytesOut: number;
  /** Application frames (control frames are counted apart). */
  framesIn: number;
  framesOut: number;
  dropped: number;
  controlIn: number;
  controlOut: number;
  /** Control frames the engine refused (the control reserve was full). */
  controlDropped: number;
  /** Frames sent again after a resume. */
  replayed: number;
  /** Application sends refused (backpressure, memory budget or replay buffer), whatever the policy. */
  refused: number;
  /** Times reading was paused because the queue passed the high watermark (read backpressure). */
  readPauses: number;
}

/** Where a resumable session stands, for persistence (a new process can resume with it). */
export interface ResumeState {
  /** 32 hex chars. */
  token: string;
  /** Peer frames delivered here (the peer replays after this). */
  received: number;
  /** Sequence number our next frame gets. */
  nextSeq: number;
  /** Highest of our frames the peer acknowledged. */
  acked: number;
  /** Frames held for replay, and how many of them never went out. */
  unacked: number;
  unwritten: number;
  replayBytes: number;
}

/** 'resume' event payload. */
export interface ResumeInfo {
  /** false: a new logical session was established (first connect, or after a refusal). */
  resumed: boolean;
  /** Our frames the peer had delivered; we continue (replay) from peerReceived + 1. */
  peerReceived: number;
  /** Frames (re)sent on the new connection from the replay buffer. */
  replayed: number;
  token: string;
}

/** 'resume-failed' event payload. */
export interface ResumeFailedInfo {
  reason: ResumeRefused['reason'];
  message: string;
  /** True when the client carries on with a new session (unsent frames move over to it). */
  restarted: boolean;
}

/** @internal Resolved per-host timing options a session reads. */
export interface SessionTiming {
  heartbeat: ResolvedHeartbeat | null;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  frameTimeoutMs: number;
  closeTimeoutMs: number;
}

/** @internal Bridge from a session to the host that owns its engine. */
export interface SessionHostLink {
  readonly engine: Engine;
  readonly encoder: FrameEncoder;
  readonly frameSpec: FrameSpec;
  readonly policy: BackpressurePolicy;
  /** Scratch space for one frame header; engines copy on send, so one buffer serves every send. */
  readonly headerScratch: Uint8Array;
  /** The user-facing pending-bytes limit (the engine's is higher by the control reserve). */
  readonly userMaxPending: number;
  /** Sends larger than this need a pending-bytes check even below the high watermark. */
  readonly sizeCheckThreshold: number;
  readonly controlEnabled: boolean;
  readonly budget: MemoryBudget | null;
  readonly replay: ResolvedReplay | null;
  readonly timing: SessionTiming;
  onSessionSent(frames: number, bytes: number): void;
  onSessionDropped(): void;
  onSessionRefused(): void;
  onControlSent(): void;
  /** Bytes this session holds now (its queue, reassembly and replay buffer): what the memory budget weighs it by. */
  heldBy(session: Session): number;
  /** Engine pause/resume of receiving, when the engine has it and readBackpressure is on; false otherwise. */
  pauseReceiving(conn: EngineConnectionId): boolean;
  resumeReceiving(conn: EngineConnectionId): boolean;
  readonly readBackpressure: boolean;
  /** Engine pause/resume of receiving whatever readBackpressure says (a for-await loop's bounded buffer); false if the engine cannot. */
  holdReceiving(conn: EngineConnectionId): boolean;
  releaseReceiving(conn: EngineConnectionId): boolean;
  /** Closes the connection under the session (marks it closing so input is discarded unless `keepReading`). */
  closeTransport(session: Session, conn: EngineConnectionId, mode: 'graceful' | 'abort'): void;
  /** Ends a session that has no connection; `clean` false: a for-await loop over it throws. */
  finalizeDetached(session: Session, info: SessionCloseInfo, clean?: boolean): void;
  scheduleAck(session: Session): void;
  readonly clock: Clock;
  /** (Re)schedules the monitor's next check on the host's timer wheel, at `monitor.nextCheckAt`. */
  scheduleCheck(monitor: IdleMonitor): void;
  cancelCheck(monitor: IdleMonitor): void;
  /** Re-emits a session event on the host as (session, ...args). */
  relay<K extends keyof HostEvents>(event: K, ...args: HostEvents[K]): void;
}

/**
 * One logical session. Without resume it is one connection, server-side
 * (accepted) or client-side (outbound). A resumable session outlives its
 * connections: `id` stays, `connectionId` changes on each resume.
 *
 * Events:
 * - 'drain' (), 'end' () when the peer half-closed, 'close' (info: SessionCloseInfo);
 * - 'liveness' (state: Liveness, previous: Liveness);
 * - 'heartbeat' (event: HeartbeatEvent) — probes, pongs, timeout;
 * - 'goaway' (goaway: GoAway) — the peer is going away;
 * - 'detach' (info: SessionCloseInfo) — a resumable session lost its connection;
 * - 'resume' (info: ResumeInfo), 'resume-failed' (info: ResumeFailedInfo);
 * - 'lost' (lost: LostMessages) — frames that did not (or may not) reach their peer.
 */
export class Session<UserData = unknown> extends EventEmitter<SessionEvents> {
  /** Stable id: the id of the session's first connection (ids are never reused). */
  readonly id: SessionId;
  /** @internal The connection under the session now (writable inside the package). */
  conn: EngineConnectionId;
  remote: AddressInfo;
  readonly side: 'server' | 'client';
  readonly connectedAt: number;
  /** When the current connection was established. */
  transportSince: number;
  /** Free for the application: player, user, room... */
  data: UserData | undefined;
  /** @internal The state (writable inside the package). */
  currentState: SessionState = 'open';
  liveness: Liveness = 'active';
  closeInfo: SessionCloseInfo | undefined;
  /** @internal Reason recorded when the session closes itself; reported in the close info. */
  pendingCloseReason: { reason: CloseReason; code?: ErrorCode; message?: string } | undefined;
  readonly counters: SessionCounters = {
    bytesIn: 0,
    bytesOut: 0,
    framesIn: 0,
    framesOut: 0,
    dropped: 0,
    controlIn: 0,
    controlOut: 0,
    controlDropped: 0,
    replayed: 0,
    refused: 0,
    readPauses: 0,
  };
  /** The peer has sent control frames (it speaks the session protocol: GOAWAY, PING). */
  peerControl = false;
  /** The last GOAWAY the peer sent on this connection. */
  goAwayReceived: GoAway | undefined;

  /** @internal */ rel: ReliableDelivery | null = null;
  /** @internal The running for-await loop's buffer (null: none runs; the receive path checks it per frame). */
  inbox: FrameInbox | null = null;
  /** @internal False when the session closed abnormally (a for-await loop throws). */
  closedCleanly = true;
  /** @internal Heartbeat, idle, lifetime and frame timeouts of the current connection. */ readonly monitor: IdleMonitor;
  /** @internal Server with resume: not announced until its first frame says whether it resumes. */
  awaitingHello = false;
  /** @internal */ helloDeadline = 0;
  /** @internal */ announced = false;
  /** @internal Set when a graceful reliable close or a shutdown waits for the peer. */
  closeDeadline = 0;
  private readonly host: SessionHostLink;
  /** @internal */ readonly flow: Backpressure;

  /** @internal Sessions are made by a Server or Client. */
  constructor(host: SessionHostLink, id: EngineConnectionId, remote: AddressInfo, side: 'server' | 'client') {
    super();
    this.host = host;
    this.flow = new Backpressure(this, host);
    this.monitor = new IdleMonitor(this, host);
    this.id = id as SessionId;
    this.conn = id;
    this.remote = remote;
    this.side = side;
    this.connectedAt = host.clock.now();
    this.transportSince = this.connectedAt;
    this.monitor.start(this.connectedAt);
  }

  /** Connection state: 'open', 'detached' (resumable, without a usable connection), 'closing', 'closed'. */
  get state(): SessionState {
    return this.currentState;
  }

  /** The connection under the session now; 0 while detached without one. */
  get connectionId(): ConnectionId {
    return this.conn as ConnectionId;
  }

  // ---- sending ------------------------------------------------------------

  /**
   * Frames `payload` with `packetId` (ignored by formats without an id) and
   * queues it, as Node's `write()`: true when the frame was queued and the
   * queue is under the high watermark; false otherwise — wait for 'drain'
   * (see `writableNeedDrain`) before sending more. Past `maxPendingBytes`
   * (or the memory budget) the `backpressure` policy applies: 'drop' (the
   * default: not queued, false, counted in `counters.dropped`), 'close'
   * (false, the session is reset) or 'reject' (throws ERR_BACKPRESSURE). On
   * a closing or closed session it returns false and sends nothing (no
   * throw, no 'drain'). `trySend` says which of these happened.
   *
   * The payload is copied before this returns; writes made in the same tick or
   * batch go out in one submission. Ids 0xFF00–0xFF0F are reserved for the
   * session layer (ERR_INVALID_ARGUMENT) on framings that carry control frames.
   */
  send(payload: Uint8Array, packetId = 0): boolean {
    return this.trySend(payload, packetId) === 'queued';
  }

  /** As `send`, answering what happened (SendResult) instead of a boolean. */
  trySend(payload: Uint8Array, packetId = 0): SendResult {
    const host = this.host;
    if (host.controlEnabled && isControlId(packetId)) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `packet id 0x${packetId.toString(16)} is reserved for session control frames (0xFF00-0xFF0F)`);
    }
    if (this.rel !== null) return this.rel.sendPayload(payload, packetId);
    if (this.state !== 'open') return 'closed';
    const headerLength = host.encoder.writeHeader(host.headerScratch, payload.byteLength, packetId);
    const size = headerLength + payload.byteLength;
    if (this.flow.wouldPassLimit(size)) return this.flow.refuse(size, 'backpressure');
    if (!this.flow.reserveBudget(size)) return this.flow.refuse(size, 'memory-budget');
    const header = host.headerScratch.subarray(0, headerLength);
    return this.submit(host.engine.sendv(this.connectionId, [header, payload]), size);
  }

  /**
   * Queues bytes that already are whole frames (relays, echo of `frame.bytes`);
   * answers as `send`. On a resumable session it must be exactly one frame
   * (each frame is one sequence number).
   */
  sendFrame(frameBytes: Uint8Array): boolean {
    return this.trySendFrame(frameBytes) === 'queued';
  }

  /** As `sendFrame`, answering what happened (SendResult). */
  trySendFrame(frameBytes: Uint8Array): SendResult {
    if (this.rel !== null) return this.rel.sendWholeFrame(frameBytes);
    if (this.state !== 'open') return 'closed';
    const host = this.host;
    const size = frameBytes.byteLength;
    if (this.flow.wouldPassLimit(size)) return this.flow.refuse(size, 'backpressure');
    if (!this.flow.reserveBudget(size)) return this.flow.refuse(size, 'memory-budget');
    return this.submit(host.engine.send(this.connectionId, frameBytes), size);
  }

  /**
   * True from a send that passed the high watermark (or was refused for the
   * queue limit) until the 'drain' at the low watermark: as Node's
   * `writable.writableNeedDrain`. A send refused while this is false (a frame
   * bigger than the room the limit leaves, or the process memory budget) has
   * no 'drain' to wait for.
   */
  get writableNeedDrain(): boolean {
    return this.flow.aboveHigh && this.state !== 'closed' && this.state !== 'closing';
  }

  /** @internal Counts what the engine took and applies its watermark verdict. */
  submit(status: SendStatus, bytes: number): SendResult {
    switch (status) {
      case SEND_QUEUED:
        this.counters.framesOut++;
        this.counters.bytesOut += bytes;
        this.host.onSessionSent(1, bytes);
        return 'queued';
      case SEND_ABOVE_HIGH:
        this.flow.markAboveHigh();
        this.counters.framesOut++;
        this.counters.bytesOut += bytes;
        this.host.onSessionSent(1, bytes);
        return 'high-water';
      case SEND_REFUSED:
        this.host.budget?.release(bytes);
        this.flow.aboveHigh = true; // the engine owes a refused sender an onDrain
        return this.flow.refuse(bytes, 'backpressure');
      default:
        this.host.budget?.release(bytes);
        return 'closed';
    }
  }

  /** @internal Sends a control frame through the reserve lane (never refused for the user's backlog). */
  sendControl(id: number, payload: Uint8Array): boolean {
    const conn = this.connectionId;
    if (conn === 0 || this.state === 'closed') return false;
    const host = this.host;
    const headerLength = host.encoder.writeHeader(host.headerScratch, payload.byteLength, id);
    const status = host.engine.sendv(conn, [host.headerScratch.subarray(0, headerLength), payload]);
    if (status === SEND_REFUSED) {
      this.counters.controlDropped++;
      return false;
    }
    if (status === SEND_CLOSED) return false;
    if (status === SEND_ABOVE_HIGH) this.flow.markAboveHigh();
    this.counters.controlOut++;
    this.host.onControlSent();
    return true;
  }

  /**
   * Socket options for this session's connection (TCP_NODELAY, keepalive
   * idle/interval/count, TCP_USER_TIMEOUT, buffer sizes), passed to the
   * engine as they are. Host-wide defaults come from the `socket` option.
   */
  setSocketOptions(options: SocketOptions): boolean {
    return this.connectionId !== 0 && this.host.engine.setSocketOptions(this.connectionId, options);
  }

  /** Reading is paused: until the queue drains (read backpressure), or until the for-await loop catches up. */
  get readPaused(): boolean {
    return this.flow.readPaused || this.flow.readerPaused;
  }

  /**
   * The session's frames as an async iterator (`for await (const frame of
   * session)` is `frames()` with the defaults). Frames are copies, valid as
   * long as you keep them; they also reach the host's 'frame' event as usual.
   * The loop sees frames from the moment it starts; it ends when the session
   * closes cleanly (the peer's FIN, close(), a graceful shutdown, after the
   * frames already buffered) and throws a SessionClosedError (`code` from the
   * close, else ERR_CONN_CLOSED; `closeInfo`) when it closed abnormally (a
   * reset, abort(), an error, a timeout, a framing error: every close with a
   * code or unsent bytes), as a destroyed Node stream does. A slow loop is
   * bounded: past `highWaterMark` buffered bytes the session stops reading
   * until the loop has taken the buffer to half. `break` ends the loop only:
   * the session stays open. One loop at a time (ERR_INVALID_STATE).
   */
  frames(options: FramesOptions = {}): AsyncIterableIterator<Frame> {
    if (this.inbox !== null) throw loopRunningError(this);
    const inbox = new FrameInbox(this, options);
    if (this.currentState === 'closed') {
      inbox.end(this.closeInfo ?? { reason: 'local', unsentBytes: 0 }, this.closedCleanly);
      return inbox;
    }
    this.inbox = inbox;
    return inbox;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Frame> {
    return this.frames();
  }

  /** @internal The engine's queue fell to the low watermark. */
  handleDrain(): void {
    this.flow.onDrain();
    if (this.rel !== null) this.rel.flush();
    this.emit('drain');
  }

  /** Bytes queued but not yet taken by the kernel. */
  get pendingBytes(): number {
    return this.host.engine.pendingBytes(this.connectionId);
  }

  /** True for sessions that resume after a reconnect (sequence numbers, acks, replay). */
  get resumable(): boolean {
    return this.rel !== null;
  }

  /** The resume token (32 hex chars) of a resumable session. */
  get token(): string | undefined {
    return this.rel === null ? undefined : this.rel.tokenHex;
  }

  /** Where a resumable session stands (to persist it, or to show it). */
  resumeState(): ResumeState | undefined {
    return this.rel === null ? undefined : this.rel.snapshot();
  }

  /** Heartbeat figures of the current connection, when this side drives heartbeats. */
  heartbeatStats(): { probes: number; pongs: number; misses: number; rttMs: number | undefined; liveness: Liveness } | undefined {
    const hb = this.monitor.heartbeat;
    if (hb === null) return undefined;
    return { probes: hb.probes, pongs: hb.pongs, misses: hb.misses, rttMs: hb.rttMs, liveness: hb.liveness };
  }

  /** Sends a PING now (any session with control frames; the answer shows as a 'heartbeat' pong event when this side drives heartbeats). */
  ping(nonce = 0): boolean {
    return this.host.controlEnabled && this.state === 'open' && this.sendControl(ControlFrameId.Ping, encodePing(nonce));
  }

  /**
   * Tells the peer this side is going away (GOAWAY control frame). Only sent
   * to peers that spoke the session protocol (a plain peer would see an
   * unknown packet). Returns whether it was sent.
   */
  goAway(g: Partial<GoAway> & { reason: GoAwayReason }): boolean {
    if (!this.host.controlEnabled || !this.peerControl || this.connectionId === 0) return false;
    if (this.state === 'closed') return false;
    return this.sendControl(
      ControlFrameId.GoAway,
      encodeGoAway({ reason: g.reason, reconnect: g.reconnect ?? false, resume: g.resume ?? false, deadlineMs: g.deadlineMs ?? 0, message: g.message ?? '' }),
    );
  }

  // ---- closing ------------------------------------------------------------

  /**
   * Flushes what is queued, then closes. A resumable session ends for good:
   * it tells the peer (GOAWAY) and waits (up to closeTimeoutMs) for the
   * peer's final ack and FIN, then sends its own final ack and closes, so
   * nothing is left unacknowledged on either side.
   */
  close(reason: CloseReason = 'local'): void {
    const rel = this.rel;
    if (rel !== null && this.state !== 'closed') {
      rel.final = true;
      if (this.connectionId === 0) {
        this.host.finalizeDetached(this, { reason, unsentBytes: 0 });
        return;
      }
      if (this.state !== 'closing' && this.goAwayAndClose({ reason: 'session-close', message: reason }, reason, this.host.timing.closeTimeoutMs)) return;
    }
    this.closeWith('graceful', { reason });
  }

  /**
   * Layered close: to a peer that speaks the session protocol, sends GOAWAY
   * (and an ack) and lets the peer finish — it acks, half-closes, and our
   * side then sends its final ack and closes after flushing; the close is
   * forced after `deadlineMs`. A plain peer gets a graceful close (flush,
   * FIN). Returns true when the GOAWAY path was taken.
   */
  goAwayAndClose(g: Partial<GoAway> & { reason: GoAwayReason }, reason: CloseReason, deadlineMs: number, code?: ErrorCode): boolean {
    if (this.state === 'closed' || this.state === 'closing') return false;
    if (this.goAway({ ...g, deadlineMs })) {
      this.rel?.sendAck();
      if (this.pendingCloseReason === undefined) this.pendingCloseReason = code === undefined ? { reason } : { reason, code };
      this.currentState = 'closing';
      this.closeDeadline = this.host.clock.now() + deadlineMs;
      this.host.scheduleCheck(this.monitor);
      return true;
    }
    this.closeWith('graceful', code === undefined ? { reason } : { reason, code });
    return false;
  }

  /** Drops the queue and resets the connection (a resumable session ends for good). */
  abort(reason: CloseReason = 'abort'): void {
    if (this.rel !== null) this.rel.final = true;
    if (this.rel !== null && this.connectionId === 0) {
      this.host.finalizeDetached(this, { reason, unsentBytes: 0 }, false);
      return;
    }
    this.closeWith('abort', { reason });
  }

  /** Half-close: FIN after the queue is flushed; frames keep arriving until the peer closes. */
  shutdown(): boolean {
    return this.state === 'open' && this.host.engine.shutdown(this.connectionId);
  }

  /**
   * @internal Closes the connection with a recorded reason; the engine's onClose
   * completes it. On a resumable session that is not final, the session
   * detaches instead of closing (it may be resumed).
   */
  closeWith(mode: 'graceful' | 'abort', why: { reason: CloseReason; code?: ErrorCode; message?: string }): void {
    if (this.state === 'closed') return;
    if (this.rel !== null && this.connectionId === 0) {
      if (this.rel.final) {
        const info: SessionCloseInfo = { reason: why.reason, unsentBytes: 0 };
        if (why.code !== undefined) info.code = why.code;
        if (why.message !== undefined) info.message = why.message;
        this.host.finalizeDetached(this, info, mode === 'graceful' && why.code === undefined);
      }
      return;
    }
    if (this.pendingCloseReason === undefined) this.pendingCloseReason = why;
    if (this.state === 'open' || this.state === 'detached' || mode === 'abort') {
      this.currentState = 'closing';
      this.host.closeTransport(this, this.connectionId, mode);
    }
  }

  /** @internal */
  setLiveness(next: Liveness): void {
    const prev = this.liveness;
    if (prev === next) return;
    this.liveness = next;
    this.emit('liveness', next, prev);
    this.host.relay('liveness', this, next, prev);
  }

  // ---- resume (used by the host, Server and ReconnectingClient) ------------------

  /** @internal Makes this a resumable session with `token` (zero token: not yet known). */
  makeReliable(token: Uint8Array, received = 0, historyUnknown = false): ReliableDelivery {
    this.rel = new ReliableDelivery(this, this.host, token, received, historyUnknown);
    return this.rel;
  }

  /** @internal The connection is gone; a resumable session waits for a new one. */
  detachTransport(info: SessionCloseInfo): void {
    this.currentState = 'detached';
    this.conn = 0;
    this.monitor.stop();
    this.flow.reset();
    this.closeDeadline = 0;
    this.pendingCloseReason = undefined;
    this.goAwayReceived = undefined;
    this.rel?.onDetach();
    if (this.liveness !== 'active') this.setLiveness('active');
    this.emit('detach', info);
    this.host.relay('detach', this, info);
  }

  /** @internal A new connection carries this session (server: after RESUME_REQUEST; client: before its handshake). */
  attachTransport(conn: EngineConnectionId, remote: AddressInfo, open: boolean): void {
    this.conn = conn;
    this.remote = remote;
    this.transportSince = this.host.clock.now();
    this.currentState = open ? 'open' : 'detached';
    this.flow.reset();
    this.pendingCloseReason = undefined;
    this.goAwayReceived = undefined;
    this.peerControl = true;
    this.monitor.start(this.transportSince);
  }

  /** @internal Transport closed for good: final state and events (the host emits its own). */
  finish(info: SessionCloseInfo, clean: boolean): void {
    this.currentState = 'closed';
    this.closeInfo = info;
    this.closedCleanly = clean;
    this.conn = 0;
    this.monitor.stop();
    if (this.inbox !== null) this.inbox.end(info, clean);
    this.emit('close', info);
  }
}
