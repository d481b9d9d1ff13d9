import { describe, expect, it } from 'vitest';
import { HISTOGRAM_RELATIVE_ERROR, Histogram, bucketOf, bucketPercentile, bucketRange, percentile, stdDev, summarize } from '../src/stats';

/** Deterministic exponential samples with mean `mean` (inverse CDF at evenly spaced probabilities). */
function exponential(n: number, mean: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(-mean * Math.log(1 - (i + 0.5) / n));
  // shuffle deterministically so recording order is not sorted
  let seed = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}

describe('percentile (nearest rank)', () => {
  it('matches the definition on 1..100', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 50)).toBe(50);
    expect(percentile(v, 90)).toBe(90);
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 99.9)).toBe(100);
    expect(percentile(v, 100)).toBe(100);
    expect(percentile(v, 0)).toBe(1);
  });
  it('is immune to float error: 99.9% of 1..1000 is 999', () => {
    const sorted = Float64Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(500);
    expect(percentile(sorted, 99)).toBe(990);
    expect(percentile(sorted, 99.9)).toBe(999);
    expect(percentile(sorted, 100)).toBe(1000);
    const h = new Histogram();
    for (const v of sorted) h.record(v);
    expect(Math.abs(h.percentile(99.9) - 999) / 999).toBeLessThan(HISTOGRAM_RELATIVE_ERROR);
    expect(h.percentile(99.9)).toBeLessThan(h.percentile(100));
  });
  it('handles one sample and none', () => {
    expect(percentile([7], 50)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('jitter = population standard deviation', () => {
  it('is 2 for the textbook set', () => {
    expect(stdDev([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2, 12);
  });
  it('is 0 for a constant set', () => {
    expect(stdDev([5, 5, 5])).toBe(0);
  });
  it('summarize reports it in µs', () => {
    const s = summarize([2000, 4000, 4000, 4000, 5000, 5000, 7000, 9000]);
    expect(s.jitterUs).toBeCloseTo(2, 9);
    expect(s.avgUs).toBeCloseTo(5, 9);
    expect(s.minUs).toBe(2);
    expect(s.maxUs).toBe(9);
  });
});

describe('histogram buckets', () => {
  it('is exact below 256 and contiguous above', () => {
    for (let v = 0; v < 256; v++) expect(bucketOf(v)).toBe(v);
    let prev = bucketOf(255);
    for (let v = 256; v < 2_000_000; v += 97) {
      const b = bucketOf(v);
      expect(b === prev || b === prev + 1 || b > prev).toBe(true);
      const { low, width } = bucketRange(b);
      expect(v).toBeGreaterThanOrEqual(low);
      expect(v).toBeLessThan(low + width);
      prev = b;
    }
  });
  it('covers values above 2^32 ns', () => {
    const v = 3 * 2 ** 33 + 12345;
    const { low, width } = bucketRange(bucketOf(v));
    expect(v).toBeGreaterThanOrEqual(low);
    expect(v).toBeLessThan(low + width);
  });
});

describe('Histogram against known distributions', () => {
  it('uniform 1..100000 µs: percentiles within the stated error', () => {
    const h = new Histogram();
    const values: number[] = [];
    for (let i = 1; i <= 100_000; i++) values.push(i * 1000);
    for (const v of values) h.record(v);
    const s = h.summary();
    const tol = HISTOGRAM_RELATIVE_ERROR * 1.01;
    expect(s.count).toBe(100_000);
    expect(Math.abs(s.p50Us - 50_000) / 50_000).toBeLessThan(tol);
    expect(Math.abs(s.p90Us - 90_000) / 90_000).toBeLessThan(tol);
    expect(Math.abs(s.p99Us - 99_000) / 99_000).toBeLessThan(tol);
    expect(Math.abs(s.p999Us - 99_900) / 99_900).toBeLessThan(tol);
    expect(s.minUs).toBe(1);
    expect(s.maxUs).toBe(100_000);
    expect(s.avgUs).toBeCloseTo(50_000.5, 6);
    // std dev of the discrete uniform 1..n (×1000 ns): sqrt((n²-1)/12)
    expect(s.jitterUs).toBeCloseTo(Math.sqrt((100_000 ** 2 - 1) / 12), 3);
  });

  it('exponential (mean 200 µs): percentiles match -mean·ln(1-q) and the exact summary', () => {
    const mean = 200_000;
    const values = exponential(200_000, mean);
    const h = new Histogram();
    for (const v of values) h.record(v);
    const exact = summarize(values.map((v) => Math.round(v)));
    const s = h.summary();
    const tol = HISTOGRAM_RELATIVE_ERROR * 1.01;
    for (const [got, want] of [
      [s.p50Us, exact.p50Us],
      [s.p90Us, exact.p90Us],
      [s.p95Us, exact.p95Us],
      [s.p99Us, exact.p99Us],
      [s.p999Us, exact.p999Us],
    ] as const) {
      expect(Math.abs(got - want) / want).toBeLessThan(tol);
    }
    // and the exact percentiles are the distribution's quantiles
    for (const q of [0.5, 0.9, 0.99]) {
      const want = (-mean * Math.log(1 - q)) / 1000;
      const got = q === 0.5 ? exact.p50Us : q === 0.9 ? exact.p90Us : exact.p99Us;
      expect(Math.abs(got - want) / want).toBeLessThan(0.001);
    }
    expect(s.avgUs).toBeCloseTo(exact.avgUs, 3);
    expect(s.jitterUs).toBeCloseTo(exact.jitterUs, 3);
    expect(s.jitterUs / (mean / 1000)).toBeGreaterThan(0.98); // exponential: std dev = mean
    expect(s.jitterUs / (mean / 1000)).toBeLessThan(1.02);
  });

  it('merging per-thread histograms equals one histogram of all samples', () => {
    const values = exponential(30_000, 50_000);
    const all = new Histogram();
    const parts = [new Histogram(), new Histogram(), new Histogram()];
    values.forEach((v, i) => {
      all.record(v);
      parts[i % 3]!.record(v);
    });
    const merged = new Histogram();
    for (const p of parts) merged.merge(p.toData());
    expect(merged.count).toBe(all.count);
    expect(merged.min).toBe(all.min);
    expect(merged.max).toBe(all.max);
    expect(merged.mean).toBeCloseTo(all.mean, 6);
    expect(merged.stdDev()).toBeCloseTo(all.stdDev(), 6);
    expect(merged.percentile(99)).toBe(all.percentile(99));
    expect(Array.from(merged.buckets)).toEqual(Array.from(all.buckets));
  });

  it('an empty histogram summarises to NaN and merges as a no-op', () => {
    const h = new Histogram();
    expect(h.summary().count).toBe(0);
    expect(h.summary().p50Us).toBeNaN();
    h.merge(new Histogram().toData());
    expect(h.count).toBe(0);
  });
});

describe('bucketPercentile (the dashboard\'s per-second latency)', () => {
  it('of the difference of two cumulative histograms equals the percentiles of the later samples alone', () => {
    const cumulative = new Histogram();
    for (let i = 1; i <= 1000; i++) cumulative.record(i * 1000); // 1..1000 µs
    const before = Float64Array.from(cumulative.buckets);
    const later = new Histogram();
    for (let i = 1; i <= 500; i++) {
      const v = 50_000 + i * 100; // 50.1..100 ms
      cumulative.record(v);
      later.record(v);
    }
    const delta = cumulative.buckets.map((c, i) => c - (before[i] as number));
    for (const p of [50, 99, 99.9]) {
      const got = bucketPercentile(delta, p);
      const want = later.percentile(p);
      expect(Math.abs(got - want) / want).toBeLessThanOrEqual(2 * HISTOGRAM_RELATIVE_ERROR);
      expect(got).toBeGreaterThan(50_000); // nothing of the earlier second leaks in
    }
    expect(bucketPercentile(new Float64Array(10), 50)).toBeNaN();
  });
});
