import { describe, expect, it } from 'vitest';
import { percentile, summarize } from '../src/stats';

describe('benchmark statistics', () => {
  it('nearest-rank percentiles of 1..1000', () => {
    const sorted = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(500);
    expect(percentile(sorted, 99)).toBe(990);
    expect(percentile(sorted, 99.9)).toBe(999);
    expect(percentile(sorted, 100)).toBe(1000);
  });

  it('jitter is the standard deviation of the RTTs', () => {
    // 2,4,4,4,5,5,7,9 µs: mean 5, population std dev 2.
    const s = summarize(Float64Array.from([2, 4, 4, 4, 5, 5, 7, 9].map((us) => us * 1000)));
    expect(s.avgUs).toBeCloseTo(5, 9);
    expect(s.jitterUs).toBeCloseTo(2, 9);
    expect(s.minUs).toBe(2);
    expect(s.maxUs).toBe(9);
  });
});
