import * as net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BenchmarkRequest, BenchmarkResponse, EchoRequest, EchoResponse, ErrorResponse, PacketId, PingRequest, PingResponse, ResultCode, ServerStatusResponse, ServerStatusRequest, encodeMessage } from '@fastport/protocol';
import { Client, FrameEncoder, type Frame, type Server, type Session } from '@fastport/session';
import { waitFor } from '@fastport/test-utils';
import { errorStats, parseServerArgs, startServer } from '../src/main';

/** A raw peer that never reads, and 1,024 small echo frames (16 KiB) for it to stream. */
async function neverReadingPeer(port: number): Promise<{ peer: net.Socket; batch: Buffer }> {
  const peer = net.connect({ host: '127.0.0.1', port });
  peer.on('error', () => {});
  await new Promise<void>((r) => peer.once('connect', () => r()));
  peer.pause();
  const enc = new FrameEncoder('fastport');
  const batch = Buffer.concat(Array.from({ length: 1024 }, () => Buffer.from(enc.encode(Buffer.alloc(12, 1), 0x10))));
  return { peer, batch };
}

const logger = pino({ level: 'silent' });

describe('fastport-server', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function start(argv: string[]): Promise<{ server: Server; port: number }> {
    const server = await startServer(parseServerArgs([...argv, '--port', '0', '--host', '127.0.0.1']), logger);
    cleanups.push(() => server.close(500));
    return { server, port: server.address?.port ?? 0 };
  }

  async function connect(port: number, framing: 'fastport' | 'u32le' = 'fastport') {
    const client = new Client({ engine: 'node', framing });
    cleanups.push(() => client.close(200));
    const frames: { id: number; payload: Buffer }[] = [];
    client.on('frame', (_s: Session, f: Frame) => frames.push({ id: f.id, payload: Buffer.from(f.payload) }));
    const session = await client.connect({ host: '127.0.0.1', port });
    return { session, frames };
  }

  it('parses flags: --rio is an alias of --engine rio; defaults', () => {
    expect(parseServerArgs(['--rio']).engine).toBe('rio');
    const d = parseServerArgs([]);
    expect(d).toMatchObject({ engine: 'auto', port: 9000, framing: 'fastport', mode: 'app' });
    expect(parseServerArgs(['--engine', 'epoll', '--framing', 'u32le', '--mode', 'echo', '--threads', '2'])).toMatchObject({
      engine: 'epoll',
      framing: 'u32le',
      mode: 'echo',
      threads: 2,
    });
  });

  it('app mode answers ping, echo and status (with the admin token); an unknown id gets ErrorResponse', async () => {
    const { port } = await start(['--engine', 'node', '--admin-token', 't0ken']);
    const { session, frames } = await connect(port);
    session.send(encodeMessage(PingRequest, { clientTimeUs: 42n, seq: 1 }), PacketId.PingRequest);
    session.send(encodeMessage(EchoRequest, { data: Buffer.from('hello'), seq: 2 }), PacketId.EchoRequest);
    session.send(encodeMessage(ServerStatusRequest, { authToken: 't0ken' }), PacketId.ServerStatusRequest);
    session.send(Buffer.from([1, 2, 3]), 0x7777);
    await waitFor(() => frames.length === 4, '4 replies');
    expect(frames.map((f) => f.id)).toEqual([PacketId.PingResponse, PacketId.EchoResponse, PacketId.ServerStatusResponse, PacketId.ErrorResponse]);
    expect(PingResponse.decode(frames[0]!.payload)).toMatchObject({ clientTimeUs: 42n, seq: 1 });
    const echo = EchoResponse.decode(frames[1]!.payload);
    expect(Buffer.from(echo.data).toString()).toBe('hello');
    expect(ServerStatusResponse.decode(frames[2]!.payload)).toMatchObject({ result: ResultCode.OK, engineName: 'node', connections: 1, workers: 1 });
    expect(ErrorResponse.decode(frames[3]!.payload)).toMatchObject({ code: ResultCode.UNKNOWN_PACKET, packetId: 0x7777 });
  });

  it('app mode echoes a BenchmarkRequest whose client_time_ns is nanoseconds since the epoch (uint64 above 2^53)', async () => {
    const { port } = await start(['--engine', 'node']);
    const { session, frames } = await connect(port);
    const clientTimeNs = 1_733_000_000_000_000_000n; // what a C++ FastPort client sends
    const max = 2n ** 64n - 1n;
    session.send(encodeMessage(BenchmarkRequest, { seq: 1, clientTimeNs, payload: Buffer.from('x') }), PacketId.BenchmarkRequest);
    session.send(encodeMessage(BenchmarkRequest, { seq: 2, clientTimeNs: max }), PacketId.BenchmarkRequest);
    await waitFor(() => frames.length === 2, '2 replies');
    expect(frames.map((f) => f.id)).toEqual([PacketId.BenchmarkResponse, PacketId.BenchmarkResponse]);
    const r1 = BenchmarkResponse.decode(frames[0]!.payload);
    const r2 = BenchmarkResponse.decode(frames[1]!.payload);
    expect(r1.clientTimeNs).toBe(clientTimeNs);
    expect(r2.clientTimeNs).toBe(max);
    // The server stamps its own clock in nanoseconds since the epoch too.
    expect(r1.serverTimeNs > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('app mode answers a garbage payload with DECODE_ERROR and keeps the session', async () => {
    const { port } = await start(['--engine', 'node']);
    const { session, frames } = await connect(port);
    session.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), PacketId.EchoRequest);
    session.send(encodeMessage(PingRequest, { seq: 9 }), PacketId.PingRequest);
    await waitFor(() => frames.length === 2, '2 replies');
    expect(ErrorResponse.decode(frames[0]!.payload).code).toBe(ResultCode.DECODE_ERROR);
    expect(PingResponse.decode(frames[1]!.payload).seq).toBe(9);
  });

  it('echo mode sends every u32le frame back verbatim', async () => {
    const { port } = await start(['--engine', 'node', '--mode', 'echo', '--framing', 'u32le']);
    const { session, frames } = await connect(port, 'u32le');
    const sizes = [0, 1, 64, 1000, 70_000];
    for (const n of sizes) session.send(Buffer.alloc(n, n & 0xff));
    await waitFor(() => frames.length === sizes.length, 'echoes');
    frames.forEach((f, i) => expect(f.payload.equals(Buffer.alloc(sizes[i]!, sizes[i]! & 0xff))).toBe(true));
    expect(new FrameEncoder('u32le').spec.headerSize).toBe(4);
  });

  it('a never-reading peer streaming tiny frames under --backpressure reject: every refused echo is counted, one error line per session per interval', async () => {
    // Before: one logger.error line with a stack per frame (tens of thousands for a few MiB of tiny frames).
    const lines: { msg: string; session?: number; code?: string; suppressed?: number; sessionErrors?: number }[] = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line)) };
    const captured = pino({ level: 'info' }, sink);
    const server = await startServer(
      parseServerArgs(['--engine', 'node', '--mode', 'echo', '--no-read-backpressure', '--backpressure', 'reject', '--max-pending', '65536', '--error-log-interval', '60000', '--port', '0', '--host', '127.0.0.1']),
      captured,
    );
    cleanups.push(() => server.close(200));
    const { peer, batch } = await neverReadingPeer(server.address?.port ?? 0);
    // Up to 8 MiB of 16-byte frames (the kernel absorbs the first few MiB of echoes), until enough were refused.
    for (let i = 0; i < 512 && (errorStats(server)?.total ?? 0) < 5000; i++) {
      if (!peer.write(batch)) await new Promise<void>((r) => peer.once('drain', () => r()));
    }
    await waitFor(() => (errorStats(server)?.total ?? 0) >= 5000, 'echo errors under backpressure', 30_000);
    peer.destroy();
    await waitFor(() => server.sessions.size === 0, 'peer session closed');
    await waitFor(() => lines.some((l) => l.msg.startsWith('handler errors not logged')), 'close summary');
    const st = errorStats(server)!;
    const errorLines = lines.filter((l) => l.msg === 'handler error');
    const summary = lines.find((l) => l.msg.startsWith('handler errors not logged'))!;
    expect(st.total).toBe(server.stats().handlerErrors); // counted exactly
    expect(st.byCode['ERR_BACKPRESSURE']).toBe(st.total);
    expect(errorLines).toHaveLength(1); // one session, one interval
    expect(summary.sessionErrors).toBe(st.total);
    expect(summary.suppressed).toBe(st.total - 1);
    console.log(
      `[server] never-reading peer: ${st.total} echo errors (ERR_BACKPRESSURE ${st.byCode['ERR_BACKPRESSURE']}) counted, ` +
        `${errorLines.length} error line + 1 close summary logged (${st.suppressed} suppressed)`,
    );
  }, 60_000);

  it('a never-reading peer streaming tiny frames under the default --backpressure drop: echoes past the limit are dropped and counted, no handler error', async () => {
    const server = await startServer(
      parseServerArgs(['--engine', 'node', '--mode', 'echo', '--no-read-backpressure', '--max-pending', '65536', '--port', '0', '--host', '127.0.0.1']),
      logger,
    );
    cleanups.push(() => server.close(200));
    const { peer, batch } = await neverReadingPeer(server.address?.port ?? 0);
    for (let i = 0; i < 512 && server.stats().dropped < 5000; i++) {
      if (!peer.write(batch)) await new Promise<void>((r) => peer.once('drain', () => r()));
    }
    await waitFor(() => server.stats().dropped >= 5000, 'echoes dropped under backpressure', 30_000);
    expect(server.stats().handlerErrors).toBe(0);
    expect(errorStats(server)?.total ?? 0).toBe(0);
    peer.destroy();
  }, 60_000);

  it('with read backpressure (the default) a never-reading peer is paused instead of failing every echo', async () => {
    const server = await startServer(
      parseServerArgs(['--engine', 'node', '--mode', 'echo', '--max-pending', '1048576', '--port', '0', '--host', '127.0.0.1']),
      logger,
    );
    cleanups.push(() => server.close(200));
    const { peer, batch } = await neverReadingPeer(server.address?.port ?? 0);
    let written = 0;
    // Writes until the server stops taking them (paused: the kernel buffers fill) or 16 MiB.
    const paused = waitFor(() => server.stats().readPaused === 1, 'the session paused', 30_000);
    for (let i = 0; i < 1024 && server.stats().readPaused === 0; i++) {
      written += batch.length;
      if (!peer.write(batch)) await Promise.race([new Promise<void>((r) => peer.once('drain', () => r())), paused]);
    }
    await paused;
    const st = errorStats(server)!;
    expect(st.total).toBe(0);
    expect(server.stats().handlerErrors).toBe(0);
    console.log(`[server] read backpressure on: peer wrote ${written} bytes of 16-byte frames, session paused, ${st.total} handler errors`);
    peer.destroy();
  }, 60_000);

  it('--heartbeat closes a peer that never answers probes, with reason heartbeat-timeout', async () => {
    const { server, port } = await start(['--engine', 'node', '--heartbeat', '20']);
    const reasons: string[] = [];
    server.on('close', (_s: Session, info: { reason: string }) => reasons.push(info.reason));
    const peer = net.connect({ host: '127.0.0.1', port });
    peer.on('error', () => {});
    const closed = new Promise<void>((r) => peer.on('close', () => r()));
    await closed;
    await waitFor(() => reasons.length === 1, 'server-side close');
    expect(reasons).toEqual(['heartbeat-timeout']);
  });
});
