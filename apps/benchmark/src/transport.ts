/**
 * How a load thread talks to the server: through the session layer (a
 * `Client`, the way applications do: framing, Session objects, events) or
 * straight on the engine (`createEngine`: the bench frames and parses raw
 * requests itself). Both run on the same engines; the engine path leaves out
 * the session layer's per-message work so the load generator stays cheaper
 * than the servers it measures (see BENCHMARKS.md, "client check").
 */
import {
  FastPortError,
  SendStatus,
  createEngine,
  type ConnectionId,
  type Engine,
  type EngineOptions,
  type EngineRequest,
} from '@fastport/native-io';
import { performance } from 'node:perf_hooks';
import { Client, type Frame, type Session, type SessionCloseInfo } from '@fastport/session';
import { framingOption, headerSize, readFrameId, readFrameLength } from './payload';
import type { Framing } from './types';

export type ClientLayer = 'engine' | 'session';

/** A connection as the transports see it; the load thread hangs its own state on it. */
export interface TConn {
  session: Session | undefined;
  id: ConnectionId;
  /** Partial frame carried between reads (engine layer). */
  rbuf: Buffer | undefined;
  rlen: number;
  open: boolean;
}

export interface TransportSink<C extends TConn> {
  /**
   * One whole frame: payload at buf[start, start + len), `wire` bytes with
   * the header; `now` (performance.now()) is read once per read, which is
   * when every frame in it arrived.
   */
  onFrame(conn: C, id: number, buf: Uint8Array, start: number, len: number, wire: number, now: number): void;
  onClose(conn: C, reason: string, code: string | undefined): void;
  onError(code: string): void;
}

export interface TransportOptions {
  clientEngine: EngineRequest;
  clientIoThreads: number | undefined;
  framing: Framing;
  maxFrame: number;
}

export interface Transport<C extends TConn> {
  readonly kind: string;
  readonly reason: string;
  /** Resolves once connected; `make` builds the load thread's connection object. */
  connect(host: string, port: number, localAddress: string | undefined, make: (base: TConn) => C): Promise<C>;
  /** Sends one frame: `frame` is the whole frame (engine layer) / `payload` with `id` (session layer). */
  send(conn: C, frame: Uint8Array, payload: Uint8Array, id: number): boolean;
  close(conn: C, mode: 'graceful' | 'abort'): void;
  counters(): { events: number; batches: number; jsCrossings: number };
  destroy(): Promise<void>;
}

// open loop must never hold requests back: queue whatever the schedule says
const LIMITS = { maxPendingBytes: 1024 * 1024 * 1024, highWaterMark: 512 * 1024 * 1024, lowWaterMark: 256 * 1024 * 1024 };
const CONNECT_TIMEOUT_MS = 5000;
// Read once: through the package's re-export every `SendStatus.X` would be a getter call per send.
const { Queued: SEND_QUEUED, AboveHighWater: SEND_ABOVE_HIGH } = SendStatus;

export class SessionTransport<C extends TConn> implements Transport<C> {
  private readonly client: Client;

  constructor(o: TransportOptions, private readonly sink: TransportSink<C>) {
    this.client = new Client({
      engine: o.clientEngine,
      framing: framingOption(o.framing, o.maxFrame),
      ...(o.clientIoThreads !== undefined ? { ioThreads: o.clientIoThreads } : {}),
      ...LIMITS,
      backpressure: 'drop',
    });
    this.client.on('frame', (session: Session, frame: Frame) => {
      const c = session.data as C | undefined;
      if (c !== undefined) sink.onFrame(c, frame.id, frame.payload, 0, frame.payload.byteLength, frame.bytes.byteLength, performance.now());
    });
    this.client.on('close', (session: Session, info: SessionCloseInfo) => {
      const c = session.data as C | undefined;
      if (c === undefined) return;
      c.open = false;
      sink.onClose(c, info.reason, info.code);
    });
    this.client.on('error', (err: Error) => sink.onError((err as { code?: string }).code ?? 'handler'));
  }

  get kind(): string {
    return this.client.engine.info.kind;
  }
  get reason(): string {
    return this.client.engine.info.reason;
  }

  async connect(host: string, port: number, localAddress: string | undefined, make: (base: TConn) => C): Promise<C> {
    const session = await this.client.connect({ host, port, timeoutMs: CONNECT_TIMEOUT_MS, ...(localAddress !== undefined ? { localAddress } : {}) });
    const c = make({ session, id: session.id, rbuf: undefined, rlen: 0, open: true });
    session.data = c;
    return c;
  }

  send(c: C, _frame: Uint8Array, payload: Uint8Array, id: number): boolean {
    // Accepted, whether or not past the high watermark: the open loop paces itself, not by 'drain'.
    const r = c.session!.trySend(payload, id);
    return r === 'queued' || r === 'high-water';
  }

  close(c: C, mode: 'graceful' | 'abort'): void {
    if (mode === 'abort') c.session!.abort('bench-done');
    else c.session!.close('bench-done');
  }

  counters(): { events: number; batches: number; jsCrossings: number } {
    const s = this.client.engine.stats();
    return { events: s.events, batches: s.batches, jsCrossings: s.jsCrossings };
  }

  async destroy(): Promise<void> {
    await this.client.close(500);
  }
}

interface Pending<C> {
  resolve: (c: C) => void;
  reject: (e: Error) => void;
  make: (base: TConn) => C;
}

