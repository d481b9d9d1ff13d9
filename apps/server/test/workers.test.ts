import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { engineAvailability } from '@fastport/native-io';
import { PacketId, ResultCode, ServerStatusRequest, ServerStatusResponse, SessionListRequest, SessionListResponse, encodeMessage } from '@fastport/protocol';
import { Client, type Frame, type Session, type SessionCloseInfo } from '@fastport/session';
import { httpGet, metricSeries, metricValue, spawnServer, waitFor, type ServerProc } from './server-proc';

const epoll = engineAvailability('epoll');

describe('fastport-server --workers', () => {
  const procs: ServerProc[] = [];
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close(100);
    for (const p of procs.splice(0)) p.kill();
  });

  async function adminAsk(port: number, token: string) {
    const client = new Client({ engine: 'node', memoryBudget: false });
    clients.push(client);
    const copies: { id: number; payload: Buffer }[] = [];
    client.on('frame', (_s: Session, f: Frame) => copies.push({ id: f.id, payload: Buffer.from(f.payload) }));
    const session = await client.connect({ host: '127.0.0.1', port });
    session.send(encodeMessage(ServerStatusRequest, { authToken: token }), PacketId.ServerStatusRequest);
    session.send(encodeMessage(SessionListRequest, { authToken: token, offset: 0, limit: 1000 }), PacketId.SessionListRequest);
    await waitFor(() => copies.length >= 2, 'admin replies');
    const st = copies.find((c) => c.id === PacketId.ServerStatusResponse)!;
    const list = copies.find((c) => c.id === PacketId.SessionListResponse)!;
    const out = { status: ServerStatusResponse.decode(st.payload), list: SessionListResponse.decode(list.payload) };
    await client.close(100);
    return out;
  }

  it.skipIf(!epoll.available)(
    `two epoll workers: sessions gauge summed across workers, admin covers all workers, a killed worker is restarted, SIGTERM stops all gracefully${epoll.available ? '' : ` — UNAVAILABLE: ${epoll.reason}`}`,
    async () => {
      const proc = spawnServer([
        '--workers', '2', '--engine', 'epoll', '--host', '127.0.0.1', '--port', '0', '--admin-token', 'tok',
        '--metrics-port', '0', '--admin-port', '0', '--heartbeat', '100', '--restart-delay', '50', '--grace', '3000',
      ]);
      procs.push(proc);
      const ready = await proc.line((l) => l['supervisor'] === true, 'supervisor listening');
      const port = ready['port'] as number;
      const metricsPort = (await proc.line((l) => typeof l['metricsPort'] === 'number', 'metrics listening'))['metricsPort'] as number;
      const adminPort = (await proc.line((l) => typeof l['adminPort'] === 'number', 'admin listening'))['adminPort'] as number;
      const listening = proc.lines.filter((l) => l['msg'] === 'worker listening');
      expect(listening.map((l) => l['worker']).sort()).toEqual([0, 1]);
      expect(new Set(listening.map((l) => l['port']))).toEqual(new Set([port]));

      // 40 sessions through the shared port: the kernel spreads them over both workers.
      const client = new Client({ engine: 'node', memoryBudget: false });
      clients.push(client);
      const sessions: Session[] = [];
      for (let i = 0; i < 40; i++) sessions.push(await client.connect({ host: '127.0.0.1', port }));
      const closed: SessionCloseInfo[] = [];
      for (const s of sessions) s.on('close', (info) => closed.push(info));

      let text = '';
      await waitFor(async () => {
        text = (await httpGet(metricsPort, '/metrics/sum')).body;
        return metricValue(text, 'fastport_sessions_active') === 40;
      }, 'summed sessions gauge = 40');
      const perWorker = metricSeries((await httpGet(metricsPort, '/metrics')).body, 'fastport_sessions_active');
      expect(perWorker.map(([labels]) => labels).sort()).toEqual(['{worker="0"}', '{worker="1"}']);
      expect(perWorker.reduce((n, [, v]) => n + v, 0)).toBe(40);
      expect(metricValue(text, 'fastport_workers_running')).toBe(2);
      // Heartbeats (--heartbeat 100) reach the RTT histogram, summed over workers.
      await waitFor(async () => (metricValue((await httpGet(metricsPort, '/metrics/sum')).body, 'fastport_heartbeat_rtt_seconds_count') ?? 0) >= 40, 'heartbeat RTTs observed');

      // Admin on the main port: refused without the token, all workers with it, and on the loopback admin port.
      const refused = await adminAsk(port, '');
      expect(refused.status.result).toBe(ResultCode.UNAUTHORIZED);
      expect(refused.list.result).toBe(ResultCode.UNAUTHORIZED);
      const viaToken = await adminAsk(port, 'tok');
      expect(viaToken.status).toMatchObject({ result: ResultCode.OK, workers: 2, engineName: 'epoll', connections: 41, adminRefused: 2n });
      expect(viaToken.list.total).toBe(41);
      expect(viaToken.list.sessions.length).toBe(41);
      const byWorker = new Map<number, number>();
      for (const s of viaToken.list.sessions) byWorker.set(s.worker, (byWorker.get(s.worker) ?? 0) + 1);
      expect([...byWorker.keys()].every((w) => w === 0 || w === 1)).toBe(true);
      const viaAdminPort = await adminAsk(adminPort, '');
      expect(viaAdminPort.status).toMatchObject({ result: ResultCode.OK, workers: 2, connections: 40 });
      const sessionCount = metricSeries((await httpGet(metricsPort, '/metrics')).body, 'fastport_sessions_active');
      expect(Object.fromEntries(sessionCount)).toEqual(
        Object.fromEntries([0, 1].map((w) => [`{worker="${w}"}`, viaAdminPort.list.sessions.filter((s) => s.worker === w).length])),
      );

      // Kill worker 0: its sessions drop, the supervisor starts a new worker 0 on the same port.
      const victim = listening.find((l) => l['worker'] === 0)!;
      const onVictim = sessionCount.find(([l]) => l === '{worker="0"}')![1];
      const mark = proc.lines.length;
      process.kill(victim['pid'] as number, 'SIGKILL');
      const died = await proc.line((l) => l['msg'] === 'worker died: restarting' && l['worker'] === 0, 'restart notice', 20_000, mark);
      expect(died).toMatchObject({ signal: 'SIGKILL', crashesInARow: 1 });
      const again = await proc.line((l) => l['msg'] === 'worker listening' && l['worker'] === 0, 'worker 0 listening again', 20_000, mark);
      expect(again['pid']).not.toBe(victim['pid']);
      expect(again['port']).toBe(port);
      await waitFor(() => closed.length === onVictim, `the ${onVictim} sessions of the killed worker closed`);
      // Killed again at once: the second crash in a row waits twice as long (backoff 50 ms doubling, 20% jitter).
      const mark2 = proc.lines.length;
      process.kill(again['pid'] as number, 'SIGKILL');
      const died2 = await proc.line((l) => l['msg'] === 'worker died: restarting' && l['worker'] === 0, 'second restart notice', 20_000, mark2);
      expect(died2).toMatchObject({ crashesInARow: 2 });
      expect(died2['restartInMs']).toBeGreaterThanOrEqual(80);
      expect(died2['restartInMs']).toBeLessThanOrEqual(100);
      await proc.line((l) => l['msg'] === 'worker listening' && l['worker'] === 0, 'worker 0 listening a third time', 20_000, mark2);
      await waitFor(async () => {
        text = (await httpGet(metricsPort, '/metrics/sum')).body;
        return metricValue(text, 'fastport_sessions_active') === 40 - onVictim && metricValue(text, 'fastport_workers_running') === 2;
      }, 'gauge after the restart');
      expect(metricValue(text, 'fastport_worker_restarts_total{slot="0"}')).toBe(2);
      expect(metricValue(text, 'fastport_worker_restarts_total{slot="1"}')).toBe(0);
      for (let i = 0; i < 10; i++) sessions.push(await client.connect({ host: '127.0.0.1', port }));
      await waitFor(async () => metricValue((await httpGet(metricsPort, '/metrics/sum')).body, 'fastport_sessions_active') === 50 - onVictim, 'new sessions counted');

      // SIGTERM: every worker stops gracefully (GOAWAY, flush), then the supervisor exits 0.
      const goaways: string[] = [];
      client.on('goaway', (_s, g) => goaways.push(g.reason));
      const beforeStop = proc.lines.length;
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      const stopped = proc.lines.slice(beforeStop).filter((l) => l['msg'] === 'stopped');
      const supervisorStop = stopped.find((l) => l['role'] === 'supervisor') as { workers: { worker: number; code: number }[]; clean: boolean };
      expect(supervisorStop.clean).toBe(true);
      expect(supervisorStop.workers.map((w) => [w.worker, w.code]).sort()).toEqual([
        [0, 0],
        [1, 0],
      ]);
      const workerStops = stopped.filter((l) => typeof l['worker'] === 'number') as { worker: number; flushed: number; timedOut: number }[];
      expect(workerStops.map((w) => w.worker).sort()).toEqual([0, 1]);
      expect(workerStops.reduce((n, w) => n + w.flushed, 0)).toBe(50 - onVictim);
      expect(workerStops.every((w) => w.timedOut === 0)).toBe(true);
      // GOAWAY goes to peers the server has seen speak the session protocol (they answered a heartbeat).
      const sentGoaway = (workerStops as unknown as { sessions: { goaway: boolean }[] }[]).reduce((n, w) => n + w.sessions.filter((x) => x.goaway).length, 0);
      expect(sentGoaway).toBeGreaterThanOrEqual(40 - onVictim);
      await waitFor(() => goaways.length === sentGoaway, `a GOAWAY for each one the workers sent (got ${goaways.length} of ${sentGoaway})`);
      expect(new Set(goaways)).toEqual(new Set(['shutdown']));
    },
    90_000,
  );

  it('without --workers: one process serves metrics (worker="0") and the loopback admin port itself', async () => {
    const proc = spawnServer(['--engine', 'node', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--admin-port', '0']);
    procs.push(proc);
    const ready = await proc.line((l) => l['msg'] !== undefined && String(l['msg']).startsWith('fastport-server listening'), 'listening');
    expect(ready['worker']).toBe(0);
    const metricsPort = (await proc.line((l) => typeof l['metricsPort'] === 'number', 'metrics listening'))['metricsPort'] as number;
    const adminPort = (await proc.line((l) => typeof l['adminPort'] === 'number', 'admin listening'))['adminPort'] as number;
    const client = new Client({ engine: 'node', memoryBudget: false });
    clients.push(client);
    await client.connect({ host: '127.0.0.1', port: ready['port'] as number });
    await waitFor(async () => metricValue((await httpGet(metricsPort, '/metrics')).body, 'fastport_sessions_active{worker="0"}') === 1, 'gauge = 1');
    const admin = await adminAsk(adminPort, '');
    expect(admin.status).toMatchObject({ result: ResultCode.OK, workers: 1, connections: 1 });
    expect((await adminAsk(ready['port'] as number, '')).status.result).toBe(ResultCode.UNAUTHORIZED);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('node engine workers share the port through cluster (no SO_REUSEPORT on Node < 22.12) and stop on SIGTERM', async () => {
    const proc = spawnServer(['--workers', '2', '--engine', 'node', '--host', '127.0.0.1', '--port', '0', '--mode', 'echo', '--grace', '2000']);
    procs.push(proc);
    const ready = await proc.line((l) => l['supervisor'] === true, 'supervisor listening');
    expect(ready['portSharing']).toBe('cluster');
    const port = ready['port'] as number;
    const echoes = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const sock = net.connect({ host: '127.0.0.1', port });
        await new Promise<void>((r, j) => sock.once('connect', () => r()).once('error', j));
        const got: Buffer[] = [];
        sock.on('data', (d) => got.push(d));
        sock.write(Buffer.from([0, 8, 0, 1, 9, 8, 7, 6]));
        await waitFor(() => Buffer.concat(got).length === 8, 'echo');
        sock.destroy();
        return Buffer.concat(got).toString('hex');
      }),
    );
    expect(new Set(echoes)).toEqual(new Set(['0008000109080706']));
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('a worker that cannot listen fails the start: the supervisor exits 1 instead of restarting it forever', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const proc = spawnServer(['--workers', '2', '--engine', epoll.available ? 'epoll' : 'node', '--host', '127.0.0.1', '--port', String(port)]);
      procs.push(proc);
      expect((await proc.exited).code).toBe(1);
      expect(proc.lines.some((l) => l['msg'] === 'worker died before it listened')).toBe(true);
    } finally {
      blocker.close();
    }
  }, 60_000);
});
