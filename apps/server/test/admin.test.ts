import * as net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PacketId, ResultCode, ServerStatusRequest, ServerStatusResponse, SessionListRequest, SessionListResponse, encodeMessage } from '@fastport/protocol';
import { Client, FrameDecoder, FrameEncoder, PROXY_V2_SIGNATURE, type Frame, type Server, type Session } from '@fastport/session';
import { AdminGate, pageAcross, sumStatus, type StatusSummary } from '../src/admin';
import { adminGate, parseServerArgs, startAdminListener, startServer } from '../src/main';
import { localAdminSource } from '../src/admin';

const logger = pino({ level: 'silent' });

function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

describe('admin packets', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function start(argv: string[]): Promise<{ server: Server; port: number }> {
    const server = await startServer(parseServerArgs([...argv, '--engine', 'node', '--port', '0', '--host', '127.0.0.1']), logger);
    cleanups.push(() => server.close(500));
    return { server, port: server.address?.port ?? 0 };
  }

  async function connect(port: number) {
    const client = new Client({ engine: 'node', memoryBudget: false });
    cleanups.push(() => client.close(200));
    const frames: { id: number; payload: Buffer }[] = [];
    client.on('frame', (_s: Session, f: Frame) => frames.push({ id: f.id, payload: Buffer.from(f.payload) }));
    const session = await client.connect({ host: '127.0.0.1', port });
    /** Sends status then sessions with `token`; resolves with both replies. */
    const ask = async (token: string) => {
      const before = frames.length;
      session.send(encodeMessage(ServerStatusRequest, { authToken: token }), PacketId.ServerStatusRequest);
      session.send(encodeMessage(SessionListRequest, { authToken: token, offset: 0, limit: 10 }), PacketId.SessionListRequest);
      await waitFor(() => frames.length >= before + 2, 'two admin replies');
      const [st, list] = frames.slice(before, before + 2);
      expect([st!.id, list!.id]).toEqual([PacketId.ServerStatusResponse, PacketId.SessionListResponse]);
      return { status: ServerStatusResponse.decode(st!.payload), list: SessionListResponse.decode(list!.payload) };
    };
    return { session, ask };
  }

  it('without --admin-token or --admin-port, admin is off: status and session list are refused with UNAUTHORIZED, nothing leaks, refusals are counted', async () => {
    const { server, port } = await start([]);
    const other = await connect(port); // a session whose address must not leak
    const { ask } = await connect(port);
    for (const token of ['', 'guess']) {
      const { status, list } = await ask(token);
      expect(status.result).toBe(ResultCode.UNAUTHORIZED);
      expect(status).toMatchObject({ connections: 0, engineName: '', totalConnections: 0n });
      expect(list.result).toBe(ResultCode.UNAUTHORIZED);
      expect(list.sessions).toEqual([]);
      expect(list.total).toBe(0);
    }
    expect(adminGate(server)!.refused).toBe(4);
    expect(other.session.state).toBe('open');
  });

  it('with --admin-token: a wrong or missing token is refused, the right one gets the status and the session list', async () => {
    const { server, port } = await start(['--admin-token', 'correct horse']);
    const { ask } = await connect(port);
    const wrong = await ask('correct hors'); // a prefix: different length, still refused
    expect(wrong.status.result).toBe(ResultCode.UNAUTHORIZED);
    expect(wrong.list.result).toBe(ResultCode.UNAUTHORIZED);
    expect((await ask('')).status.result).toBe(ResultCode.UNAUTHORIZED);
    const ok = await ask('correct horse');
    expect(ok.status).toMatchObject({ result: ResultCode.OK, engineName: 'node', connections: 1, workers: 1, adminRefused: 4n });
    expect(ok.list).toMatchObject({ result: ResultCode.OK, total: 1 });
    expect(ok.list.sessions[0]).toMatchObject({ remoteAddress: '127.0.0.1', worker: 0 });
    expect(adminGate(server)!.refused).toBe(4);
  });

  it('--admin-port: a loopback listener answers without a token while the main port still refuses', async () => {
    const { server, port } = await start([]);
    const gate = adminGate(server)!;
    const admin = await startAdminListener(0, localAdminSource(server, 0, () => gate.refused), logger);
    cleanups.push(() => admin.close(200));
    expect(admin.address?.address).toBe('127.0.0.1');
    const main = await connect(port);
    expect((await main.ask('')).status.result).toBe(ResultCode.UNAUTHORIZED);
    const viaAdmin = await connect(admin.address!.port);
    const { status, list } = await viaAdmin.ask('');
    // The admin listener reports the main server: its one session (the admin connection is not one of them).
    expect(status).toMatchObject({ result: ResultCode.OK, connections: 1, adminRefused: 2n });
    expect(list.sessions.map((s) => s.remoteAddress)).toEqual(['127.0.0.1']);
  });

  it('--proxy-protocol: sessions carry the address from the PROXY header (seen in the admin session list); a connection without one never becomes a session', async () => {
    const { server, port } = await start(['--proxy-protocol', '--proxy-timeout', '2000', '--admin-token', 'k']);
    const raw = async (first: Uint8Array) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.on('error', () => {});
      const frames: { id: number; payload: Buffer }[] = [];
      const decoder = new FrameDecoder('fastport');
      sock.on('data', (d) => decoder.push(d, (f) => frames.push({ id: f.id, payload: Buffer.from(f.payload) }), () => {}));
      const closed = new Promise<void>((r) => sock.on('close', () => r()));
      await new Promise<void>((r) => sock.once('connect', () => r()));
      sock.write(first);
      return { sock, frames, closed };
    };
    const client = await raw(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 4242 9000\r\n'));
    cleanups.push(async () => client.sock.destroy());
    await waitFor(() => server.sessions.size === 1, 'the proxied session');
    const noHeader = await raw(new FrameEncoder('fastport').encode(encodeMessage(SessionListRequest, { authToken: 'k' }), PacketId.SessionListRequest));
    await noHeader.closed;
    expect(noHeader.frames).toEqual([]);
    // The operator's own connection comes through the balancer too (a LOCAL header: its real address).
    const local = Buffer.from([...PROXY_V2_SIGNATURE, 0x20, 0x00, 0, 0]);
    const op = await raw(Buffer.concat([local, new FrameEncoder('fastport').encode(encodeMessage(SessionListRequest, { authToken: 'k', limit: 10 }), PacketId.SessionListRequest)]));
    cleanups.push(async () => op.sock.destroy());
    await waitFor(() => op.frames.length === 1, 'the session list');
    const list = SessionListResponse.decode(op.frames[0]!.payload);
    expect(list.result).toBe(ResultCode.OK);
    expect(list.sessions.map((s) => `${s.remoteAddress}:${s.remotePort}`).sort()).toEqual(['127.0.0.1:' + (op.sock.localPort ?? 0), '203.0.113.7:4242'].sort());
    expect(server.proxyStats()).toMatchObject({ accepted: { proxy: 1, local: 1 }, rejected: { 'proxy-missing': 1 } });
  });

  it('parses the admin, metrics, workers and PROXY flags', () => {
    expect(parseServerArgs([])).toMatchObject({ workers: undefined, adminToken: undefined, adminPort: undefined, metricsPort: undefined, proxyProtocol: false });
    expect(parseServerArgs(['--workers', '3', '--admin-token', 'x', '--admin-port', '9100', '--metrics-port', '9101', '--proxy-protocol', '--proxy-timeout', '700'])).toMatchObject({
      workers: 3,
      adminToken: 'x',
      adminPort: 9100,
      metricsPort: 9101,
      metricsHost: '127.0.0.1',
      proxyProtocol: true,
      proxyTimeout: 700,
    });
    expect(parseServerArgs(['--workers', 'auto']).workers).toBeGreaterThanOrEqual(1);
    expect(() => parseServerArgs(['--workers', '0'])).toThrow(/--workers/);
  });
});

