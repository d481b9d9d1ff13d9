/**
 * A child process run without blocking the test worker: a synchronous
 * compile or harness run of a minute starves vitest's worker RPC
 * ("Timeout calling onTaskUpdate") and fails the whole run.
 */
import { spawn } from 'node:child_process';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runAsync(cmd: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = options.timeoutMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      if (timer !== null) clearTimeout(timer);
      reject(err);
    });
    child.once('close', (status, signal) => {
      if (timer !== null) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}
