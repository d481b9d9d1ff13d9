import { describe, expect, it } from 'vitest';
import { TimerWheel, type Clock, type WheelEntry } from '../src/timer-wheel';

/** A clock that moves only when told to, counting the timers asked of it. */
function manualClock(): Clock & { timers: number; advance(ms: number): void } {
  let now = 1_000_000;
  const fns: (() => void)[] = [];
  return {
    timers: 0,
    now: () => now,
    every(_ms, fn) {
      this.timers++;
      fns.push(fn);
      return { cancel: () => fns.splice(fns.indexOf(fn), 1) };
    },
    advance(ms) {
      now += ms;
      for (const fn of [...fns]) fn();
    },
  };
}

interface Item extends WheelEntry {
  n: number;
  firedAt: number;
}

function item(n: number): Item {
  return { n, firedAt: -1, wheelSlot: -1, wheelDue: 0 };
}

describe('TimerWheel', () => {
  it('fires each item at (or within one tick after) its deadline, on one timer for 100,000 items', () => {
    const clock = manualClock();
    const fired: Item[] = [];
    const wheel = new TimerWheel<Item>(clock, 10, (it, now) => {
      it.firedAt = now;
      fired.push(it);
    });
    wheel.start();
    const start = clock.now();
    const items: Item[] = [];
    for (let i = 0; i < 100_000; i++) {
      const it = item(i);
      items.push(it);
      // Spread over 0..20 s: most deadlines lie several wheel turns ahead (512 slots of 10 ms).
      wheel.schedule(it, start + (i % 20_000) + 1);
    }
    expect(clock.timers).toBe(1);
    expect(wheel.size).toBe(100_000);
    for (let t = 0; t < 20_100; t += 10) clock.advance(10);
    expect(fired.length).toBe(100_000);
    for (const it of items) {
      const due = start + (it.n % 20_000) + 1;
      expect(it.firedAt).toBeGreaterThanOrEqual(due);
      expect(it.firedAt - due).toBeLessThan(10);
    }
    expect(wheel.size).toBe(0);
  });

  it('rescheduling moves an item, cancel removes it, and a timer that fell a whole turn behind catches up', () => {
    const clock = manualClock();
    const fired: number[] = [];
    const wheel = new TimerWheel<Item>(clock, 5, (it) => fired.push(it.n));
    wheel.start();
    const a = item(1);
    const b = item(2);
    const c = item(3);
    wheel.schedule(a, clock.now() + 100);
    wheel.schedule(a, clock.now() + 20); // earlier now
    wheel.schedule(b, clock.now() + 30);
    wheel.cancel(b);
    wheel.schedule(c, clock.now() + 50_000); // far beyond one turn (512 x 5 ms)
    clock.advance(25);
    expect(fired).toEqual([1]);
    clock.advance(60_000); // one late timer callback
    expect(fired).toEqual([1, 3]);
    wheel.stop();
  });
});
