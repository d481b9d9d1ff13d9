/**
 * CPU pinning with taskset(1).
 *
 * The servers the benchmark starts are spawned as `taskset -c <server-cpus> …`;
 * the load generator pins itself (every thread of this process, and so the
 * worker threads and child processes it starts later) with
 * `taskset -a -p -c <client-cpus> <own pid>` before it starts any load. No
 * re-exec is needed; the pinning in force is read back from
 * /proc/self/status and reported with the results.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

/** Parses a cpu list like "0", "1-3", "0,2,4-5" into cpu numbers. Throws on bad input. */
export function parseCpuList(list: string): number[] {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw new Error(`bad cpu list '${list}' (want e.g. 0 or 1-3 or 0,2)`);
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a) throw new Error(`bad cpu range '${p}'`);
    for (let c = a; c <= b; c++) out.add(c);
  }
  if (out.size === 0) throw new Error(`empty cpu list '${list}'`);
  return [...out].sort((x, y) => x - y);
}

export function hasTaskset(): boolean {
  if (process.platform !== 'linux') return false;
  const r = spawnSync('taskset', ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

/** Default split: the server gets the first half of the cores (at least one), the load generator the rest. */
export function defaultCpus(n = os.cpus().length): { server: string; client: string } | undefined {
  if (n < 2) return undefined;
  const serverCount = Math.max(1, Math.floor(n / 2));
  const range = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  return { server: range(0, serverCount - 1), client: range(serverCount, n - 1) };
}

/** Cpus_allowed_list of a process ('self' by default). */
export function allowedCpus(pid: number | 'self' = 'self'): string | undefined {
  try {
    const m = /^Cpus_allowed_list:\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

/** Pins every thread of this process to `cpus`; returns the list now in force. */
export function pinSelf(cpus: string): string {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
  return allowedCpus() ?? cpus;
}

/** Command prefix that runs a program pinned to `cpus` (empty when not pinning). */
export function pinPrefix(cpus: string | undefined): string[] {
  return cpus === undefined ? [] : ['taskset', '-c', cpus];
}
