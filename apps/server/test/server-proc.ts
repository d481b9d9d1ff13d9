import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';

/** A fastport-server child process (from the TypeScript sources) and its pino lines. */
export interface ServerProc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line (from index `from`) that matches; rejects at the timeout (a hang guard, not an assertion). */
  line(match: (l: Record<string, unknown>) => boolean, what: string, timeoutMs?: number, from?: number): Promise<Record<string, unknown>>;
  kill(): void;
}

export function spawnServer(args: string[]): ServerProc {
  const fixture = path.join(__dirname, 'fixtures', 'run-server.js');
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    line(match, what, timeoutMs = 20_000, from = 0) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + timeoutMs;
        const tick = () => {
          for (let i = from; i < lines.length; i++) if (match(lines[i]!)) return resolve(lines[i]!);
          if (child.exitCode !== null) return reject(new Error(`server exited (${child.exitCode}) before: ${what}\nstderr: ${stderr}`));
          if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}\nstderr: ${stderr}`));
          setTimeout(tick, 10);
        };
        tick();
      });
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

export function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('metrics request timed out')));
  });
}

/** Value of one series in Prometheus text (`name{labels}` exactly as printed), or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp > 0 && line.slice(0, sp) === series) return Number(line.slice(sp + 1));
  }
  return undefined;
}

/** Every series of metric `name` with its labels text, e.g. [['{worker="0"}', 3], ...]. */
export function metricSeries(text: string, name: string): [string, number][] {
  const out: [string, number][] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const sp = rest.lastIndexOf(' ');
    out.push([rest.slice(0, sp), Number(rest.slice(sp + 1))]);
  }
  return out;
}

export function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      Promise.resolve()
        .then(predicate)
        .then(
          (ok) => {
            if (ok) return resolve();
            if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
            setTimeout(tick, 20);
          },
          reject,
        );
    };
    tick();
  });
}
