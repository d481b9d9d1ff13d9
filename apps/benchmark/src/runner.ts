/**
 * Runs the benchmark against each target in turn: start (or reach) the
 * server, open the connections, warm up, measure, stop, collect server CPU,
 * memory and engine counters, optionally run echo-bench on the same target,
 * stop the server.
 */
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import { engineAvailability, listEngines, type EngineKind, type EngineRequest } from '@fastport/native-io';
import { Client } from '@fastport/session';
import { runEchoBench, echoBenchHeader } from './echobench';
import { openIdleConnections, sourceAddresses, splitConnections } from './idle';
import { framingOption } from './payload';
import { allowedCpus, pinSelf } from './pin';
import { busyPct, clockTicks, cpuBetween, cpuTotals, machineBusyPct, machineInfo, openFileLimit, processTicks, sampleProcess, threadCount } from './proc';
import { Progress } from './progress';
import {
  externalServer,
  queryServerStatus,
  startFastportServer,
  startRefEcho,
  type EngineSnapshot,
  type RunningServer,
} from './servers';
import { clientCores, isClientSaturated } from './saturation';
import { Histogram, emptySummary } from './stats';
import { LoadPool } from './threads';
import {
  PHASE_MEASURE,
  PHASE_STOP,
  type BenchReport,
  type Framing,
  type LoadConfig,
  type Protocol,
  type ServerMetrics,
  type TargetResult,
  type Workload,
} from './types';

export type TargetSpec =
  | { kind: 'engine'; engine: EngineRequest }
  | { kind: 'ref'; flavor: 'uring' | 'epoll' }
  | { kind: 'external'; host: string; port: number; pid: number | undefined };

export interface BenchSettings {
  targets: TargetSpec[];
  workload: Workload;
  connections: number;
  depth: number;
  size: number;
  duration: number;
  warmup: number;
  framing: Framing;
  maxFrame: number;
  protocol: Protocol;
  rate: number;
  /** Number of 127.0.0.x source addresses (0: the kernel's choice). */
  sources: number;
  closeMode: 'graceful' | 'abort';
  clientEngine: EngineRequest;
  /** Load threads; 0 runs the load inline on the main thread. */
  clientThreads: number;
  clientIoThreads: number | undefined;
  /** engine: the load thread frames raw requests on the engine itself; session: through Client/Session. */
  clientLayer: 'engine' | 'session';
  serverCpus: string | undefined;
  clientCpus: string | undefined;
  pinNote: string;
  serverThreads: number | undefined;
  serverBin: string;
  serverArgs: string[];
  serverMode: 'echo' | 'app';
  kit: string;
  echoBench: boolean;
  perProcess: number;
  settle: number;
  /** Before each target, wait up to this many seconds for the machine to be quiet (0: don't). */
  waitQuiet: number;
  /** Rounds per target (same server); the median round is reported. */
  repeat: number;
  /** Measure a target again (up to N times) when other processes disturbed it. */
  retryNoisy: number;
  progress: boolean;
  command: string;
  version: string;
}

export function targetLabel(t: TargetSpec): string {
  if (t.kind === 'engine') return t.engine;
  if (t.kind === 'ref') return `ref-${t.flavor}`;
  return `${t.host}:${t.port}`;
}

/** Other processes' CPU (in % of one core) above which a measurement is flagged as noisy. */
export const NOISY_PCT = 15;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function blankResult(s: BenchSettings, t: TargetSpec, status: TargetResult['status'], note: string): TargetResult {
  return {
    label: targetLabel(t),
    target: t.kind === 'external' ? `${t.host}:${t.port}` : '',
    server: { kind: t.kind === 'engine' ? 'fastport-server' : t.kind === 'ref' ? 'ref-echo' : 'external', engine: undefined, reason: undefined },
    workload: s.workload,
    status,
    note,
    clientEngine: String(s.clientEngine),
    clientThreads: s.clientThreads,
    elapsedSec: 0,
    messages: 0,
    msgsPerSec: 0,
    mbPerSec: 0,
    targetRate: s.workload === 'open' ? s.rate : undefined,
    sentPerSec: undefined,
    latency: emptySummary(),
    errors: 0,
    mismatches: 0,
    errorCodes: {},
    connectFailures: 0,
    unanswered: 0,
    verifiedBytes: 0,
    clientCpuPct: undefined,
    clientCpus: undefined,
    clientSaturated: undefined,
    backgroundCpuPct: undefined,
    serverMetrics: undefined,
    echoBench: undefined,
    idle: undefined,
    ratioToFirst: undefined,
  };
}

