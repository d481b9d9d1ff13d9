/**
 * One side (A or B) of the live dashboard: a run that is started, paused and
 * stopped by hand and sampled every second, instead of the CLI's one fixed
 * window. It reuses the CLI's pieces: startTarget (servers.ts) for the server,
 * loadConfigs + LoadPool (threads.ts, load.ts) for its own load worker(s).
 * Each side has its own server and workers, so one side dying leaves the other
 * running.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { maxFrameFor } from './payload';
import { clockTicks, cpuBetween, sampleProcess, threadCount } from './proc';
import { engineDelta, loadConfigs, startTarget, targetLabel, type BenchSettings } from './runner';
import { clientCores, isClientSaturated } from './saturation';
import type { AdminAccess, EngineSnapshot, RunningServer } from './servers';
import { Histogram, bucketPercentile, emptySummary } from './stats';
import { LoadPool, type LiveCounters, type ThreadSample } from './threads';
import { PHASE_MEASURE, PHASE_STOP, type ServerSample, type TargetResult } from './types';
import type { SideId, SidePoint, SideSettings, SideState, SideStatus } from './ui-api';
import { targetSpecOf } from './ui-validate';

/** Points kept per side (an hour at one a second); older ones are dropped. */
export const MAX_POINTS = 3600;
export const SAMPLE_MS = 1000;
/** The client-saturated flag looks at this many recent seconds. */
export const SATURATION_WINDOW = 5;

/** A point plus what the side keeps for itself: the whole process's CPU in that second (for the saturation rule). */
interface Sampled {
  point: SidePoint;
  processCpuPct: number | null;
}

interface SampleBase {
  at: number;
  live: LiveCounters;
  buckets: Float64Array | undefined;
  threadTicks: number | undefined;
  proc: ServerSample | undefined;
  snap: EngineSnapshot | undefined;
  cpu: NodeJS.CpuUsage;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}

/** Sum of every thread's histogram (undefined when a thread did not answer). */
function mergeSamples(samples: (ThreadSample | undefined)[]): { hist: Histogram; ticks: number | undefined } | undefined {
  if (samples.length === 0 || samples.some((s) => s === undefined)) return undefined;
  const hist = new Histogram();
  let ticks: number | undefined = 0;
  for (const s of samples as ThreadSample[]) {
    hist.merge(s.histogram);
    ticks = ticks !== undefined && s.cpuTicks !== undefined ? ticks + s.cpuTicks : undefined;
  }
  return { hist, ticks };
}

export interface LiveSideEvents {
  point(side: SideId, point: SidePoint): void;
  change(side: LiveSide): void;
}

export class LiveSide {
  settings: SideSettings;
  status: SideStatus = 'idle';
  reason: string | undefined;
  startedAt: number | undefined;
  clientEngine: string | undefined;
  private sampled: Sampled[] = [];
  private server: RunningServer | undefined;
  private pool: LoadPool | undefined;
  /** Bumped by every start and stop: async steps of an older run see it changed and back off. */
  private generation = 0;
  private readonly adminToken = randomBytes(16).toString('hex');
  // for the summary (exports)
  private first: SampleBase | undefined;
  private last: SampleBase | undefined;
  private lastHist: Histogram | undefined;
  private runSettings: BenchSettings | undefined;
  private sampling: Promise<void> | undefined;

  constructor(readonly id: SideId, settings: SideSettings, private readonly base: BenchSettings, private readonly events: LiveSideEvents) {
    this.settings = settings;
  }

  get points(): SidePoint[] {
    return this.sampled.map((s) => s.point);
  }

  /** Connections this side may hold (for the other side's file limit). */
  get heldConnections(): number {
    return this.status === 'running' || this.status === 'paused' ? this.settings.connections : 0;
  }

  get admin(): AdminAccess | undefined {
    return this.server?.admin;
  }

  get serverAddress(): { host: string; port: number } | undefined {
    return this.server !== undefined ? { host: this.server.host, port: this.server.port } : undefined;
  }

