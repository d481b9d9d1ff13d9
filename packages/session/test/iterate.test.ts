import { afterEach, expect, it } from 'vitest';
import { Client, FrameEncoder, Server, type Frame, type Session } from '../src';
import { waitFor, connectRaw } from '@fastport/test-utils';
import { forEachEngine, numbered, numberOf } from './helpers';

// `for await (const frame of session)`: frames are copies (valid after the
// loop body awaits), the loop ends on a clean close and throws on an
// abnormal one, and a slow loop pauses reading instead of buffering.
forEachEngine('for await (const frame of session)', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  /** A server whose first session is handed out, and a client connected to it. */
  async function pair(serverOptions: ConstructorParameters<typeof Server>[0] = {}) {
    const server = new Server({ engine: kind, memoryBudget: false, ...serverOptions });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const first = new Promise<Session>((resolve) => server.once('session', resolve));
    const client = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => client.close(200));
    const c = await client.connect(port, '127.0.0.1');
    return { server, client, c, s: await first, port };
  }

  it(`[${kind}] yields every frame in order as a copy, and ends (no throw) when the peer closes cleanly`, async () => {
    const { c, s } = await pair();
    const got: Frame[] = [];
    const loop = (async () => {
      for await (const frame of s) {
        await new Promise((r) => setImmediate(r)); // the engine's view would be gone by now
        got.push(frame);
      }
    })();
    for (let i = 1; i <= 200; i++) c.send(numbered(i, 100), 0x1001);
    c.close();
    await loop;
    expect(got.map((f) => numberOf(f.payload))).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(got.every((f) => f.id === 0x1001 && f.payload.byteLength === 100 && f.bytes.byteLength === 104)).toBe(true);
    expect(s.state).toBe('closed');
  });

  it(`[${kind}] throws on an abnormal close (framing error from the peer), after the frames that came before it`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    const first = new Promise<Session>((resolve) => server.once('session', resolve));
    const peer = await connectRaw(port);
    cleanups.push(async () => void peer.socket.destroy());
    const s = await first;
    const got: number[] = [];
    const loop = (async () => {
      for await (const frame of s) got.push(numberOf(frame.payload));
    })();
    const enc = new FrameEncoder('fastport');
    peer.socket.write(Buffer.concat([enc.encode(numbered(1), 7), enc.encode(numbered(2), 7)]));
    await waitFor(() => got.length === 2, 'two frames');
    peer.socket.write(Buffer.from([0x00, 0x01, 0x00, 0x07])); // a size smaller than the header
    await expect(loop).rejects.toMatchObject({ code: 'ERR_FRAME_MALFORMED', closeInfo: { reason: 'framing' } });
    expect(got).toEqual([1, 2]);
  });

  it(`[${kind}] throws when the session is reset locally (abort), as a destroyed Node stream does`, async () => {
    const { s } = await pair();
    const loop = (async () => {
      for await (const _frame of s) void _frame;
    })();
    s.abort();
    await expect(loop).rejects.toMatchObject({ code: 'ERR_CONN_CLOSED', closeInfo: { reason: 'abort' } });
  });

  it(`[${kind}] a slow loop pauses reading (bounded buffer), then gets every frame once it catches up`, async () => {
    const { c, s, server } = await pair();
    const FRAMES = 4096;
    const SIZE = 1024;
    const it = s.frames({ highWaterMark: 16 * 1024 });
    for (let i = 1; i <= FRAMES; i++) c.send(numbered(i, SIZE), 0x2002); // 4 MiB: far more than the buffer
    await waitFor(() => s.readPaused, 'reading paused while nobody pulls');
    const inAtPause = s.counters.framesIn;
    console.log(`[${kind}] for-await loop with a 16 KiB buffer: reading paused after ${inAtPause} of ${FRAMES} frames (${Math.round((inAtPause * (SIZE + 4)) / 1024)} KiB taken in)`);
    // Bounded: the buffer's high watermark plus what reads already taken in carry, not the 4 MiB sent.
    expect(inAtPause * (SIZE + 4)).toBeLessThan(16 * 1024 + 1024 * 1024);
    expect(server.stats().readPaused).toBe(1);
    const seen: number[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) {
      seen.push(numberOf(r.value.payload));
      if (seen.length === FRAMES) break;
    }
    expect(seen).toEqual(Array.from({ length: FRAMES }, (_, i) => i + 1));
    expect(s.readPaused).toBe(false);
  });

  it(`[${kind}] the bound holds on a client too, where read backpressure is off by default`, async () => {
    const { client, c, s } = await pair();
    expect(client.readBackpressure).toBe(false);
    const FRAMES = 2048;
    const it = c.frames({ highWaterMark: 8 * 1024 });
    for (let i = 1; i <= FRAMES; i++) s.send(numbered(i, 1024), 0x3003);
    await waitFor(() => c.readPaused, 'client reading paused while nobody pulls');
    expect(c.counters.framesIn).toBeLessThan(FRAMES / 2);
    let n = 0;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      expect(numberOf(r.value.payload)).toBe(++n);
      if (n === FRAMES) break;
    }
    expect(c.readPaused).toBe(false);
  });

  it(`[${kind}] break leaves the session open and reading; one loop at a time`, async () => {
    const { c, s } = await pair();
    expect(() => s.frames({ highWaterMark: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    const loop = (async () => {
      for await (const frame of s) {
        if (numberOf(frame.payload) === 3) break;
      }
    })();
    expect(() => s[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    for (let i = 1; i <= 3; i++) c.send(numbered(i), 1);
    await loop;
    expect(s.state).toBe('open');
    expect(s.readPaused).toBe(false);
    // A new loop may start once the first ended; it sees what arrives from then on.
    const again = s[Symbol.asyncIterator]();
    c.send(numbered(4), 1);
    const next = await again.next();
    expect(next.done).toBe(false);
    expect(numberOf((next.value as Frame).payload)).toBe(4);
    await again.return?.();
  });
});
