import { FastPortError } from '@fastport/native-io';

export interface BackoffOptions {
  /** Delay before the first reconnect attempt. Default 100 ms. */
  initialDelayMs?: number;
  /** Cap on the delay. Default 10,000 ms. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default 2. */
  multiplier?: number;
  /**
   * Fraction of the delay that is random, 0..1. Default 0.5: the delay is
   * uniformly spread over [d·(1-jitter), d] (so a fleet of clients that lost
   * the same server do not come back in one wave).
   */
  jitter?: number;
  /** Attempts after a connection is lost (or the first connect fails) before giving up. Default Infinity. */
  maxAttempts?: number;
}

export type ResolvedBackoff = Required<BackoffOptions>;

export const DEFAULT_BACKOFF: Readonly<ResolvedBackoff> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
  jitter: 0.5,
  maxAttempts: Infinity,
});

export function resolveBackoff(o: BackoffOptions = {}): ResolvedBackoff {
  const r: ResolvedBackoff = {
    initialDelayMs: o.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs,
    maxDelayMs: o.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
    multiplier: o.multiplier ?? DEFAULT_BACKOFF.multiplier,
    jitter: o.jitter ?? DEFAULT_BACKOFF.jitter,
    maxAttempts: o.maxAttempts ?? DEFAULT_BACKOFF.maxAttempts,
  };
  const bad = (name: string, v: number) =>
    new FastPortError('ERR_INVALID_ARGUMENT', `reconnect.${name} is out of range (got ${String(v)})`);
  if (!(r.initialDelayMs >= 0) || !Number.isFinite(r.initialDelayMs)) throw bad('initialDelayMs', r.initialDelayMs);
  if (!(r.maxDelayMs >= r.initialDelayMs) || !Number.isFinite(r.maxDelayMs)) throw bad('maxDelayMs', r.maxDelayMs);
  if (!(r.multiplier >= 1) || !Number.isFinite(r.multiplier)) throw bad('multiplier', r.multiplier);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw bad('jitter', r.jitter);
  if (!(r.maxAttempts >= 1)) throw bad('maxAttempts', r.maxAttempts);
  return r;
}

/**
 * Delay before reconnect attempt `attempt` (1-based): exponential growth
 * capped at maxDelayMs, then jittered down by up to `jitter` of itself.
 * `random` is injectable for tests (default Math.random).
 */
export function backoffDelay(attempt: number, options: ResolvedBackoff, random: () => number = Math.random): number {
  const exp = options.initialDelayMs * Math.pow(options.multiplier, Math.max(0, attempt - 1));
  const capped = Math.min(options.maxDelayMs, exp);
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(capped * (1 - options.jitter * r));
}
