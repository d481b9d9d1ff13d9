import { randomBytes } from 'node:crypto';
import { FastPortError, SendStatus } from '@fastport/native-io';
import {
  ControlFrameId,
  TOKEN_BYTES,
  U64_UNKNOWN,
  encodeAck,
  encodeResumeRequest,
  isControlId,
  tokenToHex,
  type ResumeOk,
  type ResumeRefused,
} from './control';
import type { ResumeFailedInfo, ResumeInfo, ResumeState, SendResult, Session, SessionHostLink } from './session';

const { AboveHighWater: SEND_ABOVE_HIGH, Refused: SEND_REFUSED, Closed: SEND_CLOSED } = SendStatus;

/**
 * Reliable delivery for resumable sessions.
 *
 * Sequence numbers are implicit: the n-th application frame a side sends on
 * a logical session is message n (1-based), in both directions. TCP keeps
 * order inside a connection, and the resume handshake fixes where each
 * direction continues on the next one, so no per-frame field is needed (the
 * application's frames keep their exact wire format). The receiver counts
 * the frames it delivered and acknowledges that count (ACK control frame);
 * the sender keeps every unacknowledged frame in an OutboundLog and replays
 * from the peer's count after a reconnect: exactly once, in order.
 */

export interface ReplayOptions {
  /** Bytes of unacknowledged frames kept for replay (per session). Default 4 MiB. */
  maxReplayBytes?: number;
  /** Age past which an unacknowledged frame is dropped from the replay buffer. Default 60,000 ms. */
  maxReplayAgeMs?: number;
  /** Acknowledge after this many delivered frames... Default 64. */
  ackEvery?: number;
  /** ...or after this many delivered bytes... Default 64 KiB. */
  ackEveryBytes?: number;
  /** ...or at most this long after the first unacknowledged delivery. Default 50 ms. */
  ackDelayMs?: number;
}

export interface ResolvedReplay {
  maxReplayBytes: number;
  maxReplayAgeMs: number;
  ackEvery: number;
  ackEveryBytes: number;
  ackDelayMs: number;
}

export const DEFAULT_REPLAY: Readonly<ResolvedReplay> = Object.freeze({
  maxReplayBytes: 4 * 1024 * 1024,
  maxReplayAgeMs: 60_000,
  ackEvery: 64,
  ackEveryBytes: 64 * 1024,
  ackDelayMs: 50,
});

export function resolveReplay(o: ReplayOptions, where: string): ResolvedReplay {
  const r: ResolvedReplay = {
    maxReplayBytes: o.maxReplayBytes ?? DEFAULT_REPLAY.maxReplayBytes,
    maxReplayAgeMs: o.maxReplayAgeMs ?? DEFAULT_REPLAY.maxReplayAgeMs,
    ackEvery: o.ackEvery ?? DEFAULT_REPLAY.ackEvery,
    ackEveryBytes: o.ackEveryBytes ?? DEFAULT_REPLAY.ackEveryBytes,
    ackDelayMs: o.ackDelayMs ?? DEFAULT_REPLAY.ackDelayMs,
  };
  for (const [name, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `${where}.${name} must be a positive integer (got ${String(v)})`);
    }
  }
  return r;
}

export interface LogEntry {
  seq: number;
  /** Packet id (for the application's loss report). */
  id: number;
  /** The whole encoded frame, header included: what replay sends. */
  frame: Uint8Array;
  /** Date.now() when it was queued. */
  at: number;
}

/** Messages that will not (or may not) reach the peer, as told to the application ('lost' event). */
export interface LostMessages {
  /** 'outbound': ours, to the peer. 'inbound': the peer's, to us. */
  direction: 'outbound' | 'inbound';
  /** Why: a resume refusal reason, 'replay-expired' (dropped by the age bound before it could be sent), 'closed' (the session ended first). */
  reason: string;
  /** Inclusive sequence range; count = toSeq - fromSeq + 1. */
  fromSeq: number;
  toSeq: number;
  count: number;
  /**
   * true: certainly not delivered. false: delivery is unknown (sent, never
   * acknowledged, and the session ended without a resume).
   */
  certain: boolean;
  /** Of those messages, the ones this side still held (outbound only): packet id and payload. */
  messages: { seq: number; id: number; payload: Uint8Array }[];
}

