/** Starts the built dashboard (bin/fastport-bench --ui --ui-port 0) as a child process and talks to its API. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SideId, SideState, UiState } from '../src/ui-api';

export const BIN = path.resolve(__dirname, '..', 'bin', 'fastport-bench');
const DIST = path.resolve(__dirname, '..', 'dist');

/** The dashboard runs from dist/ (its load workers are dist/worker.js, its page dist/ui/): fail by name when it is not built. */
export function requireBuilt(): void {
  for (const f of ['main.js', 'worker.js', 'ui/index.html', 'ui/app.js']) {
    if (!fs.existsSync(path.join(DIST, f))) throw new Error(`apps/benchmark/dist/${f} is missing: build first (npx -y pnpm@10 --filter fastport-bench build)`);
  }
}

export interface Dashboard {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM, then waits (bounded) for the exit; resolves with the exit code or signal. */
  stop(): Promise<number | string>;
}

export async function startDashboard(extra: string[] = []): Promise<Dashboard> {
  requireBuilt();
  const child = spawn(process.execPath, [BIN, '--ui', '--ui-port', '0', '--no-pin', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (out += c));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the dashboard printed no URL within 20 s:\n${out}`)), 20_000);
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the dashboard exited (${sig ?? code}) before listening:\n${out}`));
    });
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code ?? -1)));
  return {
    url,
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function post(url: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? '' : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

export async function state(base: string): Promise<UiState> {
  return getJson<UiState>(`${base}api/state`);
}

export function sideOf(st: UiState, id: SideId): SideState {
  const s = st.sides.find((x) => x.id === id);
  if (!s) throw new Error(`no side ${id} in the state`);
  return s;
}

/** Polls an async condition every 200 ms; the deadline only turns a hang into a failure naming what was awaited. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** True while /proc has the process (Linux). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
