import type pino from 'pino';

/** Default: at most one error line per session every 5 s. */
export const DEFAULT_ERROR_LOG_INTERVAL_MS = 5000;

export interface ErrorLogStats {
  /** Every error reported, whether logged or not. */
  total: number;
  /** By code (`ERR_BACKPRESSURE`, ...; 'unknown' when the error has none). */
  byCode: Record<string, number>;
  /** Lines written (per-session first lines, interval lines and close summaries). */
  logged: number;
  /** Errors counted but not logged. */
  suppressed: number;
}

interface SessionErrors {
  lastLoggedAt: number;
  /** Errors since the last line, by code. */
  since: Record<string, number>;
  sinceCount: number;
  total: number;
}

/**
 * Counts handler errors and logs at most one line per session per interval.
 * A peer that never reads and streams tiny frames makes every echo fail with
 * ERR_BACKPRESSURE: one line (with a stack) per frame would make logging
 * the cost of the attack. Here the first error of a session is logged with
 * its stack, later ones within the interval are only counted, and the next
 * line (or the session's close) reports how many were left out, by code.
 */
export class ErrorLog {
  private readonly sessions = new Map<number, SessionErrors>();
  private readonly counters: ErrorLogStats = { total: 0, byCode: {}, logged: 0, suppressed: 0 };

  constructor(
    private readonly logger: pino.Logger,
    readonly intervalMs = DEFAULT_ERROR_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  report(err: Error, sessionId: number | undefined, message = 'handler error'): void {
    const code = codeOf(err);
    const c = this.counters;
    c.total++;
    c.byCode[code] = (c.byCode[code] ?? 0) + 1;
    const key = sessionId ?? 0;
    const t = this.now();
    let s = this.sessions.get(key);
    if (s === undefined) {
      s = { lastLoggedAt: -Infinity, since: {}, sinceCount: 0, total: 0 };
      this.sessions.set(key, s);
    }
    s.total++;
    if (t - s.lastLoggedAt < this.intervalMs) {
      s.since[code] = (s.since[code] ?? 0) + 1;
      s.sinceCount++;
      c.suppressed++;
      return;
    }
    const suppressed = s.sinceCount > 0 ? { suppressed: s.sinceCount, suppressedByCode: s.since } : {};
    s.lastLoggedAt = t;
    s.since = {};
    s.sinceCount = 0;
    c.logged++;
    this.logger.error({ err, session: sessionId, code, sessionErrors: s.total, ...suppressed }, message);
  }

  /** The session ended: one summary line if errors were left out since its last line. */
  sessionClosed(sessionId: number): void {
    const s = this.sessions.get(sessionId);
    if (s === undefined) return;
    this.sessions.delete(sessionId);
    if (s.sinceCount === 0) return;
    this.counters.logged++;
    this.logger.warn({ session: sessionId, suppressed: s.sinceCount, suppressedByCode: s.since, sessionErrors: s.total }, 'handler errors not logged (session closed)');
  }

  stats(): ErrorLogStats {
    return { ...this.counters, byCode: { ...this.counters.byCode } };
  }
}

function codeOf(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'unknown';
}
