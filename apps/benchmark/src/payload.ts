/**
 * Request payloads and their verification.
 *
 * Raw requests (size >= 8) are `[u32 LE connection][u32 LE seq][body]`, the
 * body a window of a fixed pseudo-random pattern that starts at an offset
 * derived from seq, so every message differs from its neighbours and a
 * reordered, stale, truncated or corrupted echo is caught. Every byte of
 * every reply is compared (memcmp through Buffer#compare), not sampled.
 * Requests shorter than 8 bytes are pattern windows alone.
 * BenchmarkRequest payloads are pattern windows; seq is in the message.
 */
import type { FramingOption } from '@fastport/session';
import type { Framing } from './types';

export const RAW_PACKET_ID = 0x1001;
const WINDOW = 256;
/** Up to this many bytes of prebuilt requests (256 windows × frame size) the requests are built once. */
const PREBUILT_BYTES = 1024 * 1024;

export class PayloadPattern {
  readonly size: number;
  /** size + 256 bytes of pattern. */
  readonly pattern: Buffer;
  /** The whole frame (header room + payload) of the request the last `raw()` call made. */
  frame: Buffer;
  private readonly headerRoom: number;
  /**
   * One request per pattern window (seq picks the window): only the eight
   * bytes of connection and seq change between sends, so a send writes
   * those and no copy of the body is made. Empty when the frames would pass
   * PREBUILT_BYTES; then `scratch` is rebuilt for each send.
   */
  private readonly frames: Buffer[] = [];
  private readonly payloads: Buffer[] = [];
  private readonly scratchFrame: Buffer;
  private readonly scratch: Buffer;
  private readonly patternView: DataView;
  /**
   * The DataView of the last receive buffer verified: the replies of one
   * read share their view (checked first: `.buffer` is a call into V8), and
   * the reads of one engine a few ArrayBuffers.
   */
  private lastChunk: Uint8Array | undefined;
  private lastBuffer: ArrayBufferLike | undefined;
  private lastView: DataView | undefined;

  /** `writeHeader` fills the header room of a frame (the caller's framing). */
  constructor(size: number, headerRoom = 0, writeHeader?: (frame: Buffer) => void) {
    this.size = size;
    this.headerRoom = headerRoom;
    this.pattern = Buffer.allocUnsafe(size + WINDOW);
    let x = 0x9e3779b9;
    for (let i = 0; i < this.pattern.length; i++) {
      // xorshift32: cheap, no runs that a buggy echo could reproduce by accident
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.pattern[i] = x & 0xff;
    }
    this.patternView = new DataView(this.pattern.buffer, this.pattern.byteOffset, this.pattern.byteLength);
    this.scratchFrame = Buffer.alloc(headerRoom + size);
    this.scratch = this.scratchFrame.subarray(headerRoom);
    writeHeader?.(this.scratchFrame);
    if ((headerRoom + size) * WINDOW <= PREBUILT_BYTES) {
      for (let off = 0; off < WINDOW; off++) {
        const frame = Buffer.alloc(headerRoom + size);
        writeHeader?.(frame);
        if (size < 8) this.pattern.copy(frame, headerRoom, off, off + size);
        else this.pattern.copy(frame, headerRoom + 8, off, off + size - 8);
        this.frames.push(frame);
        this.payloads.push(frame.subarray(headerRoom));
      }
    }
    this.frame = this.scratchFrame;
  }

  static offset(seq: number): number {
    return (seq * 7) & (WINDOW - 1);
  }

  /**
   * Makes the raw request for (conn, seq) and returns its payload; `frame`
   * is then the whole frame. Both stay valid until the next call (engines
   * copy on send).
   */
  raw(conn: number, seq: number): Buffer {
    const size = this.size;
    const off = PayloadPattern.offset(seq);
    const frame = this.frames[off];
    if (frame !== undefined) {
      this.frame = frame;
      if (size >= 8) {
        const h = this.headerRoom;
        frame[h] = conn;
        frame[h + 1] = conn >>> 8;
        frame[h + 2] = conn >>> 16;
        frame[h + 3] = conn >>> 24;
        frame[h + 4] = seq;
        frame[h + 5] = seq >>> 8;
        frame[h + 6] = seq >>> 16;
        frame[h + 7] = seq >>> 24;
      }
      return this.payloads[off]!;
    }
    this.frame = this.scratchFrame;
    const s = this.scratch;
    if (size < 8) {
      this.pattern.copy(s, 0, off, off + size);
      return s;
    }
    s.writeUInt32LE(conn >>> 0, 0);
    s.writeUInt32LE(seq >>> 0, 4);
    this.pattern.copy(s, 8, off, off + size - 8);
    return s;
  }

  /** True when `payload` is exactly the raw request (conn, seq). */
  verifyRaw(payload: Uint8Array, conn: number, seq: number): boolean {
    return this.verifyRawAt(payload, 0, payload.byteLength, conn, seq);
  }

