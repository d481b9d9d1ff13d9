/**
 * Length-prefixed framing (the idea of Netty's LengthFieldBasedFrameDecoder,
 * written for this project).
 *
 * A frame is `[header][payload]`. The header holds a length field (1, 2 or 4
 * bytes, big or little endian, counting either the whole frame or only the
 * payload) and optionally a packet id field. Presets:
 *
 * - `fastport`: FastPort's original format, `[u16 BE total size incl. header]
 *   [u16 BE packet id][payload]`, at most 65,535 bytes per frame.
 * - `large`: `[u32 BE total size incl. header][u16 BE packet id][payload]`,
 *   at most 16 MiB by default.
 * - `u32le`: `[u32 LE payload length][payload]`, no id, 16 MiB by default.
 *
 * Decoding is zero-copy for frames that lie wholly inside one pushed chunk:
 * they are delivered as `subarray` views of that chunk, through one `Frame`
 * object reused by the decoder. Only a frame split across chunks is copied,
 * into a buffer that grows as its bytes arrive (doubling, capped at the
 * declared size): a declared length is only checked against `maxFrameSize`,
 * never allocated ahead, so a peer that declares 16 MiB and sends 100 bytes
 * makes the decoder hold about 100 bytes, not 16 MiB.
 */
import { FastPortError } from '@fastport/native-io';

export interface FrameSpec {
  /** Bytes of header before the payload. */
  headerSize: number;
  /** Where the length field sits in the header. */
  lengthOffset: number;
  lengthWidth: 1 | 2 | 4;
  lengthEndian: 'be' | 'le';
  /** true: length counts the whole frame (header included); false: payload only. */
  lengthIncludesHeader: boolean;
  /** Packet id field, if the format has one. */
  idOffset?: number;
  /** Width of the packet id field (required when `idOffset` is set). */
  idWidth?: 1 | 2 | 4;
  /** Endianness of the packet id field (default 'be'). */
  idEndian?: 'be' | 'le';
  /** Largest whole frame (header + payload) accepted or sent. */
  maxFrameSize: number;
}

export type FramingPreset = 'fastport' | 'large' | 'u32le';

/** What `resolveFrameSpec` (and the codec constructors) accept. */
export type FramingOption = FramingPreset | FrameSpec | { preset: FramingPreset; maxFrameSize?: number };

const MIB16 = 16 * 1024 * 1024;

export const FRAMING_PRESETS: Readonly<Record<FramingPreset, FrameSpec>> = Object.freeze({
  fastport: Object.freeze<FrameSpec>({
    headerSize: 4,
    lengthOffset: 0,
    lengthWidth: 2,
    lengthEndian: 'be',
    lengthIncludesHeader: true,
    idOffset: 2,
    idWidth: 2,
    idEndian: 'be',
    maxFrameSize: 0xffff,
  }),
  large: Object.freeze<FrameSpec>({
    headerSize: 6,
    lengthOffset: 0,
    lengthWidth: 4,
    lengthEndian: 'be',
    lengthIncludesHeader: true,
    idOffset: 4,
    idWidth: 2,
    idEndian: 'be',
    maxFrameSize: MIB16,
  }),
  u32le: Object.freeze<FrameSpec>({
    headerSize: 4,
    lengthOffset: 0,
    lengthWidth: 4,
    lengthEndian: 'le',
    lengthIncludesHeader: false,
    maxFrameSize: MIB16,
  }),
});

