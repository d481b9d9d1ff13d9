import * as net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import type { EngineKind } from '@fastport/native-io';
import {
  Client,
  FrameEncoder,
  MemoryBudget,
  Server,
  type Frame,
  type FramingOption,
  type Session,
  type SessionCloseInfo,
} from '../src';
import { ControlFrameId } from '../src/control'; // internal, not in the public index
import { ManualClock, connectRaw, fuzzPlan, runFuzz, sleep, waitFor } from '@fastport/test-utils';
import { decodeAll, forEachEngine, formatMemory, mb, memorySnapshot, numbered, numberOf } from './helpers';

interface FuzzCase {
  kind: string;
  chunks: Buffer[];
}

/** Random, mutated and control-frame cases for a framing whose header is [size BE][u16 id]. */
function makeCase(rand: () => number, framing: 'fastport' | 'large'): FuzzCase {
  const int = (n: number) => Math.floor(rand() * n);
  const enc = new FrameEncoder(framing === 'large' ? { preset: 'large', maxFrameSize: 1 << 20 } : 'fastport');
  const hs = framing === 'large' ? 6 : 4;
  const randomBytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const validFrames = () => {
    const frames: Buffer[] = [];
    const count = 1 + int(5);
    for (let i = 0; i < count; i++) {
      const id = rand() < 0.15 ? 0xff00 + int(16) : 1 + int(0xfeff);
      frames.push(Buffer.from(enc.encode(randomBytes(int(rand() < 0.1 ? 3000 : 80)), id)));
    }
    return Buffer.concat(frames);
  };
  const split = (b: Buffer): Buffer[] => {
    if (b.length < 2 || rand() < 0.5) return [b];
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < b.length) {
      const n = 1 + int(Math.min(64, b.length - pos));
      out.push(b.subarray(pos, pos + n));
      pos += n;
    }
    return out;
  };
  const r = rand();
  if (r < 0.2) return { kind: 'random', chunks: split(randomBytes(int(400))) };
  if (r < 0.35) return { kind: 'valid', chunks: split(validFrames()) };
  if (r < 0.7) {
    const b = validFrames();
    const mutations = 1 + int(4);
    let kind = 'mutated';
    for (let m = 0; m < mutations && b.length > 0; m++) {
      const which = int(5);
      const p = int(b.length);
      if (which === 0) b[p] = b[p]! ^ (1 << int(8));
      else if (which === 1) b[p] = int(256);
      else if (which === 2) {
        // length field of the first frame: tiny, huge, or random
        const v = [0, 1, hs - 1, hs, 0xffff, int(0xffff)][int(6)]!;
        if (framing === 'large') b.writeUInt32BE(rand() < 0.5 ? v : 0xffffffff - int(1000), 0);
        else b.writeUInt16BE(v, 0);
        kind = 'bad-length';
      } else if (which === 3) return { kind: 'truncated', chunks: split(b.subarray(0, p)) };
      else {
        const q = int(b.length);
        return { kind: 'spliced', chunks: split(Buffer.concat([b.subarray(0, p), b.subarray(q)])) };
      }
    }
    return { kind, chunks: split(b) };
  }
  // Control frames with garbage payloads (or plausible ones with hostile numbers).
  const id = 0xff00 + int(16);
  let payload = randomBytes(int(60));
  if (id === ControlFrameId.Ack && rand() < 0.5) payload = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  if (id === ControlFrameId.ResumeRequest && rand() < 0.5) {
    payload = randomBytes(34);
    payload[0] = 1;
  }
  const frame = Buffer.from(enc.encode(payload, id));
  return { kind: `control-${(id & 0xf).toString(16)}`, chunks: split(rand() < 0.3 ? Buffer.concat([frame, validFrames()]) : frame) };
}

