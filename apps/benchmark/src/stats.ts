/**
 * Latency statistics.
 *
 * The load generator records every round trip into a log-linear histogram
 * (fixed memory, O(1) per sample, mergeable across worker threads) and keeps
 * exact count, min, max, mean and variance beside it (Welford, merged with
 * Chan's formula). Percentiles come from the histogram: exact below 256 ns,
 * then 128 sub-buckets per power of two, so a reported percentile is within
 * 0.4% of the true sample value (nearest-rank definition). Jitter is
 * FastPort's: the standard deviation of the RTT (population, exact).
 */

/** Latency summary in microseconds. */
export interface LatencySummary {
  count: number;
  minUs: number;
  avgUs: number;
  p50Us: number;
  p90Us: number;
  p95Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** Standard deviation of the RTT (FastPort's "jitter"). */
  jitterUs: number;
}

export const PERCENTILES = [50, 90, 95, 99, 99.9] as const;

/**
 * 1-based nearest rank of percentile p among n samples. The epsilon keeps
 * float error (99.9 * 1000 / 100 = 999.0000000000001) from bumping the rank.
 */
export function nearestRank(p: number, n: number): number {
  return Math.ceil((p * n) / 100 - 1e-9);
}

/** Nearest-rank percentile of ascending `sorted` values (p in 0..100). NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = nearestRank(p, sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Population standard deviation (FastPort's jitter). NaN when empty. */
export function stdDev(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return NaN;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i] as number;
  mean /= n;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - mean;
    sq += d * d;
  }
  return Math.sqrt(sq / n);
}

/** Exact summary of samples in nanoseconds (sorts a copy). Used for small sets and as the tests' reference. */
export function summarize(samplesNs: ArrayLike<number>): LatencySummary {
  const n = samplesNs.length;
  if (n === 0) return emptySummary();
  const sorted = Float64Array.from(samplesNs as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i] as number;
  const us = (ns: number) => ns / 1000;
  return {
    count: n,
    minUs: us(sorted[0] as number),
    avgUs: us(sum / n),
    p50Us: us(percentile(sorted, 50)),
    p90Us: us(percentile(sorted, 90)),
    p95Us: us(percentile(sorted, 95)),
    p99Us: us(percentile(sorted, 99)),
    p999Us: us(percentile(sorted, 99.9)),
    maxUs: us(sorted[n - 1] as number),
    jitterUs: us(stdDev(sorted)),
  };
}

export function emptySummary(): LatencySummary {
  return { count: 0, minUs: NaN, avgUs: NaN, p50Us: NaN, p90Us: NaN, p95Us: NaN, p99Us: NaN, p999Us: NaN, maxUs: NaN, jitterUs: NaN };
}

/** log2 of sub-buckets per power of two. */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
/** Largest power of two covered: 2^50 ns is 13 days. */
const MAX_POW = 50;
export const HISTOGRAM_BUCKETS = 2 * SUB + (MAX_POW - SUB_BITS) * SUB;
const TWO32 = 4294967296;

/** floor(log2(v)) for an integer 1 <= v < 2^53. */
function log2Floor(v: number): number {
  if (v < TWO32) return 31 - Math.clz32(v);
  return 63 - Math.clz32(Math.floor(v / TWO32));
}

/** Bucket index of a non-negative integer value. */
export function bucketOf(v: number): number {
  if (v < 2 * SUB) return v;
  if (v < TWO32) {
    const q = 31 - Math.clz32(v) - SUB_BITS;
    return 2 * SUB + (q - 1) * SUB + ((v >>> q) - SUB);
  }
  const p = log2Floor(v) - SUB_BITS;
  const idx = 2 * SUB + (p - 1) * SUB + (Math.floor(v / 2 ** p) - SUB);
  return idx < HISTOGRAM_BUCKETS ? idx : HISTOGRAM_BUCKETS - 1;
}

/** Lowest value and width of a bucket. */
export function bucketRange(idx: number): { low: number; width: number } {
  if (idx < 2 * SUB) return { low: idx, width: 1 };
  const p = Math.floor((idx - 2 * SUB) / SUB) + 1;
  const sub = ((idx - 2 * SUB) % SUB) + SUB;
  return { low: sub * 2 ** p, width: 2 ** p };
}

