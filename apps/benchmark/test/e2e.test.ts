/**
 * End-to-end: the built CLI (bin/fastport-bench → dist) starts fastport-server
 * on the node engine (port 0) and loads it for a second or two. Assertions are
 * about correctness (every reply verified, no errors, the outputs' shape),
 * never about how fast anything was.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server } from '@fastport/session';
import { runChild } from '@fastport/test-utils';
import { CSV_COLUMNS, parseCsv } from '../src/report';
import type { BenchReport } from '../src/types';

const BIN = path.resolve(__dirname, '..', 'bin', 'fastport-bench');
const built = fs.existsSync(path.resolve(__dirname, '..', 'dist', 'main.js')) && fs.existsSync(path.resolve(__dirname, '..', 'dist', 'worker.js'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-bench-e2e-'));

async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runChild(process.execPath, [BIN, '--no-progress', '--no-pin', ...args], { timeoutMs: 90_000 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.timedOut ? `${r.stderr}\n(killed after 90 s)` : r.stderr };
}

async function benchJson(args: string[]): Promise<{ report: BenchReport; stderr: string; code: number }> {
  const r = await bench([...args, '--json']);
  let report: BenchReport;
  try {
    report = JSON.parse(r.stdout) as BenchReport;
  } catch {
    throw new Error(`no JSON on stdout (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { report, stderr: r.stderr, code: r.code };
}

describe.skipIf(!built)(`fastport-bench end to end (node engine)${built ? '' : ' (skipped: dist/ is not built)'}`, () => {
  it('closed loop, raw echo: every reply verified, no errors, table on stderr', async () => {
    const { report, stderr, code } = await benchJson(['--engine', 'node', '--client-engine', 'node', '-c', '4', '-d', '2', '-s', '100', '--duration', '1.5', '--warmup', '0.5']);
    expect(code).toBe(0);
    expect(report.results).toHaveLength(1);
    const r = report.results[0]!;
    expect(r.status).toBe('ok');
    expect(r.server.engine).toBe('node');
    expect(r.clientEngine).toBe('node');
    expect(r.messages).toBeGreaterThan(0);
    expect(r.errors).toBe(0);
    expect(r.mismatches).toBe(0);
    expect(r.unanswered).toBe(0);
    expect(r.verifiedBytes).toBeGreaterThanOrEqual(r.messages * (100 + 4));
    expect(r.latency.count).toBe(r.messages);
    expect(r.latency.p50Us).toBeLessThanOrEqual(r.latency.p99Us);
    expect(r.latency.minUs).toBeLessThanOrEqual(r.latency.p50Us);
    expect(r.ratioToFirst).toBe(1);
    // the client-saturated flag follows its rule: >= 90% of the cores the client may use (--no-pin: all of them)
    expect(r.clientCpus).toBe(os.cpus().length);
    expect(r.clientSaturated).toBe(r.clientCpuPct! >= 90 * r.clientCpus!);
    expect(stderr.includes('CLIENT SATURATED')).toBe(r.clientSaturated);
    if (process.platform === 'linux') {
      expect(r.serverMetrics?.rssBytes).toBeGreaterThan(0);
      expect(r.serverMetrics?.engine?.events).toBeGreaterThan(0);
      expect(r.serverMetrics?.engine?.eventsPerCrossing).toBeGreaterThan(0);
    }
    expect(stderr).toMatch(/RTT, µs/);
  });

  it('BenchmarkRequest/Response against app mode, two worker threads', async () => {
    const { report, code } = await benchJson(['--engine', 'node', '--client-engine', 'node', '--protocol', 'benchmark', '-c', '3', '--client-threads', '2', '--duration', '1', '--warmup', '0.3']);
    expect(code).toBe(0);
    const r = report.results[0]!;
    expect(r.status).toBe('ok');
    expect(r.clientThreads).toBe(2);
    expect(r.messages).toBeGreaterThan(0);
    expect(r.mismatches).toBe(0);
    expect(r.errors).toBe(0);
    expect(report.settings['serverMode']).toBe('app');
  });

  it('raw echo through the session layer (--client-layer session) is verified the same way', async () => {
    const { report, code } = await benchJson(['--engine', 'node', '--client-engine', 'node', '--client-layer', 'session', '--framing', 'large', '-c', '2', '-d', '3', '-s', '3000', '--duration', '1', '--warmup', '0.3']);
    expect(code).toBe(0);
    const r = report.results[0]!;
    expect(r.status).toBe('ok');
    expect(r.messages).toBeGreaterThan(0);
    expect(r.mismatches).toBe(0);
    expect(report.settings['clientLayer']).toBe('session');
  });

  it('open loop, connection rate and large messages run clean', async () => {
    const open = await benchJson(['--engine', 'node', '--client-engine', 'node', '--rate', '500', '-c', '2', '--duration', '1', '--warmup', '0.2']);
    expect(open.code).toBe(0);
    expect(open.report.results[0]!.workload).toBe('open');
    expect(open.report.results[0]!.messages).toBeGreaterThan(0);
    expect(open.report.results[0]!.sentPerSec).toBeGreaterThan(0);
    expect(open.report.results[0]!.mismatches).toBe(0);

    const conn = await benchJson(['--engine', 'node', '--client-engine', 'node', '--workload', 'connect', '-c', '2', '--duration', '1', '--warmup', '0.2']);
    expect(conn.code).toBe(0);
    expect(conn.report.results[0]!.messages).toBeGreaterThan(0);
    expect(conn.report.results[0]!.mismatches).toBe(0);

    const big = await benchJson(['--engine', 'node', '--client-engine', 'node', '--workload', 'bandwidth', '-c', '1', '-d', '1', '--size', String(1024 * 1024 + 7), '--duration', '1', '--warmup', '0.2']);
    expect(big.code).toBe(0);
    const b = big.report.results[0]!;
    expect(b.messages).toBeGreaterThan(0);
    expect(b.mismatches).toBe(0);
    expect(b.verifiedBytes).toBeGreaterThanOrEqual(b.messages * (1024 * 1024 + 7));
    expect(big.report.settings['framing']).toBe('large');
  });

  it('idle connections: server RSS and heap per connection from several processes and sources', async () => {
    const { report, code } = await benchJson(['--engine', 'node', '--client-engine', 'node', '--workload', 'idle', '-c', '400', '--per-process', '200', '--sources', '2', '--settle', '0.5']);
    expect(code).toBe(0);
    const r = report.results[0]!;
    expect(r.status).toBe('ok');
    expect(r.idle?.connected).toBe(400);
    expect(r.idle?.processes).toBe(2);
    expect(r.idle?.sources).toEqual(['127.0.0.2', '127.0.0.3']);
    if (process.platform === 'linux') {
      expect(r.idle?.serverConnections).toBe(400);
      expect(Number.isFinite(r.idle?.rssPerConnBytes)).toBe(true);
      expect(r.idle?.heapPerConnBytes).not.toBeUndefined();
    }
  });

  it('--compare writes the chart, CSV and JSON; unavailable engines are skipped with a reason', async () => {
    const out = path.join(tmp, 'cmp');
    const r = await bench(['--compare', '--engine', 'node,rio', '--client-engine', 'node', '-c', '2', '--duration', '1', '--warmup', '0.2', '--out-dir', out, '--label', 'e2e', '--markdown', path.join(tmp, 'B.md')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rio\s+skipped/);
    const files = fs.readdirSync(out);
    const svg = files.find((f) => f.endsWith('.svg'));
    const csv = files.find((f) => f.endsWith('.csv'));
    const json = files.find((f) => f.endsWith('.json'));
    expect(svg && csv && json).toBeTruthy();
    expect(XMLValidator.validate(fs.readFileSync(path.join(out, svg!), 'utf8'))).toBe(true);
    const rows = parseCsv(fs.readFileSync(path.join(out, csv!), 'utf8'));
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows.slice(1).map((row) => row[CSV_COLUMNS.indexOf('label')])).toEqual(['node', 'rio']);
    const report = JSON.parse(fs.readFileSync(path.join(out, json!), 'utf8')) as BenchReport;
    expect(report.results.map((x) => x.status)).toEqual(['ok', 'skipped']);
    expect(fs.readFileSync(path.join(tmp, 'B.md'), 'utf8')).toContain('fastport-bench:e2e:begin');
  });

  describe('--target: a server already running (in-process Server on port 0)', () => {
    let server: Server;
    let port = 0;
    beforeAll(async () => {
      server = new Server({ engine: 'node', framing: 'u32le' });
      server.on('frame', (session, frame) => session.sendFrame(frame.bytes));
      port = (await server.listen(0, '127.0.0.1')).port;
    });
    afterAll(async () => {
      await server.close(500);
    });
    it('measures it, with CSV on stdout', async () => {
      const r = await bench(['--target', `127.0.0.1:${port}`, '--framing', 'u32le', '--client-engine', 'node', '-c', '2', '-s', '7', '--duration', '1', '--warmup', '0.2', '--csv']);
      expect(r.code).toBe(0);
      const rows = parseCsv(r.stdout);
      expect(rows[0]).toEqual([...CSV_COLUMNS]);
      const row = rows[1]!;
      expect(row[CSV_COLUMNS.indexOf('server_kind')]).toBe('external');
      expect(Number(row[CSV_COLUMNS.indexOf('messages')])).toBeGreaterThan(0);
      expect(Number(row[CSV_COLUMNS.indexOf('mismatches')])).toBe(0);
    });
  });

  it('rejects a size that does not fit the framing', async () => {
    const r = await bench(['--engine', 'node', '--size', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not fit fastport framing/);
  });
});
