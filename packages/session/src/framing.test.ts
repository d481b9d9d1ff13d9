import { describe, expect, it } from 'vitest';
import { FastPortError } from '@fastport/native-io';
import { prng } from '@fastport/test-utils';
import {
  FRAMING_PRESETS,
  FrameDecoder,
  MIN_REASSEMBLY_BYTES,
  FrameEncoder,
  resolveFrameSpec,
  type Frame,
  type FrameSpec,
  type FramingPreset,
} from './framing';

// ---------------------------------------------------------------- helpers

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A payload whose bytes depend on its index, so swapped/shifted frames are caught. */
function payloadOf(size: number, tag: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + tag * 7 + 1) & 0xff;
  return p;
}

interface Sent {
  id: number;
  payload: Uint8Array;
}

interface Got {
  id: number;
  payload: string;
  bytesLength: number;
}

interface Run {
  frames: Got[];
  errors: FastPortError[];
  results: boolean[];
  maxBuffered: number;
}

/** Pushes every chunk, copying what each frame carries. */
function run(decoder: FrameDecoder, chunks: Uint8Array[]): Run {
  const out: Run = { frames: [], errors: [], results: [], maxBuffered: 0 };
  const onFrame = (f: Frame): void => {
    out.frames.push({ id: f.id, payload: hex(f.payload), bytesLength: f.bytes.length });
  };
  const onError = (e: FastPortError): void => {
    out.errors.push(e);
  };
  for (const c of chunks) {
    out.results.push(decoder.push(c, onFrame, onError));
    out.maxBuffered = Math.max(out.maxBuffered, decoder.bufferedBytes);
  }
  return out;
}

function expected(spec: FrameSpec, sent: Sent[]): Got[] {
  return sent.map((s) => ({
    id: spec.idOffset === undefined ? 0 : s.id,
    payload: hex(s.payload),
    bytesLength: spec.headerSize + s.payload.length,
  }));
}

function encodeAll(encoder: FrameEncoder, sent: Sent[]): Uint8Array {
  return concat(sent.map((s) => encoder.encode(s.payload, s.id)));
}

function splitAt(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(stream.slice(prev, c));
    prev = c;
  }
  out.push(stream.slice(prev));
  return out;
}

function randomChunks(stream: Uint8Array, rnd: () => number, maxChunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < stream.length) {
    const n = Math.min(stream.length - pos, Math.floor(rnd() * maxChunk)); // 0-length chunks included
    out.push(stream.slice(pos, pos + n));
    pos += n;
  }
  return out;
}

function idMax(spec: FrameSpec): number {
  return spec.idWidth === undefined ? 0 : spec.idWidth === 1 ? 0xff : spec.idWidth === 2 ? 0xffff : 0xffffffff;
}

function makeFrames(spec: FrameSpec, sizes: number[], seed: number): Sent[] {
  const rnd = prng(seed);
  return sizes.map((size, i) => ({ id: Math.floor(rnd() * (idMax(spec) + 1)), payload: payloadOf(size, i) }));
}

function expectError(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FastPortError);
  expect((caught as FastPortError).code).toBe(code);
  if (message) expect((caught as FastPortError).message).toMatch(message);
}

/** 1-byte LE length (payload only) at offset 1, 1-byte id at offset 0, 1 reserved byte. */
const CUSTOM: FrameSpec = {
  headerSize: 3,
  lengthOffset: 1,
  lengthWidth: 1,
  lengthEndian: 'le',
  lengthIncludesHeader: false,
  idOffset: 0,
  idWidth: 1,
  idEndian: 'le',
  maxFrameSize: 3 + 255,
};

const PRESETS: FramingPreset[] = ['fastport', 'large', 'u32le'];

// ---------------------------------------------------------------- spec

