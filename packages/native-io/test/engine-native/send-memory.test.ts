/**
 * Regression (issue 8, defect 7): send-queue memory.
 *
 * 1. Honest accounting: a queue holds whole 64 KiB chunks, whatever the byte
 *    count; engine.stats() reports the chunk memory held (sendChunkBytesHeld)
 *    and the slab memory behind it (sendSlabBytes), and connectionStats()
 *    the chunk memory of one connection (heldBytes).
 * 2. Idle slabs go back to the OS after a peak: 20 slow readers each get an
 *    8 MiB queue (server in a child process, so its RSS is its own), then
 *    they go away. The slab memory must come back to the engine's small
 *    reserve and the RSS most of the way to the baseline. Figures are
 *    printed; the waits are bounded and only wait for conditions.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { JsonChild, pollValue, waitFor } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { engineAvailability } from '../../lib/engine';
import { type EngineKind } from '../../lib/types';
import { Side, cleanupAll, fillUntilStalled } from '../engine/harness';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const NATIVE: EngineKind[] = ['epoll', 'uring'];
const built = fs.existsSync(DIST);
const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;

const READERS = 20;
const QUEUE_BYTES = 8 * MiB;

// The server: every accepted connection gets QUEUE_BYTES at once; commands on stdin.
const SERVER_SRC = `
const { createEngine } = require(process.env.FASTPORT_TEST_DIST);
const big = Buffer.alloc(${QUEUE_BYTES}, 0x5a);
const conns = new Set();
const engine = createEngine({
  kind: process.env.FASTPORT_TEST_KIND,
  ioThreads: Number(process.env.FASTPORT_TEST_THREADS),
  handler: {
    onAccept(id) { conns.add(id); engine.send(id, big); },
    onConnect() {},
    onData() {},
    onClose(id) { conns.delete(id); },
  },
});
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
engine.listen({ host: '127.0.0.1', port: 0, sendBufferSize: 64 * 1024 }).then((l) => say({ port: l.port }));
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const cmd = buf.slice(0, nl); buf = buf.slice(nl + 1);
    if (cmd === 'stats') {
      const s = engine.stats();
      say({ stats: true, rss: process.memoryUsage.rss(), open: conns.size, pendingBytes: s.pendingBytes,
            sendChunkBytesHeld: s.sendChunkBytesHeld, sendSlabBytes: s.sendSlabBytes,
            reserve: engine.info.features.sendSlabReserveBytes, loops: Math.max(1, engine.info.ioThreads) });
    } else if (cmd === 'exit') engine.destroy().then(() => process.exit(0));
  }
});
`;

interface Stats {
  rss: number;
  open: number;
  pendingBytes: number;
  sendChunkBytesHeld?: number;
  sendSlabBytes?: number;
  reserve?: number;
  loops: number;
}

class ChildServer {
  private readonly proc: JsonChild;

  constructor(kind: EngineKind, ioThreads: number) {
    this.proc = new JsonChild(process.execPath, ['-e', SERVER_SRC], {
      stderr: 'inherit',
      env: { ...process.env, FASTPORT_TEST_DIST: DIST, FASTPORT_TEST_KIND: kind, FASTPORT_TEST_THREADS: String(ioThreads) },
    });
  }

  async port(): Promise<number> {
    return (await this.proc.waitMessage((m) => m['port'] !== undefined, 'server port')).port as number;
  }

  stats(): Promise<Stats> {
    return this.proc.ask<Stats>('stats', 'stats');
  }

  stop(): Promise<void> {
    return this.proc.stop('exit', 5000);
  }
}

/** The server's stats once `pred` holds, or the last ones after `ms` (the caller asserts on them). */
function until(server: ChildServer, pred: (s: Stats) => boolean, ms: number): Promise<Stats> {
  return pollValue(() => server.stats(), pred, { timeoutMs: ms, intervalMs: 100 });
}

const mb = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

