/**
 * One load-generator thread: its own Client (its own engine) and its share of
 * the connections. Runs inside a worker thread (worker.ts) or inline.
 *
 * Phases come from a shared Int32Array written by the coordinator (warmup →
 * measure → stop): a reply counts when it arrives while the phase is
 * "measure", the way echo-bench counts, so every thread uses one window.
 */
import { performance } from 'node:perf_hooks';
import { BenchmarkRequest, BenchmarkResponse, PacketId } from '@fastport/protocol';
import { headerSize, PayloadPattern, RAW_PACKET_ID, writeRawHeader } from './payload';
import { EngineTransport, SessionTransport, type TConn, type Transport } from './transport';
import { Histogram } from './stats';
import { threadCpuTicks } from './proc';
import {
  C_BYTES,
  C_CONNECTED,
  C_OPEN,
  C_ERRORS,
  C_MESSAGES,
  C_MISMATCH,
  C_SENT,
  PHASE_MEASURE,
  PHASE_STOP,
  type LoadConfig,
  type ThreadResult,
} from './types';

/** Send times of requests in flight on one connection, oldest first (replies come back in order). */
class TimeRing {
  private buf: Float64Array;
  private mask: number;
  private head = 0;
  size = 0;
  constructor(capacity: number) {
    let cap = 2;
    while (cap < capacity) cap *= 2;
    this.buf = new Float64Array(cap);
    this.mask = cap - 1;
  }
  push(t: number): void {
    if (this.size === this.buf.length) {
      const grown = new Float64Array(this.buf.length * 2);
      for (let i = 0; i < this.size; i++) grown[i] = this.buf[(this.head + i) & this.mask] as number;
      this.buf = grown;
      this.mask = grown.length - 1;
      this.head = 0;
    }
    this.buf[(this.head + this.size) & this.mask] = t;
    this.size++;
  }
  shift(): number {
    if (this.size === 0) return NaN;
    const t = this.buf[this.head] as number;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return t;
  }
}

/**
 * A class, not an object spread from the transport's base: every connection
 * then has one hidden class, and the per-reply loads stay monomorphic (the
 * spread gave each its own, and every property read went megamorphic).
 */
class Conn implements TConn {
  session: TConn['session'];
  id: TConn['id'];
  rbuf: Buffer | undefined;
  rlen: number;
  open: boolean;
  sendSeq = 0;
  recvSeq = 0;
  readonly times: TimeRing;
  /** connect workload: resolves when the one reply came (or the session closed). */
  waiter: (() => void) | undefined = undefined;
  done = false;
  constructor(
    base: TConn,
    readonly index: number,
    ringCapacity: number,
  ) {
    this.session = base.session;
    this.id = base.id;
    this.rbuf = base.rbuf;
    this.rlen = base.rlen;
    this.open = base.open;
    this.times = new TimeRing(ringCapacity);
  }
}

