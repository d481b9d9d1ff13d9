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
/** Up to this size a JS loop beats a call into Buffer's C++ copy/compare. */
const SMALL = 128;

export class PayloadPattern {
  readonly size: number;
  /** size + 256 bytes of pattern. */
  readonly pattern: Buffer;
  /** `headerRoom` bytes (for a frame header the caller writes once) followed by the payload. */
  readonly frame: Buffer;
  /** The payload part of `frame`: one request, rebuilt for each send (engines copy on send). */
  readonly scratch: Buffer;

  constructor(size: number, headerRoom = 0) {
    this.size = size;
    this.pattern = Buffer.allocUnsafe(size + WINDOW);
    let x = 0x9e3779b9;
    for (let i = 0; i < this.pattern.length; i++) {
      // xorshift32: cheap, no runs that a buggy echo could reproduce by accident
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.pattern[i] = x & 0xff;
    }
    this.frame = Buffer.alloc(headerRoom + size);
    this.scratch = this.frame.subarray(headerRoom);
  }

  static offset(seq: number): number {
    return (seq * 7) & (WINDOW - 1);
  }

  /** Writes the raw request for (conn, seq) into `scratch` (and so `frame`) and returns `scratch`. */
  raw(conn: number, seq: number): Buffer {
    const size = this.size;
    const off = PayloadPattern.offset(seq);
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

  /** verifyRaw on buf[start, start + len) without making a view. */
  verifyRawAt(buf: Uint8Array, start: number, len: number, conn: number, seq: number): boolean {
    const size = this.size;
    if (len !== size) return false;
    const off = PayloadPattern.offset(seq);
    if (size < 8) return this.pattern.compare(buf, start, start + size, off, off + size) === 0;
    const c = (buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16) | (buf[start + 3]! << 24)) >>> 0;
    const q = (buf[start + 4]! | (buf[start + 5]! << 8) | (buf[start + 6]! << 16) | (buf[start + 7]! << 24)) >>> 0;
    if (c !== conn >>> 0 || q !== seq >>> 0) return false;
    const pat = this.pattern;
    if (size <= SMALL) {
      for (let i = start + 8, j = off, end = start + size; i < end; i++, j++) if (buf[i] !== pat[j]) return false;
      return true;
    }
    return pat.compare(buf, start + 8, start + size, off, off + size - 8) === 0;
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