describeEngines('native engine: send-queue memory', engineAvailability, (kind) => {
  afterEach(cleanupAll);

  it(`[${kind}] chunk memory of a stalled queue is counted in whole chunks (stats and connectionStats)`, async () => {
    const server = new Side(kind, { name: 'server', maxPendingBytes: 512 * 1024 });
    const l = await server.listen(0, '127.0.0.1', { sendBufferSize: 16 * 1024 });
    const sock = net.connect({ host: '127.0.0.1', port: l.port });
    sock.on('error', () => {});
    sock.pause();
    try {
      await server.waitAccepted(1);
      const sid = server.accepted[0] as number;
      await fillUntilStalled(server, sid, 16 * 1024);
      const pending = server.engine.pendingBytes(sid);
      expect(pending).toBeGreaterThan(0);
      const st = server.engine.stats();
      const cs = server.engine.connectionStats(sid);
      console.log(`[${kind}] stalled queue: ${pending} bytes pending, ${cs?.heldBytes} bytes of chunks held, stats ${st.sendChunkBytesHeld} / slabs ${st.sendSlabBytes}`);
      expect(cs?.heldBytes, 'connectionStats().heldBytes').toBeGreaterThanOrEqual(pending);
      expect((cs?.heldBytes ?? 1) % CHUNK).toBe(0);
      expect(cs?.heldBytes ?? 0).toBeLessThanOrEqual(Math.ceil(pending / CHUNK) * CHUNK + CHUNK);
      expect(st.sendChunkBytesHeld, 'stats().sendChunkBytesHeld').toBe(cs?.heldBytes);
      expect(st.sendSlabBytes ?? 0).toBeGreaterThanOrEqual(st.sendChunkBytesHeld ?? Infinity);
      // One more byte on a stalled queue never costs less than what it pins.
      server.engine.send(sid, Buffer.from([1]));
      await waitFor(() => (server.engine.connectionStats(sid)?.heldBytes ?? 0) >= server.engine.pendingBytes(sid), 5000, 'held >= pending');
    } finally {
      sock.destroy();
    }
    await waitFor(() => server.engine.stats().connections === 0, 10_000, 'closed');
    await waitFor(() => server.engine.stats().sendChunkBytesHeld === 0, 10_000, 'no chunk held after the close');
  });

  for (const ioThreads of [0, 1]) {
    it.skipIf(!built)(`[${kind}] ioThreads ${ioThreads}: slab memory goes back after ${READERS} slow readers with ${QUEUE_BYTES / MiB} MiB queues leave${built ? '' : ' (skipped: dist/ is not built)'}`, async () => {
      const server = new ChildServer(kind, ioThreads);
      const readers: net.Socket[] = [];
      try {
        const port = await server.port();
        const base = await server.stats();
        for (let i = 0; i < READERS; i++) {
          const s = net.connect({ host: '127.0.0.1', port });
          s.on('error', () => {});
          s.pause(); // never reads: the kernel buffers fill and the queue stays
          readers.push(s);
        }
        // Most of each 8 MiB stays queued (the server's SO_SNDBUF is 64 KiB).
        // (With I/O threads the bytes reach the loops' queues a little after send() returned.)
        const peak = await until(
          server,
          (s) =>
            s.open === READERS &&
            s.pendingBytes >= READERS * (QUEUE_BYTES - 2 * MiB) &&
            (s.sendChunkBytesHeld === undefined || s.sendChunkBytesHeld >= s.pendingBytes),
          30_000,
        );
        expect(peak.open).toBe(READERS);
        for (const s of readers) s.destroy(); // unread data: RST, the server's sends fail, queues are dropped
        const closed = await until(server, (s) => s.open === 0, 20_000);
        expect(closed.open).toBe(0);
        const reserve = (base.reserve ?? 2 * MiB) * base.loops;
        // The engine returns idle slabs after they stayed idle a little while: wait for that (bounded).
        const after = await until(server, (s) => s.sendSlabBytes !== undefined && s.sendSlabBytes <= reserve, 15_000);
        console.log(
          `[${kind} ioThreads ${ioThreads}] RSS baseline ${mb(base.rss)}, peak ${mb(peak.rss)} (queued ${mb(peak.pendingBytes)}, ` +
            `chunks ${mb(peak.sendChunkBytesHeld ?? NaN)}, slabs ${mb(peak.sendSlabBytes ?? NaN)}), after ${mb(after.rss)} ` +
            `(chunks ${mb(after.sendChunkBytesHeld ?? NaN)}, slabs ${mb(after.sendSlabBytes ?? NaN)}, reserve ${mb(reserve)})`,
        );
        expect(after.rss - base.rss, 'RSS growth left after the readers are gone').toBeLessThan((peak.rss - base.rss) / 2);
        expect(peak.sendChunkBytesHeld ?? 0, 'chunk memory held at the peak').toBeGreaterThanOrEqual(peak.pendingBytes);
        expect(after.sendChunkBytesHeld).toBe(0);
        expect(after.sendSlabBytes, 'slab memory back to the reserve').toBeLessThanOrEqual(reserve);
      } finally {
        for (const s of readers) s.destroy();
        await server.stop();
      }
    }, 90_000);
  }
}, { only: NATIVE });
