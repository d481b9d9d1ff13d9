import { describe, expect, it } from 'vitest';
import { PayloadPattern, headerSize, writeRawHeader } from '../src/payload';
import { EngineTransport, type TConn } from '../src/transport';
import type { Framing } from '../src/types';

/** Feeds frames to the engine transport's parser cut at every possible point; each must come out whole and verified. */
describe('engine-layer frame parser', () => {
  for (const framing of ['fastport', 'large', 'u32le'] as Framing[]) {
    it(`${framing}: frames split anywhere, and many per read`, async () => {
      const size = 37;
      const p = new PayloadPattern(size, headerSize(framing), (frame) => writeRawHeader(framing, frame, size));
      const frames: Buffer[] = [];
      for (let seq = 0; seq < 3; seq++) {
        p.raw(5, seq);
        frames.push(Buffer.from(p.frame));
      }
      const stream = Buffer.concat(frames);
      const got: { ok: boolean; id: number; wire: number }[] = [];
      let seen = 0;
      const t = new EngineTransport<TConn>(
        { clientEngine: 'node', clientIoThreads: undefined, framing, maxFrame: framing === 'fastport' ? 0xffff : 1 << 24 },
        {
          onFrame: (_c, id, buf, start, len, wire) => got.push({ ok: p.verifyRawAt(buf, start, len, 5, seen++), id, wire }),
          onClose: () => undefined,
          onError: (code) => got.push({ ok: false, id: -1, wire: Number(code.length) }),
        },
      );
      const feed = (t as unknown as { onData(c: TConn, d: Uint8Array): void }).onData.bind(t);
      for (let a = 0; a <= stream.length; a++) {
        for (const b of [a, Math.min(stream.length, a + 1), Math.min(stream.length, a + 3)]) {
          got.length = 0;
          seen = 0;
          const c: TConn = { session: undefined, id: 1, rbuf: undefined, rlen: 0, open: true };
          for (const [x, y] of [[0, a], [a, b], [b, stream.length]] as const) if (y > x) feed(c, stream.subarray(x, y));
          expect(got).toHaveLength(3);
          for (const g of got) {
            expect(g.ok).toBe(true);
            expect(g.id).toBe(framing === 'u32le' ? 0 : 0x1001);
            expect(g.wire).toBe(size + headerSize(framing));
          }
          expect(c.rlen).toBe(0);
        }
      }
      await t.destroy();
    });
  }
});
