import { FastPortError } from '@fastport/native-io';

export interface MemoryBudgetOptions {
  /** Bytes that receive reassembly, send queues and replay buffers of every registered host may hold together. Default 1 GiB. */
  limitBytes?: number;
}

export interface MemoryBudgetStats {
  limitBytes: number;
  /** Current estimate (exact after each recount; sends since then are added, drained bytes subtracted at the next recount). */
  usedBytes: number;
  peakBytes: number;
  /** Reservations refused because the budget was full (the refused session held at least its fair share). */
  refusals: number;
  /** Reservations granted over a full budget to sessions below their fair share. */
  overdrafts: number;
  /** Sessions closed ('memory-budget') because they held the most when the budget was full. */
  evictions: number;
  recounts: number;
}

/** A session that holds budgeted memory and can be closed to give it back. */
export interface BudgetHolder {
  /** Bytes it holds now. */
  readonly bytes: number;
  /** Closes it ('memory-budget'); returns the bytes given back. */
  evict(message: string): number;
}

/** A host whose sessions the budget recounts. */
export interface BudgetMember {
  /** Bytes held now: send queues + reassembly buffers + replay buffers of its sessions. */
  memoryUsage(): number;
  /** Sessions that may hold memory (for the fair share). */
  sessionCount?(): number;
  /** Its sessions holding more than `minBytes`, to choose who is closed when the budget is full. */
  holders?(minBytes: number): BudgetHolder[];
}

/** A session's fair share is never below this (so a budget shared by many sessions still lets each send something). */
export const MIN_FAIR_SHARE_BYTES = 64 * 1024;

export const DEFAULT_MEMORY_LIMIT = 1024 * 1024 * 1024;

/**
 * A per-process budget for the memory that peers can make us hold: frames
 * being reassembled, send queues and replay buffers. Every host registers
 * with one (by default `MemoryBudget.shared`, so all servers and clients of
 * the process share it).
 *
 * Accounting is incremental on the hot path (a send adds its bytes; a
 * reassembly adds or frees what the decoder holds) and exact at each
 * recount: the hosts recount on their sweep timer, and a reservation that
 * would pass the limit triggers a recount first (at most one per event-loop
 * turn), so bytes the kernel took since are not held against a sender.
 *
 * Who pays when it is full (`admit`): the sessions that hold the memory, not
 * everyone. A session holding less than its fair share (limit / sessions, at
 * least 64 KiB) still gets its bytes (an overdraft), and the budget closes
 * the largest holders ('memory-budget') until usage is back under the limit.
 * A session holding its fair share or more is refused: a send gets its
 * backpressure policy (reject / drop / close), a frame being reassembled
 * closes its session.
 */
export class MemoryBudget {
  /** The process-wide budget every host uses unless given its own. */
  static readonly shared = new MemoryBudget();

  private limit: number;
  private used = 0;
  private peak = 0;
  private refusals = 0;
  private overdrafts = 0;
  private evictions = 0;
  private recounts = 0;
  private evictedThisTurn = false;
  private recountedThisTurn = false;
  private readonly members = new Set<BudgetMember>();

  constructor(options: MemoryBudgetOptions = {}) {
    this.limit = MemoryBudget.checkLimit(options.limitBytes ?? DEFAULT_MEMORY_LIMIT);
  }

