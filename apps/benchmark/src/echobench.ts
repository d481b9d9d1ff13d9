/** Runs the independent C load generator (echo-bench) with the same settings, for the client-efficiency check. */
import { spawn } from 'node:child_process';
import { track } from './children';
import { processTicks } from './proc';
import { pinPrefix } from './pin';
import { kitBinary } from './servers';
import type { Framing } from './types';

export interface EchoBenchRun {
  command: string;
  msgsPerSec: number;
  mbPerSec: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  bad: number;
  errors: number;
  connected: number;
  /** CPU ticks echo-bench used (sampled every 100 ms, so up to 100 ms short). */
  cpuTicks: number;
}

export interface EchoBenchOptions {
  kit: string;
  host: string;
  port: number;
  connections: number;
  depth: number;
  size: number;
  framing: Framing;
  duration: number;
  warmup: number;
  threads: number;
  cpus: string | undefined;
}

/** echo-bench's -H for a framing, or undefined when it has none ('large'). */
export function echoBenchHeader(framing: Framing): string | undefined {
  return framing === 'u32le' ? 'u32le' : framing === 'fastport' ? 'fastport' : undefined;
}

export function echoBenchArgs(o: EchoBenchOptions): string[] {
  const header = echoBenchHeader(o.framing);
  if (header === undefined) throw new Error(`echo-bench has no '${o.framing}' framing (it speaks u32le and fastport)`);
  return [
    ...pinPrefix(o.cpus),
    kitBinary(o.kit, 'echo-bench'),
    '-a',
    o.host,
    '-p',
    String(o.port),
    '-c',
    String(o.connections),
    '-k',
    String(o.depth),
    '-s',
    String(o.size),
    '-d',
    String(Math.max(1, Math.round(o.duration))),
    '-w',
    String(Math.max(0, Math.round(o.warmup))),
    '-t',
    String(Math.max(1, o.threads)),
    '-H',
    header,
  ];
}

interface EchoBenchJson {
  msgs_per_s: number;
  mb_per_s: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  bad: number;
  errors: number;
  connected: number;
}

export function runEchoBench(o: EchoBenchOptions): Promise<EchoBenchRun> {
  const args = echoBenchArgs(o);
  const [cmd, ...rest] = args as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    let ticks = 0;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const poll = setInterval(() => {
      const t = child.pid !== undefined ? processTicks(child.pid) : undefined;
      if (t !== undefined) ticks = t;
    }, 100);
    const killer = setTimeout(() => child.kill('SIGKILL'), (o.duration + o.warmup + 30) * 1000);
    child.once('error', (err) => {
      clearInterval(poll);
      clearTimeout(killer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearInterval(poll);
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`echo-bench failed (${signal ?? code}): ${stderr.trim()}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      let j: EchoBenchJson;
      try {
        j = JSON.parse(line) as EchoBenchJson;
      } catch {
        return reject(new Error(`echo-bench printed no JSON: ${stdout} ${stderr}`));
      }
      resolve({
        command: args.join(' '),
        msgsPerSec: j.msgs_per_s,
        mbPerSec: j.mb_per_s,
        p50Us: j.p50_us,
        p90Us: j.p90_us,
        p99Us: j.p99_us,
        p999Us: j.p999_us,
        maxUs: j.max_us,
        bad: j.bad,
        errors: j.errors,
        connected: j.connected,
        cpuTicks: ticks,
      });
    });
  });
}