/** Frames and parses on the engine directly (raw requests only). */
export class EngineTransport<C extends TConn> implements Transport<C> {
  private readonly engine: Engine;
  private readonly conns = new Map<ConnectionId, C>();
  private readonly pending = new Map<ConnectionId, Pending<C>>();
  private readonly hdr: number;
  private readonly framing: Framing;
  private readonly maxFrame: number;

  constructor(o: TransportOptions, private readonly sink: TransportSink<C>) {
    this.framing = o.framing;
    this.maxFrame = o.maxFrame;
    this.hdr = headerSize(o.framing);
    const options: EngineOptions = { kind: o.clientEngine, ...LIMITS };
    if (o.clientIoThreads !== undefined) options.ioThreads = o.clientIoThreads;
    this.engine = createEngine({
      ...options,
      handler: {
        onAccept: () => undefined,
        onConnect: (id) => {
          const p = this.pending.get(id);
          if (p === undefined) return;
          this.pending.delete(id);
          const c = p.make({ session: undefined, id, rbuf: undefined, rlen: 0, open: true });
          this.conns.set(id, c);
          p.resolve(c);
        },
        onData: (id, data) => {
          const c = this.conns.get(id);
          if (c !== undefined && c.open) this.onData(c, data);
        },
        onClose: (id, info) => {
          const p = this.pending.get(id);
          if (p !== undefined) {
            this.pending.delete(id);
            p.reject(new FastPortError(info.code ?? 'ECONNABORTED', info.message ?? `connect failed (${info.reason})`));
            return;
          }
          const c = this.conns.get(id);
          if (c === undefined) return;
          this.conns.delete(id);
          const own = !c.open;
          c.open = false;
          sink.onClose(c, own ? 'bench-done' : info.reason, info.code);
        },
      },
    });
  }

  get kind(): string {
    return this.engine.info.kind;
  }
  get reason(): string {
    return this.engine.info.reason;
  }

  connect(host: string, port: number, localAddress: string | undefined, make: (base: TConn) => C): Promise<C> {
    return new Promise<C>((resolve, reject) => {
      try {
        const id = this.engine.connect({ host, port, timeoutMs: CONNECT_TIMEOUT_MS, ...(localAddress !== undefined ? { localAddress } : {}) });
        this.pending.set(id, { resolve, reject, make });
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  private deliver(c: C, buf: Uint8Array, o: number, frameLen: number, now: number): void {
    this.sink.onFrame(c, readFrameId(this.framing, buf, o), buf, o + this.hdr, frameLen - this.hdr, frameLen, now);
  }

  private bad(c: C, frameLen: number): void {
    this.sink.onError(`bad-frame-length-${frameLen}`);
    this.close(c, 'abort');
  }

  /** Splits reads into frames; frames inside one read are delivered in place, split ones through a per-connection buffer. */
  private onData(c: C, d: Uint8Array): void {
    const hdr = this.hdr;
    const now = performance.now();
    let off = 0;
    if (c.rlen > 0) {
      let rbuf = c.rbuf!;
      if (c.rlen < hdr) {
        const take = Math.min(hdr - c.rlen, d.byteLength);
        rbuf.set(d.subarray(0, take), c.rlen);
        c.rlen += take;
        off = take;
        if (c.rlen < hdr) return;
      }
      const frameLen = readFrameLength(this.framing, rbuf, 0);
      if (frameLen < hdr || frameLen > this.maxFrame) return this.bad(c, frameLen);
      if (rbuf.byteLength < frameLen) {
        const grown = Buffer.allocUnsafe(frameLen);
        rbuf.copy(grown, 0, 0, c.rlen);
        c.rbuf = rbuf = grown;
      }
      const take = Math.min(frameLen - c.rlen, d.byteLength - off);
      rbuf.set(d.subarray(off, off + take), c.rlen);
      c.rlen += take;
      off += take;
      if (c.rlen < frameLen) return;
      c.rlen = 0;
      this.deliver(c, rbuf, 0, frameLen, now);
      if (!c.open) return;
    }
    const end = d.byteLength;
    while (end - off >= hdr) {
      const frameLen = readFrameLength(this.framing, d, off);
      if (frameLen < hdr || frameLen > this.maxFrame) return this.bad(c, frameLen);
      if (end - off < frameLen) break;
      this.deliver(c, d, off, frameLen, now);
      if (!c.open) return;
      off += frameLen;
    }
    if (off < end) {
      const rest = end - off;
      if (c.rbuf === undefined || c.rbuf.byteLength < Math.max(rest, hdr)) c.rbuf = Buffer.allocUnsafe(Math.max(rest, 256));
      c.rbuf.set(d.subarray(off, end), 0);
      c.rlen = rest;
    }
  }

  send(c: C, frame: Uint8Array): boolean {
    const r = this.engine.send(c.id, frame);
    return r === SEND_QUEUED || r === SEND_ABOVE_HIGH;
  }

  close(c: C, mode: 'graceful' | 'abort'): void {
    if (!c.open) return;
    c.open = false;
    this.engine.close(c.id, mode);
  }

  counters(): { events: number; batches: number; jsCrossings: number } {
    const s = this.engine.stats();
    return { events: s.events, batches: s.batches, jsCrossings: s.jsCrossings };
  }

  async destroy(): Promise<void> {
    for (const c of this.conns.values()) this.close(c, 'graceful');
    await this.engine.destroy(500);
  }
}