  private viewOf(buf: Uint8Array): DataView {
    if (buf === this.lastChunk && this.lastView !== undefined) return this.lastView;
    this.lastChunk = buf;
    const ab = buf.buffer;
    if (ab !== this.lastBuffer || this.lastView === undefined) {
      this.lastBuffer = ab;
      this.lastView = new DataView(ab);
    }
    return this.lastView;
  }

  /** verifyRaw on buf[start, start + len) without making a view. */
  verifyRawAt(buf: Uint8Array, start: number, len: number, conn: number, seq: number): boolean {
    const size = this.size;
    if (len !== size) return false;
    const off = PayloadPattern.offset(seq);
    if (size < 8) return this.pattern.compare(buf, start, start + size, off, off + size) === 0;
    if (size > PREBUILT_BYTES / WINDOW) {
      const c = (buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16) | (buf[start + 3]! << 24)) >>> 0;
      const q = (buf[start + 4]! | (buf[start + 5]! << 8) | (buf[start + 6]! << 16) | (buf[start + 7]! << 24)) >>> 0;
      if (c !== conn >>> 0 || q !== seq >>> 0) return false;
      return this.pattern.compare(buf, start + 8, start + size, off, off + size - 8) === 0;
    }
    // Four bytes per compare through DataViews (unaligned loads), the tail byte by byte.
    const dv = this.viewOf(buf);
    const base = buf.byteOffset + start;
    if (dv.getUint32(base, true) !== conn >>> 0 || dv.getUint32(base + 4, true) !== seq >>> 0) return false;
    const pv = this.patternView;
    const body = size - 8;
    const words = body & ~3;
    const from = base + 8;
    let i = 0;
    for (; i < words; i += 4) if (dv.getUint32(from + i, true) !== pv.getUint32(off + i, true)) return false;
    const pat = this.pattern;
    for (; i < body; i++) if (buf[start + 8 + i] !== pat[off + i]) return false;
    return true;
  }
  /** The BenchmarkRequest payload for seq (a view of the pattern). */
  body(seq: number): Buffer {
    const off = PayloadPattern.offset(seq);
    return this.pattern.subarray(off, off + this.size);
  }

  verifyBody(payload: Uint8Array, seq: number): boolean {
    if (payload.byteLength !== this.size) return false;
    const off = PayloadPattern.offset(seq);
    return this.pattern.compare(payload, 0, this.size, off, off + this.size) === 0;
  }
}

/** Writes the frame header of a raw request (packet id 0x1001 where the format has one). */
export function writeRawHeader(framing: Framing, out: Uint8Array, payloadLength: number): void {
  if (framing === 'fastport') {
    const total = payloadLength + 4;
    out[0] = total >>> 8;
    out[1] = total & 0xff;
    out[2] = RAW_PACKET_ID >>> 8;
    out[3] = RAW_PACKET_ID & 0xff;
  } else if (framing === 'large') {
    const total = payloadLength + 6;
    out[0] = total >>> 24;
    out[1] = (total >>> 16) & 0xff;
    out[2] = (total >>> 8) & 0xff;
    out[3] = total & 0xff;
    out[4] = RAW_PACKET_ID >>> 8;
    out[5] = RAW_PACKET_ID & 0xff;
  } else {
    out[0] = payloadLength & 0xff;
    out[1] = (payloadLength >>> 8) & 0xff;
    out[2] = (payloadLength >>> 16) & 0xff;
    out[3] = payloadLength >>> 24;
  }
}

/** Total frame length (header included) read from a header at buf[o]. */
export function readFrameLength(framing: Framing, buf: Uint8Array, o: number): number {
  if (framing === 'fastport') return (buf[o]! << 8) | buf[o + 1]!;
  if (framing === 'large') return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  return ((buf[o]! | (buf[o + 1]! << 8) | (buf[o + 2]! << 16) | (buf[o + 3]! << 24)) >>> 0) + 4;
}

/** Packet id of a frame at buf[o] (0 for u32le, which has none). */
export function readFrameId(framing: Framing, buf: Uint8Array, o: number): number {
  if (framing === 'fastport') return (buf[o + 2]! << 8) | buf[o + 3]!;
  if (framing === 'large') return (buf[o + 4]! << 8) | buf[o + 5]!;
  return 0;
}

/** Frame header bytes of a preset. */
export function headerSize(framing: Framing): number {
  return framing === 'large' ? 6 : 4;
}

/** Largest payload a preset carries by default (fastport: 65,535-byte frames). */
export function maxPayload(framing: Framing, maxFrame: number): number {
  return framing === 'fastport' ? 0xffff - 4 : maxFrame - headerSize(framing);
}

export function framingOption(framing: Framing, maxFrame: number): FramingOption {
  return framing === 'fastport' ? 'fastport' : { preset: framing, maxFrameSize: maxFrame };
}

/** Frame size limit for a payload size: the preset's 16 MiB default, or just enough for a larger payload. */
export function maxFrameFor(framing: Framing, size: number): number {
  if (framing === 'fastport') return 0xffff;
  const need = size + headerSize(framing) + 64; // + protobuf overhead for --protocol benchmark
  return Math.max(16 * 1024 * 1024, need);
}
