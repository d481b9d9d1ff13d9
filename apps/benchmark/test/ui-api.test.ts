/**
 * The dashboard without a browser: settings validation (unit), and the HTTP
 * API of the built CLI (`fastport-bench --ui`): the state's shape, 400s with
 * {error:{code,message}}, a side whose server dies is failed while the other
 * keeps running, the event stream closing stops the load, exports, admin view,
 * SIGTERM stops everything. Load is tiny: open loop at 200 msgs/s, 2-4 connections.
 */
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAvailability } from '@fastport/native-io';
import type { ApiErrorBody, SidePoint, SideSettings } from '../src/ui-api';
import { DEFAULT_SIDE_SETTINGS, connectionLimit, parseHostPort, processFileLimit, validateSettings } from '../src/ui-validate';
import { checkUiHost } from '../src/ui-server';
import { alive, post, sideOf, startDashboard, state, waitUntil, getJson, type Dashboard } from './ui-helpers';

const KIT = '/nonexistent-kit';
const cur: SideSettings = { ...DEFAULT_SIDE_SETTINGS, target: 'node' };

function refused(body: unknown, other = 0): { code: string; message: string } {
  try {
    validateSettings(body, cur, KIT, other);
  } catch (err) {
    const e = err as { status?: number; code?: string; message: string };
    expect(e.status).toBe(400);
    return { code: e.code ?? '', message: e.message };
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('settings validation', () => {
  it('accepts sensible settings and keeps unspecified ones', () => {
    expect(validateSettings({ connections: 8, depth: 4, size: 256 }, cur, KIT, 0)).toEqual({ ...cur, connections: 8, depth: 4, size: 256 });
    expect(validateSettings({ target: '127.0.0.1:9000', rate: 1000 }, cur, KIT, 0)).toMatchObject({ target: '127.0.0.1:9000', rate: 1000 });
    expect(validateSettings({ framing: 'large', size: 1024 * 1024 }, cur, KIT, 0)).toMatchObject({ framing: 'large', size: 1024 * 1024 });
  });
  it('refuses impossible numbers', () => {
    expect(refused({ connections: 0 }).code).toBe('bad-connections');
    expect(refused({ connections: -3 }).message).toMatch(/connections must be at least 1/);
    expect(refused({ connections: 2.5 }).code).toBe('bad-connections');
    expect(refused({ connections: 'many' }).code).toBe('bad-connections');
    expect(refused({ depth: 0 }).code).toBe('bad-depth');
    expect(refused({ size: 0 }).code).toBe('bad-size');
    expect(refused({ rate: -1 }).code).toBe('bad-rate');
    expect(refused({ threads: 0 }).code).toBe('bad-threads');
    expect(refused({ threads: 3, connections: 2 }).code).toBe('bad-threads');
  });
  it("refuses a size over the framing's largest payload", () => {
    const r = refused({ size: 70_000 });
    expect(r.code).toBe('size-too-large');
    expect(r.message).toMatch(/fastport framing's largest payload \(65531 bytes\)/);
    expect(refused({ framing: 'u32le', size: 17 * 1024 * 1024 }).code).toBe('size-too-large');
  });
  it('refuses more connections than the process may open (with what the other side holds)', () => {
    const limit = connectionLimit(0);
    expect(limit).toBe(processFileLimit() - 200);
    expect(refused({ connections: limit + 1 }).code).toBe('too-many-connections');
    expect(refused({ connections: 25_000 }).message).toMatch(/may open \d+ files/);
    expect(validateSettings({ connections: limit }, cur, KIT, 0).connections).toBe(limit);
    expect(refused({ connections: limit }, 10).message).toMatch(/the other side holds 10/);
  });
  it('refuses unknown engines, bad host:port, missing kit, unknown keys and framings', () => {
    expect(refused({ target: 'kqueue' }).code).toBe('unknown-target');
    expect(refused({ target: '127.0.0.1:99999' }).code).toBe('bad-target');
    expect(refused({ target: '127.0.0.1:' }).code).toBe('bad-target');
    expect(refused({ target: ':80' }).code).toBe('bad-target');
    expect(refused({ target: '' }).code).toBe('bad-target');
    expect(refused({ target: 'ref-uring' }).code).toBe('kit-missing');
    expect(refused({ framing: 'xml' }).code).toBe('bad-framing');
    expect(refused({ colour: 'red' }).code).toBe('unknown-setting');
    expect(refused([1, 2]).code).toBe('bad-body');
    if (process.platform === 'linux') expect(refused({ target: 'iocp' }).code).toBe('engine-unavailable');
  });
  it('parses host:port', () => {
    expect(parseHostPort('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseHostPort('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseHostPort('host:0')).toBeUndefined();
    expect(parseHostPort('a b:1')).toBeUndefined();
  });
  it('binds 127.0.0.1 only', () => {
    expect(() => checkUiHost('127.0.0.1')).not.toThrow();
    for (const h of ['0.0.0.0', '::', 'localhost', '192.168.1.1']) expect(() => checkUiHost(h)).toThrow(/binds 127\.0\.0\.1 only/);
  });
});

const POINT_KEYS: (keyof SidePoint)[] = ['t', 'msgsPerSec', 'mbPerSec', 'p50Us', 'p99Us', 'p999Us', 'connections', 'errors', 'serverCpuPct', 'serverRssBytes', 'eventsPerCrossing', 'clientCpuPct'];
const engines = (['epoll', 'uring', 'node'] as const).filter((e) => engineAvailability(e).available);
const [ENGINE_A, ENGINE_B] = [engines[0] ?? 'node', engines[1] ?? 'node'];
const SMALL = { connections: 2, depth: 1, size: 64, rate: 200 };

/** An open event stream, as the page holds one: the load runs only while one is open (or heartbeats come). */
function openStream(base: string): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}api/events`, (res) => {
      res.resume();
      resolve(req);
    });
    req.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
  });
}

describe('fastport-bench --ui API (built CLI)', () => {
  let d: Dashboard;
  beforeAll(async () => {
    d = await startDashboard();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('refuses --ui-host other than 127.0.0.1 with a clear error', async () => {
    const { runChild } = await import('@fastport/test-utils');
    const { BIN } = await import('./ui-helpers');
    const r = await runChild(process.execPath, [BIN, '--ui', '--ui-host', '0.0.0.0'], { timeoutMs: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--ui binds 127\.0\.0\.1 only \(asked for '0\.0\.0\.0'\)/);
  });

  it('serves the page and an idle state', async () => {
    const page = await fetch(d.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<script src="\/ui\/app\.js">/);
    const js = await fetch(`${d.url}ui/app.js`);
    expect(js.status).toBe(200);
    expect((await js.text()).length).toBeGreaterThan(10_000); // uPlot is in the bundle
    const st = await state(d.url);
    expect(st.sides.map((s) => [s.id, s.status])).toEqual([
      ['A', 'idle'],
      ['B', 'idle'],
    ]);
    expect(st.client.cores).toBeGreaterThanOrEqual(1);
  });

  it('answers a bad setting with 400 and {error:{code,message}}', async () => {
    for (const [body, code] of [
      [{ connections: 0 }, 'bad-connections'],
      [{ connections: 25_000 }, 'too-many-connections'],
      [{ size: 100_000 }, 'size-too-large'],
      [{ target: 'nosuch' }, 'unknown-target'],
      [{ target: 'localhost:70000' }, 'bad-target'],
    ] as const) {
      const r = await post(`${d.url}api/side/A/settings`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      const e = (r.json as ApiErrorBody).error;
      expect(e.code).toBe(code);
      expect(e.message.length).toBeGreaterThan(10);
      // start with the same body is refused too, and nothing starts
      expect((await post(`${d.url}api/side/A/start`, body)).status).toBe(400);
    }
    expect(sideOf(await state(d.url), 'A').status).toBe('idle');
    expect((await post(`${d.url}api/side/C/start`)).status).toBe(404);
  });

  it('refuses requests another web page could make: a foreign Host, a POST that is not JSON', async () => {
    const port = Number(new URL(d.url).port);
    const foreign = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/state', headers: { host: `evil.example:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(foreign).toBe(403);
    const form = await fetch(`${d.url}api/side/A/start`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'connections=4' });
    expect(form.status).toBe(415);
    expect(sideOf(await state(d.url), 'A').status).toBe('idle');
  });

  it('runs A and B, a point a second with every field; a side whose server dies fails and the other keeps running', async () => {
    const stream = await openStream(d.url);
    try {
      expect((await post(`${d.url}api/side/A/start`, { ...SMALL, target: ENGINE_A })).status).toBe(202);
      expect((await post(`${d.url}api/side/B/start`, { ...SMALL, target: ENGINE_B })).status).toBe(202);
      await waitUntil('both sides have 2 points', async () => {
        const st = await state(d.url);
        return st.sides.every((s) => s.status === 'running' && s.points.length >= 2);
      });
      let st = await state(d.url);
      for (const s of st.sides) {
        expect(s.server?.kind).toBe('fastport-server');
        expect(s.server?.admin).toBe(true);
        const p = s.points[s.points.length - 1]!;
        expect(Object.keys(p).sort()).toEqual([...POINT_KEYS].sort());
        expect(p.msgsPerSec).toBeGreaterThan(0);
        expect(p.connections).toBe(2);
        expect(p.errors).toBe(0);
        expect(p.serverRssBytes).toBeGreaterThan(0);
        expect(p.serverCpuPct).not.toBeNull();
        expect(p.clientCpuPct).not.toBeNull();
        expect(p.eventsPerCrossing).toBeGreaterThan(0);
        expect(p.p99Us).toBeGreaterThanOrEqual(p.p50Us!);
      }
      // settings cannot change under a running side
      expect((await post(`${d.url}api/side/A/settings`, { connections: 3 })).status).toBe(409);

      // the admin view: status summary and a page of the session list, through the server's admin port and token
      const status = await getJson<{ engine: string; connections: number }>(`${d.url}api/side/A/admin/status`);
      expect(status.connections).toBe(2);
      const page = await getJson<{ total: number; sessions: { remote: string }[] }>(`${d.url}api/side/A/admin/sessions?offset=1&limit=5`);
      expect(page.total).toBe(2);
      expect(page.sessions).toHaveLength(1);
      expect(page.sessions[0]!.remote).toMatch(/^127\.0\.0\.1:\d+$/);

      // pause: no new requests; resume: they flow again
      expect((await post(`${d.url}api/side/B/pause`)).status).toBe(200);
      await waitUntil('B paused shows a second without replies', async () => {
        const b = sideOf(await state(d.url), 'B');
        return b.status === 'paused' && b.points[b.points.length - 1]!.msgsPerSec === 0;
      });
      expect((await post(`${d.url}api/side/B/start`)).status).toBe(202);
      await waitUntil('B resumed', async () => {
        const b = sideOf(await state(d.url), 'B');
        return b.status === 'running' && b.points[b.points.length - 1]!.msgsPerSec > 0;
      });

      // kill A's server: A fails with the reason, B keeps receiving points
      const pidA = sideOf(st, 'A').server!.pid!;
      process.kill(pidA, 'SIGKILL');
      await waitUntil('A failed', async () => sideOf(await state(d.url), 'A').status === 'failed');
      st = await state(d.url);
      expect(sideOf(st, 'A').reason).toMatch(/exited \(SIGKILL\)|closed/);
      const before = sideOf(st, 'B').points.length;
      await waitUntil('B keeps running', async () => {
        const b = sideOf(await state(d.url), 'B');
        return b.status === 'running' && b.points.length >= before + 2 && b.points[b.points.length - 1]!.msgsPerSec > 0;
      });

      // exports: JSON with the series, the points as CSV, and the CLI's SVG chart
      const json = (await getJson<{ tool: string; results: { label: string }[]; series: Record<string, { points: unknown[] }> }>(`${d.url}api/export.json`));
      expect(json.tool).toBe('fastport-bench');
      expect(json.results.map((r) => r.label)).toEqual([`A: ${ENGINE_A}`, `B: ${ENGINE_B}`]);
      expect(json.series['B']!.points.length).toBeGreaterThan(2);
      const csv = await (await fetch(`${d.url}api/export.csv`)).text();
      expect(csv.split('\n')[0]).toBe(['side', 'target', ...POINT_KEYS].join(','));
      expect(csv).toMatch(/\nB,/);
      const svg = await (await fetch(`${d.url}api/export.svg`)).text();
      expect(XMLValidator.validate(svg)).toBe(true);
      expect(svg).toContain(`B: ${ENGINE_B}`);
      const summary = await (await fetch(`${d.url}api/export-summary.csv`)).text();
      expect(summary.split('\n')[0]).toMatch(/client_saturated/);
    } finally {
      stream.destroy();
    }
    // the stream closed and no heartbeat comes: the watchdog stops B within seconds
    await waitUntil('B stopped after the stream closed', async () => sideOf(await state(d.url), 'B').status === 'stopped', 15_000);
    expect(sideOf(await state(d.url), 'B').reason).toBe('the page was closed');
  });

  it('measures a server already running (host:port); it shows as failed when that server goes away', async () => {
    // a plain byte echo stands for "a server already running": raw requests come back verbatim
    const sockets = new Set<net.Socket>();
    const echo = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('error', () => undefined);
      sock.pipe(sock);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
    const port = (echo.address() as net.AddressInfo).port;
    const stream = await openStream(d.url);
    try {
      expect((await post(`${d.url}api/side/B/start`, { ...SMALL, target: `127.0.0.1:${port}` })).status).toBe(202);
      await waitUntil('B has points from the external server', async () => sideOf(await state(d.url), 'B').points.some((p) => p.msgsPerSec > 0));
      const b = sideOf(await state(d.url), 'B');
      expect(b.server).toMatchObject({ kind: 'external', address: `127.0.0.1:${port}`, admin: false });
      const p = b.points[b.points.length - 1]!;
      // no pid, no engine counters for a server the bench did not start
      expect(p.serverCpuPct).toBeNull();
      expect(p.serverRssBytes).toBeNull();
      expect(p.eventsPerCrossing).toBeNull();
      // no admin access without its token
      const r = await fetch(`${d.url}api/side/B/admin/status`);
      expect(r.status).toBe(409);
      expect(((await r.json()) as ApiErrorBody).error.message).toMatch(/FASTPORT_ADMIN_TOKEN/);
      // the server goes away: B fails with the reason
      echo.close();
      for (const s of sockets) s.destroy();
      await waitUntil('B failed', async () => sideOf(await state(d.url), 'B').status === 'failed');
      expect(sideOf(await state(d.url), 'B').reason).toMatch(/connections were closed by 127\.0\.0\.1:\d+/);
    } finally {
      stream.destroy();
      echo.close();
    }
  });

  it('SIGTERM stops the load and the servers it started', async () => {
    const stream = await openStream(d.url);
    let pids: number[] = [];
    try {
      await post(`${d.url}api/side/A/start`, { ...SMALL, target: ENGINE_A });
      await post(`${d.url}api/side/B/start`, { ...SMALL, target: ENGINE_B });
      await waitUntil('both running with a point', async () => (await state(d.url)).sides.every((s) => s.status === 'running' && s.points.length >= 1));
      pids = (await state(d.url)).sides.map((s) => s.server!.pid!);
      expect(pids.every(alive)).toBe(true);
    } finally {
      stream.destroy();
    }
    const how = await d.stop();
    expect(how).toBe(143);
    expect(d.output()).toMatch(/SIGTERM: stopping the load and the servers/);
    await waitUntil('the servers are gone', async () => !pids.some(alive), 10_000);
  });
});