/** Client engines that failed on an earlier target of this run (auto does not retry them). */
const failedClientEngines = new Map<EngineRequest, string>();

/** Client engines to try, in order: auto → the available engines in auto's order; else just the one asked for. */
export function clientCandidates(requested: EngineRequest): EngineRequest[] {
  if (requested !== 'auto') return [requested];
  const kinds = listEngines()
    .filter((e) => e.available)
    .map((e) => e.kind);
  const order = process.platform === 'win32' ? ['rio', 'iocp', 'node'] : process.platform === 'linux' ? ['uring', 'epoll', 'node'] : ['node'];
  const out = order.filter((k) => kinds.includes(k as EngineKind)) as EngineRequest[];
  return out.length > 0 ? out : ['node'];
}

/** Why a target cannot run here, or undefined when it can. */
export function unavailableReason(s: BenchSettings, t: TargetSpec): string | undefined {
  if (t.kind === 'engine' && t.engine !== 'auto') {
    const a = engineAvailability(t.engine as EngineKind);
    if (!a.available) return a.reason;
  }
  if (t.kind === 'ref' && s.protocol !== 'raw') return 'ref-echo only reflects bytes: use --protocol raw';
  if (t.kind === 'ref' && s.workload === 'idle') return 'idle-connection cost is measured on fastport-server';
  return undefined;
}

/** adminToken: start fastport-server with this admin token and an admin port (the live dashboard's admin view). */
export async function startTarget(s: BenchSettings, t: TargetSpec, adminToken?: string): Promise<RunningServer> {
  if (t.kind === 'engine') {
    return startFastportServer({
      ...(adminToken !== undefined ? { adminToken } : {}),
      serverBin: s.serverBin,
      engine: t.engine,
      framing: s.framing,
      maxFrame: s.maxFrame,
      mode: s.serverMode,
      threads: s.serverThreads,
      cpus: s.serverCpus,
      exposeGc: s.workload === 'idle',
      extraArgs: s.serverArgs,
    });
  }
  if (t.kind === 'ref') return startRefEcho(s.kit, t.flavor, s.serverCpus, s.serverThreads);
  let engine: string | undefined;
  if (s.serverMode === 'app') engine = (await queryServerStatus(t.host, t.port, s.framing, s.maxFrame))?.engineName;
  return externalServer(t.host, t.port, t.pid, engine);
}

