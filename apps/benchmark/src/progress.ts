/** A one-line live progress bar on a TTY (stderr); silent elsewhere. */
import { fmtInt } from './report';

export interface ProgressState {
  label: string;
  phase: string;
  elapsedSec: number;
  totalSec: number;
  rate: number;
  unit: string;
  connected: number;
  errors: number;
  mismatches: number;
}

export function renderProgress(s: ProgressState, width = 24): string {
  const frac = s.totalSec > 0 ? Math.min(1, Math.max(0, s.elapsedSec / s.totalSec)) : 0;
  const full = Math.round(frac * width);
  const bar = `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
  const bad = s.errors + s.mismatches > 0 ? `  errors ${fmtInt(s.errors)} bad ${fmtInt(s.mismatches)}` : '';
  return `${s.label.padEnd(10)} ${bar} ${s.elapsedSec.toFixed(1).padStart(5)}/${s.totalSec.toFixed(0)}s ${s.phase.padEnd(8)} ${fmtInt(s.rate).padStart(10)} ${s.unit}  conns ${fmtInt(s.connected)}${bad}`;
}

export class Progress {
  private active = false;
  constructor(private readonly enabled: boolean, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  static auto(wanted: boolean): Progress {
    return new Progress(wanted && process.stderr.isTTY === true);
  }

  update(s: ProgressState): void {
    if (!this.enabled) return;
    const cols = this.stream.columns ?? 120;
    this.stream.write(`\r\x1b[2K${renderProgress(s).slice(0, cols - 1)}`);
    this.active = true;
  }

  /** Prints a line above the bar (or plainly when there is no bar). */
  log(line: string): void {
    if (this.active) this.stream.write('\r\x1b[2K');
    this.active = false;
    this.stream.write(`${line}\n`);
  }

  clear(): void {
    if (this.enabled && this.active) this.stream.write('\r\x1b[2K');
    this.active = false;
  }
}