  /** The client used >= 90% of its cores, on average over the last seconds of this run. */
  clientSaturated(windowPoints = SATURATION_WINDOW): boolean {
    if (this.status !== 'running' && this.status !== 'paused') return false;
    const recent = this.sampled.slice(-windowPoints).map((s) => s.processCpuPct).filter((v): v is number => v !== null);
    if (recent.length === 0) return false;
    return isClientSaturated(recent.reduce((a, v) => a + v, 0) / recent.length, clientCores()) === true;
  }

  /** Mean CPU of the whole load-generator process over the window (for the page's header). */
  processCpuPct(windowPoints = SATURATION_WINDOW): number | null {
    const recent = this.sampled.slice(-windowPoints).map((s) => s.processCpuPct).filter((v): v is number => v !== null);
    return recent.length === 0 ? null : recent.reduce((a, v) => a + v, 0) / recent.length;
  }

  lastSampleAt(): number | undefined {
    return this.sampled[this.sampled.length - 1]?.point.t;
  }

  state(withPoints = true): SideState {
    return {
      id: this.id,
      settings: { ...this.settings },
      status: this.status,
      reason: this.reason,
      server:
        this.server !== undefined
          ? { kind: this.server.kind, engine: this.server.engine, address: `${this.server.host}:${this.server.port}`, pid: this.server.pid, admin: this.server.admin !== undefined }
          : undefined,
      clientEngine: this.clientEngine,
      startedAt: this.startedAt,
      clientSaturated: this.clientSaturated(),
      points: withPoints ? this.points : [],
    };
  }

  private changed(): void {
    this.events.change(this);
  }

  /** The CLI settings this side's run uses: the dashboard's settings over the command line's. */
  private benchSettings(): BenchSettings {
    const st = this.settings;
    return {
      ...this.base,
      targets: [targetSpecOf(st.target, this.base.kit)],
      workload: st.rate > 0 ? 'open' : 'rr',
      connections: st.connections,
      depth: st.depth,
      size: st.size,
      rate: st.rate,
      framing: st.framing,
      maxFrame: maxFrameFor(st.framing, st.size),
      protocol: 'raw',
      serverMode: 'echo',
      clientLayer: 'engine',
      clientThreads: st.threads,
      // the load threads' own CPU is what the page shows: no extra native I/O threads beside them
      clientIoThreads: 0,
      sources: 0,
    };
  }

  /** Starts the side (or resumes it when paused). Resolves when the load runs, or the side failed. */
  async start(): Promise<void> {
    if (this.status === 'paused') {
      this.pool?.resume();
      this.status = 'running';
      this.changed();
      return;
    }
    if (this.status === 'running') return;
    const gen = ++this.generation;
    const s = this.benchSettings();
    const spec = s.targets[0]!;
    this.runSettings = s;
    this.status = 'running';
    this.reason = undefined;
    this.sampled = [];
    this.first = this.last = undefined;
    this.lastHist = undefined;
    this.startedAt = Date.now();
    this.clientEngine = undefined;
    this.server = undefined;
    this.changed();
    try {
      const server = await startTarget(s, spec, spec.kind === 'engine' ? this.adminToken : undefined);
      if (gen !== this.generation) {
        await server.stop();
        return;
      }
      this.server = server;
      server.exited?.then((why) => {
        if (gen === this.generation && (this.status === 'running' || this.status === 'paused')) void this.fail(gen, why);
      });
      const pool = new LoadPool(loadConfigs(s, server.host, server.port), false);
      this.pool = pool;
      pool.onFailure((err) => void this.fail(gen, err.message));
      const ready = await pool.start();
      if (gen !== this.generation) return;
      this.clientEngine = ready.clientEngine;
      if (ready.connected === 0) {
        const codes = Object.entries(ready.errorCodes).map(([k, v]) => `${k}×${v}`).join(' ');
        await this.fail(gen, `no connection to ${server.host}:${server.port} could be opened${codes !== '' ? ` (${codes})` : ''}`);
        return;
      }
      pool.setPhase(PHASE_MEASURE);
      pool.go();
      this.changed();
      this.sampling = this.sampleLoop(gen, pool, server);
    } catch (err) {
      // the first lines of the server's output are the useful part of a failed start
      if (gen === this.generation) await this.fail(gen, ((err as Error).message ?? String(err)).slice(0, 800));
    }
  }