describe('a side whose server cannot start', () => {
  it('is failed with the reason, and the other side still runs', async () => {
    const broken = path.join(os.tmpdir(), `fastport-bench-broken-server-${process.pid}.js`);
    fs.writeFileSync(broken, "console.error('this server refuses to start'); process.exit(3);\n");
    const d = await startDashboard(['--server-bin', broken]);
    const sockets = new Set<net.Socket>();
    const echo = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('error', () => undefined);
      sock.pipe(sock);
    });
    try {
      await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
      const port = (echo.address() as net.AddressInfo).port;
      const stream = await openStream(d.url);
      try {
        await post(`${d.url}api/side/A/start`, { ...SMALL, target: ENGINE_A });
        await post(`${d.url}api/side/B/start`, { ...SMALL, target: `127.0.0.1:${port}` });
        await waitUntil('A failed', async () => sideOf(await state(d.url), 'A').status === 'failed');
        expect(sideOf(await state(d.url), 'A').reason).toMatch(/exited \(3\) before listening[\s\S]*this server refuses to start/);
        await waitUntil('B runs on', async () => {
          const b = sideOf(await state(d.url), 'B');
          return b.status === 'running' && b.points.filter((p) => p.msgsPerSec > 0).length >= 2;
        });
      } finally {
        stream.destroy();
      }
    } finally {
      await d.stop();
      echo.close();
      for (const s of sockets) s.destroy();
      fs.rmSync(broken, { force: true });
    }
  });
});
