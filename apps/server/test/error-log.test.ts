import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ErrorLog } from '../src/error-log';

describe('ErrorLog', () => {
  it('counts every error and logs at most one line per session per interval (fake clock)', () => {
    const lines: { msg: string; session?: number; suppressed?: number }[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    let t = 0;
    const log = new ErrorLog(logger, 5000, () => t);
    const err = Object.assign(new Error('refused'), { code: 'ERR_BACKPRESSURE' });
    // Two sessions, one error each per ms for 12 s: 24,002 errors.
    for (t = 0; t <= 12_000; t++) {
      log.report(err, 1);
      log.report(err, 2);
    }
    const st = log.stats();
    expect(st.total).toBe(24_002);
    expect(st.byCode).toEqual({ ERR_BACKPRESSURE: 24_002 });
    // Lines at t = 0, 5000, 10000 for each session.
    expect(lines.filter((l) => l.session === 1)).toHaveLength(3);
    expect(lines.filter((l) => l.session === 2)).toHaveLength(3);
    expect(lines.filter((l) => l.session === 1).map((l) => l.suppressed)).toEqual([undefined, 4999, 4999]);
    log.sessionClosed(1);
    expect(lines.at(-1)).toMatchObject({ session: 1, suppressed: 2000 });
    expect(st.suppressed + st.logged).toBe(st.total);
    console.log(`[error-log] ${st.total} errors over 12 s from 2 sessions: ${st.logged} lines (interval 5 s)`);
  });
});