describe('resolveFrameSpec', () => {
  it('resolves the presets to the documented layouts', () => {
    expect(resolveFrameSpec('fastport')).toEqual({
      headerSize: 4,
      lengthOffset: 0,
      lengthWidth: 2,
      lengthEndian: 'be',
      lengthIncludesHeader: true,
      idOffset: 2,
      idWidth: 2,
      idEndian: 'be',
      maxFrameSize: 65535,
    });
    expect(resolveFrameSpec('large')).toMatchObject({
      headerSize: 6,
      lengthWidth: 4,
      lengthEndian: 'be',
      lengthIncludesHeader: true,
      idOffset: 4,
      idWidth: 2,
      maxFrameSize: 16 * 1024 * 1024,
    });
    const u = resolveFrameSpec('u32le');
    expect(u).toMatchObject({ headerSize: 4, lengthWidth: 4, lengthEndian: 'le', lengthIncludesHeader: false });
    expect(u.idOffset).toBeUndefined();
    expect(u.maxFrameSize).toBe(16 * 1024 * 1024);
  });

  it('returns a fresh object and keeps the presets frozen', () => {
    const s = resolveFrameSpec('fastport');
    expect(s).not.toBe(FRAMING_PRESETS.fastport);
    s.maxFrameSize = 10;
    expect(FRAMING_PRESETS.fastport.maxFrameSize).toBe(65535);
    expect(Object.isFrozen(FRAMING_PRESETS.large)).toBe(true);
  });

  it('applies a maxFrameSize override to a preset', () => {
    expect(resolveFrameSpec({ preset: 'large', maxFrameSize: 1024 }).maxFrameSize).toBe(1024);
    expect(resolveFrameSpec({ preset: 'large' }).maxFrameSize).toBe(16 * 1024 * 1024);
    expect(resolveFrameSpec({ preset: 'fastport', maxFrameSize: 100 }).maxFrameSize).toBe(100);
  });

  it('fills in a default id endianness', () => {
    const { idEndian: _unused, ...noEndian } = CUSTOM;
    expect(resolveFrameSpec(noEndian).idEndian).toBe('be');
  });

  it('rejects a length field outside the header', () => {
    expectError(() => resolveFrameSpec({ ...CUSTOM, lengthOffset: 3 }), 'ERR_INVALID_ARGUMENT', /length field.*outside/);
    expectError(
      () => resolveFrameSpec({ ...FRAMING_PRESETS.u32le, lengthOffset: 1 }),
      'ERR_INVALID_ARGUMENT',
      /length field \(offset 1, 4 bytes\) lies outside the 4-byte header/,
    );
  });

  it('rejects bad id fields', () => {
    expectError(() => resolveFrameSpec({ ...CUSTOM, idOffset: 3 }), 'ERR_INVALID_ARGUMENT', /id field.*outside/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, idOffset: 1 }), 'ERR_INVALID_ARGUMENT', /overlaps the length field/);
    expectError(
      () => resolveFrameSpec({ ...FRAMING_PRESETS.fastport, idOffset: 1 }),
      'ERR_INVALID_ARGUMENT',
      /overlaps/,
    );
    expectError(() => resolveFrameSpec({ ...CUSTOM, idWidth: undefined }), 'ERR_INVALID_ARGUMENT', /idWidth/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, idOffset: undefined }), 'ERR_INVALID_ARGUMENT', /idOffset/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, idWidth: 3 as 1 }), 'ERR_INVALID_ARGUMENT', /idWidth/);
  });

  it('rejects bad widths, endianness and sizes', () => {
    expectError(() => resolveFrameSpec({ ...CUSTOM, lengthWidth: 3 as 1 }), 'ERR_INVALID_ARGUMENT', /lengthWidth/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, lengthEndian: 'xx' as 'be' }), 'ERR_INVALID_ARGUMENT', /lengthEndian/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, headerSize: 0 }), 'ERR_INVALID_ARGUMENT', /headerSize/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, headerSize: 2.5 }), 'ERR_INVALID_ARGUMENT', /headerSize/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, lengthOffset: -1 }), 'ERR_INVALID_ARGUMENT', /lengthOffset/);
    expectError(
      () => resolveFrameSpec({ ...CUSTOM, lengthIncludesHeader: 'yes' as unknown as boolean }),
      'ERR_INVALID_ARGUMENT',
      /lengthIncludesHeader/,
    );
    expectError(() => resolveFrameSpec({ ...CUSTOM, maxFrameSize: 2 }), 'ERR_INVALID_ARGUMENT', /maxFrameSize.*>= headerSize 3/);
    expectError(() => resolveFrameSpec({ ...CUSTOM, maxFrameSize: NaN }), 'ERR_INVALID_ARGUMENT', /maxFrameSize/);
  });

  it('rejects a maxFrameSize the length field cannot represent', () => {
    expectError(
      () => resolveFrameSpec({ preset: 'fastport', maxFrameSize: 65536 }),
      'ERR_INVALID_ARGUMENT',
      /cannot be represented by a 2-byte length field/,
    );
    // payload-only length: header + 255 is the largest 1-byte frame
    expect(resolveFrameSpec({ ...CUSTOM, maxFrameSize: 258 }).maxFrameSize).toBe(258);
    expectError(() => resolveFrameSpec({ ...CUSTOM, maxFrameSize: 259 }), 'ERR_INVALID_ARGUMENT', /cannot be represented/);
    expectError(
      () => resolveFrameSpec({ preset: 'large', maxFrameSize: 2 ** 32 }),
      'ERR_INVALID_ARGUMENT',
      /cannot be represented by a 4-byte/,
    );
  });

  it('rejects unknown presets and non-objects', () => {
    expectError(() => resolveFrameSpec('huge' as FramingPreset), 'ERR_INVALID_ARGUMENT', /unknown preset 'huge'/);
    expectError(() => resolveFrameSpec('toString' as FramingPreset), 'ERR_INVALID_ARGUMENT', /unknown preset/);
    expectError(() => resolveFrameSpec({ preset: 'nope' as FramingPreset }), 'ERR_INVALID_ARGUMENT', /unknown preset/);
    expectError(() => resolveFrameSpec(null as unknown as FrameSpec), 'ERR_INVALID_ARGUMENT');
  });

  it('is applied by the codec constructors', () => {
    expectError(() => new FrameDecoder({ ...CUSTOM, lengthOffset: 5 }), 'ERR_INVALID_ARGUMENT');
    expectError(() => new FrameEncoder({ ...CUSTOM, lengthOffset: 5 }), 'ERR_INVALID_ARGUMENT');
  });
});