/** Splits `total` into `parts` near-equal integers. */
export function split(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

export function loadConfigs(s: BenchSettings, host: string, port: number): LoadConfig[] {
  const threads = Math.max(1, Math.min(s.clientThreads || 1, s.connections));
  const shares = split(s.connections, threads);
  const sources = s.sources > 0 ? sourceAddresses(s.sources) : [];
  let first = 0;
  return shares.map((connections, threadIndex) => {
    const cfg: LoadConfig = {
      workload: s.workload as LoadConfig['workload'],
      host,
      port,
      sources,
      clientEngine: s.clientEngine,
      clientIoThreads: s.clientIoThreads,
      clientLayer: s.clientLayer,
      connections,
      firstConnection: first,
      depth: s.depth,
      size: s.size,
      framing: s.framing,
      maxFrame: s.maxFrame,
      protocol: s.protocol,
      rate: (s.rate * connections) / s.connections,
      closeMode: s.closeMode,
      threadIndex,
    };
    first += connections;
    return cfg;
  });
}

export function engineDelta(a: EngineSnapshot | undefined, b: EngineSnapshot | undefined, kind: string | undefined): ServerMetrics['engine'] {
  if (a === undefined || b === undefined) return undefined;
  const events = b.events - a.events;
  const batches = b.batches - a.batches;
  const jsCrossings = b.jsCrossings - a.jsCrossings;
  return {
    kind: kind ?? '?',
    events,
    batches,
    jsCrossings,
    eventsPerCrossing: jsCrossings > 0 ? events / jsCrossings : NaN,
    eventsPerBatch: batches > 0 ? events / batches : NaN,
  };
}

async function runLoad(s: BenchSettings, t: TargetSpec, server: RunningServer, progress: Progress): Promise<TargetResult> {
  const result = blankResult(s, t, 'ok', '');
  result.target = `${server.host}:${server.port}`;
  result.server.engine = server.engine;
  result.server.reason = server.reason;
  const configs = loadConfigs(s, server.host, server.port);
  result.clientThreads = s.clientThreads === 0 ? 0 : configs.length;
  const unit = s.workload === 'connect' ? 'conn/s' : 'msgs/s';
  const notes: string[] = [];
  let pool: LoadPool | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // auto: the platform's engines in auto's order; one that cannot open a connection here
    // (io_uring off by sysctl or seccomp, an engine not working in worker threads...) is
    // reported and the next one is used. An explicit --client-engine gets no fallback.
    const candidates = clientCandidates(s.clientEngine).filter((c, i, all) => i === all.length - 1 || !failedClientEngines.has(c));
    for (const c of clientCandidates(s.clientEngine)) {
      if (!candidates.includes(c)) notes.push(`client engine ${c} skipped: ${failedClientEngines.get(c) ?? 'failed before'}`);
    }
    for (let i = 0; i < candidates.length; i++) {
      const engine = candidates[i] as EngineRequest;
      const last = i === candidates.length - 1;
      const attempt = new LoadPool(
        configs.map((c) => ({ ...c, clientEngine: engine })),
        s.clientThreads === 0,
      );
      let failure: string | undefined;
      try {
        if (s.workload === 'connect' && !last) {
          // the connect workload opens connections as it goes: check the engine can connect at all first
          const probe = new LoadPool([{ ...configs[0]!, workload: 'rr', connections: 4, clientEngine: engine, threadIndex: 0 }], s.clientThreads === 0);
          const pr = await probe.start().catch((err: unknown) => ({ connected: 0, failed: 4, clientEngine: String(engine), reason: '', errorCodes: { [(err as Error).message]: 1 } }));
          await probe.terminate();
          if (pr.connected < 4) {
            throw new Error(`probe: ${pr.failed} of 4 connects failed (${Object.entries(pr.errorCodes).map(([k, v]) => `${k}×${v}`).join(' ')})`);
          }
        }
        const ready = await attempt.start();
        const codes = Object.entries(ready.errorCodes).map(([k, v]) => `${k}×${v}`).join(' ');
        if (s.workload !== 'connect' && ready.connected === 0) {
          failure = `no connection could be opened to ${server.host}:${server.port} by the ${ready.clientEngine} client engine (${ready.failed} failed: ${codes})`;
        } else if (s.workload !== 'connect' && ready.failed > 0 && !last) {
          // loopback connects do not fail: an engine that loses some is not measured with fewer connections
          failure = `${ready.failed} of ${s.connections} connections failed to open with the ${ready.clientEngine} client engine (${codes})`;
        } else {
          result.clientEngine = ready.clientEngine;
          if (ready.failed > 0) notes.push(`${ready.failed} of ${s.connections} connections failed to open (${codes})`);
          pool = attempt;
          break;
        }
      } catch (err) {
        failure = `client engine ${engine}: ${(err as Error).message}`;
      }
      await attempt.terminate();
      if (last) throw new Error(failure);
      failedClientEngines.set(engine, `failed on an earlier target: ${failure ?? '?'}`);
      notes.push(`client engine ${engine} failed (${failure}); fell back to ${candidates[i + 1] ?? '?'}`);
      progress.log(`${result.label}: client engine ${engine} failed, trying ${candidates[i + 1] ?? '?'}: ${failure}`);
    }
    if (pool === undefined) throw new Error('no client engine');
    const active: LoadPool = pool;
    const t0 = performance.now();
    let lastCount = 0;
    let lastAt = t0;
    let rate = 0;
    let phaseName = 'warmup';
    const tick = () => {
      const now = performance.now();
      const live = active.live();
      const count = s.workload === 'connect' ? live.connected : live.messages;
      if (now - lastAt >= 200) {
        rate = ((count - lastCount) * 1000) / (now - lastAt);
        lastCount = count;
        lastAt = now;
      }
      progress.update({
        label: result.label,
        phase: phaseName,
        elapsedSec: (now - t0) / 1000,
        totalSec: s.warmup + s.duration,
        rate,
        unit,
        connected: s.workload === 'connect' ? 0 : live.connected,
        errors: live.errors,
        mismatches: live.mismatches,
      });
    };
    timer = setInterval(tick, 250);
    active.go();
    await sleep(s.warmup * 1000);
    // window start
    const snapA = await server.snapshot();
    const procA = server.pid !== undefined ? sampleProcess(server.pid) : undefined;
    const cpuA = process.cpuUsage();
    const totA = cpuTotals();
    const w0 = performance.now();
    active.setPhase(PHASE_MEASURE);
    phaseName = 'measure';
    await sleep(s.duration * 1000);
    active.setPhase(PHASE_STOP);
    const w1 = performance.now();
    const cpuB = process.cpuUsage(cpuA);
    const totB = cpuTotals();
    const procB = server.pid !== undefined ? sampleProcess(server.pid) : undefined;
    const snapB = await server.snapshot();
    phaseName = 'draining';
    tick();
    const threads = await active.stop();
    clearInterval(timer);
    timer = undefined;
    progress.clear();

    const elapsed = (w1 - w0) / 1000;
    const hist = new Histogram();
    for (const r of threads) hist.merge(r.histogram);
    const sum = (f: (r: (typeof threads)[number]) => number) => threads.reduce((a, r) => a + f(r), 0);
    result.elapsedSec = elapsed;
    result.messages = sum((r) => r.messages);
    result.msgsPerSec = result.messages / elapsed;
    result.mbPerSec = sum((r) => r.bytes) / elapsed / 1e6;
    if (s.workload === 'open') result.sentPerSec = sum((r) => r.sent) / elapsed;
    result.latency = hist.summary();
    result.errors = sum((r) => r.errors);
    result.mismatches = sum((r) => r.mismatches);
    result.unanswered = sum((r) => r.unanswered);
    result.connectFailures = sum((r) => r.connectFailures);
    result.verifiedBytes = sum((r) => r.verifiedBytes);
    for (const r of threads) for (const [k, v] of Object.entries(r.errorCodes)) result.errorCodes[k] = (result.errorCodes[k] ?? 0) + v;
    result.clientCpuPct = ((cpuB.user + cpuB.system) / 1e6 / elapsed) * 100;
    result.clientCpus = clientCores();
    result.clientSaturated = isClientSaturated(result.clientCpuPct, result.clientCpus);
    if (result.clientSaturated) {
      notes.push(`CLIENT SATURATED: the load generator used ${result.clientCpuPct.toFixed(0)}% of its ${result.clientCpus} core(s): msgs/s may be the client's limit, not the server's`);
    }
    if (result.unanswered > 0) notes.push(`${result.unanswered} requests unanswered at stop`);
    if (result.messages === 0) {
      result.status = 'failed';
      notes.unshift(`no ${s.workload === 'connect' ? 'connection completed' : 'reply arrived'} in the measured window`);
    }
    if (Object.keys(result.errorCodes).length > 0) notes.push(`errors: ${Object.entries(result.errorCodes).map(([k, v]) => `${k}×${v}`).join(' ')}`);
    if (s.workload === 'open' && result.sentPerSec !== undefined && result.sentPerSec < s.rate * 0.97) {
      notes.push(`sent ${Math.round(result.sentPerSec)}/s of the ${s.rate}/s asked: the client could not keep the schedule`);
    }
    if (totA && totB) {
      const serverPct = procA && procB ? cpuBetween(procA, procB) : { user: 0, sys: 0 };
      const other = busyPct(totA, totB, elapsed) - serverPct.user - serverPct.sys - result.clientCpuPct;
      result.backgroundCpuPct = Math.max(0, other);
      if (other > NOISY_PCT) notes.push(`NOISY: other processes used ${other.toFixed(0)}% of a core during the window`);
    }
    if (procA && procB) {
      const cpu = cpuBetween(procA, procB);
      result.serverMetrics = {
        pid: server.pid as number,
        cpuUserPct: cpu.user,
        cpuSysPct: cpu.sys,
        cpuPct: cpu.user + cpu.sys,
        rssBytes: procB.rssBytes,
        hwmBytes: procB.hwmBytes,
        threads: threadCount(server.pid as number),
      };
      const engine = engineDelta(snapA, snapB, server.engine);
      if (engine) result.serverMetrics.engine = engine;
    }
  } catch (err) {
    if (timer !== undefined) clearInterval(timer);
    progress.clear();
    result.status = 'failed';
    notes.push((err as Error).message);
    await pool?.terminate();
  }
  result.note = notes.length > 0 ? notes.join('; ') : undefined;
  return result;
}

