import { afterEach, describe, expect, it } from 'vitest';
import type { EngineKind } from '@fastport/native-io';
import { closedPort, connectRaw, waitFor } from '@fastport/test-utils';
import { Client, FrameEncoder, Server, type Session, type SessionCloseInfo } from '../src';
import { forEachEngine } from './helpers';

forEachEngine('session', (kind: EngineKind) => {
  describe(`session on engine ${kind}`, () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const fn of cleanups.splice(0).reverse()) await fn();
    });

    async function startEcho(options: ConstructorParameters<typeof Server>[0] = {}): Promise<{ server: Server; port: number }> {
      const server = new Server({ engine: kind, ...options });
      server.on('frame', (session: Session, frame) => session.send(frame.payload, frame.id));
      const info = await server.listen(0, '127.0.0.1');
      cleanups.push(() => server.close(1000));
      return { server, port: info.port };
    }

    async function startClient(options: ConstructorParameters<typeof Client>[0] = {}): Promise<Client> {
      const client = new Client({ engine: kind, ...options });
      cleanups.push(() => client.close());
      return client;
    }

    it(`[${kind}] echoes fastport frames with ids through Server and Client`, async () => {
      const { port } = await startEcho();
      const client = await startClient();
      const got: { id: number; text: string }[] = [];
      client.on('frame', (_s: Session, frame) => got.push({ id: frame.id, text: Buffer.from(frame.payload).toString() }));
      const session = await client.connect({ host: '127.0.0.1', port });
      expect(session.side).toBe('client');
      for (let i = 0; i < 100; i++) expect(session.send(Buffer.from(`msg ${i}`), 0x1001 + (i % 3))).toBe(true);
      await waitFor(() => got.length === 100, '100 echoes');
      got.forEach((g, i) => expect(g).toEqual({ id: 0x1001 + (i % 3), text: `msg ${i}` }));
    });

    it(`[${kind}] echoes a 1 MiB frame with the large preset`, async () => {
      const { port } = await startEcho({ framing: 'large' });
      const client = await startClient({ framing: 'large' });
      const payload = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
      let echoed: Buffer | undefined;
      client.on('frame', (_s: Session, frame) => {
        echoed = Buffer.from(frame.payload); // copy: the view is only valid during the call
      });
      const session = await client.connect({ host: '127.0.0.1', port });
      session.send(payload, 7);
      await waitFor(() => echoed !== undefined, '1 MiB echo');
      expect(echoed?.equals(payload)).toBe(true);
    });

    it(`[${kind}] u32le framing: zero-length payloads and many frames per read`, async () => {
      const { port } = await startEcho({ framing: 'u32le' });
      const peer = await connectRaw(port);
      const enc = new FrameEncoder('u32le');
      const frames = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello')];
      const stream = Buffer.concat(frames.map((f) => Buffer.from(enc.encode(f))));
      peer.socket.write(stream);
      await waitFor(() => Buffer.concat(peer.chunks).length === stream.length, 'echo of 4 frames');
      expect(Buffer.concat(peer.chunks).equals(stream)).toBe(true);
      peer.socket.destroy();
    });

    it(`[${kind}] a malformed header closes only that session, with a reason`, async () => {
      const { server, port } = await startEcho();
      const closes: SessionCloseInfo[] = [];
      server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
      const good = await connectRaw(port);
      const bad = await connectRaw(port);
      await waitFor(() => server.sessions.size === 2, 'two sessions');
      bad.socket.write(Buffer.from([0x00, 0x02, 0x00, 0x01])); // total size 2 < 4-byte header
      await bad.closed;
      await waitFor(() => closes.length === 1, 'bad session close');
      expect(closes[0]?.reason).toBe('framing');
      expect(closes[0]?.code).toBe('ERR_FRAME_MALFORMED');
      const enc = new FrameEncoder('fastport');
      good.socket.write(enc.encode(Buffer.from('still here'), 5));
      await waitFor(() => Buffer.concat(good.chunks).length > 0, 'good session echo');
      expect(Buffer.concat(good.chunks).subarray(4).toString()).toBe('still here');
      expect(server.sessions.size).toBe(1);
      expect(server.stats().framingErrors).toBe(1);
      good.socket.destroy();
    });

    it(`[${kind}] an oversized frame closes that session with ERR_FRAME_TOO_LARGE`, async () => {
      const { server, port } = await startEcho({ framing: { preset: 'large', maxFrameSize: 4096 } });
      const closes: SessionCloseInfo[] = [];
      server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
      const bad = await connectRaw(port);
      const header = Buffer.alloc(6);
      header.writeUInt32BE(0xfffffff0, 0); // claims ~4 GiB
      header.writeUInt16BE(1, 4);
      bad.socket.write(header);
      await bad.closed;
      await waitFor(() => closes.length === 1, 'close');
      expect(closes[0]).toMatchObject({ reason: 'framing', code: 'ERR_FRAME_TOO_LARGE' });
    });

    it(`[${kind}] backpressure: past the pending limit, 'reject' throws, 'drop' drops, 'close' closes`, async () => {
      // A peer that never reads: the server's queue to it can only grow to the limit.
      const results: Record<string, string> = {};
      for (const policy of ['reject', 'drop', 'close'] as const) {
        const server = new Server({ engine: kind, backpressure: policy, maxPendingBytes: 256 * 1024, highWaterMark: 128 * 1024 });
        const info = await server.listen(0, '127.0.0.1');
        cleanups.push(() => server.close(200));
        const peer = await connectRaw(info.port);
        peer.socket.pause();
        await waitFor(() => server.sessions.size === 1, 'session');
        const session = [...server.sessions][0] as Session;
        const chunk = Buffer.alloc(16 * 1024, 1);
        let outcome = 'none';
        let sawHighWater = false;
        // Kernel buffers absorb some MB first; 4,000 sends of 16 KiB (64 MiB) is far past them plus the limit.
        for (let i = 0; i < 4000 && outcome === 'none'; i++) {
          try {
            const r = session.trySend(chunk, 1);
            if (r === 'high-water') sawHighWater = true;
            if (r === 'dropped' || r === 'closed') outcome = r;
          } catch (err) {
            outcome = (err as { code?: string }).code ?? 'threw';
          }
          if (i % 64 === 63) await new Promise((r) => setImmediate(r)); // let the engine hand bytes to the kernel
          expect(session.pendingBytes).toBeLessThanOrEqual(256 * 1024);
        }
        expect(sawHighWater).toBe(true);
        results[policy] = outcome;
        if (policy === 'close') await waitFor(() => session.state === 'closed', 'closed by policy');
        if (policy === 'close') expect(session.closeInfo?.reason).toBe('backpressure');
        peer.socket.destroy();
      }
      expect(results).toEqual({ reject: 'ERR_BACKPRESSURE', drop: 'dropped', close: 'closed' });
    });

    it(`[${kind}] drain fires after the high watermark once the peer reads`, async () => {
      const server = new Server({ engine: kind, maxPendingBytes: 8 * 1024 * 1024, highWaterMark: 64 * 1024, lowWaterMark: 16 * 1024 });
      const info = await server.listen(0, '127.0.0.1');
      cleanups.push(() => server.close(200));
      const peer = await connectRaw(info.port);
      peer.socket.pause();
      await waitFor(() => server.sessions.size === 1, 'session');
      const session = [...server.sessions][0] as Session;
      let drained = 0;
      session.on('drain', () => drained++);
      const chunk = Buffer.alloc(32 * 1024, 2);
      let sent = 0;
      let high = false;
      for (let i = 0; i < 200 && !high; i++) {
        const r = session.send(chunk, 1);
        sent += chunk.length + 4;
        if (!r) high = true;
      }
      expect(high).toBe(true);
      peer.socket.resume();
      await waitFor(() => drained > 0, 'drain');
      await waitFor(() => Buffer.concat(peer.chunks).length === sent, 'all bytes');
      peer.socket.destroy();
    });

    it(`[${kind}] connect to a closed port rejects with ECONNREFUSED`, async () => {
      const port = await closedPort();
      const client = await startClient();
      await expect(client.connect({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    });

    it(`[${kind}] server close flushes queued frames before closing`, async () => {
      const server = new Server({ engine: kind });
      const info = await server.listen(0, '127.0.0.1');
      const peer = await connectRaw(info.port);
      await waitFor(() => server.sessions.size === 1, 'session');
      const session = [...server.sessions][0] as Session;
      const payload = Buffer.alloc(60_000, 9);
      for (let i = 0; i < 10; i++) session.send(payload, 3);
      const result = await server.close(5000);
      await peer.closed;
      expect(result).toEqual({ flushed: 1, aborted: 0 });
      expect(Buffer.concat(peer.chunks).length).toBe(10 * (60_000 + 4));
    });
  });
});
