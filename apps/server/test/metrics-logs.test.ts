import * as net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, type Server } from '@fastport/session';
import { createServerMetrics, renderMetrics, serveMetrics } from '../src/metrics';
import { parseServerArgs, startServer } from '../src/main';
import { httpGet, metricSeries, metricValue, waitFor } from './server-proc';

describe('metrics', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function start(argv: string[] = []): Promise<Server> {
    const server = await startServer(parseServerArgs([...argv, '--engine', 'node', '--port', '0', '--host', '127.0.0.1']), pino({ level: 'silent' }));
    cleanups.push(() => server.close(200));
    return server;
  }

  it('two servers as two workers: per-worker series, and /metrics/sum adds gauges, counters by label and histogram buckets', async () => {
    const servers = [await start(['--heartbeat', '50']), await start(['--heartbeat', '50'])];
    const registries = servers.map((s, i) => createServerMetrics(s, { worker: String(i), adminRefused: () => i + 1 }));
    const client = new Client({ engine: 'node', memoryBudget: false });
    cleanups.push(() => client.close(100));
    const counts = [2, 3];
    const sessions = [];
    for (const [i, s] of servers.entries()) for (let k = 0; k < counts[i]!; k++) sessions.push(await client.connect({ host: '127.0.0.1', port: s.address!.port }));
    await waitFor(() => servers.every((s, i) => s.sessions.size === counts[i]), 'sessions open');
    // One session closes on each server: counted by reason.
    sessions[0]!.close();
    sessions[2]!.close();
    await waitFor(() => servers.every((s, i) => s.sessions.size === counts[i]! - 1), 'one closed on each');
    // Heartbeat round trips are observed, a few per session.
    const rttCount = async () => metricValue(await renderMetrics(await Promise.all(registries.map((r) => r.getMetricsAsJSON())), true), 'fastport_heartbeat_rtt_seconds_count') ?? 0;
    await waitFor(async () => (await rttCount()) >= 6, 'heartbeat RTTs');

    const parts = await Promise.all(registries.map((r) => r.getMetricsAsJSON()));
    const per = await renderMetrics(parts, false);
    const sum = await renderMetrics(parts, true);
    expect(metricValue(per, 'fastport_sessions_active{worker="0"}')).toBe(1);
    expect(metricValue(per, 'fastport_sessions_active{worker="1"}')).toBe(2);
    expect(metricValue(sum, 'fastport_sessions_active')).toBe(3);
    expect(metricValue(sum, 'fastport_sessions_total')).toBe(5);
    expect(metricValue(sum, 'fastport_accepts_total')).toBe(5);
    expect(metricSeries(sum, 'fastport_closes_total').reduce((n, [, v]) => n + v, 0)).toBe(2);
    expect(metricValue(sum, 'fastport_admin_refused_total')).toBe(3);
    // Histograms sum bucket by bucket: the +Inf bucket of the sum is the sum of the workers' counts.
    const inf = (text: string, w?: string) => metricValue(text, w === undefined ? 'fastport_heartbeat_rtt_seconds_bucket{le="+Inf"}' : `fastport_heartbeat_rtt_seconds_bucket{le="+Inf",worker="${w}"}`);
    expect(inf(sum)).toBe((inf(per, '0') ?? NaN) + (inf(per, '1') ?? NaN));
    expect(inf(sum)).toBe(metricValue(sum, 'fastport_heartbeat_rtt_seconds_count'));
    // Process metrics come per worker too (memory per connection needs them).
    expect(metricSeries(per, 'nodejs_heap_size_used_bytes').map(([l]) => l).sort()).toEqual(['{worker="0"}', '{worker="1"}']);

    // Over HTTP, with the Prometheus content type.
    const http = await serveMetrics('127.0.0.1', 0, async () => Promise.all(registries.map((r) => r.getMetricsAsJSON())));
    cleanups.push(() => new Promise((r) => http.close(() => r(undefined))));
    const port = (http.address() as net.AddressInfo).port;
    const got = await httpGet(port, '/metrics/sum');
    expect(got.status).toBe(200);
    expect(metricValue(got.body, 'fastport_sessions_active')).toBe(3);
    expect((await httpGet(port, '/nope')).status).toBe(404);
  });
});

describe('logs', () => {
  it('at debug, every line of a session carries its id and the worker; open, liveness changes and the close reason are logged', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const logger = pino({ level: 'debug', base: { worker: 3 } }, sink);
    const server = await startServer(parseServerArgs(['--engine', 'node', '--port', '0', '--host', '127.0.0.1', '--heartbeat', '40', '--log-level', 'debug']), logger, { worker: 3 });
    try {
      // A raw peer never answers heartbeats: suspect, then closed by the heartbeat timeout.
      const raw = net.connect({ host: '127.0.0.1', port: server.address!.port });
      raw.on('error', () => {});
      raw.on('data', () => {});
      await waitFor(() => lines.some((l) => l['msg'] === 'session closed'), 'the close line', 10_000);
      raw.destroy();
      const mine = lines.filter((l) => typeof l['session'] === 'number');
      const id = mine[0]!['session'];
      expect(mine.every((l) => l['session'] === id && l['worker'] === 3)).toBe(true);
      const msgs = mine.map((l) => l['msg']);
      expect(msgs[0]).toBe('session open');
      expect(msgs.filter((m) => m === 'session liveness').length).toBeGreaterThanOrEqual(1);
      expect(msgs[msgs.length - 1]).toBe('session closed');
      expect(mine.find((l) => l['msg'] === 'session liveness')).toMatchObject({ previous: 'active' });
      expect(mine[mine.length - 1]).toMatchObject({ reason: 'heartbeat-timeout' });
    } finally {
      await server.close(100);
    }
  });

  it('at info, no per-session listener is installed', async () => {
    const server = await startServer(parseServerArgs(['--engine', 'node', '--port', '0', '--host', '127.0.0.1']), pino({ level: 'info' }, new Writable({ write: (_c, _e, cb) => cb() })));
    try {
      expect(server.listenerCount('session')).toBe(0);
      expect(server.listenerCount('liveness')).toBe(0);
    } finally {
      await server.close(100);
    }
  });
});