/**
 * The sender's side: every application frame sent on a resumable session,
 * kept until the peer acknowledges it. Bounded in bytes and age: frames
 * already handed to the connection are evicted first when a bound is hit
 * (they were probably delivered; a resume needing them is refused); frames
 * not yet sent are never evicted for bytes (the send is refused by the
 * backpressure policy instead), only for age (and reported lost).
 */
export class OutboundLog {
  private entries: LogEntry[] = [];
  private head = 0;
  /** Sequence number the next appended frame gets. */
  nextSeq = 1;
  /** Entries with seq < writeSeq were handed to the current connection. */
  writeSeq = 1;
  /** Highest seq the peer acknowledged. */
  ackedThrough = 0;
  /** Highest seq dropped without an ack (0: none). Resume needs peer received >= this. */
  evictedThrough = 0;
  evictedBy: 'replay-overflow' | 'replay-expired' | undefined;
  bytes = 0;

  get length(): number {
    return this.entries.length - this.head;
  }

  /** Frames queued while no connection could take them. */
  get unwritten(): number {
    return this.nextSeq - this.writeSeq;
  }

  /** Lowest seq still replayable (nextSeq when empty). */
  get firstSeq(): number {
    const e = this.entries[this.head];
    return e === undefined ? this.nextSeq : e.seq;
  }

  append(id: number, frame: Uint8Array, now: number): number {
    const seq = this.nextSeq++;
    this.entries.push({ seq, id, frame, at: now });
    this.bytes += frame.byteLength;
    return seq;
  }

  /** The next frame to hand to the connection, or undefined. */
  peekUnwritten(): LogEntry | undefined {
    if (this.writeSeq >= this.nextSeq) return undefined;
    const first = this.entries[this.head];
    if (first === undefined) return undefined;
    return this.entries[this.head + (this.writeSeq - first.seq)];
  }

  /** Drops acknowledged entries (seq <= n). Returns bytes freed, or -1 if n acks frames never sent. */
  ack(n: number): number {
    if (n >= this.writeSeq) return -1;
    if (n <= this.ackedThrough) return 0;
    this.ackedThrough = n;
    return this.dropThrough(n);
  }

  /** Evicts handed-over entries until `bytes + extra <= max`. Returns bytes freed. */
  evictForBytes(extra: number, max: number): number {
    let freed = 0;
    while (this.bytes + extra > max) {
      const e = this.entries[this.head];
      if (e === undefined || e.seq >= this.writeSeq) break;
      freed += this.evictHead('replay-overflow');
    }
    return freed;
  }

  /** Evicts entries older than `cutoff`; returns the unsent ones evicted (certainly lost). */
  evictOlderThan(cutoff: number): LogEntry[] {
    const lostUnsent: LogEntry[] = [];
    for (;;) {
      const e = this.entries[this.head];
      if (e === undefined || e.at >= cutoff) break;
      if (e.seq >= this.writeSeq) {
        lostUnsent.push(e);
        this.writeSeq = e.seq + 1;
      }
      this.evictHead('replay-expired');
    }
    return lostUnsent;
  }

  /** Everything still held (for loss reports). */
  held(): LogEntry[] {
    return this.entries.slice(this.head);
  }