  pause(): void {
    if (this.status !== 'running' || this.pool === undefined) return;
    this.pool.pause();
    this.status = 'paused';
    this.changed();
  }

  /** Stops load and server (bounded: LoadPool.stop has its own timeout, then the workers are terminated). */
  async stop(reason?: string): Promise<void> {
    if (this.status !== 'running' && this.status !== 'paused') return;
    this.generation++;
    this.status = 'stopped';
    this.reason = reason;
    this.changed();
    await this.teardown();
    this.changed();
  }

  private async fail(gen: number, reason: string): Promise<void> {
    if (gen !== this.generation) return;
    this.generation++;
    this.status = 'failed';
    this.reason = reason;
    this.changed();
    await this.teardown();
  }

  private async teardown(): Promise<void> {
    const pool = this.pool;
    const server = this.server;
    this.pool = undefined;
    if (pool !== undefined) {
      pool.setPhase(PHASE_STOP);
      await pool.stop().catch(() => pool.terminate());
    }
    await this.sampling?.catch(() => undefined);
    this.sampling = undefined;
    await server?.stop().catch(() => undefined);
  }

  private async takeSample(pool: LoadPool, server: RunningServer): Promise<SampleBase & { hist: Histogram | undefined }> {
    const merged = mergeSamples(await pool.sample());
    const at = performance.now();
    const cpu = process.cpuUsage();
    const live = pool.live();
    const proc = server.pid !== undefined ? sampleProcess(server.pid) : undefined;
    const snap = server.kind === 'fastport-server' ? await server.snapshot() : undefined;
    return { at, cpu, live, proc, snap, buckets: merged !== undefined ? Float64Array.from(merged.hist.buckets) : undefined, threadTicks: merged?.ticks, hist: merged?.hist };
  }

  /** One sample a second while this run lasts (bounded by the generation: stop or fail ends it). */
  private async sampleLoop(gen: number, pool: LoadPool, server: RunningServer): Promise<void> {
    let prev = await this.takeSample(pool, server);
    this.first = prev;
    while (gen === this.generation) {
      await sleep(prev.at + SAMPLE_MS - performance.now());
      if (gen !== this.generation) return;
      const cur = await this.takeSample(pool, server);
      if (gen !== this.generation) return;
      const secs = Math.max(1e-3, (cur.at - prev.at) / 1000);
      let p50: number | null = null;
      let p99: number | null = null;
      let p999: number | null = null;
      if (cur.buckets !== undefined && prev.buckets !== undefined) {
        const delta = new Float64Array(cur.buckets.length);
        for (let i = 0; i < delta.length; i++) delta[i] = (cur.buckets[i] as number) - ((prev.buckets[i] as number) ?? 0);
        p50 = finiteOrNull(bucketPercentile(delta, 50) / 1000);
        p99 = finiteOrNull(bucketPercentile(delta, 99) / 1000);
        p999 = finiteOrNull(bucketPercentile(delta, 99.9) / 1000);
      }
      const serverCpu = prev.proc !== undefined && cur.proc !== undefined ? cpuBetween(prev.proc, cur.proc) : undefined;
      const engine = engineDelta(prev.snap, cur.snap, server.engine);
      const threadCpu =
        cur.threadTicks !== undefined && prev.threadTicks !== undefined ? ((cur.threadTicks - prev.threadTicks) / clockTicks() / secs) * 100 : undefined;
      const procCpu = ((cur.cpu.user - prev.cpu.user + cur.cpu.system - prev.cpu.system) / 1e6 / secs) * 100;
      const point: SidePoint = {
        t: Date.now(),
        msgsPerSec: (cur.live.messages - prev.live.messages) / secs,
        mbPerSec: (cur.live.bytes - prev.live.bytes) / secs / 1e6,
        p50Us: p50,
        p99Us: p99,
        p999Us: p999,
        connections: cur.live.open,
        errors: cur.live.errors,
        serverCpuPct: serverCpu !== undefined ? finiteOrNull(serverCpu.user + serverCpu.sys) : null,
        serverRssBytes: finiteOrNull(cur.proc?.rssBytes),
        eventsPerCrossing: finiteOrNull(engine?.eventsPerCrossing),
        clientCpuPct: finiteOrNull(threadCpu),
      };
      this.sampled.push({ point, processCpuPct: finiteOrNull(procCpu) });
      if (this.sampled.length > MAX_POINTS) this.sampled.shift();
      this.last = cur;
      if (cur.hist !== undefined) this.lastHist = cur.hist;
      this.events.point(this.id, point);
      if (cur.live.open <= 0 && cur.live.connected > 0) {
        void this.fail(gen, `all ${cur.live.connected} connections were closed by ${server.host}:${server.port} (errors: ${cur.live.errors})`);
        return;
      }
      prev = cur;
    }
  }

