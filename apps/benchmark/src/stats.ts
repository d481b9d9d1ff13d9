/** Latency samples in nanoseconds; percentiles by nearest rank on the sorted samples. */
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

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  // The epsilon keeps float error (0.999 * 1000 = 999.0000000000001) from bumping the rank.
  const rank = Math.ceil((p * sorted.length) / 100 - 1e-9);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(samplesNs: Float64Array): LatencySummary {
  const n = samplesNs.length;
  if (n === 0) {
    return { count: 0, minUs: NaN, avgUs: NaN, p50Us: NaN, p90Us: NaN, p95Us: NaN, p99Us: NaN, p999Us: NaN, maxUs: NaN, jitterUs: NaN };
  }
  const sorted = Float64Array.from(samplesNs).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i] as number;
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = (sorted[i] as number) - mean;
    sq += d * d;
  }
  const us = (ns: number) => ns / 1000;
  return {
    count: n,
    minUs: us(sorted[0] as number),
    avgUs: us(mean),
    p50Us: us(percentile(sorted, 50)),
    p90Us: us(percentile(sorted, 90)),
    p95Us: us(percentile(sorted, 95)),
    p99Us: us(percentile(sorted, 99)),
    p999Us: us(percentile(sorted, 99.9)),
    maxUs: us(sorted[n - 1] as number),
    jitterUs: us(Math.sqrt(sq / n)),
  };
}

/** A growable sample store that keeps at most `limit` samples (reservoir past it). */
export class SampleBuffer {
  private data: Float64Array;
  private length = 0;
  private seen = 0;
  constructor(private readonly limit = 2_000_000) {
    this.data = new Float64Array(Math.min(limit, 65536));
  }
  add(value: number): void {
    this.seen++;
    if (this.length < this.limit) {
      if (this.length === this.data.length) {
        const grown = new Float64Array(Math.min(this.limit, this.data.length * 2));
        grown.set(this.data);
        this.data = grown;
      }
      this.data[this.length++] = value;
      return;
    }
    const j = Math.floor(Math.random() * this.seen);
    if (j < this.limit) this.data[j] = value;
  }
  values(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}