describe('admin helpers', () => {
  it('AdminGate compares tokens of any length and refuses everything when no token is configured', () => {
    const gate = new AdminGate('s3cret');
    expect(gate.allows('s3cret')).toBe(true);
    for (const t of ['', 's3cre', 's3cret ', 'S3cret', 's3cret'.repeat(100)]) expect(gate.allows(t)).toBe(false);
    const off = new AdminGate(undefined);
    expect(off.enabled).toBe(false);
    expect(off.allows('')).toBe(false);
    expect(new AdminGate('').allows('')).toBe(false);
    expect(new AdminGate(undefined, true).allows('')).toBe(true);
  });

  it('pageAcross maps a page of the concatenated lists onto each worker', () => {
    expect(pageAcross([3, 0, 5, 2], 0, 100)).toEqual([
      { offset: 0, limit: 3 },
      { offset: 0, limit: 0 },
      { offset: 0, limit: 5 },
      { offset: 0, limit: 2 },
    ]);
    expect(pageAcross([3, 0, 5, 2], 2, 4)).toEqual([
      { offset: 2, limit: 1 },
      { offset: 0, limit: 0 },
      { offset: 0, limit: 3 },
      { offset: 0, limit: 0 },
    ]);
    expect(pageAcross([3, 5], 9, 4)).toEqual([
      { offset: 0, limit: 0 },
      { offset: 0, limit: 0 },
    ]);
  });

  it('sumStatus adds counts over workers, keeps the longest uptime and lists engines once', () => {
    const w = (n: number): StatusSummary => ({
      engine: 'epoll',
      workers: 1,
      connections: n,
      totalConnections: n * 2,
      bytesIn: 10,
      bytesOut: 20,
      packetsIn: 1,
      packetsOut: 2,
      idleDisconnects: 0,
      rssBytes: 1000,
      cpuPercent: 5,
      ioThreads: 1,
      uptimeMs: n * 100,
      adminRefused: 1,
    });
    expect(sumStatus([w(1), w(2), w(3)])).toMatchObject({ engine: 'epoll', workers: 3, connections: 6, totalConnections: 12, rssBytes: 3000, uptimeMs: 300, adminRefused: 3 });
  });
});