  /** The run so far as a CLI result row (exports: JSON, CSV, SVG chart). */
  summary(): TargetResult {
    const s = this.runSettings ?? this.benchSettings();
    const spec = s.targets[0]!;
    const label = `${this.id}: ${targetLabel(spec)}`;
    const a = this.first;
    const b = this.last;
    const secs = a !== undefined && b !== undefined ? (b.at - a.at) / 1000 : 0;
    const messages = a !== undefined && b !== undefined ? b.live.messages - a.live.messages : 0;
    const bytes = a !== undefined && b !== undefined ? b.live.bytes - a.live.bytes : 0;
    const procCpus = this.sampled.map((x) => x.processCpuPct).filter((v): v is number => v !== null);
    const clientCpuPct = a?.threadTicks !== undefined && b?.threadTicks !== undefined && secs > 0 ? ((b.threadTicks - a.threadTicks) / clockTicks() / secs) * 100 : undefined;
    const processCpuPct = procCpus.length > 0 ? procCpus.reduce((x, v) => x + v, 0) / procCpus.length : undefined;
    const cores = clientCores();
    const cpu = a?.proc !== undefined && b?.proc !== undefined ? cpuBetween(a.proc, b.proc) : undefined;
    const engine = engineDelta(a?.snap, b?.snap, this.server?.engine);
    const pid = this.server?.pid;
    const notes = [`live run, status ${this.status}${this.reason !== undefined ? ` (${this.reason})` : ''}`];
    if (processCpuPct !== undefined) notes.push(`load-generator process CPU ${processCpuPct.toFixed(0)}% of ${cores} core(s)`);
    return {
      label,
      target: this.server !== undefined ? `${this.server.host}:${this.server.port}` : '',
      server: { kind: spec.kind === 'engine' ? 'fastport-server' : spec.kind === 'ref' ? 'ref-echo' : 'external', engine: this.server?.engine, reason: this.server?.reason },
      workload: s.workload,
      status: this.status === 'failed' ? 'failed' : messages > 0 ? 'ok' : 'failed',
      note: notes.join('; '),
      clientEngine: this.clientEngine ?? String(s.clientEngine),
      clientThreads: s.clientThreads,
      elapsedSec: secs,
      messages,
      msgsPerSec: secs > 0 ? messages / secs : 0,
      mbPerSec: secs > 0 ? bytes / secs / 1e6 : 0,
      targetRate: s.workload === 'open' ? s.rate : undefined,
      sentPerSec: undefined,
      latency: this.lastHist?.summary() ?? emptySummary(),
      errors: b?.live.errors ?? 0,
      mismatches: b?.live.mismatches ?? 0,
      errorCodes: {},
      connectFailures: 0,
      unanswered: 0,
      verifiedBytes: 0,
      clientCpuPct,
      clientCpus: cores,
      clientSaturated: isClientSaturated(processCpuPct, cores),
      backgroundCpuPct: undefined,
      serverMetrics:
        cpu !== undefined && pid !== undefined && b?.proc !== undefined
          ? {
              pid,
              cpuUserPct: cpu.user,
              cpuSysPct: cpu.sys,
              cpuPct: cpu.user + cpu.sys,
              rssBytes: b.proc.rssBytes,
              hwmBytes: b.proc.hwmBytes,
              threads: threadCount(pid),
              ...(engine !== undefined ? { engine } : {}),
            }
          : undefined,
      echoBench: undefined,
      idle: undefined,
      ratioToFirst: undefined,
    };
  }
}
