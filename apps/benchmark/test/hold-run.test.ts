/**
 * The many-connections run (scripts/hold-run.js), scaled down: 2,000
 * connections held by two load processes against two fastport-server
 * workers, a heartbeat per connection per second, for 6 seconds. Asserts
 * what the full run must show — no connection lost, every echo correct, the
 * sessions gauge summed across workers equal to the established connections,
 * a clean stop — never how fast anything was.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';

const SCRIPT = path.resolve(__dirname, '..', 'scripts', 'hold-run.js');

interface HoldReport {
  requested: number;
  workers: number;
  load: string;
  connected: number;
  connectFailed: number;
  lost: number;
  bad: number;
  heartbeats: number;
  rttP50UsMax: number;
  rttP99UsMax: number;
  sessionsGauge: { steady: number[]; live: number; end: number; liveEnd: number };
  gaugeMatchesLive: boolean;
  rssBytesPerConnection: number;
  serverCpuPctOfOneCore: number;
  serverExit: { code: number | null; signal: string | null };
}

it('hold-run: 2,000 connections over 2 workers and 2 load processes, heartbeats each second: none lost, gauge = live count, clean stop', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-hold-'));
  const out = path.join(tmp, 'hold.json');
  const kit = path.join(os.tmpdir(), 'fastport-hold-kit');
  const args = [SCRIPT, '--connections', '2000', '--workers', '2', '--clients', '2', '--sources', '4', '--duration', '6', '--interval', '1', '--rate', '2000', '--kit', kit, '--json', out, '--quiet'];
  const run = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
  expect(fs.existsSync(out), `no report; stderr:\n${run.stderr}`).toBe(true);
  const r = JSON.parse(fs.readFileSync(out, 'utf8')) as HoldReport;
  expect(r).toMatchObject({ requested: 2000, workers: 2, connected: 2000, connectFailed: 0, lost: 0, bad: 0, gaugeMatchesLive: true });
  expect(r.sessionsGauge.steady).toEqual([2000, 2000]);
  expect(r.sessionsGauge.live).toBe(2000);
  // Every connection beat about once a second for 6 s.
  expect(r.heartbeats).toBeGreaterThanOrEqual(2000 * 4);
  for (const v of [r.rttP50UsMax, r.rttP99UsMax, r.rssBytesPerConnection, r.serverCpuPctOfOneCore]) expect(Number.isFinite(v)).toBe(true);
  expect(r.serverExit).toEqual({ code: 0, signal: null });
  expect(run.code).toBe(0);
  fs.rmSync(tmp, { recursive: true, force: true });
}, 150_000);
