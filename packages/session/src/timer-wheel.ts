/** Time source and periodic timer, injected so timeouts can be tested without waiting. */
export interface Clock {
  now(): number;
  /** A repeating timer that must not keep the process alive. */
  every(ms: number, fn: () => void): { cancel(): void };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/** What the wheel keeps on each scheduled item, so that rescheduling needs no lookup. */
export interface WheelEntry {
  /** @internal Slot index, -1 when not scheduled. */
  wheelSlot: number;
  /** @internal The tick the item is due at (it may sit in its slot for several turns). */
  wheelDue: number;
}

const SLOTS = 512;

/**
 * A hashed timer wheel: one periodic timer for any number of deadlines.
 * Deadlines are rounded up to the wheel's tick; each tick visits only the
 * items of its slot, so a host with 100,000 sessions costs one timer and,
 * per tick, the sessions that are due (plus the few parked in the same slot
 * for a later turn).
 */
export class TimerWheel<T extends WheelEntry> {
  readonly tickMs: number;
  private readonly slots: Set<T>[] = [];
  private readonly clock: Clock;
  private readonly fire: (item: T, now: number) => void;
  private readonly onTurn: (now: number) => void;
  private timer: { cancel(): void } | undefined;
  /** The last tick whose slot was processed. */
  private doneTick: number;
  private count = 0;
  private stopped = false;

  constructor(clock: Clock, tickMs: number, fire: (item: T, now: number) => void, onTurn: (now: number) => void = () => {}) {
    this.clock = clock;
    this.tickMs = tickMs;
    this.fire = fire;
    this.onTurn = onTurn;
    for (let i = 0; i < SLOTS; i++) this.slots.push(new Set());
    this.doneTick = Math.floor(clock.now() / tickMs);
  }

  get size(): number {
    return this.count;
  }

  /** Starts the wheel's one timer (idempotent); it runs until stop(), also with nothing scheduled, for the per-turn work. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = this.clock.every(this.tickMs, () => this.advance());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** (Re)schedules `item` at time `at` (Infinity: not at all). */
  schedule(item: T, at: number): void {
    this.cancel(item);
    if (!Number.isFinite(at)) return;
    // Never in a slot already processed: the earliest is the next tick.
    const due = Math.max(this.doneTick + 1, Math.ceil(at / this.tickMs));
    const slot = due % SLOTS;
    item.wheelSlot = slot;
    item.wheelDue = due;
    this.slots[slot]!.add(item);
    this.count++;
  }

  cancel(item: T): void {
    if (item.wheelSlot < 0) return;
    if (this.slots[item.wheelSlot]!.delete(item)) this.count--;
    item.wheelSlot = -1;
  }

  /** Processes every tick up to now (all of them once if the timer fell a whole turn behind). */
  advance(): void {
    const now = this.clock.now();
    const target = Math.floor(now / this.tickMs);
    let from = this.doneTick + 1;
    if (target - from >= SLOTS) from = target - SLOTS + 1;
    for (let tick = from; tick <= target; tick++) {
      this.doneTick = tick;
      const set = this.slots[tick % SLOTS]!;
      if (set.size === 0) continue;
      for (const item of [...set]) {
        if (item.wheelDue > tick || item.wheelSlot < 0) continue;
        set.delete(item);
        this.count--;
        item.wheelSlot = -1;
        this.fire(item, now);
      }
    }
    this.doneTick = target;
    this.onTurn(now);
  }
}