/** Midpoint of the bucket that holds the sample of 1-based `rank` (bucket counts in order), NaN past the last. */
function bucketMidAtRank(buckets: ArrayLike<number>, rank: number): number {
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    acc += buckets[i] as number;
    if (acc >= rank) {
      const { low, width } = bucketRange(i);
      return width === 1 ? low : low + width / 2;
    }
  }
  return NaN;
}

/** What a histogram carries between threads (structured-clone friendly). */
export interface HistogramData {
  buckets: Float64Array;
  count: number;
  min: number;
  max: number;
  mean: number;
  /** Sum of squared deviations from the mean (Welford's M2). */
  m2: number;
}

/** Log-linear histogram of non-negative values (nanoseconds), with exact count/min/max/mean/std dev. */
export class Histogram {
  buckets: Float64Array;
  count = 0;
  min = Infinity;
  max = -Infinity;
  // Moments as sums of deviations from a shift (the first sample): no division per sample,
  // and no cancellation trouble since the shift is a typical value.
  private shift = NaN;
  private s1 = 0;
  private s2 = 0;

  constructor() {
    this.buckets = new Float64Array(HISTOGRAM_BUCKETS);
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.shift + this.s1 / this.count;
  }

  /** Sum of squared deviations from the mean. */
  get m2(): number {
    return this.count === 0 ? 0 : Math.max(0, this.s2 - (this.s1 * this.s1) / this.count);
  }

  record(valueNs: number): void {
    const v = valueNs > 0 ? Math.round(valueNs) : 0;
    this.buckets[bucketOf(v)]!++;
    if (this.count++ === 0) this.shift = v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    const d = v - this.shift;
    this.s1 += d;
    this.s2 += d * d;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.min = Infinity;
    this.max = -Infinity;
    this.shift = NaN;
    this.s1 = 0;
    this.s2 = 0;
  }

  /** Adds another histogram's samples (Chan et al. for mean and variance). */
  merge(other: HistogramData): void {
    if (other.count === 0) return;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) this.buckets[i]! += other.buckets[i] ?? 0;
    const na = this.count;
    const nb = other.count;
    const n = na + nb;
    const meanA = this.mean;
    const delta = other.mean - meanA;
    const m2 = this.m2 + other.m2 + (delta * delta * na * nb) / n;
    const mean = meanA + (delta * nb) / n;
    // re-express around the merged mean
    this.count = n;
    this.shift = mean;
    this.s1 = 0;
    this.s2 = m2;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** Nearest-rank percentile (p in 0..100): the bucket's midpoint, clamped to the exact min and max. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    if (p <= 0) return this.min;
    if (p >= 100) return this.max;
    const mid = bucketMidAtRank(this.buckets, Math.max(1, nearestRank(p, this.count)));
    return Number.isNaN(mid) ? this.max : Math.min(this.max, Math.max(this.min, mid));
  }

  stdDev(): number {
    return this.count === 0 ? NaN : Math.sqrt(this.m2 / this.count);
  }

  summary(): LatencySummary {
    if (this.count === 0) return emptySummary();
    const us = (ns: number) => ns / 1000;
    return {
      count: this.count,
      minUs: us(this.min),
      avgUs: us(this.mean),
      p50Us: us(this.percentile(50)),
      p90Us: us(this.percentile(90)),
      p95Us: us(this.percentile(95)),
      p99Us: us(this.percentile(99)),
      p999Us: us(this.percentile(99.9)),
      maxUs: us(this.max),
      jitterUs: us(this.stdDev()),
    };
  }

  toData(): HistogramData {
    return { buckets: this.buckets, count: this.count, min: this.min, max: this.max, mean: this.mean, m2: this.m2 };
  }
}

/**
 * Nearest-rank percentile (in ns) of raw bucket counts, e.g. the difference of two cumulative histograms
 * (the samples of one second); the bucket's midpoint. NaN when there are none.
 */
export function bucketPercentile(buckets: ArrayLike<number>, p: number): number {
  let count = 0;
  for (let i = 0; i < buckets.length; i++) count += buckets[i] as number;
  if (count <= 0) return NaN;
  return bucketMidAtRank(buckets, Math.max(1, nearestRank(Math.min(100, Math.max(0, p)), count)));
}

/** Relative error bound of a histogram percentile (half a sub-bucket). */
export const HISTOGRAM_RELATIVE_ERROR = 1 / (2 * SUB);