// ---------------------------------------------------------------- layout

describe('encoder byte layout', () => {
  const hi = new TextEncoder().encode('hi');

  it('fastport: u16 BE total size + u16 BE id', () => {
    const enc = new FrameEncoder('fastport');
    expect(hex(enc.encode(hi, 0x1001))).toBe('00061001' + '6869');
    expect(hex(enc.header(2, 0x1001))).toBe('00061001');
  });

  it('large: u32 BE total size + u16 BE id', () => {
    const enc = new FrameEncoder('large');
    expect(hex(enc.encode(hi, 0x1002))).toBe('000000081002' + '6869');
    expect(hex(enc.header(0x00abcdef - 6, 0xabcd))).toBe('00abcdefabcd');
  });

  it('u32le: u32 LE payload length, no id', () => {
    const enc = new FrameEncoder('u32le');
    expect(hex(enc.encode(hi))).toBe('02000000' + '6869');
    expect(hex(enc.header(0x010203))).toBe('03020100');
    // formats without an id ignore it
    expect(hex(enc.encode(hi, 0x1234))).toBe('02000000' + '6869');
  });

  it('custom: 1-byte LE payload length at offset 1, 1-byte id at offset 0, zeroed gap', () => {
    const enc = new FrameEncoder(CUSTOM);
    expect(hex(enc.encode(hi, 0x7f))).toBe('7f0200' + '6869');
    const target = new Uint8Array(8).fill(0xee);
    expect(enc.writeHeader(target, 5, 9, 2)).toBe(3);
    expect(hex(target)).toBe('eeee' + '090500' + 'eeeeee');
    expect(enc.header(1, 1, target, 5)).toBe(target);
    expect(hex(target)).toBe('eeee090500' + '010100');
  });

  it('writeHeader rejects a target without room', () => {
    const enc = new FrameEncoder('fastport');
    expectError(() => enc.writeHeader(new Uint8Array(5), 1, 1, 2), 'ERR_INVALID_ARGUMENT', /no room/);
    expectError(() => enc.writeHeader(new Uint8Array(5), 1, 1, -1), 'ERR_INVALID_ARGUMENT', /no room/);
    expect(enc.writeHeader(new Uint8Array(5), 1, 1, 1)).toBe(4);
  });
});

describe('encoder limits', () => {
  it('throws ERR_FRAME_TOO_LARGE past maxFrameSize', () => {
    const fp = new FrameEncoder('fastport');
    expect(fp.header(65531).length).toBe(4);
    expectError(() => fp.header(65532), 'ERR_FRAME_TOO_LARGE', /65536 bytes exceeds maxFrameSize 65535/);
    expectError(() => fp.encode(new Uint8Array(65532), 1), 'ERR_FRAME_TOO_LARGE');
    const large = new FrameEncoder({ preset: 'large', maxFrameSize: 1024 });
    expect(large.encode(new Uint8Array(1018)).length).toBe(1024);
    expectError(() => large.encode(new Uint8Array(1019)), 'ERR_FRAME_TOO_LARGE', /exceeds maxFrameSize 1024/);
    const u = new FrameEncoder({ preset: 'u32le', maxFrameSize: 1024 });
    expect(u.header(1020).length).toBe(4);
    expectError(() => u.header(1021), 'ERR_FRAME_TOO_LARGE');
    const custom = new FrameEncoder(CUSTOM);
    expect(custom.header(255).length).toBe(3);
    expectError(() => custom.header(256), 'ERR_FRAME_TOO_LARGE');
  });

  it('throws ERR_INVALID_ARGUMENT for an id that does not fit', () => {
    const fp = new FrameEncoder('fastport');
    expect(hex(fp.header(0, 0xffff))).toBe('0004ffff');
    expectError(() => fp.header(0, 0x10000), 'ERR_INVALID_ARGUMENT', /0\.\.65535/);
    expectError(() => fp.header(0, -1), 'ERR_INVALID_ARGUMENT');
    expectError(() => fp.header(0, 1.5), 'ERR_INVALID_ARGUMENT');
    expectError(() => fp.encode(new Uint8Array(1), NaN), 'ERR_INVALID_ARGUMENT');
    const custom = new FrameEncoder(CUSTOM);
    expectError(() => custom.header(0, 256), 'ERR_INVALID_ARGUMENT', /1-byte id field \(0\.\.255\)/);
  });

  it('throws ERR_INVALID_ARGUMENT for a bad payload length', () => {
    const fp = new FrameEncoder('fastport');
    expectError(() => fp.header(-1), 'ERR_INVALID_ARGUMENT');
    expectError(() => fp.header(1.5), 'ERR_INVALID_ARGUMENT');
    expectError(() => fp.header(NaN), 'ERR_INVALID_ARGUMENT');
  });
});