async function runEchoBenchOn(s: BenchSettings, server: RunningServer, result: TargetResult, progress: Progress): Promise<void> {
  if (!s.echoBench || result.status !== 'ok') return;
  if (s.workload !== 'rr' && s.workload !== 'bandwidth') return;
  if (s.protocol !== 'raw' || echoBenchHeader(s.framing) === undefined) {
    result.note = [result.note, `echo-bench skipped: it needs --protocol raw and framing u32le or fastport`].filter(Boolean).join('; ');
    return;
  }
  progress.log(`${result.label}: running echo-bench on the same target (${s.warmup + s.duration} s)…`);
  try {
    const totA = cpuTotals();
    const srvA = server.pid !== undefined ? processTicks(server.pid) : undefined;
    const e0 = performance.now();
    const eb = await runEchoBench({
      kit: s.kit,
      host: server.host,
      port: server.port,
      connections: s.connections,
      depth: s.depth,
      size: s.size,
      framing: s.framing,
      duration: s.duration,
      warmup: s.warmup,
      threads: Math.max(1, result.clientThreads),
      cpus: s.clientCpus,
    });
    const secs = (performance.now() - e0) / 1000;
    const totB = cpuTotals();
    const srvB = server.pid !== undefined ? processTicks(server.pid) : undefined;
    let background: number | undefined;
    if (totA && totB) {
      const serverTicks = srvA !== undefined && srvB !== undefined ? srvB - srvA : 0;
      background = Math.max(0, busyPct(totA, totB, secs) - ((serverTicks + eb.cpuTicks) / clockTicks() / secs) * 100);
      if (background > NOISY_PCT) {
        result.note = [result.note, `NOISY echo-bench run: other processes used ${background.toFixed(0)}% of a core`].filter(Boolean).join('; ');
      }
    }
    result.echoBench = {
      command: eb.command,
      msgsPerSec: eb.msgsPerSec,
      mbPerSec: eb.mbPerSec,
      p50Us: eb.p50Us,
      p90Us: eb.p90Us,
      p99Us: eb.p99Us,
      p999Us: eb.p999Us,
      maxUs: eb.maxUs,
      bad: eb.bad,
      errors: eb.errors,
      ratio: eb.msgsPerSec > 0 ? result.msgsPerSec / eb.msgsPerSec : NaN,
      backgroundCpuPct: background,
    };
  } catch (err) {
    result.note = [result.note, `echo-bench failed: ${(err as Error).message}`].filter(Boolean).join('; ');
  }
}

