/**
 * Waiting for conditions. A test decides by events and counters; the
 * deadlines here only turn a hang into a failure that names what it waited
 * for, they never decide a result.
 */

/** Default deadline of a condition wait (well under the usual per-test timeout of 20 s). */
export const WAIT_MS = 10_000;

/**
 * FASTPORT_TEST_TIME_SCALE (default 1) stretches the hang-guard deadlines
 * here: test-arm64.sh sets it for arm64 Node under qemu-user, which runs JS
 * several times slower. A longer guard can only turn a would-be timeout into a
 * later verdict, never a failure into a pass.
 */
const TIME_SCALE = Math.max(1, Number(process.env['FASTPORT_TEST_TIME_SCALE']) || 1);

/**
 * Resolves once `predicate()` is true; rejects after `timeoutMs` or as soon as
 * the predicate throws (so a predicate can fail fast: "closed before it got
 * its bytes"). Both argument orders of the copies this replaced are accepted:
 * `waitFor(p, 'what', ms)` and `waitFor(p, ms, 'what')`.
 */
export function waitFor(predicate: () => boolean, what: string, timeoutMs?: number): Promise<void>;
export function waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
export function waitFor(predicate: () => boolean, a?: string | number, b?: string | number): Promise<void> {
  const what = typeof a === 'string' ? a : typeof b === 'string' ? b : 'condition';
  const timeoutMs = typeof a === 'number' ? a : typeof b === 'number' ? b : WAIT_MS;
  // Polled less often when stretched: a predicate over 1,000 connections every 2 ms
  // would take most of an emulated CPU's time from the engine it waits for.
  return poll(predicate, what, timeoutMs, (check) => setTimeout(check, 2 * TIME_SCALE));
}

/**
 * waitFor for a test that fakes setTimeout (vi.useFakeTimers): polls on event
 * loop turns (setImmediate), the deadline read from Date.now (leave Date real).
 */
export function waitForOnTurns(predicate: () => boolean, what: string, timeoutMs: number = WAIT_MS): Promise<void> {
  return poll(predicate, what, timeoutMs, (check) => setImmediate(check));
}

function poll(predicate: () => boolean, what: string, timeoutMs: number, later: (check: () => void) => void): Promise<void> {
  timeoutMs *= TIME_SCALE;
  return new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      let ok: boolean;
      try {
        ok = predicate();
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (ok) resolve();
      else if (Date.now() >= deadline) reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      else later(check);
    };
    check();
  });
}

/**
 * Polls an async reading (a child's stats, say) every `intervalMs` until
 * `done(value)` holds or `timeoutMs` passed, and returns the last reading
 * either way: the caller asserts on it, so a failure shows the value.
 */
export async function pollValue<T>(read: () => Promise<T>, done: (value: T) => boolean, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? WAIT_MS);
  const intervalMs = options.intervalMs ?? 25;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await sleep(intervalMs);
    value = await read();
  }
  return value;
}

/** Races `promise` against a deadline (for promises that must settle, e.g. destroy()). */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  timeoutMs *= TIME_SCALE;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Resolves true as soon as `predicate()` holds, false once `ms` passed. Only for
 * choosing a path (e.g. "the peer stalled, resume it now"), never for a verdict.
 */
export function eventually(predicate: () => boolean, ms: number): Promise<boolean> {
  return waitFor(predicate, ms, 'path choice').then(
    () => true,
    () => false,
  );
}

/** Lets the event loop turn once (I/O callbacks included). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Lets the event loop turn `n` times. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await nextTurn();
}

/**
 * Lets real time pass. Only to give a peer the chance to do something it must
 * not do (then assert it did not), never to wait for something to happen:
 * use waitFor for that.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