// ---------------------------------------------------------------- round trips and chunking

const STREAM_SIZES: Record<FramingPreset | 'custom', number[]> = {
  fastport: [0, 1, 3, 255, 256, 65531, 2, 0, 4, 60, 1000, 65000, 7],
  large: [0, 1, 3, 255, 256, 65531, 65536, 200_000, 5, 0],
  u32le: [0, 1, 3, 255, 256, 65531, 65536, 200_000, 5, 0],
  custom: [0, 1, 3, 254, 255, 7, 0],
};

/** ~50 frames: the interesting sizes above, then a spread of small and medium ones. */
function streamSizes(kind: FramingPreset | 'custom', rnd: () => number): number[] {
  const sizes = [...STREAM_SIZES[kind]];
  const cap = kind === 'custom' ? 256 : 3000;
  while (sizes.length < 50) sizes.push(Math.floor(rnd() * rnd() * cap));
  return sizes;
}

const CASES: { name: FramingPreset | 'custom'; spec: FrameSpec }[] = [
  ...PRESETS.map((p) => ({ name: p, spec: resolveFrameSpec(p) })),
  { name: 'custom' as const, spec: resolveFrameSpec(CUSTOM) },
];

describe.each(CASES)('$name: round trips', ({ name, spec }) => {
  const enc = new FrameEncoder(spec);

  it('encode → decode keeps ids and payloads', () => {
    const sent = makeFrames(spec, [5, 0, 1, 17], 1);
    for (const s of sent) {
      const r = run(new FrameDecoder(spec), [enc.encode(s.payload, s.id)]);
      expect(r.errors).toEqual([]);
      expect(r.frames).toEqual(expected(spec, [s]));
    }
    if (spec.idOffset !== undefined) {
      // the largest and smallest ids survive
      const r = run(new FrameDecoder(spec), [enc.encode(bytes(1), idMax(spec)), enc.encode(bytes(2), 0)]);
      expect(r.frames.map((f) => f.id)).toEqual([idMax(spec), 0]);
    }
  });

  it('~50 frames of varied sizes: one push, 1-byte pushes, random chunkings', () => {
    const rnd = prng(42);
    const sent = makeFrames(spec, streamSizes(name, rnd), 2);
    const want = expected(spec, sent);
    const stream = encodeAll(enc, sent);

    const whole = run(new FrameDecoder(spec), [stream]);
    expect(whole.errors).toEqual([]);
    expect(whole.frames).toEqual(want);

    // 1-byte pushes, one decoder for the whole stream
    const dec = new FrameDecoder(spec);
    const got: Got[] = [];
    for (let i = 0; i < stream.length; i++) {
      const ok = dec.push(
        stream.subarray(i, i + 1),
        (f) => got.push({ id: f.id, payload: hex(f.payload), bytesLength: f.bytes.length }),
        (e) => {
          throw e;
        },
      );
      if (!ok) throw new Error(`push returned false at byte ${i}`);
      if (dec.bufferedBytes > spec.maxFrameSize) throw new Error(`buffered ${dec.bufferedBytes}`);
    }
    expect(got).toEqual(want);
    expect(dec.bufferedBytes).toBe(0);

    for (let seed = 1; seed <= 20; seed++) {
      const r = run(new FrameDecoder(spec), randomChunks(stream, prng(seed), seed % 2 ? 100 : 70_000));
      expect(r.errors).toEqual([]);
      expect(r.frames).toEqual(want);
      expect(r.maxBuffered).toBeLessThanOrEqual(spec.maxFrameSize);
    }
  });

  it('a smaller stream split at every byte boundary into two pushes', () => {
    const sizes = name === 'custom' ? [0, 1, 3, 255, 2, 0, 40] : [0, 1, 3, 255, 256, 2, 0, 40, 700, 9];
    const sent = makeFrames(spec, sizes, 3);
    const want = expected(spec, sent);
    const stream = encodeAll(enc, sent);
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = run(new FrameDecoder(spec), splitAt(stream, [cut]));
      if (r.errors.length !== 0 || r.frames.length !== want.length) {
        throw new Error(`cut at ${cut}: ${r.frames.length} frames, ${r.errors.length} errors`);
      }
      expect(r.frames).toEqual(want);
    }
  });

  it('zero-length payloads: alone, in a row, with a split header', () => {
    const sent = makeFrames(spec, [0, 0, 0], 4);
    const want = expected(spec, sent);
    const stream = encodeAll(enc, sent);
    expect(stream.length).toBe(3 * spec.headerSize);
    const r = run(new FrameDecoder(spec), [stream]);
    expect(r.frames).toEqual(want);
    for (const f of r.frames) expect(f.payload).toBe('');
    const bytewise = run(
      new FrameDecoder(spec),
      Array.from(stream, (b) => bytes(b)),
    );
    expect(bytewise.frames).toEqual(want);
  });
});