  private static checkLimit(v: number): number {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `memory budget limitBytes must be a positive integer (got ${String(v)})`);
    }
    return v;
  }

  get limitBytes(): number {
    return this.limit;
  }

  set limitBytes(v: number) {
    this.limit = MemoryBudget.checkLimit(v);
  }

  get usedBytes(): number {
    return this.used;
  }

  register(member: BudgetMember): void {
    this.members.add(member);
  }

  unregister(member: BudgetMember): void {
    if (this.members.delete(member)) this.recount();
  }

  /** The hot path: takes `bytes` if they fit now (no recount, nothing counted when they do not). */
  tryReserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
    return true;
  }

  /** Takes `bytes` from the budget; false (nothing taken) if that would pass the limit even after a recount. */
  reserve(bytes: number): boolean {
    if (this.used + bytes <= this.limit) {
      this.used += bytes;
      if (this.used > this.peak) this.peak = this.used;
      return true;
    }
    if (!this.recountedThisTurn) {
      this.recount();
      this.recountedThisTurn = true;
      setImmediate(() => {
        this.recountedThisTurn = false;
      });
      if (this.used + bytes <= this.limit) {
        this.used += bytes;
        if (this.used > this.peak) this.peak = this.used;
        return true;
      }
    }
    this.refusals++;
    return false;
  }

  /** Limit / sessions of every member, at least MIN_FAIR_SHARE_BYTES. */
  fairShare(): number {
    let sessions = 0;
    for (const m of this.members) sessions += m.sessionCount?.() ?? 0;
    const share = Math.floor(this.limit / Math.max(1, sessions));
    return share > MIN_FAIR_SHARE_BYTES ? share : MIN_FAIR_SHARE_BYTES;
  }

  /**
   * Takes `bytes` for a session that holds `heldBytes` now. Like reserve()
   * while there is room; when the budget is full, a session below its fair
   * share still gets them and the largest holders are closed to pay for it;
   * one at or above its share is refused (false, nothing taken).
   */
  admit(bytes: number, heldBytes: number): boolean {
    if (this.used + bytes <= this.limit) {
      this.used += bytes;
      if (this.used > this.peak) this.peak = this.used;
      return true;
    }
    if (this.reserveQuiet(bytes)) return true;
    const share = this.fairShare();
    if (heldBytes + bytes > share) {
      this.refusals++;
      return false;
    }
    this.overdrafts++;
    this.charge(bytes);
    this.evictLargest(share);
    return true;
  }

  /**
   * Closes the largest holders above `share` until usage is under the limit.
   * One scan per event-loop turn, unless the overdrafts since passed the limit
   * by another fair share (each scan frees at least that much, so the scans
   * per turn stay few and the overshoot stays under one share).
   */
  private evictLargest(share: number): void {
    if (this.evictedThisTurn && this.used <= this.limit + share) return;
    if (!this.evictedThisTurn) {
      this.evictedThisTurn = true;
      setImmediate(() => {
        this.evictedThisTurn = false;
      });
    }
    const candidates: BudgetHolder[] = [];
    for (const m of this.members) if (m.holders !== undefined) for (const h of m.holders(share)) candidates.push(h);
    candidates.sort((a, b) => b.bytes - a.bytes);
    for (const h of candidates) {
      if (this.used <= this.limit) break;
      const held = h.bytes;
      const freed = h.evict(`holds ${held} bytes, the largest share of the used-up memory budget (${this.limit} bytes; fair share ${share})`);
      this.evictions++;
      this.release(freed);
    }
  }

  /** reserve() without counting a refusal. */
  private reserveQuiet(bytes: number): boolean {
    if (this.recountedThisTurn) return false;
    this.recount();
    this.recountedThisTurn = true;
    setImmediate(() => {
      this.recountedThisTurn = false;
    });
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
    return true;
  }

  /** Adds bytes without checking the limit (memory that exists already and must be counted). */
  charge(bytes: number): void {
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  /** Gives back bytes taken with reserve() (never below zero). */
  release(bytes: number): void {
    this.used = this.used > bytes ? this.used - bytes : 0;
  }

  /** True when usage is over the limit (after a recount if one is allowed this turn). */
  isOver(): boolean {
    if (this.used <= this.limit) return false;
    if (!this.recountedThisTurn) {
      this.recount();
      this.recountedThisTurn = true;
      setImmediate(() => {
        this.recountedThisTurn = false;
      });
    }
    return this.used > this.limit;
  }

  /** Recomputes usage exactly from every member. */
  recount(): number {
    let total = 0;
    for (const m of this.members) total += m.memoryUsage();
    this.used = total;
    if (total > this.peak) this.peak = total;
    this.recounts++;
    return total;
  }

  stats(): MemoryBudgetStats {
    return {
      limitBytes: this.limit,
      usedBytes: this.used,
      peakBytes: this.peak,
      refusals: this.refusals,
      overdrafts: this.overdrafts,
      evictions: this.evictions,
      recounts: this.recounts,
    };
  }
}
