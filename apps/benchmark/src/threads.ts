/**
 * The coordinator's side of the load generator: N worker threads (each a
 * LoadThread with its own Client and engine and a share of the connections),
 * or one LoadThread inline on the main thread (--client-threads 0).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LoadThread } from './load';
import type { HistogramData } from './stats';
import {
  COUNTER_SLOTS,
  C_BYTES,
  C_CONNECTED,
  C_OPEN,
  C_ERRORS,
  C_MESSAGES,
  C_MISMATCH,
  C_SENT,
  PHASE_WARMUP,
  type LoadConfig,
  type ThreadResult,
  type WorkerToMain,
} from './types';

export interface PoolReady {
  connected: number;
  failed: number;
  clientEngine: string;
  reason: string;
  errorCodes: Record<string, number>;
}

export interface LiveCounters {
  messages: number;
  /** Reply bytes (frames as on the wire), any phase. */
  bytes: number;
  /** Connections open now. */
  open: number;
  sent: number;
  errors: number;
  mismatches: number;
  connected: number;
}

/** One thread's answer to sample(): its latency histogram so far and its own CPU ticks. */
export interface ThreadSample {
  histogram: HistogramData;
  cpuTicks: number | undefined;
}

interface Member {
  worker: Worker | undefined;
  /** sample() requests waiting for this worker's answer, oldest first (a worker answers in order). */
  samples: ((s: ThreadSample | undefined) => void)[];
  inline: LoadThread | undefined;
  ready: Promise<PoolReady>;
  result: Promise<ThreadResult>;
}

/** A thread waits up to 2 s for replies in flight and 0.5 s for its engine to close. */
const STOP_TIMEOUT_MS = 15_000;

export class LoadPool {
  readonly control: Int32Array;
  readonly counters: Float64Array;
  private readonly members: Member[] = [];
  private failureListener: ((err: Error) => void) | undefined;
  private stopping = false;

  constructor(private readonly configs: LoadConfig[], private readonly inline: boolean) {
    this.control = new Int32Array(new SharedArrayBuffer(4));
    this.counters = new Float64Array(new SharedArrayBuffer(Math.max(1, configs.length) * COUNTER_SLOTS * 8));
    Atomics.store(this.control, 0, PHASE_WARMUP);
  }

