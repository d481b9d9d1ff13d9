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
  /** Reservations refused because the budget was full. */
  refusals: number;
  recounts: number;
}

/** A host whose sessions the budget recounts. */
export interface BudgetMember {
  /** Bytes held now: send queues + reassembly buffers + replay buffers of its sessions. */
  memoryUsage(): number;
}

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
 * When a reservation is refused: a send gets its session's backpressure
 * policy (reject / drop / close, reason 'memory-budget'); a frame being
 * reassembled closes the session it belongs to (reason 'memory-budget').
 */
export class MemoryBudget {
  /** The process-wide budget every host uses unless given its own. */
  static readonly shared = new MemoryBudget();

  private limit: number;
  private used = 0;
  private peak = 0;
  private refusals = 0;
  private recounts = 0;
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
    return { limitBytes: this.limit, usedBytes: this.used, peakBytes: this.peak, refusals: this.refusals, recounts: this.recounts };
  }
}
