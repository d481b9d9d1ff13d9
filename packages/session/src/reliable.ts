import { FastPortError } from '@fastport/native-io';

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
