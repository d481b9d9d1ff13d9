import type { BenchReport, TargetResult } from '../src/types';

export function result(label: string, msgsPerSec: number, extra: Partial<TargetResult> = {}): TargetResult {
  return {
    label,
    target: '127.0.0.1:40000',
    server: { kind: 'fastport-server', engine: label, reason: `${label} available` },
    workload: 'rr',
    status: 'ok',
    note: undefined,
    clientEngine: 'node',
    clientThreads: 1,
    elapsedSec: 3,
    messages: msgsPerSec * 3,
    msgsPerSec,
    mbPerSec: (msgsPerSec * 68) / 1e6,
    targetRate: undefined,
    sentPerSec: undefined,
    latency: { count: msgsPerSec * 3, minUs: 20, avgUs: 300, p50Us: 250, p90Us: 500, p95Us: 700, p99Us: 1500, p999Us: 4000, maxUs: 9000, jitterUs: 210 },
    errors: 0,
    mismatches: 0,
    errorCodes: {},
    connectFailures: 0,
    unanswered: 0,
    verifiedBytes: msgsPerSec * 3 * 68,
    clientCpuPct: 97.5,
    clientCpus: 1,
    clientSaturated: true,
    backgroundCpuPct: 2,
    serverMetrics: {
      pid: 1234,
      cpuUserPct: 60,
      cpuSysPct: 38,
      cpuPct: 98,
      rssBytes: 80 * 2 ** 20,
      hwmBytes: 90 * 2 ** 20,
      threads: 7,
      engine: { kind: label, events: 1000, batches: 100, jsCrossings: 100, eventsPerCrossing: 10, eventsPerBatch: 10 },
    },
    echoBench: undefined,
    idle: undefined,
    ratioToFirst: undefined,
    ...extra,
  };
}

export function report(results: TargetResult[], settings: Record<string, unknown> = {}): BenchReport {
  return {
    tool: 'fastport-bench',
    version: '0.1.0',
    date: '2025-01-02T03:04:05.000Z',
    command: 'fastport-bench --compare --engine uring,epoll,node',
    machine: { hostname: 'h', cpuModel: 'AMD EPYC', cpus: 2, memoryGiB: 24, kernel: 'Linux 6.18', platform: 'linux-x64', node: 'v20.20.2', clkTck: 100 },
    settings: { workload: 'rr', connections: 50, depth: 1, size: 64, protocol: 'raw', framing: 'fastport', duration: 3, warmup: 1, rate: 0, clientEngine: 'node', clientThreads: 1, ...settings },
    pinning: { server: '0', client: '1', note: 'taskset' },
    results,
  };
}