  /** Starts the threads and resolves when every one has opened its connections. */
  async start(): Promise<PoolReady> {
    for (const config of this.configs) this.members.push(this.inline ? this.startInline(config) : this.startWorker(config));
    const ready = await Promise.all(this.members.map((m) => m.ready));
    return {
      connected: ready.reduce((a, r) => a + r.connected, 0),
      failed: ready.reduce((a, r) => a + r.failed, 0),
      clientEngine: [...new Set(ready.map((r) => r.clientEngine))].join('+'),
      reason: ready[0]?.reason ?? '',
      errorCodes: ready.reduce<Record<string, number>>((acc, r) => {
        for (const [k, v] of Object.entries(r.errorCodes)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    };
  }

  private startInline(config: LoadConfig): Member {
    const counters = new Float64Array(this.counters.buffer, config.threadIndex * COUNTER_SLOTS * 8, COUNTER_SLOTS);
    const load = new LoadThread(config, this.control, counters);
    const member: Member = {
      worker: undefined,
      samples: [],
      inline: load,
      ready: load.connect().then((r) => ({ ...r, clientEngine: load.engineKind, reason: load.engineReason, errorCodes: load.connectErrors })),
      result: new Promise<ThreadResult>(() => undefined),
    };
    return member;
  }

  private startWorker(config: LoadConfig): Member {
    const worker = new Worker(path.join(__dirname, 'worker.js'), {
      workerData: { config, control: this.control.buffer, counters: this.counters.buffer },
    });
    let resolveReady!: (r: PoolReady) => void;
    let rejectReady!: (e: Error) => void;
    let resolveResult!: (r: ThreadResult) => void;
    let rejectResult!: (e: Error) => void;
    const ready = new Promise<PoolReady>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    const result = new Promise<ThreadResult>((res, rej) => {
      resolveResult = res;
      rejectResult = rej;
    });
    const samples: Member['samples'] = [];
    const fail = (e: Error) => {
      rejectReady(e);
      rejectResult(e);
      for (const w of samples.splice(0)) w(undefined);
      if (!this.stopping) this.failureListener?.(e);
    };
    result.catch(() => undefined);
    worker.on('message', (msg: WorkerToMain) => {
      if (msg.type === 'ready') resolveReady({ connected: msg.connected, failed: msg.failed, clientEngine: msg.clientEngine, reason: msg.reason, errorCodes: msg.errorCodes });
      else if (msg.type === 'result') resolveResult(msg.result);
      else if (msg.type === 'sample') samples.shift()?.({ histogram: msg.histogram, cpuTicks: msg.cpuTicks });
      else fail(new Error(`load thread ${config.threadIndex}: ${msg.message}`));
    });
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => {
      if (code !== 0) fail(new Error(`load thread ${config.threadIndex} exited with code ${code}`));
    });
    return { worker, samples, inline: undefined, ready, result };
  }

  go(): void {
    for (const m of this.members) {
      if (m.worker) m.worker.postMessage({ type: 'go' });
      else m.inline?.go();
    }
  }

  setPhase(phase: number): void {
    Atomics.store(this.control, 0, phase);
  }

  /** Called once when a thread dies while the load runs (not during stop()): the live dashboard marks its side failed. */
  onFailure(listener: (err: Error) => void): void {
    this.failureListener = listener;
  }

  pause(): void {
    for (const m of this.members) {
      if (m.worker) m.worker.postMessage({ type: 'pause' });
      else m.inline?.pause();
    }
  }

  resume(): void {
    for (const m of this.members) {
      if (m.worker) m.worker.postMessage({ type: 'resume' });
      else m.inline?.resume();
    }
  }

  /** Every thread's histogram so far and CPU ticks; a thread that does not answer within `timeoutMs` gives undefined. */
  sample(timeoutMs = 2000): Promise<(ThreadSample | undefined)[]> {
    return Promise.all(
      this.members.map((m) => {
        if (m.inline) return Promise.resolve<ThreadSample | undefined>(m.inline.sample());
        const worker = m.worker;
        if (worker === undefined) return Promise.resolve(undefined);
        return new Promise<ThreadSample | undefined>((resolve) => {
          const timer = setTimeout(() => {
            const i = m.samples.indexOf(answer);
            if (i >= 0) m.samples.splice(i, 1, () => undefined);
            resolve(undefined);
          }, timeoutMs);
          const answer = (s: ThreadSample | undefined) => {
            clearTimeout(timer);
            resolve(s);
          };
          m.samples.push(answer);
          worker.postMessage({ type: 'sample' });
        });
      }),
    );
  }

  live(): LiveCounters {
    const out: LiveCounters = { messages: 0, bytes: 0, open: 0, sent: 0, errors: 0, mismatches: 0, connected: 0 };
    for (let t = 0; t < this.configs.length; t++) {
      const b = t * COUNTER_SLOTS;
      out.messages += this.counters[b + C_MESSAGES] ?? 0;
      out.bytes += this.counters[b + C_BYTES] ?? 0;
      out.open += this.counters[b + C_OPEN] ?? 0;
      out.sent += this.counters[b + C_SENT] ?? 0;
      out.errors += this.counters[b + C_ERRORS] ?? 0;
      out.mismatches += this.counters[b + C_MISMATCH] ?? 0;
      out.connected += this.counters[b + C_CONNECTED] ?? 0;
    }
    return out;
  }

  /** Stops the load and collects every thread's counts. */
  async stop(): Promise<ThreadResult[]> {
    this.stopping = true;
    const results = this.members.map((m) => {
      if (m.worker) {
        m.worker.postMessage({ type: 'stop' });
        return m.result;
      }
      return m.inline!.stop();
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`a load thread did not stop within ${STOP_TIMEOUT_MS / 1000} s`)), STOP_TIMEOUT_MS);
    });
    try {
      return await Promise.race([Promise.all(results), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async terminate(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.members.map((m) => m.worker?.terminate()));
  }
}
