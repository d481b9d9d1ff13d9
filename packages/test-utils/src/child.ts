/**
 * Child processes for tests: a server whose memory, CPU or file limits must
 * be its own, a CLI under test, a process to kill. Every run is bounded: a
 * child that outlives its limit is killed and the test sees why.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor, WAIT_MS } from './wait';

/**
 * Path of a preload (`node -r TS_REGISTER child.ts`) that lets a child node
 * run the workspace's TypeScript sources directly, with no build step.
 */
export const TS_REGISTER = path.resolve(__dirname, '..', 'ts-register.js');

/** The path of an executable on PATH, or null (a test that needs one fails or skips naming it). */
export function findExecutable(cmd: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // next
    }
  }
  return null;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The child was killed because it ran past `timeoutMs`. */
  timedOut: boolean;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, which is then closed (default: stdin is closed at once). */
  input?: string;
  /** SIGKILL after this long (default: no limit; the test's timeout still applies). */
  timeoutMs?: number;
}

/**
 * Runs a command to its end without blocking the test worker (a synchronous
 * run of a minute starves vitest's worker RPC and fails the whole run).
 * Resolves with its status and output; rejects only if it could not start.
 */
export function runChild(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {}); // a child that exits without reading its input
    child.stdin.end(options.input ?? '');
    const timer =
      options.timeoutMs === undefined
        ? null
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs);
    child.once('error', (err) => {
      if (timer !== null) clearTimeout(timer);
      reject(err);
    });
    child.once('close', (status, signal) => {
      if (timer !== null) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut });
    });
  });
}

export interface JsonChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Where the child's stderr goes: kept in `stderr` (default) or passed to the test's. */
  stderr?: 'pipe' | 'inherit';
}

/**
 * A long-running child that talks in JSON lines on stdout (non-JSON lines are
 * kept in `otherLines`) and takes commands as lines on stdin: a server under
 * test in its own process.
 */
export class JsonChild {
  readonly child: ChildProcess;
  readonly messages: Record<string, unknown>[] = [];
  readonly otherLines: string[] = [];
  stderr = '';
  /** Resolves with the exit status once the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';

  constructor(cmd: string, args: readonly string[], options: JsonChildOptions = {}) {
    this.child = spawn(cmd, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', options.stderr ?? 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdin?.on('error', () => {});
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.out += d;
      let nl: number;
      while ((nl = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, nl);
        this.out = this.out.slice(nl + 1);
        try {
          const parsed: unknown = JSON.parse(line);
          if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) this.messages.push(parsed as Record<string, unknown>);
          else this.otherLines.push(line);
        } catch {
          this.otherLines.push(line);
        }
      }
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for the first message (from index `from` on) that `match` accepts; fails early if the child exits. */
  async waitMessage<T = Record<string, unknown>>(match: (m: Record<string, unknown>) => boolean, what: string, timeoutMs = WAIT_MS, from = 0): Promise<T> {
    let found: Record<string, unknown> | undefined;
    await waitFor(
      () => {
        found = this.messages.slice(from).find(match);
        if (found !== undefined) return true;
        if (!this.running) throw new Error(`child exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr: ${this.stderr.slice(-2000)}`);
        return false;
      },
      what,
      timeoutMs,
    );
    return found as T;
  }

  /** Sends a command line (none if empty) and waits for the first later message that has `key`. */
  ask<T = Record<string, unknown>>(command: string, key: string, timeoutMs = WAIT_MS): Promise<T> {
    const from = this.messages.length;
    if (command !== '') this.child.stdin?.write(`${command}\n`);
    return this.waitMessage<T>((m) => m[key] !== undefined, `the child's answer to '${command}' (a message with '${key}')`, timeoutMs, from);
  }

  /** Asks the child to exit with `command` (if given), then SIGKILLs it after `graceMs`. */
  async stop(command: string | null = 'exit', graceMs = 5000): Promise<void> {
    if (!this.running) return;
    if (command !== null) this.child.stdin?.write(`${command}\n`);
    else this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