  /** Entries with seq > n, in order. */
  after(n: number): LogEntry[] {
    const out: LogEntry[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.seq > n) out.push(e);
    }
    return out;
  }

  /** Marks everything after `n` as not yet sent on the (new) connection: replay starts at n + 1. */
  rewindTo(n: number): void {
    this.writeSeq = Math.max(n + 1, this.firstSeq);
  }

  /** Forgets everything: a fresh logical session starting at seq `next`. */
  reset(next = 1): void {
    this.entries = [];
    this.head = 0;
    this.nextSeq = next;
    this.writeSeq = next;
    this.ackedThrough = next - 1;
    this.evictedThrough = 0;
    this.evictedBy = undefined;
    this.bytes = 0;
  }

  /** Drops every entry but keeps the numbering and the ack count (the session ended; figures stay readable). */
  clear(): number {
    const freed = this.bytes;
    this.entries = [];
    this.head = 0;
    this.writeSeq = this.nextSeq;
    this.bytes = 0;
    return freed;
  }

  /** Continue numbering after `n` (the peer's count) when this side lost its history (new process). */
  continueAfter(n: number): void {
    this.reset(n + 1);
  }

  private dropThrough(n: number): number {
    let freed = 0;
    for (;;) {
      const e = this.entries[this.head];
      if (e === undefined || e.seq > n) break;
      freed += e.frame.byteLength;
      this.entries[this.head] = undefined as unknown as LogEntry;
      this.head++;
    }
    this.bytes -= freed;
    this.compact();
    return freed;
  }

  private evictHead(why: 'replay-overflow' | 'replay-expired'): number {
    const e = this.entries[this.head]!;
    this.entries[this.head] = undefined as unknown as LogEntry;
    this.head++;
    this.bytes -= e.frame.byteLength;
    if (e.seq > this.ackedThrough) {
      this.evictedThrough = e.seq;
      this.evictedBy = why;
    }
    this.compact();
    return e.frame.byteLength;
  }

  private compact(): void {
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

const ZERO_TOKEN = new Uint8Array(TOKEN_BYTES);

/** 16 random bytes: a new session token. */
export function newToken(): Uint8Array {
  return new Uint8Array(randomBytes(TOKEN_BYTES));
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function readUint(b: Uint8Array, p: number, width: 1 | 2 | 4, endian: 'be' | 'le'): number {
  if (width === 1) return b[p]!;
  if (width === 2) return endian === 'be' ? (b[p]! << 8) | b[p + 1]! : b[p]! | (b[p + 1]! << 8);
  return endian === 'be'
    ? ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0
    : (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/**
 * @internal Reliable delivery of one resumable session: numbering of its
 * frames, the replay log, acknowledgements both ways, the client's resume
 * handshake and the loss reports. The session owns one while it is
 * resumable; the connection under it may change, this state stays.
 */
export class ReliableDelivery {
  token: Uint8Array;
  readonly out = new OutboundLog();
  /** Peer frames delivered here. */
  received: number;
  ackedSent: number;
  bytesSinceAck = 0;
  ackScheduled = false;
  /** Client side: 'pending' while a RESUME_REQUEST awaits its answer. */
  handshake: 'none' | 'pending' | 'done' = 'none';
  /** The session ends (no resume) when its connection closes. */
  final = false;
  /** A GOAWAY was received on the current connection: new frames wait for the next one. */
  draining = false;
  /** Client imported a token without its unacknowledged frames (a new process). */
  historyUnknown: boolean;
  detachedAt = 0;
  /** Server session id the peer reported (client side). */
  peerSessionId = 0;
  private readonly session: Session;
  private readonly host: SessionHostLink;

  constructor(session: Session, host: SessionHostLink, token: Uint8Array, received: number, historyUnknown: boolean) {
    this.session = session;
    this.host = host;
    this.token = token.slice();
    this.received = received;
    this.ackedSent = received;
    this.historyUnknown = historyUnknown;
  }

  /** The token as the application sees it; undefined while a new session's first handshake is pending. */
  get tokenHex(): string | undefined {
    return this.handshake === 'pending' && isZero(this.token) ? undefined : tokenToHex(this.token);
  }

  snapshot(): ResumeState {
    const out = this.out;
    return {
      token: tokenToHex(this.token),
      received: this.received,
      nextSeq: out.nextSeq,
      acked: out.ackedThrough,
      unacked: out.length,
      unwritten: out.unwritten,
      replayBytes: out.bytes,
    };
  }

  // ---- sending ---------------------------------------------------------------

  /** Frames `payload` into its own buffer (the replay log keeps it) and sends or holds it. */
  sendPayload(payload: Uint8Array, packetId: number): SendResult {
    const state = this.session.state;
    if (state === 'closing' || state === 'closed') return 'closed';
    const host = this.host;
    const hs = host.headerScratch.length;
    const frame = new Uint8Array(hs + payload.byteLength);
    host.encoder.writeHeader(frame, payload.byteLength, packetId, 0);
    frame.set(payload, hs);
    return this.push(frame, packetId);
  }

  /** A whole encoded frame: each frame is one sequence number, so it must be exactly one. */
  sendWholeFrame(frameBytes: Uint8Array): SendResult {
    const state = this.session.state;
    if (state === 'closing' || state === 'closed') return 'closed';
    const spec = this.host.frameSpec;
    if (frameBytes.byteLength < spec.headerSize) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `sendFrame: ${frameBytes.byteLength} bytes is shorter than a header`);
    }
    const declared = readUint(frameBytes, spec.lengthOffset, spec.lengthWidth, spec.lengthEndian) + (spec.lengthIncludesHeader ? 0 : spec.headerSize);
    if (declared !== frameBytes.byteLength) {
      throw new FastPortError(
        'ERR_INVALID_ARGUMENT',
        `sendFrame on a resumable session takes exactly one frame (header says ${declared} bytes, got ${frameBytes.byteLength})`,
      );
    }
    const id = spec.idOffset === undefined ? 0 : readUint(frameBytes, spec.idOffset, spec.idWidth ?? 2, spec.idEndian ?? 'be');
    if (this.host.controlEnabled && isControlId(id)) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `packet id 0x${id.toString(16)} is reserved for session control frames`);
    }
    return this.push(frameBytes.slice(), id);
  }

  private push(frame: Uint8Array, id: number): SendResult {
    const session = this.session;
    const flow = session.flow;
    const host = this.host;
    const limits = host.replay!;
    const size = frame.byteLength;
    const out = this.out;
    if (out.bytes + size > limits.maxReplayBytes) {
      const freed = out.evictForBytes(size, limits.maxReplayBytes);
      if (freed > 0) host.budget?.release(freed);
      if (out.bytes + size > limits.maxReplayBytes) return flow.refuse(size, 'replay-buffer');
    }
    const direct = session.state === 'open' && !this.draining && out.unwritten === 0;
    if (direct && flow.wouldPassLimit(size)) return flow.refuse(size, 'backpressure');
    // The replay copy (and, once written, the engine's copy) count against the budget.
    if (!flow.reserveBudget(direct ? size * 2 : size)) return flow.refuse(size, 'memory-budget');
    out.append(id, frame, host.clock.now());
    if (!direct) {
      if (session.state === 'open' && !this.draining) this.flush();
      // Kept behind a queue over its high watermark: the sender should wait for the 'drain' that comes.
      return flow.aboveHigh ? 'high-water' : 'queued';
    }
    out.writeSeq++;
    const status = host.engine.send(session.connectionId, frame);
    if (status === SEND_REFUSED || status === SEND_CLOSED) {
      // Kept in the replay buffer: it goes out after a drain or on the next connection.
      out.writeSeq--;
      if (status === SEND_CLOSED) return 'queued';
      flow.aboveHigh = true; // the engine owes a refused sender an onDrain
      return 'high-water';
    }
    return session.submit(status, size);
  }

  /** Writes replay-log frames the connection has not had yet, as far as the limit allows. */
  flush(): number {
    const session = this.session;
    if (session.state !== 'open' || this.draining) return 0;
    const host = this.host;
    const out = this.out;
    const conn = session.connectionId;
    let written = 0;
    for (let e = out.peekUnwritten(); e !== undefined; e = out.peekUnwritten()) {
      const size = e.frame.byteLength;
      if (host.engine.pendingBytes(conn) + size > host.userMaxPending && host.engine.pendingBytes(conn) > 0) break;
      const status = host.engine.send(conn, e.frame);
      if (status === SEND_REFUSED || status === SEND_CLOSED) break;
      out.writeSeq++;
      written++;
      if (status === SEND_ABOVE_HIGH) session.flow.markAboveHigh();
      session.counters.framesOut++;
      session.counters.bytesOut += size;
      host.onSessionSent(1, size);
    }
    return written;
  }

  /** Age bound of the replay log; unsent frames dropped by it are reported lost. */
  expire(now: number): void {
    const limits = this.host.replay;
    if (limits === null) return;
    const out = this.out;
    const before = out.bytes;
    const unsent = out.evictOlderThan(now - limits.maxReplayAgeMs);
    if (before !== out.bytes) this.host.budget?.release(before - out.bytes);
    if (unsent.length > 0) this.reportLost('outbound', 'replay-expired', unsent[0]!.seq, unsent[unsent.length - 1]!.seq, true, unsent);
  }

  // ---- acknowledgements ------------------------------------------------------------

  /** Peer acknowledged `n` of our frames. Returns false if the ack is impossible. */
  onAck(n: number): boolean {
    const freed = this.out.ack(n);
    if (freed < 0) return false;
    if (freed > 0) this.host.budget?.release(freed);
    return true;
  }

  /** A reliable application frame was delivered. */
  delivered(bytes: number): void {
    this.received++;
    this.bytesSinceAck += bytes;
  }

  /** Sends the ack now if a threshold is met, else schedules it. */
  maybeAck(): void {
    const r = this.host.replay!;
    if (this.received - this.ackedSent >= r.ackEvery || this.bytesSinceAck >= r.ackEveryBytes) this.sendAck();
    else if (!this.ackScheduled && this.received !== this.ackedSent) {
      this.ackScheduled = true;
      this.host.scheduleAck(this.session);
    }
  }

  sendAck(): void {
    if (this.session.connectionId === 0) return;
    if (this.session.sendControl(ControlFrameId.Ack, encodeAck(this.received))) {
      this.ackedSent = this.received;
      this.bytesSinceAck = 0;
    }
  }

  // ---- connections come and go --------------------------------------------------------

  /** The connection is gone; the session waits for a new one. */
  onDetach(): void {
    this.detachedAt = this.host.clock.now();
    this.handshake = 'none';
    this.draining = false;
    this.ackScheduled = false;
  }

  /** Client: asks the server to resume (or to start) this session. */
  startClientHandshake(): void {
    this.handshake = 'pending';
    this.session.peerControl = true;
    this.session.sendControl(
      ControlFrameId.ResumeRequest,
      encodeResumeRequest({
        token: this.token,
        historyUnknown: this.historyUnknown,
        received: this.received,
        firstAvailable: this.historyUnknown ? 0 : this.out.firstSeq,
      }),
    );
    // The answer has a deadline (closeTimeoutMs from the connection's start).
    this.host.scheduleCheck(this.session.monitor);
  }

  /** Client: the server accepted. Returns an error message if the answer is impossible. */
  onResumeOk(ok: ResumeOk): string | undefined {
    if (this.handshake !== 'pending') return 'RESUME_OK without a pending request';
    const asked = !isZero(this.token);
    if (asked && !ok.resumed) return 'RESUME_OK for a new session answered a resume request';
    if (asked && !equalBytes(this.token, ok.token)) return 'RESUME_OK with another token';
    const out = this.out;
    const budget = this.host.budget;
    if (this.historyUnknown) {
      // A new process: the server's count decides where our numbering goes on.
      const carry = out.after(out.writeSeq - 1);
      const freed = out.bytes;
      out.continueAfter(ok.received);
      budget?.release(freed);
      for (const e of carry) {
        out.append(e.id, e.frame, e.at);
        budget?.charge(e.frame.byteLength);
      }
      this.historyUnknown = false;
    } else {
      if (ok.received >= out.writeSeq) return `server claims ${ok.received} frames, only ${out.writeSeq - 1} were sent`;
      if (ok.received < out.firstSeq - 1) return `server needs frame ${ok.received + 1}, replay buffer starts at ${out.firstSeq}`;
      const freed = out.ack(ok.received);
      if (freed > 0) budget?.release(freed);
      out.rewindTo(ok.received);
    }
    this.token = ok.token.slice();
    this.handshake = 'done';
    this.peerSessionId = ok.sessionId;
    this.draining = false;
    const session = this.session;
    session.currentState = 'open';
    const toReplay = out.unwritten;
    const written = this.flush();
    if (ok.resumed) session.counters.replayed += written;
    const info: ResumeInfo = { resumed: ok.resumed, peerReceived: ok.received, replayed: toReplay, token: tokenToHex(this.token) };
    session.emit('resume', info);
    this.host.relay('resume', session, info);
    return undefined;
  }

  /**
   * Client: the server refused. Reports what is lost; unless the refusal is
   * final, starts over as a new session on the same connection, moving
   * frames that never went out into it.
   */
  onResumeRefused(r: ResumeRefused): void {
    const session = this.session;
    const restart = r.reason !== 'resume-disabled' && r.reason !== 'protocol';
    const info: ResumeFailedInfo = { reason: r.reason, message: r.message, restarted: restart };
    session.emit('resume-failed', info);
    this.host.relay('resume-failed', session, info);
    if (r.lostFrom <= r.lostTo && r.lostTo !== U64_UNKNOWN) this.reportLost('inbound', r.reason, r.lostFrom, r.lostTo, true, []);
    if (r.peerLostFrom <= r.peerLostTo && r.peerLostTo !== U64_UNKNOWN) {
      this.reportLost('outbound', r.reason, r.peerLostFrom, r.peerLostTo, true, []);
    }
    const out = this.out;
    const written = out.held().filter((e) => e.seq < out.writeSeq);
    const unsent = out.after(out.writeSeq - 1);
    if (written.length > 0) {
      const known = r.received !== U64_UNKNOWN;
      const notDelivered = known ? written.filter((e) => e.seq > r.received) : written;
      if (notDelivered.length > 0) {
        this.reportLost('outbound', r.reason, notDelivered[0]!.seq, notDelivered[notDelivered.length - 1]!.seq, known, notDelivered);
      }
    }
    if (!restart) {
      this.final = true;
      session.closeWith('graceful', { reason: 'resume-refused', message: `${r.reason}: ${r.message}` });
      return;
    }
    this.startFreshLog(unsent);
    this.startClientHandshake();
  }

  /**
   * A fresh logical session starts where this one was (after a GOAWAY that
   * forbids resuming, on the client): unacknowledged frames are reported;
   * unsent ones move to the new session.
   */
  restartFresh(reason: string): void {
    const out = this.out;
    const written = out.held().filter((e) => e.seq < out.writeSeq);
    if (written.length > 0) this.reportLost('outbound', reason, written[0]!.seq, written[written.length - 1]!.seq, false, written);
    const unsent = out.after(out.writeSeq - 1);
    this.startFreshLog(unsent);
    this.final = false;
  }

  /** Empties the replay log, keeps the frames that never went out (renumbered from 1) and forgets the old token and counters. */
  private startFreshLog(unsent: readonly { id: number; frame: Uint8Array; at: number }[]): void {
    const out = this.out;
    const budget = this.host.budget;
    budget?.release(out.bytes);
    out.reset(1);
    for (const e of unsent) {
      out.append(e.id, e.frame, e.at);
      budget?.charge(e.frame.byteLength);
    }
    this.token = ZERO_TOKEN.slice();
    this.received = 0;
    this.ackedSent = 0;
    this.bytesSinceAck = 0;
    this.historyUnknown = false;
  }

  // ---- loss reports ------------------------------------------------------------------

  /** The logical session ends: everything still unacknowledged is reported. */
  reportUnacknowledged(reason: string): void {
    const out = this.out;
    const held = out.held();
    const written = held.filter((e) => e.seq < out.writeSeq);
    const unsent = held.filter((e) => e.seq >= out.writeSeq);
    if (written.length > 0) this.reportLost('outbound', reason, written[0]!.seq, written[written.length - 1]!.seq, false, written);
    if (unsent.length > 0) this.reportLost('outbound', reason, unsent[0]!.seq, unsent[unsent.length - 1]!.seq, true, unsent);
    const cleared = out.clear();
    this.host.budget?.release(cleared);
  }

  reportLost(direction: 'outbound' | 'inbound', reason: string, fromSeq: number, toSeq: number, certain: boolean, entries: LogEntry[]): void {
    const hs = this.host.frameSpec.headerSize;
    const lost: LostMessages = {
      direction,
      reason,
      fromSeq,
      toSeq,
      count: toSeq - fromSeq + 1,
      certain,
      messages: entries.map((e) => ({ seq: e.seq, id: e.id, payload: e.frame.subarray(hs) })),
    };
    this.session.emit('lost', lost);
    this.host.relay('lost', this.session, lost);
  }
}