describe('many frames in one read', () => {
  it('delivers 10,000 tiny fastport frames from one chunk as views of it', () => {
    const enc = new FrameEncoder('fastport');
    const sent: Sent[] = [];
    for (let i = 0; i < 10_000; i++) sent.push({ id: i & 0xffff, payload: payloadOf(i % 5, i) });
    const chunk = encodeAll(enc, sent);
    const dec = new FrameDecoder('fastport');
    let n = 0;
    let frameObject: Frame | undefined;
    let offset = 0;
    const ok = dec.push(
      chunk,
      (f) => {
        const s = sent[n]!;
        const problem =
          f.id !== s.id
            ? 'id'
            : f.payload.buffer !== chunk.buffer || f.bytes.buffer !== chunk.buffer
              ? 'not a view of the chunk'
              : f.bytes.byteOffset !== offset || f.payload.byteOffset !== offset + 4
                ? 'offset'
                : hex(f.payload) !== hex(s.payload)
                  ? 'payload'
                  : frameObject !== undefined && f !== frameObject
                    ? 'new Frame object' // one Frame object reused
                    : '';
        if (problem !== '') throw new Error(`frame ${n}: ${problem}`);
        frameObject = f;
        offset += 4 + s.payload.length;
        n++;
      },
      (e) => {
        throw e;
      },
    );
    expect(ok).toBe(true);
    expect(n).toBe(10_000);
    expect(offset).toBe(chunk.length);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('views respect the chunk byteOffset; a split frame is a copy, the next whole one a view', () => {
    const enc = new FrameEncoder('u32le');
    const backing = new Uint8Array(100);
    const stream = concat([enc.encode(payloadOf(10, 1)), enc.encode(payloadOf(10, 2)), enc.encode(payloadOf(3, 3))]);
    backing.set(stream, 7);
    const chunk1 = backing.subarray(7, 7 + 20); // frame 1 (14 bytes) + 6 bytes of frame 2
    const chunk2 = backing.subarray(7 + 20, 7 + stream.length);
    const dec = new FrameDecoder('u32le');
    const seen: { view: boolean; offset: number; payload: string }[] = [];
    const onFrame = (f: Frame): void => {
      seen.push({ view: f.payload.buffer === backing.buffer, offset: f.payload.byteOffset, payload: hex(f.payload) });
    };
    dec.push(chunk1, onFrame, () => {});
    expect(dec.bufferedBytes).toBe(6);
    dec.push(chunk2, onFrame, () => {});
    expect(seen).toEqual([
      { view: true, offset: 7 + 4, payload: hex(payloadOf(10, 1)) },
      { view: false, offset: 4, payload: hex(payloadOf(10, 2)) },
      { view: true, offset: 7 + 28 + 4, payload: hex(payloadOf(3, 3)) },
    ]);
  });
});

describe('large frames reassembled from 64 KiB pieces', () => {
  for (const preset of ['large', 'u32le'] as const) {
    it(`${preset}: 1 MiB frame, bufferedBytes never above the frame size`, () => {
      const spec = resolveFrameSpec(preset);
      const enc = new FrameEncoder(spec);
      const big = payloadOf(1024 * 1024, 9);
      const tail = payloadOf(10, 10);
      const stream = concat([enc.encode(big, 0x1234), enc.encode(tail, 0x4321)]);
      const frameSize = spec.headerSize + big.length;
      const dec = new FrameDecoder(spec);
      const got: Got[] = [];
      let pushed = 0;
      for (let pos = 0; pos < stream.length; pos += 65536) {
        const piece = stream.slice(pos, pos + 65536);
        dec.push(
          piece,
          (f) => got.push({ id: f.id, payload: hex(f.payload), bytesLength: f.bytes.length }),
          (e) => {
            throw e;
          },
        );
        pushed += piece.length;
        expect(dec.bufferedBytes).toBeLessThanOrEqual(frameSize);
        if (got.length === 0) expect(dec.bufferedBytes).toBe(pushed); // everything so far is held, once
      }
      expect(got).toEqual(
        expected(spec, [
          { id: 0x1234, payload: big },
          { id: 0x4321, payload: tail },
        ]),
      );
      expect(dec.bufferedBytes).toBe(0);
    });
  }
});

// ---------------------------------------------------------------- errors

describe('oversized frames', () => {
  for (const preset of ['large', 'u32le'] as const) {
    it(`${preset}: declared 1025 with maxFrameSize 1024 fails on the header alone`, () => {
      const spec = resolveFrameSpec({ preset, maxFrameSize: 1024 });
      const hs = spec.headerSize;
      const header = new Uint8Array(hs);
      const dv = new DataView(header.buffer);
      if (preset === 'large') dv.setUint32(0, 1025, false);
      else dv.setUint32(0, 1025 - hs, true);

      // exactly 1024 is fine
      const okFrame = new FrameEncoder(spec).encode(new Uint8Array(1024 - hs), 1);
      expect(run(new FrameDecoder(spec), [okFrame]).frames.length).toBe(1);

      const dec = new FrameDecoder(spec);
      const errors: FastPortError[] = [];
      const r = dec.push(header, () => expect.unreachable('no frame'), (e) => errors.push(e));
      expect(r).toBe(false);
      expect(errors.length).toBe(1);
      expect(errors[0]).toBeInstanceOf(FastPortError);
      expect(errors[0]!.code).toBe('ERR_FRAME_TOO_LARGE');
      expect(errors[0]!.message).toMatch(/1025 bytes exceeds maxFrameSize 1024/);
      expect(dec.bufferedBytes).toBe(0);
      expect(dec.poisoned).toBe(true);
      // later bytes are ignored
      expect(dec.push(new Uint8Array(2000), () => expect.unreachable(), () => expect.unreachable())).toBe(false);
      expect(errors.length).toBe(1);

      // same header arriving one byte at a time: fails on its last byte
      const dec2 = new FrameDecoder(spec);
      const errors2: FastPortError[] = [];
      for (let i = 0; i < hs; i++) {
        const res = dec2.push(header.subarray(i, i + 1), () => expect.unreachable(), (e) => errors2.push(e));
        expect(res).toBe(i < hs - 1);
        expect(dec2.bufferedBytes).toBe(i < hs - 1 ? i + 1 : 0);
      }
      expect(errors2.map((e) => e.code)).toEqual(['ERR_FRAME_TOO_LARGE']);
    });

    it(`${preset}: a declared 0xFFFFFFFF length allocates nothing`, () => {
      const spec = resolveFrameSpec(preset);
      const header = new Uint8Array(spec.headerSize).fill(0xff);
      const before = process.memoryUsage().arrayBuffers;
      const decoders: FrameDecoder[] = [];
      const codes: string[] = [];
      for (let i = 0; i < 8; i++) {
        const dec = new FrameDecoder(spec);
        decoders.push(dec);
        // header split: first byte, then the rest (+ some payload bytes in the same chunk)
        expect(dec.push(header.subarray(0, 1), () => {}, () => {})).toBe(true);
        expect(dec.bufferedBytes).toBeLessThan(spec.headerSize);
        const rest = concat([header.subarray(1), new Uint8Array(100)]);
        expect(dec.push(rest, () => expect.unreachable(), (e) => codes.push(e.code))).toBe(false);
        expect(dec.bufferedBytes).toBe(0);
      }
      const grown = process.memoryUsage().arrayBuffers - before;
      expect(grown).toBeLessThan(1024 * 1024);
      expect(codes).toEqual(Array(8).fill('ERR_FRAME_TOO_LARGE'));
    });
  }

  it('u32le: the error message names the payload and the limit', () => {
    const dec = new FrameDecoder({ preset: 'u32le', maxFrameSize: 100 });
    let msg = '';
    dec.push(bytes(97, 0, 0, 0), () => {}, (e) => (msg = e.message));
    expect(msg).toMatch(/payload 97 bytes \+ 4-byte header = 101 bytes exceeds maxFrameSize 100/);
  });
});

describe('malformed frames', () => {
  for (let size = 0; size <= 3; size++) {
    it(`fastport: declared total size ${size} (< 4-byte header) → ERR_FRAME_MALFORMED`, () => {
      const enc = new FrameEncoder('fastport');
      const good1 = enc.encode(payloadOf(3, 1), 0x10);
      const good2 = enc.encode(payloadOf(0, 2), 0x11);
      const bad = bytes(0, size, 0x12, 0x34, 9, 9, 9, 9);
      const after = enc.encode(payloadOf(2, 3), 0x13);
      const dec = new FrameDecoder('fastport');
      const ids: number[] = [];
      const errors: FastPortError[] = [];
      const ok = dec.push(concat([good1, good2, bad, after]), (f) => ids.push(f.id), (e) => errors.push(e));
      expect(ok).toBe(false);
      expect(ids).toEqual([0x10, 0x11]); // frames before the bad one are delivered
      expect(errors.length).toBe(1);
      expect(errors[0]!.code).toBe('ERR_FRAME_MALFORMED');
      expect(errors[0]!.message).toMatch(new RegExp(`declared size ${size} bytes is smaller than the 4-byte header`));
      expect(dec.bufferedBytes).toBe(0);
      // poisoned: nothing more, even valid frames
      expect(dec.push(after, (f) => ids.push(f.id), (e) => errors.push(e))).toBe(false);
      expect(dec.push(new Uint8Array(0), (f) => ids.push(f.id), (e) => errors.push(e))).toBe(false);
      expect(ids).toEqual([0x10, 0x11]);
      expect(errors.length).toBe(1);
      // reset() starts a fresh stream
      dec.reset();
      expect(dec.poisoned).toBe(false);
      expect(dec.push(after, (f) => ids.push(f.id), (e) => errors.push(e))).toBe(true);
      expect(ids).toEqual([0x10, 0x11, 0x13]);
    });
  }

  it('large: a declared size below the 6-byte header is malformed, also when split', () => {
    const stream = concat([new FrameEncoder('large').encode(bytes(1, 2), 7), bytes(0, 0, 0, 5, 0, 0)]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = run(new FrameDecoder('large'), splitAt(stream, [cut]));
      expect(r.frames.map((f) => f.id)).toEqual([7]);
      expect(r.errors.map((e) => e.code)).toEqual(['ERR_FRAME_MALFORMED']);
      expect(r.results[r.results.length - 1]).toBe(false);
    }
  });

  it('a frame in a later chunk than a partial one: error after the partial completes', () => {
    const enc = new FrameEncoder('fastport');
    const good = enc.encode(payloadOf(20, 1), 1);
    const r = run(new FrameDecoder('fastport'), [good.subarray(0, 10), concat([good.subarray(10), bytes(0, 1, 0, 0)])]);
    expect(r.frames.map((f) => f.id)).toEqual([1]);
    expect(r.errors.map((e) => e.code)).toEqual(['ERR_FRAME_MALFORMED']);
    expect(r.results).toEqual([true, false]);
  });
});

// ---------------------------------------------------------------- callbacks

describe('callbacks that throw or reset', () => {
  const enc = new FrameEncoder('fastport');
  const frames = [1, 2, 3, 4, 5].map((id) => enc.encode(payloadOf(id, id), id));

  it('an exception from onFrame propagates; the rest is delivered on the next push', () => {
    const dec = new FrameDecoder('fastport');
    const ids: number[] = [];
    const onError = (e: FastPortError): void => {
      throw e;
    };
    const throwing = (f: Frame): void => {
      ids.push(f.id);
      if (f.id === 2) throw new Error('handler failed');
    };
    // frames 1..3 and half of 4 in the first chunk
    const stream = concat(frames);
    const cut = frames[0]!.length + frames[1]!.length + frames[2]!.length + 3;
    expect(() => dec.push(stream.subarray(0, cut), throwing, onError)).toThrow('handler failed');
    expect(ids).toEqual([1, 2]); // 2 consumed, 3 not yet delivered
    expect(dec.bufferedBytes).toBe(cut - frames[0]!.length - frames[1]!.length);
    const collect = (f: Frame): void => {
      ids.push(f.id);
    };
    expect(dec.push(new Uint8Array(0), collect, onError)).toBe(true);
    expect(ids).toEqual([1, 2, 3]);
    expect(dec.push(stream.subarray(cut), collect, onError)).toBe(true);
    expect(ids).toEqual([1, 2, 3, 4, 5]);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('held-back bytes come before the next chunk, even if onFrame throws again', () => {
    const dec = new FrameDecoder('fastport');
    const ids: number[] = [];
    let throwOn = new Set([1, 3]);
    const onFrame = (f: Frame): void => {
      ids.push(f.id);
      if (throwOn.has(f.id)) throw new Error(`boom ${f.id}`);
    };
    const stream = concat(frames);
    const cut = frames[0]!.length + frames[1]!.length + frames[2]!.length + 1;
    expect(() => dec.push(stream.subarray(0, cut), onFrame, () => {})).toThrow('boom 1');
    expect(() => dec.push(stream.subarray(cut), onFrame, () => {})).toThrow('boom 3');
    throwOn = new Set();
    expect(dec.push(new Uint8Array(0), onFrame, () => {})).toBe(true);
    expect(ids).toEqual([1, 2, 3, 4, 5]);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('a reassembled frame whose handler throws counts as consumed', () => {
    const dec = new FrameDecoder('fastport');
    const ids: number[] = [];
    const onFrame = (f: Frame): void => {
      ids.push(f.id);
      if (f.id === 1) throw new Error('x');
    };
    const stream = concat(frames);
    dec.push(stream.subarray(0, 3), onFrame, () => {});
    expect(() => dec.push(stream.subarray(3), onFrame, () => {})).toThrow('x');
    expect(dec.push(new Uint8Array(0), onFrame, () => {})).toBe(true);
    expect(ids).toEqual([1, 2, 3, 4, 5]);
  });

  it('reset() inside onFrame drops the rest of the chunk', () => {
    const dec = new FrameDecoder('fastport');
    const ids: number[] = [];
    dec.push(
      concat(frames),
      (f) => {
        ids.push(f.id);
        if (f.id === 2) dec.reset();
      },
      () => {},
    );
    expect(ids).toEqual([1, 2]);
    expect(dec.bufferedBytes).toBe(0);
    expect(dec.push(frames[4]!, (f) => ids.push(f.id), () => {})).toBe(true);
    expect(ids).toEqual([1, 2, 5]);
  });

  it('push from inside a callback throws', () => {
    const dec = new FrameDecoder('fastport');
    let inner: unknown;
    expect(() =>
      dec.push(frames[0]!, () => {
        try {
          dec.push(frames[1]!, () => {}, () => {});
        } catch (e) {
          inner = e;
          throw e;
        }
      }, () => {}),
    ).toThrow(/from inside its own callback/);
    expect((inner as FastPortError).code).toBe('ERR_INVALID_ARGUMENT');
    // still usable
    const ids: number[] = [];
    expect(dec.push(frames[2]!, (f) => ids.push(f.id), () => {})).toBe(true);
    expect(ids).toEqual([3]);
  });

  it('the frame object is emptied after push returns', () => {
    const dec = new FrameDecoder('fastport');
    let kept: Frame | undefined;
    dec.push(frames[3]!, (f) => (kept = f), () => {});
    expect(kept!.payload.length).toBe(0);
    expect(kept!.bytes.length).toBe(0);
  });
});

describe('reassembly grows with the bytes received', () => {
  const hdr = (payloadLen: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, payloadLen, true);
    return b;
  };

  it('a header declaring 16 MiB plus 100 bytes holds about 100 bytes, not 16 MiB', () => {
    const dec = new FrameDecoder({ preset: 'u32le', maxFrameSize: 16 * 1024 * 1024 });
    const noop = (): void => {};
    const fail = (e: Error): void => {
      throw e;
    };
    dec.push(hdr(16 * 1024 * 1024 - 4), noop, fail);
    expect(dec.heldBytes).toBeLessThanOrEqual(MIN_REASSEMBLY_BYTES);
    dec.push(new Uint8Array(100), noop, fail);
    expect(dec.heldBytes).toBeLessThanOrEqual(Math.max(MIN_REASSEMBLY_BYTES, 2 * 104));
    // Grows geometrically and stays within twice what arrived; the completed frame is exact.
    let sent = 104;
    const chunk = new Uint8Array(64 * 1024).fill(7);
    let got: Uint8Array | undefined;
    while (got === undefined) {
      const want = Math.min(chunk.length, 16 * 1024 * 1024 - sent);
      dec.push(chunk.subarray(0, want), (f) => (got = Buffer.from(f.bytes)), fail);
      sent += want;
      if (got === undefined) expect(dec.heldBytes).toBeLessThanOrEqual(2 * sent);
    }
    expect(got.length).toBe(16 * 1024 * 1024);
    expect(got[got.length - 1]).toBe(7);
    expect(dec.heldBytes).toBe(0);
  });

  it('a failed allocation (a huge maxFrameSize) poisons the decoder with ENOBUFS instead of throwing', () => {
    class TightDecoder extends FrameDecoder {
      protected override allocate(bytes: number): Uint8Array {
        if (bytes > 1024) throw new RangeError('Array buffer allocation failed');
        return super.allocate(bytes);
      }
    }
    const dec = new TightDecoder({ preset: 'u32le', maxFrameSize: 4 + 0xffffffff });
    const errors: FastPortError[] = [];
    dec.push(hdr(0xffffffff), () => {}, (e) => errors.push(e));
    expect(() => dec.push(new Uint8Array(4096), () => {}, (e) => errors.push(e))).not.toThrow();
    expect(errors.map((e) => e.code)).toEqual(['ENOBUFS']);
    expect(dec.poisoned).toBe(true);
    expect(dec.heldBytes).toBe(0);
  });
});