async function runIdle(s: BenchSettings, t: TargetSpec, server: RunningServer, progress: Progress): Promise<TargetResult> {
  const result = blankResult(s, t, 'ok', '');
  result.target = `${server.host}:${server.port}`;
  result.server.engine = server.engine;
  result.server.reason = server.reason;
  const notes: string[] = [];
  const fdLimit = server.pid !== undefined ? openFileLimit(server.pid) : undefined;
  if (fdLimit !== undefined && s.connections > fdLimit - 64) {
    notes.push(`the server may open ${fdLimit} files: ${s.connections} connections cannot all be accepted by one process`);
  }
  const rssOf = async (): Promise<number> => {
    if (server.pid !== undefined) return sampleProcess(server.pid)?.rssBytes ?? NaN;
    const st = await queryServerStatus(server.host, server.port, s.framing, s.maxFrame);
    return st ? Number(st.memoryRssBytes) : NaN;
  };
  // warm the server's accept path and JIT, so the baseline is not a cold process
  const warm = new Client({ engine: s.clientEngine, framing: framingOption(s.framing, s.maxFrame) });
  const warmSessions = await Promise.all(
    Array.from({ length: Math.min(200, s.connections) }, () => warm.connect({ host: server.host, port: server.port }).catch(() => undefined)),
  );
  for (const ws of warmSessions) ws?.close();
  await warm.close(1000);
  await sleep(500);
  const before = await server.snapshot();
  const rssBefore = await rssOf();
  const sources = s.sources > 0 ? sourceAddresses(s.sources) : [];
  const counts = splitConnections(s.connections, s.perProcess);
  progress.log(`${result.label}: opening ${s.connections} idle connections from ${counts.length} process(es) over ${sources.length > 0 ? `${sources.length} source address(es)` : 'the default source address'}…`);
  const group = await openIdleConnections(counts, {
    host: server.host,
    port: server.port,
    sources,
    clientEngine: s.clientEngine,
    framing: s.framing,
    maxFrame: s.maxFrame,
    concurrency: 64,
  });
  try {
    await sleep(s.settle * 1000);
    const after = await server.snapshot();
    const rssAfter = await rssOf();
    const n = group.connected;
    result.clientEngine = String(s.clientEngine);
    result.clientThreads = counts.length;
    result.errors = group.failed + group.lost;
    for (const [k, v] of Object.entries(group.errors)) result.errorCodes[k] = v;
    if (group.failed > 0) notes.push(`${group.failed} connects failed (${Object.entries(group.errors).map(([k, v]) => `${k}×${v}`).join(' ')})`);
    if (group.lost > 0) notes.push(`${group.lost} connections closed while idle`);
    const heapBefore = before?.heapUsed;
    const heapAfter = after?.heapUsed;
    result.idle = {
      requested: s.connections,
      connected: n,
      failed: group.failed,
      processes: counts.length,
      sources,
      connectSeconds: group.seconds,
      connectsPerSec: group.seconds > 0 ? n / group.seconds : NaN,
      serverConnections: after?.connections,
      rssBeforeBytes: rssBefore,
      rssAfterBytes: rssAfter,
      heapBeforeBytes: heapBefore,
      heapAfterBytes: heapAfter,
      rssPerConnBytes: n > 0 ? (rssAfter - rssBefore) / n : NaN,
      heapPerConnBytes: n > 0 && heapBefore !== undefined && heapAfter !== undefined ? (heapAfter - heapBefore) / n : undefined,
    };
    if (after !== undefined && after.connections !== n) notes.push(`server reports ${after.connections} sessions, clients hold ${n}`);
    const sample = server.pid !== undefined ? sampleProcess(server.pid) : undefined;
    if (sample && server.pid !== undefined) {
      result.serverMetrics = { pid: server.pid, cpuUserPct: NaN, cpuSysPct: NaN, cpuPct: NaN, rssBytes: sample.rssBytes, hwmBytes: sample.hwmBytes, threads: threadCount(server.pid) };
    }
  } finally {
    await group.close();
  }
  result.note = notes.length > 0 ? notes.join('; ') : undefined;
  return result;
}

