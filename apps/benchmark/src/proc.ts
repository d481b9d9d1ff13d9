/** Process metrics from /proc (Linux): CPU ticks, RSS, threads, machine facts. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { MachineInfo, ServerSample } from './types';

let clkTck: number | undefined;

/** Clock ticks per second for /proc/<pid>/stat times (getconf CLK_TCK; 100 on Linux in practice). */
export function clockTicks(): number {
  if (clkTck !== undefined) return clkTck;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    clkTck = 100;
  }
  return clkTck;
}

/** utime and stime (fields 14 and 15) of /proc/<pid>/stat, in ticks, all threads. */
export function parseStat(text: string): { utime: number; stime: number; threads: number } {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): field n is rest[n - 3]
  return { utime: Number(rest[11]), stime: Number(rest[12]), threads: Number(rest[17]) };
}

/** A `Key:   value kB` field of /proc/<pid>/status, in bytes. */
export function parseStatusKb(text: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : NaN;
}

export function procAvailable(pid: number): boolean {
  return process.platform === 'linux' && fs.existsSync(`/proc/${pid}/stat`);
}

export function sampleProcess(pid: number): ServerSample | undefined {
  try {
    const stat = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return {
      atMs: performance.now(),
      utimeTicks: stat.utime,
      stimeTicks: stat.stime,
      rssBytes: parseStatusKb(status, 'VmRSS'),
      hwmBytes: parseStatusKb(status, 'VmHWM'),
    };
  } catch {
    return undefined;
  }
}

export function threadCount(pid: number): number | undefined {
  try {
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).threads;
  } catch {
    return undefined;
  }
}

/** CPU use between two samples, in % of one core. */
export function cpuBetween(a: ServerSample, b: ServerSample): { user: number; sys: number } {
  const secs = Math.max(1e-9, (b.atMs - a.atMs) / 1000);
  const tck = clockTicks();
  return {
    user: ((b.utimeTicks - a.utimeTicks) / tck / secs) * 100,
    sys: ((b.stimeTicks - a.stimeTicks) / tck / secs) * 100,
  };
}

/** True when the process has a handler for the signal (SigCgt of /proc/<pid>/status). */
export function catchesSignal(pid: number, signal: number): boolean {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^SigCgt:\s+([0-9a-f]+)/m.exec(status);
    if (!m) return false;
    return ((BigInt(`0x${m[1]}`) >> BigInt(signal - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    clkTck: process.platform === 'linux' ? clockTicks() : 0,
  };
}

/**
 * CPU ticks (utime + stime) of the calling thread: /proc/thread-self is the task of whichever thread reads
 * it, and a synchronous read runs on the JS thread itself (a worker thread reads its own). Undefined off Linux.
 */
export function threadCpuTicks(): number | undefined {
  try {
    const s = parseStat(fs.readFileSync('/proc/thread-self/stat', 'utf8'));
    return s.utime + s.stime;
  } catch {
    return undefined;
  }
}

/** Busy and total ticks of all CPUs together (first line of /proc/stat). */
export function cpuTotals(): { busy: number; total: number } | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    // irq/softirq time is left out: loopback traffic of the benchmark itself is processed in
    // softirq context and, with IRQ time accounting, is charged to no process
    const busy = user + nice + system + steal;
    return { busy, total: busy + idle + iowait + irq + softirq };
  } catch {
    return undefined;
  }
}

/** CPU ticks (utime + stime) a process has used, or undefined when it is gone. */
export function processTicks(pid: number): number | undefined {
  try {
    const s = parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return s.utime + s.stime;
  } catch {
    return undefined;
  }
}

/** % of one core the whole machine was busy between two cpuTotals() samples over `secs` seconds. */
export function busyPct(a: { busy: number }, b: { busy: number }, secs: number): number {
  return ((b.busy - a.busy) / clockTicks() / Math.max(1e-9, secs)) * 100;
}

/** Samples machine-wide CPU use for `ms` and returns it in % of one core. */
export async function machineBusyPct(ms: number): Promise<number> {
  const a = cpuTotals();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTotals();
  if (!a || !b) return NaN;
  return busyPct(a, b, (performance.now() - t0) / 1000);
}

/** Soft limit of open files of a process (/proc/<pid>/limits), or undefined. */
export function openFileLimit(pid: number): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
