/**
 * A clock that moves only when a test says so, for code that takes an
 * injected time source (the session layer's `Clock`: `now()` and a repeating
 * `every()`). Timeouts of seconds run in no time and in a fixed order; real
 * I/O still happens between steps, so a test advances the clock, then waits
 * (with waitFor) for the bytes that step caused.
 */

import { nextTurn } from './wait';

export interface RunUntilOptions {
  /** Clock time per step (default 10 ms). */
  stepMs?: number;
  /** Clock time after which `done` not holding fails (default 10,000 ms). */
  maxMs?: number;
  /** What `done` means, for the failure message. */
  what?: string;
  /**
   * Runs after every step, before the next: waits (in real time, bounded)
   * for what the step set off on the wire, so the clock never runs ahead of
   * I/O. Default: two event loop turns.
   */
  settle?: () => Promise<void> | void;
}

interface Repeating {
  ms: number;
  fn: () => void;
  next: number;
}

export class ManualClock {
  private current: number;
  private readonly timers: Repeating[] = [];

  constructor(start = 1_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  every(ms: number, fn: () => void): { cancel(): void } {
    if (!(ms > 0)) throw new Error(`ManualClock.every: period must be > 0, got ${ms}`);
    const t: Repeating = { ms, fn, next: this.current + ms };
    this.timers.push(t);
    return {
      cancel: () => {
        const i = this.timers.indexOf(t);
        if (i >= 0) this.timers.splice(i, 1);
      },
    };
  }

  /** Repeating timers not cancelled. */
  get timerCount(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing every timer at each of its due times
   * in time order (with `now()` at that due time), as real intervals would.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`ManualClock.advance: need ms >= 0, got ${ms}`);
    const target = this.current + ms;
    for (;;) {
      let due: Repeating | undefined;
      for (const t of this.timers) if (t.next <= target && (due === undefined || t.next < due.next)) due = t;
      if (due === undefined) break;
      this.current = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.current = target;
  }

  /**
   * Steps the clock until `done()` holds, settling I/O after each step.
   * Rejects if `maxMs` of clock time pass first (or if `settle` rejects).
   */
  async runUntil(done: () => boolean, options: RunUntilOptions = {}): Promise<void> {
    const stepMs = options.stepMs ?? 10;
    const maxMs = options.maxMs ?? 10_000;
    const settle = options.settle ?? (async () => {
      await nextTurn();
      await nextTurn();
    });
    for (let elapsed = 0; !done(); elapsed += stepMs) {
      if (elapsed >= maxMs) throw new Error(`ManualClock: ${options.what ?? 'the condition'} did not hold after ${maxMs} ms of clock time`);
      this.advance(stepMs);
      await settle();
      // Always at least one turn with I/O: a settle that is already true must not starve the wire.
      await nextTurn();
    }
  }
}
