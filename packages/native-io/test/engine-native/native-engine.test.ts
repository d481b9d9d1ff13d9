/**
 * Tests specific to the native engines (epoll, and uring once built): the
 * batched JS crossing, receive views into engine memory, ioThreads 0 and N,
 * large writes through the 64 KiB chunk queue, generation-tagged ids, the
 * native pending-bytes limit, and many connections.
 *
 *   FASTPORT_ENGINES=epoll npx vitest run test/engine-native
 *
 * Decided by events and counters only; timers only bound the waits.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WAIT_MS, waitFor } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { engineAvailability } from '../../lib/engine';
import { generationOf, slotOf } from '../../lib/connection-table';
import { SendStatus, type ConnectionId, type EngineKind } from '../../lib/types';
import {
  Side,
  cleanupAll,
  connectPair,
  fillUntilStalled,
  firstDifference,
  pattern,
  rawConnect,
  startPair,
} from '../engine/harness';

const NATIVE: EngineKind[] = ['epoll', 'uring'];

describeEngines('native engine', engineAvailability, (kind) => {
  describe(`native engine ${kind}`, () => {
    afterEach(cleanupAll);

    for (const ioThreads of [0, 2]) {
      it(`[${kind}] ioThreads ${ioThreads}: 1,000 connections echo, batched (jsCrossings < events)`, async () => {
        const pair = await startPair(kind, {
          server: { echo: true, ioThreads },
          client: { ioThreads },
        });
        expect(pair.server.engine.info.ioThreads).toBe(ioThreads);
        const N = 1000;
        const ids: ConnectionId[] = [];
        for (let i = 0; i < N; i++) ids.push(pair.client.connect(pair.port));
        await waitFor(() => ids.every((id) => pair.client.log(id).connected), WAIT_MS, 'all connected');
        await pair.server.waitAccepted(N);
        const msgs = ids.map((_, i) => pattern(200 + (i % 50), i));
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < N; i++) expect(pair.client.engine.send(ids[i] as ConnectionId, msgs[i] as Buffer)).toBe(SendStatus.Queued);
          const want = (round + 1) * (msgs[0] as Buffer).length;
          await waitFor(() => ids.every((id, i) => pair.client.bytes(id) >= (round + 1) * (msgs[i] as Buffer).length), WAIT_MS, `round ${round} echoed (${want})`);
        }
        for (let i = 0; i < N; i += 97) {
          const m = msgs[i] as Buffer;
          expect(firstDifference(pair.client.received(ids[i] as ConnectionId), Buffer.concat([m, m, m]))).toBeNull();
        }
        for (const side of [pair.server, pair.client]) {
          const st = side.engine.stats();
          expect(st.events).toBeGreaterThan(3 * N);
          // many connections' completions share one crossing
          expect(st.jsCrossings).toBeLessThan(st.events);
          expect(st.batches).toBeLessThanOrEqual(st.jsCrossings);
        }
        // sends of one batch to one connection are coalesced: never more submissions than sends
        const cs = pair.client.engine.stats();
        expect(cs.sendSubmissions).toBeLessThanOrEqual(cs.sends);
      });
    }

    it(`[${kind}] onData views are views into one engine-owned receive region, not copies`, async () => {
      const pair = await startPair(kind, { server: { echo: true } });
      const buffers = new Set<ArrayBufferLike>();
      pair.client.hooks.onData = (_id, data) => {
        buffers.add(data.buffer);
        expect(data.buffer.byteLength).toBeGreaterThanOrEqual(64 * 1024);
      };
      const { cid } = await connectPair(pair);
      for (let i = 0; i < 20; i++) {
        pair.client.engine.send(cid, pattern(1000, i));
        await pair.client.waitBytes(cid, (i + 1) * 1000);
      }
      expect(buffers.size).toBe(1);
    });

    it(`[${kind}] 1 MiB frames: a 1 MiB write streams through the 64 KiB chunk queue, both ways`, async () => {
      const pair = await startPair(kind, { server: { echo: true } });
      const { cid } = await connectPair(pair);
      const MiB = 1024 * 1024;
      const frames = [pattern(MiB, 1), pattern(MiB, 2), pattern(MiB + 17, 3)];
      let total = 0;
      for (const f of frames) {
        const st = pair.client.engine.send(cid, f);
        expect([SendStatus.Queued, SendStatus.AboveHighWater]).toContain(st);
        total += f.length;
      }
      await pair.client.waitBytes(cid, total, 30_000);
      expect(firstDifference(pair.client.received(cid), Buffer.concat(frames))).toBeNull();
      await waitFor(() => pair.client.engine.pendingBytes(cid) === 0, WAIT_MS, 'client queue empty');
      expect(pair.client.engine.stats().bytesOut).toBe(total);
      // A completion engine (uring) counts bytesOut when the send's CQE reaches
      // JS, which may be a loop turn after the peer already has the bytes.
      await waitFor(() => pair.server.engine.stats().bytesOut === total, WAIT_MS, 'server bytesOut');
      expect(pair.server.engine.stats().bytesOut).toBe(total);
    });

    it(`[${kind}] ids carry a generation: a reused slot gets a new id, the old id stays dead`, async () => {
      const pair = await startPair(kind, { server: { echo: true } });
      const first = await connectPair(pair);
      pair.client.engine.close(first.cid, 'abort');
      await pair.client.waitClosed(first.cid);
      await pair.server.waitClosed(first.sid);
      const second = await connectPair(pair);
      // LIFO slot reuse: same slot, next generation
      expect(slotOf(second.cid)).toBe(slotOf(first.cid));
      expect(generationOf(second.cid)).toBe(generationOf(first.cid) + 1);
      expect(second.cid).not.toBe(first.cid);
      expect(pair.client.engine.isOpen(first.cid)).toBe(false);
      expect(pair.client.engine.send(first.cid, pattern(10, 1))).toBe(SendStatus.Closed);
      expect(pair.client.engine.close(first.cid)).toBe(false);
      expect(pair.server.engine.send(first.sid, pattern(10, 1))).toBe(SendStatus.Closed);
      // the new connection is unaffected by the stale id's calls
      const msg = pattern(5000, 9);
      expect(pair.client.engine.send(second.cid, msg)).toBe(SendStatus.Queued);
      await pair.client.waitBytes(second.cid, msg.length);
      expect(firstDifference(pair.client.received(second.cid), msg)).toBeNull();
    });

    it(`[${kind}] backpressure: the pending limit holds with a stalled reader; Refused, then onDrain`, async () => {
      const max = 512 * 1024;
      const client = new Side(kind, { name: 'client', maxPendingBytes: max, highWaterMark: 256 * 1024, lowWaterMark: 64 * 1024 });
      const server = net.createServer({ pauseOnConnect: true });
      const sockets: net.Socket[] = [];
      server.on('connection', (s) => sockets.push(s));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      try {
        const cid = client.connect(port);
        await client.waitConnected(cid);
        const accepted = await fillUntilStalled(client, cid);
        expect(accepted.length).toBeGreaterThan(0);
        expect(client.engine.pendingBytes(cid)).toBeLessThanOrEqual(max);
        expect(client.engine.send(cid, pattern(max, 1))).toBe(SendStatus.Refused);
        expect(client.engine.stats().sendsRefused).toBeGreaterThanOrEqual(1);
        const drainsBefore = client.log(cid).drains;
        await waitFor(() => sockets.length === 1, WAIT_MS, 'raw accept');
        const peer = sockets[0] as net.Socket;
        let got = 0;
        peer.on('data', (d: Buffer) => (got += d.length));
        peer.resume();
        await waitFor(() => client.log(cid).drains > drainsBefore, WAIT_MS, 'onDrain');
        const sent = accepted.reduce((n, b) => n + b.length, 0);
        await waitFor(() => got === sent, WAIT_MS, 'all accepted bytes arrive');
        expect(client.engine.pendingBytes(cid)).toBe(0);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it(`[${kind}] destroy() with connections open does not hang (ioThreads 0 and 2)`, async () => {
      for (const ioThreads of [0, 2]) {
        const pair = await startPair(kind, { server: { echo: true, ioThreads }, client: { ioThreads } });
        const conns = [];
        for (let i = 0; i < 20; i++) conns.push(await connectPair(pair));
        for (const { cid } of conns) pair.client.engine.send(cid, pattern(100_000, 1));
        await pair.server.destroy();
        await pair.client.destroy();
        for (const { cid, sid } of conns) {
          expect(pair.client.isClosed(cid)).toBe(true);
          expect(pair.server.isClosed(sid)).toBe(true);
          expect(pair.server.closeInfo(sid).reason).toBe('destroy');
        }
      }
    });

    it(`[${kind}] peer RST mid-stream on a 2-thread engine: error ECONNRESET, others keep working`, async () => {
      const server = new Side(kind, { name: 'server', echo: true, ioThreads: 2 });
      const l = await server.listen(0, '127.0.0.1');
      const victim = await rawConnect(l.port);
      const other = await rawConnect(l.port);
      await server.waitAccepted(2);
      const victimPort = victim.socket.localPort;
      victim.socket.write(pattern(50_000, 1));
      await waitFor(() => victim.bytes >= 50_000, WAIT_MS, 'victim echo');
      victim.socket.resetAndDestroy();
      const vid = server.accepted.find((id) => server.log(id).remote?.port === victimPort) as ConnectionId;
      const info = await server.waitClosed(vid);
      expect(info.reason).toBe('error');
      expect(info.code).toBe('ECONNRESET');
      other.socket.write(pattern(1000, 2));
      await waitFor(() => other.bytes >= 1000, WAIT_MS, 'other echo');
    });

    it(`[${kind}] 10,000 concurrent connections (clients in a child process)`, async () => {
      const N = 10_000;
      const server = new Side(kind, { name: 'server', echo: true });
      const l = await server.listen(0, '127.0.0.1', { backlog: 4096 });
      const script = `
        const net = require('node:net');
        const N = ${N}, port = ${l.port};
        let open = 0, echoed = 0; const socks = [];
        function one(i) {
          const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.' + (2 + (i % 8)) });
          s.on('connect', () => { open++; s.write('x' + i); });
          s.on('data', () => { echoed++; if (echoed === N) process.stdout.write('ECHOED\\n'); });
          s.on('error', (e) => { process.stdout.write('ERR ' + e.code + '\\n'); });
          socks.push(s);
        }
        let i = 0;
        (function batch() { for (let k = 0; k < 500 && i < N; k++) one(i++); if (i < N) setTimeout(batch, 5); })();
        process.stdin.on('data', () => { for (const s of socks) s.destroy(); process.exit(0); });
      `;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await waitFor(() => out.includes('ECHOED') || out.includes('ERR'), 60_000, `${N} echoes`);
        expect(out).not.toContain('ERR');
        expect(server.engine.stats().connections).toBe(N);
        expect(server.engine.stats().accepted).toBe(N);
        const st = server.engine.stats();
        expect(st.jsCrossings).toBeLessThan(st.events);
      } finally {
        child.stdin.write('bye\n');
        await new Promise<void>((resolve) => child.on('exit', () => resolve()));
      }
      await waitFor(() => server.engine.stats().connections === 0, 30_000, 'all closed');
    }, 120_000);
  });
}, { only: NATIVE });