forEachEngine('hostile peers', (kind: EngineKind) => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function echoServer(options: ConstructorParameters<typeof Server>[0]): Promise<{ server: Server; port: number }> {
    const server = new Server({ engine: kind, ...options });
    server.on('frame', (s: Session, f: Frame) => {
      if (s.state === 'open') s.send(f.payload, f.id);
    });
    server.on('error', () => {});
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(500));
    return { server, port };
  }

  async function echoRoundTrip(port: number, framing: FramingOption): Promise<void> {
    const c = new Client({ engine: kind, framing, memoryBudget: false });
    try {
      const got: number[] = [];
      c.on('frame', (_s: Session, f: Frame) => got.push(numberOf(f.payload)));
      const s = await c.connect({ host: '127.0.0.1', port });
      for (let i = 1; i <= 100; i++) s.send(numbered(i), 0x1234);
      await waitFor(() => got.length === 100, 'healthy echo');
      expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    } finally {
      await c.close(100);
    }
  }

  for (const framing of ['fastport', 'large'] as const) {
    // The same cases on every run: a fixed seed and count (FASTPORT_FUZZ_SEED_HOSTILE_<FRAMING> / _CASES_ explore).
    const plan = fuzzPlan(`hostile ${framing}`, { seed: framing === 'large' ? 0xfa57 : 0x5eed, cases: 2000 });
    it(`[${kind}] fuzz (${framing}): ${plan.cases} random and mutated frames (seed ${plan.seed}) through a live server, which stays healthy`, () => runFuzz(plan, async (at) => {
      const budget = new MemoryBudget({ limitBytes: 64 * 1024 * 1024 });
      const spec: FramingOption = framing === 'large' ? { preset: 'large', maxFrameSize: 1 << 20 } : 'fastport';
      const { server, port } = await echoServer({
        framing: spec,
        memoryBudget: budget,
        frameTimeoutMs: 1000,
        heartbeat: { intervalMs: 1000 },
        ...(framing === 'fastport' ? { resume: { helloTimeoutMs: 200 } } : {}),
      });
      const rand = plan.random();
      const CONCURRENCY = 16;
      const started = Date.now();
      const before = memorySnapshot();
      const kinds: Record<string, number> = {};
      let done = 0;
      let hung = 0;
      const runCase = (c: FuzzCase) =>
        new Promise<void>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port });
          let finished = false;
          const finish = () => {
            if (finished) return;
            finished = true;
            clearTimeout(guard);
            socket.destroy();
            resolve();
          };
          // Hang guard only: a case must end (the server closes after our FIN, or earlier).
          const guard = setTimeout(() => {
            hung++;
            finish();
          }, 5000);
          socket.on('error', () => {});
          socket.on('data', () => {});
          socket.on('close', finish);
          socket.on('connect', () => {
            for (const chunk of c.chunks) socket.write(chunk);
            socket.end();
          });
        });
      let next = 0;
      const worker = async () => {
        while (next < plan.cases) {
          at(next++);
          const c = makeCase(rand, framing);
          kinds[c.kind] = (kinds[c.kind] ?? 0) + 1;
          await runCase(c);
          done++;
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      await waitFor(() => server.stats().engine.connections === 0, 'fuzz connections gone');
      await echoRoundTrip(port, spec);
      const stats = server.stats();
      budget.recount();
      const after = memorySnapshot();
      console.log(
        `[${kind}] fuzz ${framing}: ${done} cases in ${Date.now() - started} ms (${JSON.stringify(kinds)}); ` +
          `framing errors ${stats.framingErrors}, close reasons ${JSON.stringify(stats.closeReasons)}; hung ${hung}; ` +
          `${formatMemory('before', before)}; ${formatMemory('after', after)}; budget peak ${mb(budget.stats().peakBytes)}`,
      );
      expect(done).toBe(plan.cases);
      expect(hung).toBe(0);
      expect(stats.framingErrors).toBeGreaterThan(0);
      expect(stats.closeReasons['control-malformed'] ?? 0).toBeGreaterThan(0);
      expect(stats.handlerErrors).toBe(0);
      expect(budget.stats().usedBytes).toBe(0);
    }), 90_000);
  }

  it(`[${kind}] slowloris (one byte per second) is closed by frameTimeoutMs while another session is served`, async () => {
    // A manual clock: a byte per second of clock time, each at the server before the clock moves on.
    const clock = new ManualClock();
    const { server, port } = await echoServer({ frameTimeoutMs: 2500, memoryBudget: false, clock });
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
    const slow = await connectRaw(port);
    await waitFor(() => server.sessions.size === 1, 'the slow session');
    const slowAtServer = [...server.sessions][0] as Session;
    const frame = Buffer.from(new FrameEncoder('fastport').encode(Buffer.alloc(100, 9), 0x10));
    let sent = 0;
    const healthy = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => healthy.close(100));
    let echoes = 0;
    healthy.on('frame', () => echoes++);
    const hs = await healthy.connect({ host: '127.0.0.1', port });
    let pings = 0;
    await clock.runUntil(() => slow.isClosed, {
      stepMs: 1000,
      what: 'the slowloris closed',
      settle: async () => {
        if (sent < frame.length && !slow.isClosed && slowAtServer.state === 'open') {
          slow.socket.write(frame.subarray(sent, ++sent));
          await waitFor(() => slowAtServer.counters.bytesIn >= sent || slowAtServer.state !== 'open', 'the byte at the server');
        }
        if (hs.state === 'open') {
          hs.send(Buffer.from('ping'), 1);
          pings++;
          await waitFor(() => echoes >= pings, 'the healthy session\'s echo');
        }
      },
    });
    await slow.closed;
    await waitFor(() => closes.length === 1, 'slowloris close');
    expect(closes[0]).toMatchObject({ reason: 'frame-timeout', code: 'ETIMEDOUT' });
    expect(sent).toBeLessThan(frame.length); // the frame never completed
    expect(echoes).toBeGreaterThan(0);
    expect(hs.state).toBe('open');
    console.log(`[${kind}] slowloris: closed after ${sent} of ${frame.length} bytes (frameTimeoutMs 2500, clock steps of 1 s); healthy session got ${echoes} echoes meanwhile`);
  });

  it(`[${kind}] slow reader hits its queue limit and is closed by policy; the other sessions get every message`, async () => {
    const LIMIT = 1024 * 1024;
    const budget = new MemoryBudget({ limitBytes: 256 * 1024 * 1024 });
    const server = new Server({ engine: kind, backpressure: 'close', maxPendingBytes: LIMIT, highWaterMark: 512 * 1024, memoryBudget: budget });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const closes = new Map<Session, SessionCloseInfo>();
    server.on('close', (s: Session, info: SessionCloseInfo) => closes.set(s, info));
    const slow = await connectRaw(port);
    slow.socket.pause();
    const readers: { got: number[] }[] = [];
    const clients: Client[] = [];
    for (let i = 0; i < 3; i++) {
      const c = new Client({ engine: kind, memoryBudget: false });
      cleanups.push(() => c.close(100));
      const r = { got: [] as number[] };
      c.on('frame', (_s: Session, f: Frame) => r.got.push(numberOf(f.payload)));
      await c.connect({ host: '127.0.0.1', port });
      readers.push(r);
      clients.push(c);
    }
    await waitFor(() => server.sessions.size === 4, 'four sessions');
    const slowSession = [...server.sessions].find((s) => s.remote.port === slow.socket.localPort)!;
    const healthy = [...server.sessions].filter((s) => s !== slowSession);
    const N = 4000; // 4,000 x 4 KiB = 16 MiB to each session
    let maxSlowPending = 0;
    let next = 1;
    await new Promise<void>((resolve) => {
      const pump = () => {
        // The application respects the healthy sessions' backpressure; the slow one is left to its limit.
        if (healthy.every((s) => s.pendingBytes < 256 * 1024)) {
          for (let k = 0; k < 32 && next <= N; k++, next++) {
            const p = numbered(next, 4096);
            for (const s of server.sessions) s.send(p, 0x20);
          }
          if (slowSession.state !== 'closed') maxSlowPending = Math.max(maxSlowPending, slowSession.pendingBytes);
        }
        if (next > N) resolve();
        else setImmediate(pump);
      };
      pump();
    });
    await waitFor(() => readers.every((r) => r.got.length === N), 'healthy readers got everything', 30_000);
    for (const r of readers) expect(r.got).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(closes.get(slowSession)).toMatchObject({ reason: 'backpressure', code: 'ERR_BACKPRESSURE' });
    for (const s of healthy) expect(s.state).toBe('open');
    expect(maxSlowPending).toBeLessThanOrEqual(LIMIT);
    budget.recount();
    console.log(
      `[${kind}] slow reader: closed by policy at a queue of at most ${maxSlowPending} bytes (limit ${LIMIT}); ` +
        `3 healthy readers got ${N}/${N} messages each; budget peak ${mb(budget.stats().peakBytes)}`,
    );
    slow.socket.destroy();
  }, 60_000);

  it(`[${kind}] connection flood past maxSessions: excess reset at accept, memory before/after printed, server healthy`, async () => {
    const MAX = 300;
    const FLOOD = 900;
    const { server, port } = await echoServer({ maxSessions: MAX, memoryBudget: false });
    const before = memorySnapshot();
    const sockets: net.Socket[] = [];
    let resets = 0;
    let closedCount = 0;
    await new Promise<void>((resolve) => {
      // Each socket settles on 'connect' or on 'close' (a reset can beat the client's own connect event).
      let settled = 0;
      for (let i = 0; i < FLOOD; i++) {
        const s = net.connect({ host: '127.0.0.1', port });
        let done = false;
        const settle = () => {
          if (done) return;
          done = true;
          if (++settled === FLOOD) resolve();
        };
        s.on('error', () => {});
        s.on('close', (hadError) => {
          closedCount++;
          if (hadError) resets++;
          settle();
        });
        s.on('connect', settle);
        sockets.push(s);
      }
    });
    await waitFor(() => server.stats().refusedConnections + server.stats().sessions >= FLOOD, 'every flood connection accounted');
    const during = memorySnapshot();
    const peakSessions = server.stats().sessions;
    expect(peakSessions).toBeLessThanOrEqual(MAX);
    expect(server.stats().refusedConnections).toBe(FLOOD - peakSessions);
    for (const s of sockets) s.destroy();
    await waitFor(() => server.sessions.size === 0, 'flood sessions gone');
    await echoRoundTrip(port, 'fastport');
    await sleep(50);
    const after = memorySnapshot();
    console.log(
      `[${kind}] connection flood: ${FLOOD} connections, ${peakSessions} sessions (max ${MAX}), ${server.stats().refusedConnections} refused (${resets} saw the reset); ` +
        `${formatMemory('before', before)}; ${formatMemory('during', during)}; ${formatMemory('after', after)}`,
    );
  }, 60_000);

  it(`[${kind}] reassembly flood: hundreds of huge partial frames are held to the memory budget`, async () => {
    const LIMIT = 32 * 1024 * 1024;
    const budget = new MemoryBudget({ limitBytes: LIMIT });
    const MAX_FRAME = 8 * 1024 * 1024;
    const { server, port } = await echoServer({ framing: { preset: 'large', maxFrameSize: MAX_FRAME }, memoryBudget: budget });
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
    const before = memorySnapshot();
    const PEERS = 200;
    const peers = [];
    const header = Buffer.alloc(6);
    header.writeUInt32BE(MAX_FRAME, 0); // declares an 8 MiB frame...
    header.writeUInt16BE(7, 4);
    const BODY = 256 * 1024;
    const body = Buffer.alloc(BODY, 0xab); // ...and really sends 256 KiB of it: 50 MiB in all, more than the budget
    for (let i = 0; i < PEERS; i++) {
      const p = await connectRaw(port);
      p.socket.write(Buffer.concat([header, body]));
      peers.push(p);
    }
    const complete = () => [...server.sessions].filter((s) => s.counters.bytesIn >= BODY + 6).length;
    await waitFor(() => closes.length + complete() >= PEERS, 'every peer held its bytes or was closed', 30_000);
    const during = memorySnapshot();
    // What the sessions hold stays within the budget; the peak may pass it by what one read grants a
    // session below its fair share before the largest holder is closed.
    expect(budget.recount()).toBeLessThanOrEqual(LIMIT);
    const stats = budget.stats();
    expect(stats.peakBytes).toBeLessThanOrEqual(LIMIT + 2 * BODY);
    expect(closes.length).toBeGreaterThanOrEqual(PEERS - LIMIT / BODY);
    expect(closes.every((c) => c.reason === 'memory-budget' && c.code === 'ENOBUFS')).toBe(true);
    const budgetCloses = closes.length;
    // A healthy peer still gets through once the budget is free again.
    for (const p of peers) p.socket.destroy();
    await waitFor(() => server.sessions.size === 0, 'flood gone');
    budget.recount();
    expect(budget.stats().usedBytes).toBe(0);
    await echoRoundTrip(port, { preset: 'large', maxFrameSize: MAX_FRAME });
    const after = memorySnapshot();
    console.log(
      `[${kind}] reassembly flood: ${PEERS} peers x ${mb(BODY)} sent of a declared ${mb(MAX_FRAME)} (${mb(PEERS * BODY)} sent); budget ${mb(LIMIT)}, ` +
        `peak ${mb(stats.peakBytes)}, ${budgetCloses} closed 'memory-budget' (${stats.refusals} refused, ${stats.evictions} evicted as largest), ` +
        `${PEERS - budgetCloses} held a partial frame; ${formatMemory('before', before)}; ${formatMemory('during', during)}; ${formatMemory('after', after)}`,
    );
  }, 60_000);

  it(`[${kind}] declared lengths cost nothing until bytes arrive: 80 peers declaring 16 MiB frames hold ~ what they sent, a fresh client gets its echo`, async () => {
    // Before: each header allocated (and charged) its declared 16 MiB at once: 4 such peers used up this
    // 64 MiB budget (80 use up the default 1 GiB one) and every other session's sends were refused.
    const LIMIT = 64 * 1024 * 1024;
    const budget = new MemoryBudget({ limitBytes: LIMIT });
    const MAX_FRAME = 16 * 1024 * 1024;
    const framing: FramingOption = { preset: 'u32le', maxFrameSize: MAX_FRAME };
    const { server, port } = await echoServer({ framing, memoryBudget: budget });
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
    const PEERS = 80;
    const EXTRA = 100;
    const peers = [];
    const hello = Buffer.alloc(4 + EXTRA, 0xcd);
    hello.writeUInt32LE(MAX_FRAME - 4, 0); // declares a 16 MiB frame, sends 100 bytes of it
    for (let i = 0; i < PEERS; i++) {
      const p = await connectRaw(port);
      p.socket.write(hello);
      peers.push(p);
    }
    await waitFor(
      () => server.stats().bytesIn >= PEERS * hello.length || closes.length > 0,
      'every declared frame started',
    );
    const sent = PEERS * hello.length;
    const held = budget.recount();
    const charged = server.memoryUsage();
    // The fresh client's echo passes through the same budget.
    const floodCloses = closes.length;
    await echoRoundTrip(port, framing);
    expect(floodCloses).toBe(0);
    expect(closes.filter((c) => c.reason !== 'peer')).toEqual([]); // only the fresh client's own close
    expect(server.sessions.size).toBeGreaterThanOrEqual(PEERS);
    // Each peer costs at most a small constant or twice what it sent, never its declared length.
    expect(held).toBeLessThanOrEqual(PEERS * Math.max(512, 2 * hello.length));
    console.log(
      `[${kind}] declared-length flood: ${PEERS} peers x declared ${mb(MAX_FRAME)} (${mb(PEERS * MAX_FRAME)} if charged as declared), ` +
        `${sent} bytes sent; budget holds ${held} bytes (host ${charged}), limit ${mb(LIMIT)}; fresh client echoed 100/100`,
    );
    for (const p of peers) p.socket.destroy();
  }, 60_000);

  it(`[${kind}] one peer never starves the others: never-reading peers use up the budget, a healthy peer keeps echoing`, async () => {
    // Before: once the hostile queues filled the budget, every session's sends were refused,
    // the healthy peer's echo included (ERR_BACKPRESSURE 'memory budget used up').
    const LIMIT = 8 * 1024 * 1024;
    const budget = new MemoryBudget({ limitBytes: LIMIT });
    const server = new Server({
      engine: kind,
      memoryBudget: budget,
      maxPendingBytes: 16 * 1024 * 1024,
      highWaterMark: 8 * 1024 * 1024,
      socket: { noDelay: true, sendBufferSize: 64 * 1024 },
    });
    const DOWNLOAD = 4 * 1024 * 1024;
    const chunk = Buffer.alloc(1024, 0x5a);
    let hostileRefused = 0;
    let healthyErrors = 0;
    let downloads = 0;
    let topUps = 0;
    const tiny = Buffer.alloc(60, 0x5b);
    server.on('frame', (s: Session, f: Frame) => {
      if (f.id === 0x4) {
        // Top-up in tiny sends until refused: the budget is then full to within a few bytes.
        topUps++;
        try {
          for (let sent = 0; sent < 1024 * 1024 && s.state === 'open'; sent += tiny.length) s.send(tiny, 0x3);
        } catch {
          hostileRefused++;
        }
        return;
      }
      if (f.id === 0x2) {
        downloads++;
        // A "download": the server pushes 4 MiB to a peer that never reads.
        try {
          for (let sent = 0; sent < DOWNLOAD && s.state === 'open'; sent += chunk.length) s.send(chunk, 0x3);
        } catch {
          hostileRefused++;
        }
        return;
      }
      try {
        s.send(f.payload, f.id);
      } catch {
        healthyErrors++;
      }
    });
    server.on('error', () => {});
    const closes = new Map<number, SessionCloseInfo>();
    server.on('close', (s: Session, info: SessionCloseInfo) => closes.set(s.remote.port, info));
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const enc = new FrameEncoder('fastport');
    // The healthy client is there first: it holds nothing when the hostile peers fill the budget.
    const c = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => c.close(100));
    const got: number[] = [];
    c.on('frame', (_s: Session, f: Frame) => got.push(numberOf(f.payload)));
    const healthy = await c.connect({ host: '127.0.0.1', port });
    await waitFor(() => server.sessions.size === 1, 'healthy session');
    const HOSTILE = 8;
    const hostile = [];
    for (let i = 0; i < HOSTILE; i++) {
      const p = await connectRaw(port);
      p.socket.pause(); // never reads
      p.socket.write(enc.encode(Buffer.from('download'), 0x2));
      hostile.push(p);
    }
    await waitFor(() => downloads === HOSTILE, 'every download started');
    // The kernel takes what its socket buffers hold from the queues while
    // they fill, which frees budget: top the queues up again until the budget
    // is full (each top-up sends until refused), a bounded number of rounds.
    for (let round = 0; round < 20 && budget.recount() <= LIMIT - 4096; round++) {
      const before = topUps;
      for (const p of hostile) p.socket.write(enc.encode(Buffer.from('more'), 0x4));
      // Every hostile session still open has handled this round's top-up (an evicted one never will).
      await waitFor(() => topUps - before >= HOSTILE - closes.size, `top-ups of round ${round} handled`);
    }
    const usedWhenFull = budget.recount();
    // The hostile queues hold the budget to within a few bytes (what the kernel took from them is not counted).
    expect(usedWhenFull).toBeGreaterThan(LIMIT - 4096);
    const N = 300;
    for (let i = 1; i <= N; i++) {
      healthy.send(numbered(i, 4096), 0x1);
      if (i % 50 === 0) await waitFor(() => got.length === i, `echo ${i}`);
    }
    await waitFor(() => got.length === N, 'every healthy echo');
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(healthyErrors).toBe(0);
    expect(healthy.state).toBe('open');
    const stats = budget.stats();
    const evicted = [...closes.values()].filter((i) => i.reason === 'memory-budget').length;
    expect(budget.recount()).toBeLessThanOrEqual(LIMIT + 64 * 1024);
    console.log(
      `[${kind}] budget fairness: ${HOSTILE} never-reading peers asked for ${mb(HOSTILE * DOWNLOAD)} against a ${mb(LIMIT)} budget ` +
        `(${mb(usedWhenFull)} held when full); hostile sends refused ${hostileRefused}x, ${evicted} hostile sessions closed as largest holders; ` +
        `healthy peer echoed ${got.length}/${N} with ${healthyErrors} errors; budget peak ${mb(stats.peakBytes)}, ${stats.refusals} refusals, ${stats.overdrafts} overdrafts, ${stats.evictions} evictions`,
    );
    for (const p of hostile) p.socket.destroy();
  }, 60_000);

  it(`[${kind}] read backpressure: a never-reading peer streaming tiny echo requests is paused, its queue stays under the limit, no error per frame`, async () => {
    // Before: the server read this peer at line rate; once its echo queue hit the limit, every
    // further echo threw ERR_BACKPRESSURE (one error per frame) while the peer kept sending.
    const LIMIT = 1024 * 1024;
    const server = new Server({
      engine: kind,
      maxPendingBytes: LIMIT,
      highWaterMark: 256 * 1024,
      lowWaterMark: 64 * 1024,
      memoryBudget: new MemoryBudget({ limitBytes: 256 * 1024 * 1024 }),
      socket: { noDelay: true, sendBufferSize: 64 * 1024, receiveBufferSize: 64 * 1024 },
    });
    let handlerErrors = 0;
    server.on('frame', (s: Session, f: Frame) => {
      try {
        s.send(f.payload, f.id);
      } catch {
        handlerErrors++;
      }
    });
    server.on('error', () => handlerErrors++);
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    expect(server.readBackpressure).toBe(true); // the engine can pause receiving
    const enc = new FrameEncoder('fastport');
    const batch = Buffer.concat(Array.from({ length: 1024 }, (_, i) => Buffer.from(enc.encode(numbered(i, 60), 0x1))));
    const hog = await connectRaw(port);
    hog.socket.pause(); // never reads the echoes
    await waitFor(() => server.sessions.size === 1, 'hog session');
    const hogSession = [...server.sessions][0]!;
    // Stream until 8 MiB are written or the server stops taking them (the peer's socket stays unwritable).
    const MAX_WRITE = 8 * 1024 * 1024;
    let written = 0;
    let maxPending = 0;
    const sampler = setInterval(() => (maxPending = Math.max(maxPending, hogSession.pendingBytes)), 2);
    try {
      while (written < MAX_WRITE) {
        written += batch.length;
        if (!hog.socket.write(batch)) {
          const drained = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), 1000);
            hog.socket.once('drain', () => {
              clearTimeout(t);
              resolve(true);
            });
          });
          if (!drained) break; // the server stopped reading: what we want to see
        }
      }
      await waitFor(() => hogSession.readPaused, 'the hog session paused');
    } finally {
      clearInterval(sampler);
    }
    maxPending = Math.max(maxPending, hogSession.pendingBytes);
    const readAtPause = hogSession.counters.bytesIn;
    const framesAtPause = hogSession.counters.framesIn;
    // A healthy peer is served meanwhile.
    await echoRoundTrip(port, 'fastport');
    const st = server.stats();
    expect(hogSession.state).toBe('open');
    expect(hogSession.readPaused).toBe(true);
    expect(st.readPaused).toBe(1);
    expect(hogSession.counters.refused).toBe(0);
    expect(handlerErrors).toBe(0);
    expect(maxPending).toBeLessThanOrEqual(LIMIT);
    // While paused nothing more is read from it (the rest waits in the kernel, which throttles the peer).
    expect(hogSession.counters.bytesIn).toBe(readAtPause);
    // Once the peer reads, the queue drains, reading resumes, and every request is answered: none was lost or refused.
    hog.socket.resume();
    await waitFor(() => hog.bytes === written, 'every echo reached the peer once it read', 30_000);
    expect(hogSession.readPaused).toBe(false);
    expect(hogSession.counters.refused).toBe(0);
    expect(handlerErrors).toBe(0);
    console.log(
      `[${kind}] read backpressure: never-reading peer wrote ${mb(written)} of tiny echo requests (${written / 64} frames); ` +
        `its session read ${mb(readAtPause)} (${framesAtPause} frames) and then was paused, queue at most ${maxPending} bytes (limit ${LIMIT}), ` +
        `${hogSession.counters.readPauses} pause(s), ${hogSession.counters.refused} refused, ${handlerErrors} handler errors; host readPaused ${st.readPaused}; healthy echo 100/100; ` +
        `after the peer read: all ${written / 64} echoes delivered`,
    );
    hog.socket.destroy();
  }, 60_000);

  it(`[${kind}] RST mid-frame (50 times): each session ends with the reset, nothing is held, others unaffected`, async () => {
    const budget = new MemoryBudget({ limitBytes: 64 * 1024 * 1024 });
    const { server, port } = await echoServer({ memoryBudget: budget });
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
    const healthy = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => healthy.close(100));
    const got: number[] = [];
    healthy.on('frame', (_s: Session, f: Frame) => got.push(numberOf(f.payload)));
    const hs = await healthy.connect({ host: '127.0.0.1', port });
    const frame = Buffer.from(new FrameEncoder('fastport').encode(Buffer.alloc(30_000, 5), 9));
    for (let i = 0; i < 50; i++) {
      const p = await connectRaw(port);
      const part = 4 + 1000 + i * 100;
      p.socket.write(frame.subarray(0, part)); // header and part of the body
      await waitFor(() => [...server.sessions].some((s) => s.remote.port === p.socket.localPort && s.counters.bytesIn === part), 'partial frame received');
      p.socket.resetAndDestroy();
      await p.closed;
      hs.send(numbered(i + 1), 0x30);
    }
    await waitFor(() => closes.length === 50 && got.length === 50, 'all resets seen, all echoes back');
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const reasons = new Set(closes.map((c) => `${c.reason}:${c.code ?? ''}`));
    for (const r of reasons) expect(['error:ECONNRESET', 'peer:']).toContain(r);
    expect(server.sessions.size).toBe(1);
    budget.recount();
    expect(budget.stats().usedBytes).toBe(0);
    expect(hs.state).toBe('open');
    console.log(`[${kind}] RST mid-frame: 50 resets (${[...reasons].join(', ')}), healthy session 50/50 echoes, reassembly held after: ${budget.stats().usedBytes} bytes`);
  }, 30_000);

  it(`[${kind}] garbage control frames close only their session ('control-malformed')`, async () => {
    const { server, port } = await echoServer({ memoryBudget: false });
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, info: SessionCloseInfo) => closes.push(info));
    const enc = new FrameEncoder('fastport');
    const bad = [
      enc.encode(Buffer.alloc(2), ControlFrameId.Ping), // too short
      enc.encode(Buffer.from([0, 0, 0, 0, 0, 0, 0, 9]), ControlFrameId.Ack), // acks frames never sent... on a non-resumable session: ignored
      enc.encode(Buffer.alloc(3), ControlFrameId.GoAway), // too short
      enc.encode(Buffer.alloc(10), ControlFrameId.ResumeOk), // too short
    ];
    for (const b of bad) {
      const p = await connectRaw(port);
      p.socket.write(b);
      p.socket.write(enc.encode(Buffer.from('after'), 5));
      await sleep(20);
      p.socket.end();
      await p.closed;
      const frames = decodeAll('fastport', p.chunks);
      // A malformed control frame ends the session before the frame after it is echoed.
      if (closes.at(-1)?.reason === 'control-malformed') expect(frames.some((f) => f.id === 5)).toBe(false);
    }
    await waitFor(() => closes.length === bad.length, 'all closed');
    expect(closes.map((c) => c.reason)).toEqual(['control-malformed', 'peer', 'control-malformed', 'control-malformed']);
    await echoRoundTrip(port, 'fastport');
  });
});