function invalid(message: string): FastPortError {
  return new FastPortError('ERR_INVALID_ARGUMENT', message);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function isWidth(v: unknown): v is 1 | 2 | 4 {
  return v === 1 || v === 2 || v === 4;
}

function isEndian(v: unknown): v is 'be' | 'le' {
  return v === 'be' || v === 'le';
}

function isPreset(v: unknown): v is FramingPreset {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(FRAMING_PRESETS, v);
}

function presetNames(): string {
  return Object.keys(FRAMING_PRESETS).join(', ');
}

/** Largest unsigned value a field of `width` bytes holds. */
function fieldMax(width: 1 | 2 | 4): number {
  return width === 4 ? 0xffffffff : width === 2 ? 0xffff : 0xff;
}

function validateSpec(s: FrameSpec, where: string): FrameSpec {
  if (s === null || typeof s !== 'object') throw invalid(`${where}: expected a frame spec object`);
  const { headerSize, lengthOffset, lengthWidth, lengthEndian, lengthIncludesHeader, maxFrameSize } = s;
  if (!isInt(headerSize) || headerSize < 1) {
    throw invalid(`${where}: headerSize must be a positive integer (got ${String(headerSize)})`);
  }
  if (!isWidth(lengthWidth)) throw invalid(`${where}: lengthWidth must be 1, 2 or 4 (got ${String(lengthWidth)})`);
  if (!isEndian(lengthEndian)) throw invalid(`${where}: lengthEndian must be 'be' or 'le' (got ${String(lengthEndian)})`);
  if (!isInt(lengthOffset) || lengthOffset < 0) {
    throw invalid(`${where}: lengthOffset must be a non-negative integer (got ${String(lengthOffset)})`);
  }
  if (lengthOffset + lengthWidth > headerSize) {
    throw invalid(
      `${where}: the length field (offset ${lengthOffset}, ${lengthWidth} bytes) lies outside the ${headerSize}-byte header`,
    );
  }
  if (typeof lengthIncludesHeader !== 'boolean') {
    throw invalid(`${where}: lengthIncludesHeader must be a boolean (got ${String(lengthIncludesHeader)})`);
  }

  const out: FrameSpec = {
    headerSize,
    lengthOffset,
    lengthWidth,
    lengthEndian,
    lengthIncludesHeader,
    maxFrameSize,
  };

  const { idOffset, idWidth, idEndian } = s;
  if (idOffset !== undefined || idWidth !== undefined || idEndian !== undefined) {
    if (!isInt(idOffset) || idOffset < 0) {
      throw invalid(`${where}: idOffset must be a non-negative integer when an id field is given (got ${String(idOffset)})`);
    }
    if (!isWidth(idWidth)) throw invalid(`${where}: idWidth must be 1, 2 or 4 (got ${String(idWidth)})`);
    const endian = idEndian ?? 'be';
    if (!isEndian(endian)) throw invalid(`${where}: idEndian must be 'be' or 'le' (got ${String(idEndian)})`);
    if (idOffset + idWidth > headerSize) {
      throw invalid(`${where}: the id field (offset ${idOffset}, ${idWidth} bytes) lies outside the ${headerSize}-byte header`);
    }
    if (idOffset < lengthOffset + lengthWidth && lengthOffset < idOffset + idWidth) {
      throw invalid(
        `${where}: the id field (offset ${idOffset}, ${idWidth} bytes) overlaps the length field (offset ${lengthOffset}, ${lengthWidth} bytes)`,
      );
    }
    out.idOffset = idOffset;
    out.idWidth = idWidth;
    out.idEndian = endian;
  }

  if (!isInt(maxFrameSize) || maxFrameSize < headerSize) {
    throw invalid(
      `${where}: maxFrameSize must be an integer >= headerSize ${headerSize} (got ${String(maxFrameSize)})`,
    );
  }
  const representable = lengthIncludesHeader ? fieldMax(lengthWidth) : headerSize + fieldMax(lengthWidth);
  if (maxFrameSize > representable) {
    throw invalid(
      `${where}: maxFrameSize ${maxFrameSize} cannot be represented by a ${lengthWidth}-byte length field ` +
        `(largest frame it can describe: ${representable} bytes)`,
    );
  }
  return out;
}

/**
 * Turns a preset name, `{ preset, maxFrameSize }` or a custom spec into a
 * validated spec (a new object). Throws FastPortError ERR_INVALID_ARGUMENT
 * with a message naming the bad field.
 */
export function resolveFrameSpec(framing: FramingOption): FrameSpec {
  if (typeof framing === 'string') {
    if (!isPreset(framing)) throw invalid(`framing: unknown preset '${framing}' (known: ${presetNames()})`);
    return validateSpec(FRAMING_PRESETS[framing], `framing '${framing}'`);
  }
  if (framing === null || typeof framing !== 'object') {
    throw invalid(`framing: expected a preset name, { preset, maxFrameSize } or a frame spec (got ${String(framing)})`);
  }
  if ('preset' in framing) {
    const name: unknown = framing.preset;
    if (!isPreset(name)) throw invalid(`framing: unknown preset '${String(name)}' (known: ${presetNames()})`);
    const base = FRAMING_PRESETS[name];
    const maxFrameSize = framing.maxFrameSize === undefined ? base.maxFrameSize : framing.maxFrameSize;
    return validateSpec({ ...base, maxFrameSize }, `framing '${name}'`);
  }
  return validateSpec(framing, 'framing');
}

/** A decoded frame. The decoder reuses one object: valid only during the callback. */
export interface Frame {
  /** Packet id (0 when the format has none). */
  id: number;
  /** Payload view. Valid only during the callback: copy to keep. */
  payload: Uint8Array;
  /** The whole frame (header + payload) as received, same validity. */
  bytes: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/**
 * The decoder's one reused Frame. Its views are made on first access, not per
 * frame: an echo reads `bytes` only, a dispatcher often `id` and `payload`,
 * and a TypedArray per field per frame was the largest allocation on the
 * per-frame path (two per 64-byte message).
 */
class DecodedFrame implements Frame {
  id = 0;
  private source: Uint8Array = EMPTY;
  /** source.buffer and source.byteOffset, read once per chunk: `.buffer` is a call into V8's C++ per read. */
  private sourceBuffer: ArrayBufferLike = EMPTY.buffer;
  private sourceOffset = 0;
  private start = 0;
  private end = 0;
  private headerSize = 0;
  private bytesView: Uint8Array | null = null;
  private payloadView: Uint8Array | null = null;

  get bytes(): Uint8Array {
    let v = this.bytesView;
    if (v === null) {
      const s = this.source;
      // The constructor, not subarray(): subarray looks up the species constructor on every call.
      v = this.start === 0 && this.end === s.length ? s : new Uint8Array(this.sourceBuffer, this.sourceOffset + this.start, this.end - this.start);
      this.bytesView = v;
    }
    return v;
  }

  set bytes(value: Uint8Array) {
    this.bytesView = value;
  }

  get payload(): Uint8Array {
    let v = this.payloadView;
    if (v === null) {
      v = new Uint8Array(this.sourceBuffer, this.sourceOffset + this.start + this.headerSize, this.end - this.start - this.headerSize);
      this.payloadView = v;
    }
    return v;
  }

  set payload(value: Uint8Array) {
    this.payloadView = value;
  }

  /** Frame size in bytes (header included), without making a view. */
  get byteLength(): number {
    return this.end - this.start;
  }

  point(source: Uint8Array, start: number, end: number, headerSize: number, id: number): void {
    this.id = id;
    if (source !== this.source) {
      this.source = source;
      this.sourceBuffer = source.buffer;
      this.sourceOffset = source.byteOffset;
    }
    this.start = start;
    this.end = end;
    this.headerSize = headerSize;
    this.bytesView = null;
    this.payloadView = null;
  }

  clear(): void {
    this.point(EMPTY, 0, 0, 0, 0);
  }
}

/** Smallest reassembly buffer: trickled bytes do not reallocate on every read. */
export const MIN_REASSEMBLY_BYTES = 256;

// Field kinds: width and endianness folded into one small integer so the hot
// loop reads fields with one well-predicted switch (and V8 inlines readField).
const K_U8 = 0;
const K_U16BE = 1;
const K_U16LE = 2;
const K_U32BE = 3;
const K_U32LE = 4;
const K_NONE = -1;

function fieldKind(width: 1 | 2 | 4 | undefined, endian: 'be' | 'le' | undefined): number {
  if (width === undefined) return K_NONE;
  if (width === 1) return K_U8;
  if (width === 2) return endian === 'le' ? K_U16LE : K_U16BE;
  return endian === 'le' ? K_U32LE : K_U32BE;
}

function readField(b: Uint8Array, p: number, kind: number): number {
  switch (kind) {
    case K_U16BE:
      return (b[p]! << 8) | b[p + 1]!;
    case K_U32BE:
      return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
    case K_U16LE:
      return b[p]! | (b[p + 1]! << 8);
    case K_U32LE:
      return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    case K_U8:
      return b[p]!;
    default:
      return 0;
  }
}

function writeField(b: Uint8Array, p: number, kind: number, v: number): void {
  switch (kind) {
    case K_U16BE:
      b[p] = v >>> 8;
      b[p + 1] = v;
      return;
    case K_U32BE:
      b[p] = v >>> 24;
      b[p + 1] = v >>> 16;
      b[p + 2] = v >>> 8;
      b[p + 3] = v;
      return;
    case K_U16LE:
      b[p] = v;
      b[p + 1] = v >>> 8;
      return;
    case K_U32LE:
      b[p] = v;
      b[p + 1] = v >>> 8;
      b[p + 2] = v >>> 16;
      b[p + 3] = v >>> 24;
      return;
    case K_U8:
      b[p] = v;
      return;
    default:
      return;
  }
}

/**
 * Streaming decoder: `push` each received chunk, get every complete frame.
 *
 * - Frames wholly inside a chunk are delivered as views of that chunk; a frame
 *   split across chunks is reassembled in a buffer that grows with the bytes
 *   received (at most twice them, or MIN_REASSEMBLY_BYTES, and never more
 *   than the declared size): `heldBytes` is what it holds.
 * - A reassembly buffer that cannot be allocated (RangeError) poisons the
 *   decoder like a bad header: onError gets an ENOBUFS error, nothing is thrown.
 * - The `Frame` passed to `onFrame` is one object reused for every frame, and
 *   its views are valid only during the callback: copy what you keep.
 * - The first malformed or oversized frame poisons the decoder: `onError` is
 *   called once, the rest is discarded, and `push` returns false from then on
 *   (until `reset()`). Frames before the bad one are delivered.
 * - Apart from the case below, the decoder holds at most `maxFrameSize` bytes,
 *   and for a frame being reassembled at most max(2 × its bytes received,
 *   MIN_REASSEMBLY_BYTES).
 * - If `onFrame` throws, the exception propagates out of `push`; the frame
 *   that threw counts as consumed, and the unread rest of that chunk is kept
 *   (copied) and decoded first on the next `push` — call `push(new
 *   Uint8Array(0), …)` to get those frames without waiting for more data.
 *   Only that held-back rest can make `bufferedBytes` exceed `maxFrameSize`.
 *   The session layer is expected to catch handler errors itself.
 * - `reset()` called from inside `onFrame` discards the rest of the chunk
 *   being pushed. Calling `push` from inside a callback throws.
 */
export class FrameDecoder {
  readonly spec: FrameSpec;

  private readonly headerSize: number;
  private readonly lengthPos: number;
  private readonly lengthKind: number;
  /** Added to the length field to get the whole frame size. */
  private readonly lengthAdjust: number;
  private readonly idPos: number;
  private readonly idKind: number;
  private readonly maxFrameSize: number;

  /** Header bytes of a frame whose header was split (length `headerSize`). */
  private readonly head: Uint8Array;
  private headFilled = 0;
  /** Buffer of the frame being reassembled (grown as bytes arrive), or null. */
  private pending: Uint8Array | null = null;
  private pendingFilled = 0;
  /** Whole size of the frame being reassembled (its declared length). */
  private pendingTotal = 0;
  /** Unread rest of a chunk whose onFrame threw. */
  private backlog: Uint8Array | null = null;

  private isPoisoned = false;
  private busy = false;
  /** Bumped by reset(), so a reset inside a callback stops the current push. */
  private generation = 0;
  private readonly frame = new DecodedFrame();

  constructor(spec: FramingOption) {
    const s = resolveFrameSpec(spec);
    this.spec = s;
    this.headerSize = s.headerSize;
    this.lengthPos = s.lengthOffset;
    this.lengthKind = fieldKind(s.lengthWidth, s.lengthEndian);
    this.lengthAdjust = s.lengthIncludesHeader ? 0 : s.headerSize;
    this.idPos = s.idOffset ?? 0;
    this.idKind = fieldKind(s.idWidth, s.idEndian);
    this.maxFrameSize = s.maxFrameSize;
    this.head = new Uint8Array(s.headerSize);
  }

  /** Bytes held for an incomplete frame (plus any held-back rest, see class doc). */
  get bufferedBytes(): number {
    const held = this.pending !== null ? this.pendingFilled : this.headFilled;
    return this.backlog !== null ? held + this.backlog.length : held;
  }

  /**
   * Bytes of memory the decoder holds now: the reassembly buffer's capacity
   * (at most about twice the bytes received of that frame), the split header,
   * and any held-back rest. What the memory budget is charged.
   */
  get heldBytes(): number {
    const held = this.pending !== null ? this.pending.byteLength : this.headFilled;
    return this.backlog !== null ? held + this.backlog.length : held;
  }

  /** True after a malformed or oversized frame, until reset(). */
  get poisoned(): boolean {
    return this.isPoisoned;
  }

  /** Drops every buffered byte and the poisoned state: ready for a new stream. */
  reset(): void {
    this.generation++;
    this.headFilled = 0;
    this.pending = null;
    this.pendingFilled = 0;
    this.pendingTotal = 0;
    this.backlog = null;
    this.isPoisoned = false;
    this.frame.clear();
  }

  /**
   * Feeds bytes; calls onFrame for every complete frame, in order. Returns
   * false and stops (discarding the rest, poisoning the decoder) at the first
   * malformed or oversized frame, after calling onError once with a
   * FastPortError ('ERR_FRAME_TOO_LARGE' or 'ERR_FRAME_MALFORMED'). Calls after
   * poisoning return false and do nothing.
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void, onError: (err: FastPortError) => void): boolean {
    if (this.isPoisoned) return false;
    if (this.busy) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', 'FrameDecoder.push called from inside its own callback');
    }
    this.busy = true;
    try {
      if (this.backlog === null) return this.process(chunk, onFrame, onError);
      return this.processWithBacklog(chunk, onFrame, onError);
    } finally {
      this.busy = false;
      // Do not keep the last chunk (or a reassembly buffer) alive through the frame.
      this.frame.clear();
    }
  }

  private processWithBacklog(
    chunk: Uint8Array,
    onFrame: (frame: Frame) => void,
    onError: (err: FastPortError) => void,
  ): boolean {
    const held = this.backlog!;
    this.backlog = null;
    const gen = this.generation;
    let ok: boolean;
    try {
      ok = this.process(held, onFrame, onError);
    } catch (err) {
      // process() kept the unread rest of `held`; the new chunk follows it.
      if (this.generation === gen && !this.isPoisoned && chunk.length > 0) {
        const rest = this.backlog as Uint8Array | null;
        if (rest === null) {
          this.backlog = chunk.slice();
        } else {
          const joined = new Uint8Array(rest.length + chunk.length);
          joined.set(rest, 0);
          joined.set(chunk, rest.length);
          this.backlog = joined;
        }
      }
      throw err;
    }
    if (!ok || this.generation !== gen) return ok;
    return this.process(chunk, onFrame, onError);
  }

  private process(chunk: Uint8Array, onFrame: (frame: Frame) => void, onError: (err: FastPortError) => void): boolean {
    const len = chunk.length;
    const hs = this.headerSize;
    const max = this.maxFrameSize;
    const lengthPos = this.lengthPos;
    const lengthKind = this.lengthKind;
    const adjust = this.lengthAdjust;
    const idPos = this.idPos;
    const idKind = this.idKind;
    const frame = this.frame;
    const gen = this.generation;
    let pos = 0;
    try {
      // 1. Finish a frame split across chunks.
      if (this.pending !== null || this.headFilled !== 0) {
        pos = this.fill(chunk, onError);
        if (pos < 0) return false;
        const held = this.pending;
        if (held === null || this.pendingFilled < this.pendingTotal) return true; // chunk used up
        // Complete: the buffer has exactly the frame's size (growth is capped at it).
        const buf = held;
        this.pending = null;
        this.pendingFilled = 0;
        this.pendingTotal = 0;
        frame.point(buf, 0, buf.length, hs, idKind === K_NONE ? 0 : readField(buf, idPos, idKind));
        onFrame(frame);
        if (this.generation !== gen) return true;
      }

      // 2. Whole frames inside the chunk: zero-copy views.
      let total = 0;
      while (len - pos >= hs) {
        total = readField(chunk, pos + lengthPos, lengthKind) + adjust;
        if (total > max || total < hs) return this.fail(total, onError);
        const end = pos + total;
        if (end > len) break;
        frame.point(chunk, pos, end, hs, idKind === K_NONE ? 0 : readField(chunk, pos + idPos, idKind));
        pos = end;
        onFrame(frame);
        if (this.generation !== gen) return true;
      }

      // 3. Keep the start of a split frame.
      const rest = len - pos;
      if (rest > 0) {
        if (rest >= hs) {
          // Header complete and already checked above: hold what arrived, not what was declared.
          const buf = this.allocateOrFail(initialCapacity(rest, total), total, onError);
          if (buf === null) return false;
          buf.set(rest === len ? chunk : chunk.subarray(pos), 0);
          this.pending = buf;
          this.pendingFilled = rest;
          this.pendingTotal = total;
        } else {
          const head = this.head;
          for (let i = 0; i < rest; i++) head[i] = chunk[pos + i]!;
          this.headFilled = rest;
        }
      }
      return true;
    } catch (err) {
      // Only onFrame (or onError) can throw here. The frame that threw is
      // consumed (pos is past it); keep the unread rest for the next push.
      if (this.generation === gen && !this.isPoisoned && pos < len) this.backlog = chunk.slice(pos);
      throw err;
    }
  }

  /**
   * Continues a split frame with the start of `chunk`. Returns how many bytes
   * of the chunk it used, or -1 if the completed header was bad (decoder
   * poisoned, onError called).
   */
  private fill(chunk: Uint8Array, onError: (err: FastPortError) => void): number {
    const len = chunk.length;
    let pos = 0;
    let buf = this.pending;
    if (buf === null) {
      const hs = this.headerSize;
      const head = this.head;
      let filled = this.headFilled;
      while (filled < hs && pos < len) head[filled++] = chunk[pos++]!;
      this.headFilled = filled;
      if (filled < hs) return pos;
      const total = readField(head, this.lengthPos, this.lengthKind) + this.lengthAdjust;
      if (total > this.maxFrameSize || total < hs) {
        this.fail(total, onError);
        return -1;
      }
      buf = this.allocateOrFail(initialCapacity(hs + (len - pos), total), total, onError);
      if (buf === null) return -1;
      buf.set(head, 0);
      this.pending = buf;
      this.pendingFilled = hs;
      this.pendingTotal = total;
      this.headFilled = 0;
    }
    const want = this.pendingTotal - this.pendingFilled;
    const n = want < len - pos ? want : len - pos;
    if (n > 0) {
      const needed = this.pendingFilled + n;
      if (needed > buf.length) {
        // Twice what is needed now (geometric: few copies), never past the declared size,
        // so the buffer stays within twice the bytes received.
        let cap = needed * 2;
        if (cap > this.pendingTotal) cap = this.pendingTotal;
        const grown = this.allocateOrFail(cap, this.pendingTotal, onError);
        if (grown === null) return -1;
        grown.set(buf.subarray(0, this.pendingFilled), 0);
        this.pending = grown;
        buf = grown;
      }
      buf.set(n === len ? chunk : chunk.subarray(pos, pos + n), this.pendingFilled);
      this.pendingFilled += n;
      pos += n;
    }
    return pos;
  }

  /** Allocation of reassembly memory; a subclass may override it (tests simulate exhaustion). */
  protected allocate(bytes: number): Uint8Array {
    return new Uint8Array(bytes);
  }

  /**
   * A reassembly buffer, or null after poisoning the decoder with ENOBUFS when
   * the allocation failed (a huge maxFrameSize must never throw out of push).
   */
  private allocateOrFail(bytes: number, total: number, onError: (err: FastPortError) => void): Uint8Array | null {
    try {
      return this.allocate(bytes);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      this.poison();
      onError(
        new FastPortError(
          'ENOBUFS',
          `cannot allocate ${bytes} bytes to reassemble a ${total}-byte frame (${err.message})`,
        ),
      );
      return null;
    }
  }

  private poison(): void {
    this.isPoisoned = true;
    this.headFilled = 0;
    this.pending = null;
    this.pendingFilled = 0;
    this.pendingTotal = 0;
    this.backlog = null;
  }

  private fail(total: number, onError: (err: FastPortError) => void): false {
    const hs = this.headerSize;
    this.poison();
    let err: FastPortError;
    if (total < hs) {
      err = new FastPortError(
        'ERR_FRAME_MALFORMED',
        `malformed frame: declared size ${total} bytes is smaller than the ${hs}-byte header`,
      );
    } else {
      const declared = this.lengthAdjust === 0 ? `declared size ${total} bytes` : `declared payload ${total - hs} bytes + ${hs}-byte header = ${total} bytes`;
      err = new FastPortError(
        'ERR_FRAME_TOO_LARGE',
        `frame too large: ${declared} exceeds maxFrameSize ${this.maxFrameSize}`,
      );
    }
    onError(err);
    return false;
  }
}

/** First reassembly buffer for a frame of `total` bytes of which `have` arrived. */
function initialCapacity(have: number, total: number): number {
  const cap = have * 2 > MIN_REASSEMBLY_BYTES ? have * 2 : MIN_REASSEMBLY_BYTES;
  return cap < total ? cap : total;
}

/** Builds frame headers (and whole frames) for one spec. */
export class FrameEncoder {
  readonly spec: FrameSpec;

  private readonly headerSize: number;
  private readonly lengthPos: number;
  private readonly lengthKind: number;
  private readonly includesHeader: boolean;
  private readonly idPos: number;
  private readonly idKind: number;
  private readonly idMax: number;
  private readonly maxFrameSize: number;
  /** True when the header has bytes outside the length and id fields. */
  private readonly headerHasGaps: boolean;

  constructor(spec: FramingOption) {
    const s = resolveFrameSpec(spec);
    this.spec = s;
    this.headerSize = s.headerSize;
    this.lengthPos = s.lengthOffset;
    this.lengthKind = fieldKind(s.lengthWidth, s.lengthEndian);
    this.includesHeader = s.lengthIncludesHeader;
    this.idPos = s.idOffset ?? 0;
    this.idKind = fieldKind(s.idWidth, s.idEndian);
    this.idMax = s.idWidth === undefined ? 0 : fieldMax(s.idWidth);
    this.maxFrameSize = s.maxFrameSize;
    this.headerHasGaps = s.lengthWidth + (s.idWidth ?? 0) < s.headerSize;
  }

  /**
   * Writes the header for a payload of `payloadLength` bytes and packet `id`
   * into a new buffer of `headerSize` bytes (returned), or into `target` at
   * `offset` (returns `target`). Header bytes outside the length and id fields
   * are zero. Throws ERR_FRAME_TOO_LARGE if the frame would exceed
   * maxFrameSize; ERR_INVALID_ARGUMENT if `id` does not fit the id field, if
   * the length is not a non-negative integer or the target has no room.
   * Formats without an id field ignore `id`.
   */
  header(payloadLength: number, id = 0, target?: Uint8Array, offset = 0): Uint8Array {
    if (target === undefined) {
      const total = this.check(payloadLength, id);
      const out = new Uint8Array(this.headerSize);
      this.write(out, 0, payloadLength, total, id);
      return out;
    }
    this.writeHeader(target, payloadLength, id, offset);
    return target;
  }

  /**
   * Same as `header` with a target, for the send path (no allocation): writes
   * the header into `target` at `offset` and returns its length (`headerSize`).
   */
  writeHeader(target: Uint8Array, payloadLength: number, id = 0, offset = 0): number {
    const hs = this.headerSize;
    const total = this.check(payloadLength, id);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + hs > target.length) {
      throw new FastPortError(
        'ERR_INVALID_ARGUMENT',
        `no room for a ${hs}-byte header at offset ${offset} of a ${target.length}-byte buffer`,
      );
    }
    if (this.headerHasGaps) target.fill(0, offset, offset + hs);
    this.write(target, offset, payloadLength, total, id);
    return hs;
  }

  /** Header + payload in one new buffer. Same errors as `header`. */
  encode(payload: Uint8Array, id = 0): Uint8Array {
    const hs = this.headerSize;
    const total = this.check(payload.length, id); // before allocating
    const out = new Uint8Array(total);
    this.write(out, 0, payload.length, total, id);
    out.set(payload, hs);
    return out;
  }

  private write(out: Uint8Array, offset: number, payloadLength: number, total: number, id: number): void {
    writeField(out, offset + this.lengthPos, this.lengthKind, this.includesHeader ? total : payloadLength);
    if (this.idKind !== K_NONE) writeField(out, offset + this.idPos, this.idKind, id);
  }

  /** Validates a payload length and id; returns the whole frame size. */
  private check(payloadLength: number, id: number): number {
    const hs = this.headerSize;
    if (!(payloadLength >= 0) || !Number.isSafeInteger(payloadLength)) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `payload length must be a non-negative integer (got ${payloadLength})`);
    }
    const total = hs + payloadLength;
    if (total > this.maxFrameSize) {
      throw new FastPortError(
        'ERR_FRAME_TOO_LARGE',
        `frame too large: ${payloadLength}-byte payload + ${hs}-byte header = ${total} bytes exceeds maxFrameSize ${this.maxFrameSize}`,
      );
    }
    if (this.idKind !== K_NONE && (!(id >= 0 && id <= this.idMax) || !Number.isInteger(id))) {
      throw new FastPortError(
        'ERR_INVALID_ARGUMENT',
        `packet id ${id} does not fit the ${this.spec.idWidth}-byte id field (0..${this.idMax})`,
      );
    }
    return total;
  }
}