const CONNECT_CONCURRENCY = 256;
const DRAIN_MS = 2000;
/** Our own close reasons: a close with one of these is not an error. */
const OWN_CLOSE = new Set(['bench-done', 'bench-stop', 'abort', 'local', 'destroy', 'client-close']);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class LoadThread {
  private readonly cfg: LoadConfig;
  private readonly control: Int32Array;
  private readonly counters: Float64Array;
  private readonly transport: Transport<Conn>;
  private readonly pattern: PayloadPattern;
  private readonly hist = new Histogram();
  private readonly conns: Conn[] = [];
  private readonly closedLoop: boolean;
  /** cfg read once: the per-reply path then loads fields of one class, not of a config object. */
  private readonly rawProtocol: boolean;
  private readonly checkRawId: boolean;
  private readonly countReplies: boolean;
  private stopping = false;
  private drainWaiter: (() => void) | undefined;
  private inflight = 0;
  private nextSource = 0;
  // counts
  private messages = 0;
  private bytes = 0;
  private sentInWindow = 0;
  private verifiedBytes = 0;
  private verifiedMessages = 0;
  private errors = 0;
  private mismatches = 0;
  private connectFailures = 0;
  private connectedTotal = 0;
  private readonly errorCodes: Record<string, number> = {};
  private loops: Promise<void>[] = [];
  private phaseStamp = -1;
  private phaseCache = 0;
  /** Live dashboard: while paused, a closed-loop reply is not answered with a new request; the connection waits here. */
  private paused = false;
  private parked: Conn[] = [];

  constructor(cfg: LoadConfig, control: Int32Array, counters: Float64Array) {
    this.cfg = cfg;
    this.control = control;
    this.counters = counters;
    this.closedLoop = cfg.workload === 'rr' || cfg.workload === 'bandwidth';
    this.rawProtocol = cfg.protocol === 'raw';
    this.checkRawId = cfg.framing !== 'u32le';
    this.countReplies = cfg.workload !== 'connect';
    // the engine layer frames raw requests itself; BenchmarkRequest (protobuf) goes through sessions
    const engineLayer = cfg.clientLayer === 'engine' && cfg.protocol === 'raw';
    this.pattern = engineLayer
      ? new PayloadPattern(cfg.size, headerSize(cfg.framing), (frame) => writeRawHeader(cfg.framing, frame, cfg.size))
      : new PayloadPattern(cfg.size);
    const sink = {
      onFrame: (c: Conn, id: number, buf: Uint8Array, start: number, len: number, wire: number, now: number) => this.onFrame(c, id, buf, start, len, wire, now),
      onClose: (c: Conn, reason: string, code: string | undefined) => this.onClose(c, reason, code),
      onError: (code: string) => this.countError(code),
    };
    const topts = { clientEngine: cfg.clientEngine, clientIoThreads: cfg.clientIoThreads, framing: cfg.framing, maxFrame: cfg.maxFrame };
    this.transport = engineLayer ? new EngineTransport<Conn>(topts, sink) : new SessionTransport<Conn>(topts, sink);
  }

  get engineKind(): string {
    return this.transport.kind;
  }

  get engineReason(): string {
    return this.transport.reason;
  }

  get connectErrors(): Record<string, number> {
    return { ...this.errorCodes };
  }

  private phase(): number {
    return Atomics.load(this.control, 0);
  }

  /** The phase for the replies of one read (they share `now`): one atomic load per read, not per reply. */
  private phaseAt(now: number): number {
    if (now !== this.phaseStamp) {
      this.phaseStamp = now;
      this.phaseCache = Atomics.load(this.control, 0);
    }
    return this.phaseCache;
  }

  private countError(code: string): void {
    this.errors++;
    this.errorCodes[code] = (this.errorCodes[code] ?? 0) + 1;
    this.counters[C_ERRORS] = this.errors;
  }

  private source(): string | undefined {
    const s = this.cfg.sources;
    if (s.length === 0) return undefined;
    return s[this.nextSource++ % s.length];
  }

  private async openOne(index: number): Promise<Conn | undefined> {
    const localAddress = this.source();
    try {
      const closedLoop = this.closedLoop;
      const depth = this.cfg.depth;
      const conn = await this.transport.connect(this.cfg.host, this.cfg.port, localAddress, (base) => new Conn(base, index, closedLoop ? depth : 1024));
      this.connectedTotal++;
      this.counters[C_OPEN]!++;
      return conn;
    } catch (err) {
      this.connectFailures++;
      this.countError((err as { code?: string }).code ?? 'connect');
      return undefined;
    }
  }

  /** Opens this thread's connections (closed/open loop); connect workload opens them as it goes. */
  async connect(): Promise<{ connected: number; failed: number }> {
    if (this.cfg.workload === 'connect') return { connected: 0, failed: 0 };
    let next = 0;
    const worker = async () => {
      while (next < this.cfg.connections) {
        const i = next++;
        const conn = await this.openOne(this.cfg.firstConnection + i);
        if (conn) {
          this.conns.push(conn);
          this.counters[C_CONNECTED] = this.conns.length;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, this.cfg.connections) }, worker));
    return { connected: this.conns.length, failed: this.connectFailures };
  }

  /** Starts the load. */
  go(): void {
    switch (this.cfg.workload) {
      case 'rr':
      case 'bandwidth':
        for (const c of this.conns) for (let d = 0; d < this.cfg.depth; d++) this.send(c, performance.now());
        break;
      case 'open':
        this.pace();
        break;
      case 'connect':
        this.loops = Array.from({ length: this.cfg.connections }, (_, k) => this.connectLoop(k));
        break;
    }
  }

  private send(c: Conn, stamp: number): void {
    const seq = c.sendSeq;
    c.sendSeq = (seq + 1) >>> 0;
    c.times.push(stamp);
    this.inflight++;
    let ok: boolean;
    if (this.rawProtocol) {
      const payload = this.pattern.raw(c.index, seq);
      ok = this.transport.send(c, this.pattern.frame, payload, RAW_PACKET_ID);
    } else {
      const payload = BenchmarkRequest.encode({ seq, clientTimeNs: BigInt(Math.round(stamp * 1e6)), payload: this.pattern.body(seq) }).finish();
      ok = this.transport.send(c, payload, payload, PacketId.BenchmarkRequest);
    }
    if (!ok) {
      c.times.shift();
      this.inflight--;
      this.countError(c.open ? 'send-dropped' : 'send-closed');
      return;
    }
    this.counters[C_SENT]!++;
    if (this.phaseAt(stamp) === PHASE_MEASURE) this.sentInWindow++;
  }

  private verify(c: Conn, id: number, buf: Uint8Array, start: number, len: number, seq: number): boolean {
    if (this.rawProtocol) {
      if (this.checkRawId && id !== RAW_PACKET_ID) return false;
      return this.pattern.verifyRawAt(buf, start, len, c.index, seq);
    }
    if (id !== PacketId.BenchmarkResponse) return false;
    let msg;
    try {
      msg = BenchmarkResponse.decode(buf.subarray(start, start + len));
    } catch {
      return false;
    }
    return msg.seq === seq && this.pattern.verifyBody(msg.payload, seq);
  }

  private onFrame(c: Conn, id: number, buf: Uint8Array, start: number, len: number, wire: number, now: number): void {
    const t0 = c.times.shift();
    if (Number.isNaN(t0)) {
      // a reply nobody asked for
      this.mismatches++;
      this.counters[C_MISMATCH] = this.mismatches;
      return;
    }
    this.inflight--;
    const seq = c.recvSeq;
    c.recvSeq = (seq + 1) >>> 0;
    if (this.verify(c, id, buf, start, len, seq)) {
      this.verifiedMessages++;
      this.verifiedBytes += wire;
    } else {
      this.mismatches++;
      this.counters[C_MISMATCH] = this.mismatches;
    }
    this.counters[C_MESSAGES]!++;
    this.counters[C_BYTES]! += wire;
    const phase = this.phaseAt(now);
    if (phase === PHASE_MEASURE && this.countReplies) {
      this.messages++;
      this.bytes += wire;
      this.hist.record((now - t0) * 1e6);
    }
    if (c.waiter !== undefined) {
      const w = c.waiter;
      c.waiter = undefined;
      w();
      return;
    }
    if (this.closedLoop && !this.stopping && phase !== PHASE_STOP) {
      if (this.paused) this.parked.push(c);
      else this.send(c, now);
    } else if (this.stopping && this.inflight === 0) this.drainWaiter?.();
  }

  private onClose(c: Conn, reason: string, code: string | undefined): void {
    this.inflight -= c.times.size;
    this.counters[C_OPEN]!--;
    if (c.waiter !== undefined) {
      const w = c.waiter;
      c.waiter = undefined;
      w();
    }
    if (!OWN_CLOSE.has(reason) && !(this.stopping && reason === 'peer')) {
      this.countError(code ?? `close-${reason}`);
    }
    if (this.stopping && this.inflight <= 0) this.drainWaiter?.();
  }

  /** Open loop: requests at fixed intended times, round robin over the connections; RTT counts from the intended time. */
  private pace(): void {
    const n = this.conns.length;
    if (n === 0 || this.cfg.rate <= 0) return;
    const interval = 1000 / this.cfg.rate;
    let next = performance.now();
    let i = 0;
    const pump = () => {
      if (this.stopping || this.phase() === PHASE_STOP) return;
      if (this.paused) {
        // the schedule restarts at resume: a pause is not a backlog to catch up on
        next = performance.now();
        setTimeout(pump, 20);
        return;
      }
      const now = performance.now();
      while (next <= now) {
        const c = this.conns[i++ % n]!;
        if (c.open) this.send(c, next);
        next += interval;
      }
      const wait = next - performance.now();
      if (wait > 2) setTimeout(pump, wait - 1);
      else setImmediate(pump);
    };
    pump();
  }

  /** Connect workload: connect, one echo, close, again; latency is connect() to the echo's arrival. */
  private async connectLoop(k: number): Promise<void> {
    let index = this.cfg.firstConnection + k;
    while (!this.stopping && this.phase() !== PHASE_STOP) {
      const t0 = performance.now();
      const c = await this.openOne(index);
      index = (index + this.cfg.connections) >>> 0; // a new number per connection (only its own echo is checked against it)
      if (c === undefined) {
        await sleep(1);
        continue;
      }
      this.counters[C_CONNECTED]!++;
      const replied = new Promise<void>((resolve) => {
        c.waiter = resolve;
      });
      this.send(c, t0);
      await replied;
      const t1 = performance.now();
      const ok = c.recvSeq === 1;
      if (ok && this.phase() === PHASE_MEASURE) {
        this.messages++;
        this.bytes += this.cfg.size;
        this.hist.record((t1 - t0) * 1e6);
      }
      this.transport.close(c, this.cfg.closeMode);
    }
  }

  /** Live dashboard: stop sending new requests (replies in flight still arrive and count). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const now = performance.now();
    const parked = this.parked;
    this.parked = [];
    if (this.stopping || this.phase() === PHASE_STOP) return;
    for (const c of parked) if (c.open) this.send(c, now);
  }

  /** Live dashboard: the latency histogram so far (the coordinator takes differences) and this thread's CPU ticks. */
  sample(): { histogram: ReturnType<Histogram['toData']>; cpuTicks: number | undefined } {
    return { histogram: this.hist.toData(), cpuTicks: threadCpuTicks() };
  }

  /** Stops sending, waits for replies in flight (bounded), closes the client, returns the counts. */
  async stop(): Promise<ThreadResult> {
    this.stopping = true;
    if (this.cfg.workload === 'connect') {
      await Promise.race([Promise.all(this.loops), sleep(DRAIN_MS)]);
    } else if (this.inflight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => {
          this.drainWaiter = resolve;
        }),
        sleep(DRAIN_MS),
      ]);
    }
    const unanswered = Math.max(0, this.inflight);
    const stats = this.transport.counters();
    for (const c of this.conns) if (c.open) this.transport.close(c, 'graceful');
    await this.transport.destroy().catch(() => undefined);
    return {
      threadIndex: this.cfg.threadIndex,
      clientEngine: this.engineKind,
      clientEngineReason: this.engineReason,
      messages: this.messages,
      bytes: this.bytes,
      sent: this.sentInWindow,
      verifiedBytes: this.verifiedBytes,
      verifiedMessages: this.verifiedMessages,
      errors: this.errors,
      mismatches: this.mismatches,
      errorCodes: { ...this.errorCodes },
      connectFailures: this.connectFailures,
      connected: this.connectedTotal,
      unanswered,
      histogram: this.hist.toData(),
      engineStats: stats,
    };
  }
}
