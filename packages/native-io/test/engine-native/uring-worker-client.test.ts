/**
 * The uring engine as a CLIENT inside a worker_thread (the benchmark's load
 * generator shape): 50 outbound connections, 8 u32le-framed 64 B messages in
 * flight on each, every echoed byte verified, for ioThreads 0 (inline on the
 * worker's loop) and 1 (a native I/O thread). Bounded by a message count per
 * connection and a wall-clock limit; the worker is terminated on overrun.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAvailability } from '../../lib/engine';
import { describeEngine } from '@fastport/test-utils/vitest';

const DIST = path.resolve(__dirname, '../../dist/index.js');

// Runs in the worker (plain JS, loads the compiled package).
const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const { createEngine } = require(workerData.dist);
const { port, ioThreads, conns: N, depth: DEPTH, size: SIZE, perConn, limitMs } = workerData;
const conns = new Map();
const errors = [];
let connected = 0, msgs = 0, closed = 0, finished = 0, stopping = false, reported = false;
function fill(c, seq) {
  const b = Buffer.allocUnsafe(SIZE);
  b.writeUInt32LE(SIZE, 0);
  b.writeUInt32LE(seq, 4);
  for (let i = 8; i < SIZE; i++) b[i] = (seq * 31 + c.idx * 7 + i) & 0xff;
  return b;
}
function check(c, m) {
  const seq = c.recvSeq;
  if (m.readUInt32LE(0) !== SIZE || m.readUInt32LE(4) !== seq) return false;
  for (let i = 8; i < SIZE; i++) if (m[i] !== ((seq * 31 + c.idx * 7 + i) & 0xff)) return false;
  c.recvSeq++;
  return true;
}
function send(c) { engine.send(c.id, fill(c, c.sendSeq++)); }
function report() {
  if (reported) return;
  reported = true;
  clearTimeout(timer);
  const r = { connected, msgs, closed, errors: errors.slice(0, 5), kind: engine.info.kind, ioThreads: engine.info.ioThreads };
  engine.destroy().then(() => parentPort.postMessage(r), (e) => parentPort.postMessage({ ...r, errors: [...r.errors, String(e)] }));
}
function stop() {
  if (stopping) return;
  stopping = true;
  for (const c of conns.values()) if (c.up) engine.close(c.id);
  setTimeout(report, 200);
}
const engine = createEngine({
  kind: 'uring', ioThreads,
  handler: {
    onAccept() {},
    onConnect(id) {
      const c = conns.get(id);
      c.up = true;
      connected++;
      for (let i = 0; i < DEPTH; i++) send(c);
    },
    onData(id, data) {
      const c = conns.get(id);
      if (c === undefined || c.done) return;
      c.buf = c.buf.length ? Buffer.concat([c.buf, data]) : Buffer.from(data);
      while (c.buf.length >= SIZE) {
        const m = c.buf.subarray(0, SIZE);
        c.buf = c.buf.subarray(SIZE);
        if (!check(c, m)) {
          errors.push('conn ' + c.idx + ': bad echo of message ' + c.recvSeq);
          c.done = true;
          return stop();
        }
        msgs++;
        if (c.recvSeq === perConn) {
          c.done = true;
          if (++finished === N) stop();
          return;
        }
        if (c.sendSeq < perConn) send(c);
      }
    },
    onClose(id, info) {
      closed++;
      const c = conns.get(id);
      if (!stopping) {
        errors.push('conn ' + (c ? c.idx : '?') + ' closed early: ' + info.reason + ' ' + (info.code || ''));
        stop();
      }
    },
  },
});
for (let i = 0; i < N; i++) {
  const id = engine.connect({ host: '127.0.0.1', port, timeoutMs: 5000 });
  conns.set(id, { id, idx: i, sendSeq: 0, recvSeq: 0, buf: Buffer.alloc(0), up: false, done: false });
}
const timer = setTimeout(() => { errors.push('time limit: ' + connected + '/' + N + ' connected, ' + msgs + ' messages'); stop(); }, limitMs);
`;

interface WorkerResult {
  connected: number;
  msgs: number;
  closed: number;
  errors: string[];
  kind: string;
  ioThreads: number;
}

function runWorker(port: number, ioThreads: number): Promise<WorkerResult> {
  const data = { dist: DIST, port, ioThreads, conns: 50, depth: 8, size: 64, perConn: 2000, limitMs: 15_000 };
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SRC, { eval: true, workerData: data });
    const kill = setTimeout(() => {
      void w.terminate();
      reject(new Error('worker did not report within 30 s'));
    }, 30_000);
    let done = false;
    w.once('message', (m: WorkerResult) => {
      done = true;
      clearTimeout(kill);
      resolve(m);
      void w.terminate();
    });
    w.once('error', (e) => {
      clearTimeout(kill);
      reject(e);
    });
    w.once('exit', (code) => {
      clearTimeout(kill);
      if (!done) reject(new Error(`worker exited (${code}) before reporting`));
    });
  });
}

describeEngine('uring client in a worker thread', engineAvailability, 'uring', () => {
  describe('uring client in a worker thread: pipelined echo, bytes verified', () => {
    let server: net.Server;
    let port = 0;
    const sockets = new Set<net.Socket>();

    beforeAll(async () => {
      server = net.createServer((s) => {
        sockets.add(s);
        s.on('data', (d) => s.write(d));
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as net.AddressInfo).port;
    });

    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });

    for (const ioThreads of [0, 1]) {
      it(`ioThreads ${ioThreads}: 50 connections x depth 8 x 64 B, 2000 messages each`, async () => {
        const r = await runWorker(port, ioThreads);
        expect(r.errors).toEqual([]);
        expect(r.kind).toBe('uring');
        expect(r.ioThreads).toBe(ioThreads);
        expect(r.connected).toBe(50);
        expect(r.msgs).toBe(50 * 2000);
      }, 40_000);
    }
  });
});
