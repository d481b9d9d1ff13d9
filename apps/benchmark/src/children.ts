/** Child processes this run started (servers, echo-bench, idle clients): killed if the run is interrupted. */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function killAll(signal: NodeJS.Signals = 'SIGKILL'): number {
  let n = 0;
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill(signal);
      n++;
    }
  }
  live.clear();
  return n;
}

let installed = false;

/** On SIGINT/SIGTERM/SIGHUP: stop every child, then exit (130 / 143 / 129). */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.once(sig, () => {
      process.stderr.write(`\nfastport-bench: ${sig}: stopping ${killAll()} child process(es)\n`);
      process.exit(codes[sig]);
    });
  }
  process.once('exit', () => killAll());
}
