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

export class PayloadPattern {
  readonly size: number;
  /** size + 256 bytes of pattern. */
  readonly pattern: Buffer;
  /** One request, rebuilt for each send (engines copy on send). */
  readonly scratch: Buffer;

  constructor(size: number) {
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
    this.scratch = Buffer.allocUnsafe(size);
  }

  static offset(seq: number): number {
    return (seq * 7) & (WINDOW - 1);
  }

  /** The raw request for (conn, seq): a view of `scratch`, valid until the next call. */
  raw(conn: number, seq: number): Buffer {
    const size = this.size;
    const off = PayloadPattern.offset(seq);
    if (size < 8) return this.pattern.subarray(off, off + size);
    const s = this.scratch;
    s.writeUInt32LE(conn >>> 0, 0);
    s.writeUInt32LE(seq >>> 0, 4);
    this.pattern.copy(s, 8, off, off + size - 8);
    return s;
  }

  /** True when `payload` is exactly the raw request (conn, seq). */
  verifyRaw(payload: Uint8Array, conn: number, seq: number): boolean {
    const size = this.size;
    if (payload.byteLength !== size) return false;
    const off = PayloadPattern.offset(seq);
    if (size < 8) return this.pattern.compare(payload, 0, size, off, off + size) === 0;
    const c = (payload[0]! | (payload[1]! << 8) | (payload[2]! << 16) | (payload[3]! << 24)) >>> 0;
    const s = (payload[4]! | (payload[5]! << 8) | (payload[6]! << 16) | (payload[7]! << 24)) >>> 0;
    if (c !== conn >>> 0 || s !== seq >>> 0) return false;
    return this.pattern.compare(payload, 8, size, off, off + size - 8) === 0;
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
