import { afterEach, describe, expect, it } from 'vitest';
import { Client, ReconnectingClient, Server, type Frame, type Session } from '../src';
import { waitFor, connectRaw } from '@fastport/test-utils';
import { forEachEngine, numbered, numberOf } from './helpers';

// send() follows Node's write(): true while the queue is under the high
// watermark, false past it ('drain' follows at the low watermark), and no
// throw on backpressure unless the 'reject' policy is asked for.
forEachEngine('send() and drain', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function stalledSession(options: ConstructorParameters<typeof Server>[0] = {}) {
    const server = new Server({ engine: kind, memoryBudget: false, maxPendingBytes: 256 * 1024, highWaterMark: 128 * 1024, lowWaterMark: 32 * 1024, ...options });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const peer = await connectRaw(port);
    cleanups.push(async () => void peer.socket.destroy());
    peer.socket.pause(); // never reads until the test says so
    await waitFor(() => server.sessions.size === 1, 'session');
    return { server, peer, session: [...server.sessions][0] as Session };
  }

  it(`[${kind}] by default send() returns true under the high watermark, false past it, never throws past the limit, and 'drain' follows`, async () => {
    const { server, peer, session } = await stalledSession();
    const chunk = Buffer.alloc(16 * 1024, 1);
    const results: boolean[] = [];
    let threw: unknown;
    // Past the high watermark and on past the limit (kernel buffers absorb some MB first); bounded.
    for (let i = 0; i < 4000 && session.counters.dropped === 0; i++) {
      try {
        results.push(session.send(chunk, 1));
      } catch (err) {
        threw = err;
        break;
      }
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    expect(threw).toBeUndefined();
    expect(results[0]).toBe(true);
    expect(results).toContain(false);
    expect(session.counters.dropped).toBeGreaterThan(0); // past the limit: dropped, counted
    expect(server.stats().dropped).toBe(session.counters.dropped);
    expect(session.writableNeedDrain).toBe(true);
    expect(session.state).toBe('open');
    expect(session.pendingBytes).toBeLessThanOrEqual(256 * 1024);

    let drains = 0;
    session.on('drain', () => drains++);
    peer.socket.resume();
    await waitFor(() => drains === 1, "'drain' after the peer reads");
    expect(session.writableNeedDrain).toBe(false);
    expect(session.send(chunk, 1)).toBe(true);
  });

  it(`[${kind}] trySend() tells what happened: 'queued', 'high-water', then 'dropped' past the limit`, async () => {
    const { session } = await stalledSession();
    const chunk = Buffer.alloc(16 * 1024, 2);
    const seen = new Set<string>();
    for (let i = 0; i < 4000 && !seen.has('dropped'); i++) {
      seen.add(session.trySend(chunk, 1));
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    expect([...seen].sort()).toEqual(['dropped', 'high-water', 'queued']);
  });

  it(`[${kind}] backpressure: 'reject' keeps the throwing policy (ERR_BACKPRESSURE past the limit)`, async () => {
    const { session } = await stalledSession({ backpressure: 'reject' });
    const chunk = Buffer.alloc(16 * 1024, 3);
    let code: string | undefined;
    for (let i = 0; i < 4000 && code === undefined; i++) {
      try {
        session.send(chunk, 1);
      } catch (err) {
        code = (err as { code?: string }).code;
      }
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    expect(code).toBe('ERR_BACKPRESSURE');
    expect(session.counters.dropped).toBe(0);
  });

  it(`[${kind}] a send on a closed session returns false, sends nothing, throws nothing, and no 'drain' follows`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const client = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => client.close(200));
    const session = await client.connect(port, '127.0.0.1');
    let drains = 0;
    session.on('drain', () => drains++);
    session.close();
    expect(session.send(Buffer.from('late'), 1)).toBe(false); // closing
    await waitFor(() => session.state === 'closed', 'closed');
    const out = session.counters.framesOut;
    expect(session.send(Buffer.from('later'), 1)).toBe(false);
    expect(session.sendFrame(Buffer.from([0, 5, 0, 1, 9]))).toBe(false);
    expect(session.trySend(Buffer.from('later'), 1)).toBe('closed');
    expect(session.writableNeedDrain).toBe(false);
    expect(session.counters.framesOut).toBe(out);
    await new Promise((r) => setTimeout(r, 20));
    expect(drains).toBe(0);
  });

  it(`[${kind}] a resumable session whose replay backlog is behind a queue over its high watermark answers false ('high-water'), then 'drain'`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false, resume: { ackDelayMs: 5 }, maxPendingBytes: 64 * 1024, highWaterMark: 16 * 1024, lowWaterMark: 4 * 1024 });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(500));
    const rc = new ReconnectingClient({ engine: kind, host: '127.0.0.1', port, memoryBudget: false, reconnect: { initialDelayMs: 10, maxDelayMs: 100 } });
    cleanups.push(() => rc.close(500));
    const got: number[] = [];
    rc.on('frame', (_s: Session, f: Frame) => got.push(numberOf(f.payload)));
    const first = new Promise<Session>((resolve) => server.once('session', resolve));
    await rc.start();
    const s = await first;
    const BACKLOG = 64; // 64 x 4 KiB kept while detached: four times the queue limit
    s.once('detach', () => {
      for (let i = 1; i <= BACKLOG; i++) expect(s.trySend(numbered(i, 4096), 0x8002)).toBe('queued'); // kept for replay
    });
    let onResume: { result: string; needDrain: boolean } | undefined;
    s.once('resume', () => {
      // The replay filled the new connection's queue past its high watermark; the rest waits behind it.
      const result = s.trySend(numbered(BACKLOG + 1, 4096), 0x8002);
      onResume = { result, needDrain: s.writableNeedDrain };
    });
    let drains = 0;
    s.on('drain', () => drains++);
    s.closeWith('abort', { reason: 'test-reset' });
    await waitFor(() => onResume !== undefined, 'resumed');
    expect(onResume).toEqual({ result: 'high-water', needDrain: true });
    await waitFor(() => got.length === BACKLOG + 1, 'every kept frame delivered');
    expect(got).toEqual(Array.from({ length: BACKLOG + 1 }, (_, i) => i + 1));
    await waitFor(() => drains > 0, "'drain'");
  });
});

describe('backpressure option', () => {
  it("an unknown policy is refused up front, naming the choices", () => {
    expect(() => new Server({ engine: 'node', memoryBudget: false, backpressure: 'throw' as never })).toThrow(/backpressure must be one of drop, reject, close/);
  });
});