/** True when other processes used enough CPU during the window (or echo-bench's run) to spoil it. */
export function isNoisy(r: TargetResult): boolean {
  return (r.backgroundCpuPct ?? 0) > NOISY_PCT || (r.echoBench?.backgroundCpuPct ?? 0) > NOISY_PCT;
}

async function runTarget(s: BenchSettings, t: TargetSpec, progress: Progress): Promise<TargetResult> {
  let server: RunningServer;
  try {
    server = await startTarget(s, t);
  } catch (err) {
    progress.log(`${targetLabel(t)}: failed to start — ${(err as Error).message.split('\n')[0] ?? ''}`);
    return blankResult(s, t, 'failed', (err as Error).message);
  }
  try {
    if (server.engine !== undefined && t.kind === 'engine' && t.engine !== 'auto' && server.engine !== t.engine) {
      progress.log(`${targetLabel(t)}: server reports engine ${server.engine}`);
    }
    const runs: TargetResult[] = [];
    const rounds = s.workload === 'idle' ? 1 : Math.max(1, s.repeat);
    for (let i = 0; i < rounds; i++) {
      if (rounds > 1) progress.log(`${targetLabel(t)}: round ${i + 1}/${rounds}`);
      const r = s.workload === 'idle' ? await runIdle(s, t, server, progress) : await runLoad(s, t, server, progress);
      if (t.kind === 'engine' && t.engine === 'auto' && server.engine) r.label = `auto→${server.engine}`;
      await runEchoBenchOn(s, server, r, progress);
      runs.push(r);
      if (r.status !== 'ok') break;
    }
    return runs.length === 1 ? (runs[0] as TargetResult) : medianOf(runs);
  } catch (err) {
    return blankResult(s, t, 'failed', (err as Error).message);
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  return n === 0 ? NaN : n % 2 === 1 ? (v[(n - 1) / 2] as number) : ((v[n / 2 - 1] as number) + (v[n / 2] as number)) / 2;
}

/**
 * --repeat: the round with the median msgs/s stands for the target (its latency, CPU, counters);
 * echo-bench's figure is the median of its rounds, the ratio is median over median. Errors add up.
 */
export function medianOf(runs: TargetResult[]): TargetResult {
  const ok = runs.filter((r) => r.status === 'ok');
  if (ok.length < runs.length) return runs.find((r) => r.status !== 'ok') as TargetResult;
  const sorted = [...ok].sort((a, b) => a.msgsPerSec - b.msgsPerSec);
  const pick = { ...(sorted[Math.floor((sorted.length - 1) / 2)] as TargetResult) };
  pick.msgsPerSec = median(ok.map((r) => r.msgsPerSec));
  pick.mbPerSec = median(ok.map((r) => r.mbPerSec));
  pick.errors = ok.reduce((a, r) => a + r.errors, 0);
  pick.mismatches = ok.reduce((a, r) => a + r.mismatches, 0);
  pick.verifiedBytes = ok.reduce((a, r) => a + r.verifiedBytes, 0);
  pick.backgroundCpuPct = Math.max(...ok.map((r) => r.backgroundCpuPct ?? 0));
  const rounds = [`rounds (msgs/s): ${ok.map((r) => Math.round(r.msgsPerSec)).join(', ')}`];
  const ebs = ok.map((r) => r.echoBench).filter((e): e is NonNullable<TargetResult['echoBench']> => e !== undefined);
  if (pick.echoBench && ebs.length === ok.length) {
    const eb = median(ebs.map((e) => e.msgsPerSec));
    pick.echoBench = { ...pick.echoBench, msgsPerSec: eb, ratio: pick.msgsPerSec / eb, backgroundCpuPct: Math.max(...ebs.map((e) => e.backgroundCpuPct ?? 0)) };
    rounds.push(`echo-bench rounds: ${ebs.map((e) => Math.round(e.msgsPerSec)).join(', ')}`);
    rounds.push(`per-round ratios: ${ok.map((r) => `${Math.round((r.echoBench?.ratio ?? NaN) * 100)}%`).join(', ')}`);
  }
  const notes = [...new Set(ok.map((r) => r.note).filter((n): n is string => n !== undefined))];
  pick.note = [`median of ${ok.length}; ${rounds.join('; ')}`, ...notes].join('; ');
  return pick;
}

/** Waits (bounded) until the machine is idle: other benchmarks running beside this one spoil both. */
async function waitForQuiet(maxSec: number, progress: Progress): Promise<void> {
  const deadline = performance.now() + maxSec * 1000;
  let said = false;
  for (;;) {
    const busy = await machineBusyPct(1000);
    if (!(busy > NOISY_PCT / 2)) return;
    if (performance.now() > deadline) {
      progress.log(`machine still busy (${busy.toFixed(0)}% of a core) after ${maxSec} s: measuring anyway`);
      return;
    }
    if (!said) progress.log(`waiting for the machine to be quiet (${busy.toFixed(0)}% of a core busy)…`);
    said = true;
  }
}

/** The ratio column: msgs/s (idle: RSS per connection) against the first successful row. */
export function applyRatios(results: TargetResult[]): void {
  const first = results.find((r) => r.status === 'ok');
  if (!first) return;
  for (const r of results) {
    if (r.status !== 'ok') continue;
    if (r.workload === 'idle') {
      const a = first.idle?.rssPerConnBytes;
      const b = r.idle?.rssPerConnBytes;
      r.ratioToFirst = a && b !== undefined && a > 0 ? b / a : undefined;
    } else r.ratioToFirst = first.msgsPerSec > 0 ? r.msgsPerSec / first.msgsPerSec : undefined;
  }
}

export async function runBench(s: BenchSettings): Promise<BenchReport> {
  const progress = Progress.auto(s.progress);
  let pinNote = s.pinNote;
  let clientCpus = s.clientCpus;
  if (clientCpus !== undefined) {
    try {
      clientCpus = pinSelf(clientCpus);
      pinNote = `${pinNote}; load generator pinned itself with taskset -a -p`;
    } catch (err) {
      pinNote = `${pinNote}; pinning the load generator failed: ${(err as Error).message}`;
      clientCpus = allowedCpus() ?? undefined;
    }
  }
  const results: TargetResult[] = [];
  for (const t of s.targets) {
    const why = unavailableReason(s, t);
    if (why !== undefined) {
      progress.log(`${targetLabel(t)}: skipped — ${why}`);
      results.push(blankResult(s, t, 'skipped', why));
      continue;
    }
    let result: TargetResult | undefined;
    for (let attempt = 0; attempt <= s.retryNoisy; attempt++) {
      if (s.waitQuiet > 0) await waitForQuiet(s.waitQuiet, progress);
      result = await runTarget(s, t, progress);
      if (!isNoisy(result) || attempt === s.retryNoisy) break;
      progress.log(`${result.label}: noisy measurement (other processes used the CPUs), measuring again (${attempt + 1}/${s.retryNoisy})`);
      // let TIME_WAIT and the kernel settle
      await sleep(1000);
    }
    results.push(result as TargetResult);
    await sleep(300);
  }
  applyRatios(results);
  const settings: Record<string, unknown> = {
    workload: s.workload,
    connections: s.connections,
    depth: s.depth,
    size: s.size,
    duration: s.duration,
    warmup: s.warmup,
    framing: s.framing,
    maxFrame: s.maxFrame,
    protocol: s.protocol,
    rate: s.rate,
    sources: s.sources,
    closeMode: s.closeMode,
    clientEngine: results.find((r) => r.status === 'ok')?.clientEngine ?? s.clientEngine,
    clientEngineRequested: s.clientEngine,
    clientThreads: s.clientThreads,
    clientIoThreads: s.clientIoThreads,
    clientLayer: s.protocol === 'raw' ? s.clientLayer : 'session',
    serverThreads: s.serverThreads,
    serverMode: s.serverMode,
    echoBench: s.echoBench,
    waitQuiet: s.waitQuiet,
    retryNoisy: s.retryNoisy,
    repeat: s.repeat,
    targets: s.targets.map(targetLabel),
    loadAverage: os.loadavg(),
  };
  return {
    tool: 'fastport-bench',
    version: s.version,
    date: new Date().toISOString(),
    command: s.command,
    machine: machineInfo(),
    settings,
    pinning: { server: s.serverCpus, client: clientCpus, note: pinNote },
    results,
  };
}
