/**
 * The native engines (`epoll`, `uring` on Linux, `iocp` on Windows): the JS side of src/binding/engine_napi.cc.
 *
 * One JS crossing per batch: the addon fills a shared record buffer with the
 * completions of every connection and calls `onBatch(count)` once. Received
 * bytes are views into the engine's receive memory (valid during the call).
 * Sends are copied into a shared command buffer and handed to the addon in
 * one `flush()` call at the end of the batch (or in a microtask when made
 * outside a batch); flush() returns the records that submission produced
 * (bytes the kernel took, closes), which are handled as part of the batch.
 *
 * Each connection's pending bytes are mirrored here (added on send,
 * subtracted on the addon's SENT records), so send() answers synchronously
 * with no call into the addon. The addon enforces the limit too.
 */
import * as os from 'node:os';
import * as net from 'node:net';
import { debugViewsEnabled, ViewPoisoner } from './debug-views';
import { FastPortError, OS_ERROR_CODES, type ErrorCode } from './errors';
import { resolveEngineLimits, type EngineLimits } from './limits';
import { loadNative } from './native';
import { resolveRioTable } from './rio-table';
import { pickSocketOptions } from './socket-options';
import {
  CLOSE_ABORT,
  CLOSE_ERROR,
  CMD_ABORT,
  CMD_CLOSE,
  CMD_CONNECT_TIMEOUT,
  CMD_HEADER_BYTES,
  CMD_PAUSE_RECV,
  CMD_RESUME_RECV,
  CMD_SEND,
  CMD_SHUTDOWN,
  ERR_CONNECT_TIMEOUT,
  ERR_NOT_FOUND,
  ERR_RESOLVE_FAILED,
  REC_ACCEPT,
  REC_CLOSE,
  REC_CONNECT,
  REC_DATA,
  REC_END,
  REC_LISTENER_CLOSED,
  REC_LISTENER_ERROR,
  REC_SENT,
  REC_WORDS,
  SLOT_COUNT,
} from './wire';
import {
  SendStatus,
  type AddressInfo,
  type CloseInfo,
  type CloseReason,
  type ConnectionId,
  type ConnectionStats,
  type ConnectOptions,
  type Engine,
  type EngineHandler,
  type EngineInfo,
  type EngineKind,
  type EngineOptions,
  type EngineRequest,
  type EngineStats,
  type ListenerId,
  type ListenerInfo,
  type ListenOptions,
  type SocketOptions,
} from './types';

// ------------------------------------------------------------------ addon surface

export interface NativeEngineBuffers {
  events: ArrayBuffer;
  commands: ArrayBuffer;
  regions: ArrayBuffer[];
  eventCapacity: number;
  recordWords: number;
  commandBytes: number;
  /** Size of one send-queue chunk (older addons leave it out). */
  sendChunkBytes?: number;
  /** Idle slab memory each loop keeps after a peak. */
  sendSlabReserveBytes?: number;
}

/** An engine instance of the addon (src/binding/engine_napi.cc). */
export interface NativeEngineHandle {
  buffers(): NativeEngineBuffers;
  flush(commandBytes: number, deliver: boolean): number;
  /** A large send from `bytes` directly (inline mode): no copy into the command buffer. */
  sendNow(slot: number, gen: number, bytes: Uint8Array): boolean;
  listen(host: string, port: number, backlog: number, reusePort: boolean, ipv6Only: boolean, opts: number[]): number[] | number;
  closeListener(id: number): number;
  connect(host: string, port: number, localAddress: string | null, opts: number[]): [number, number];
  setSocketOptions(slot: number, gen: number, opts: number[]): number;
  counters(): number[];
  features(): Record<string, string>;
  destroy(): void;
}

/** The engines the addon implements, per platform. */
export type NativeEngineKind = 'epoll' | 'uring' | 'iocp' | 'rio';
const PLATFORM_NATIVE_KINDS: Partial<Record<NodeJS.Platform, readonly NativeEngineKind[]>> = {
  linux: ['epoll', 'uring'],
  win32: ['iocp', 'rio'],
};

/** What a start failure means for engines whose errno alone says little. */
function startFailureHint(kind: NativeEngineKind, errno: number): string {
  if (kind !== 'rio') return '';
  if (errno === os.constants.errno.EOPNOTSUPP) {
    return ': the RIO function table is absent (WSAIoctl SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER with WSAID_MULTIPLE_RIO answered WSAEOPNOTSUPP; Wine has no RIO)';
  }
  return '';
}

/** The addon's backend names: the engine kinds, and rio on the emulated RIO table. */
export type NativeBackendName = NativeEngineKind | 'rio-emulated';

export type NativeEngineConstructor = new (
  backend: NativeBackendName,
  ioThreads: number,
  maxPendingBytes: number,
  recvBytes: number,
  onBatch: (count: number) => void,
) => NativeEngineHandle;

// ------------------------------------------------------------------ wire format (engine_core.h)

const MODE_NONE = 0;
const MODE_GRACEFUL = 1;
const MODE_ABORT = 2;

/**
 * ioThreads when the options leave it out: 0 (inline on the JS thread's
 * loop), the measured best on this 2-core machine (see BENCHMARKS.md).
 * FASTPORT_IO_THREADS overrides it (used to run the suites with threads).
 */
export function defaultIoThreads(): number {
  const env = process.env['FASTPORT_IO_THREADS'];
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  return 0;
}

/** Sends at least this large skip the command buffer (inline mode): see writeSend. */
const DIRECT_SEND_BYTES = 64 * 1024;

/** Default receive memory per loop (the epoll loop-wide buffer). */
export const DEFAULT_RECV_BYTES = 1024 * 1024;

// ------------------------------------------------------------------ errors

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(os.constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
const OS_CODES = new Set<string>(OS_ERROR_CODES);

function codeOfErrno(errno: number): ErrorCode {
  if (errno === ERR_CONNECT_TIMEOUT) return 'ERR_CONNECT_TIMEOUT';
  if (errno === ERR_NOT_FOUND) return 'ENOTFOUND';
  const name = ERRNO_NAMES.get(errno);
  if (name === 'EWOULDBLOCK') return 'EUNKNOWN';
  return name !== undefined && OS_CODES.has(name) ? (name as ErrorCode) : 'EUNKNOWN';
}

function errorOf(negErrno: number, what: string): FastPortError {
  if (negErrno === ERR_RESOLVE_FAILED) return new FastPortError('ENOTFOUND', `${what}: host not found`);
  const errno = -negErrno;
  const code = codeOfErrno(errno);
  const name = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
  return new FastPortError(code, `${what}: ${name}`, errno);
}

function closeMessage(errno: number): string {
  if (errno === ERR_CONNECT_TIMEOUT) return 'connect timed out';
  if (errno === ERR_NOT_FOUND) return 'host not found';
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

// ------------------------------------------------------------------ addresses

function hex4(n: number): string {
  return n.toString(16);
}

/** Formats {family, port, addr words} (engine_core.h) as Node does. */
function addressFromWords(w: Uint32Array | number[], o: number): AddressInfo {
  const family = w[o] as number;
  const port = w[o + 1] as number;
  if (family === 4) {
    const a = w[o + 2] as number;
    return { address: `${a & 255}.${(a >>> 8) & 255}.${(a >>> 16) & 255}.${a >>> 24}`, port, family: 'IPv4' };
  }
  if (family !== 6) return { address: '', port, family: 'IPv4' };
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) {
    const a = w[o + 2 + i] as number;
    const b0 = a & 255;
    const b1 = (a >>> 8) & 255;
    const b2 = (a >>> 16) & 255;
    const b3 = a >>> 24;
    groups.push((b0 << 8) | b1, (b2 << 8) | b3);
  }
  // RFC 5952: the longest run (>= 2) of zero groups becomes '::'.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let address: string;
  if (bestStart < 0) {
    address = groups.map(hex4).join(':');
  } else {
    const head = groups.slice(0, bestStart).map(hex4).join(':');
    const tail = groups.slice(bestStart + bestLen).map(hex4).join(':');
    address = `${head}::${tail}`;
  }
  return { address, port, family: 'IPv6' };
}

// ------------------------------------------------------------------ socket options

function optsArray(o: SocketOptions): number[] {
  const a = [-1, -1, -1, -1, -1, -1, -1, -1];
  if (o.noDelay !== undefined) a[0] = o.noDelay ? 1 : 0;
  if (o.keepAlive !== undefined) {
    if (o.keepAlive === false) {
      a[1] = 0;
    } else {
      const k = o.keepAlive === true ? {} : o.keepAlive;
      a[1] = 1;
      a[2] = k.idleSec ?? 60;
      a[3] = k.intervalSec ?? 10;
      a[4] = k.count ?? 5;
    }
  }
  if (o.userTimeoutMs !== undefined) a[5] = o.userTimeoutMs;
  if (o.sendBufferSize !== undefined) a[6] = o.sendBufferSize;
  if (o.receiveBufferSize !== undefined) a[7] = o.receiveBufferSize;
  return a;
}

// ------------------------------------------------------------------ engine

class NConn {
  readonly id: ConnectionId;
  readonly slot: number;
  readonly gen: number;
  connected: boolean;
  closeMode = MODE_NONE;
  shutdownRequested = false;
  closedByPeer = false;
  aboveHigh = false;
  /** Mirror of the addon's queue: bytes given to send() and not yet reported taken by the kernel. */
  pending = 0;
  /** Send chunks the addon's queue holds, as of its last SENT record (memory, not bytes). */
  heldChunks = 0;
  bytesIn = 0;
  bytesOut = 0;
  remote: AddressInfo;
  connectTimer: NodeJS.Timeout | null = null;
  /** pauseReceiving() is in force (the addon is told with a PAUSE command). */
  paused = false;
  /**
   * Copies of DATA that reached JS while paused (records already on their way
   * before the addon saw the PAUSE, or after a resume while older ones wait):
   * delivered in order after resumeReceiving(). Bounded by what one loop's
   * receive memory can hold in flight, since the addon stops reading first.
   */
  held: Uint8Array[] | null = null;
  /** An END record came while paused or while DATA was held: reported after it. */
  endHeld = false;
  releaseQueued = false;

  constructor(slot: number, gen: number, connected: boolean, remote: AddressInfo) {
    this.slot = slot;
    this.gen = gen;
    this.id = gen * SLOT_COUNT + slot;
    this.connected = connected;
    this.remote = remote;
  }
}

export class NativeEngine implements Engine {
  readonly info: EngineInfo;
  private readonly handler: EngineHandler;
  private readonly limits: EngineLimits;
  private readonly socketDefaults: SocketOptions;
  private readonly allowHalfOpen: boolean;
  private readonly native: NativeEngineHandle;
  private readonly rec: Uint32Array;
  private readonly cmd8: Uint8Array;
  private readonly cmd32: Uint32Array;
  private readonly cmdCap: number;
  private readonly regions: ArrayBuffer[];
  private readonly chunkBytes: number;
  /** debugViews: views are copies detached when the batch ends (see debug-views.ts). */
  private readonly poisoner: ViewPoisoner | null;
  private cmdLen = 0;
  /** The SEND command last written, so consecutive sends to one connection share one command. */
  private lastSendConn: NConn | null = null;
  private lastSendWord = 0;
  private lastSendEnd = 0;
  /** Connections by slot; an older generation still awaiting its close record waits in `limbo`. */
  private readonly table: (NConn | undefined)[] = [];
  private readonly limbo = new Map<ConnectionId, NConn>();
  private live = 0;
  private readonly listenerIds = new Set<ListenerId>();
  /** closeListener() waiters: one LCLOSED record per I/O loop is expected. */
  private readonly listenerClosing = new Map<ListenerId, { remaining: number; wake: () => void }>();
  private readonly loops: number;
  private readonly inline: boolean;
  private inBatch = false;
  private flushScheduled = false;
  private destroyed = false;
  private alive = true;
  private readonly closeWaiters: (() => void)[] = [];
  private readonly counters = {
    accepted: 0,
    connected: 0,
    closed: 0,
    bytesIn: 0,
    bytesOut: 0,
    events: 0,
    batches: 0,
    jsCrossings: 0,
    sends: 0,
    sendsRefused: 0,
  };
  private readonly errorCounts: Record<string, number> = {};

  constructor(
    ctor: NativeEngineConstructor,
    kind: NativeEngineKind,
    handler: EngineHandler,
    options: EngineOptions,
    requested: EngineRequest,
    reason: string,
  ) {
    this.handler = handler;
    this.limits = resolveEngineLimits(options);
    this.socketDefaults = { noDelay: true, ...options.socket };
    this.allowHalfOpen = options.allowHalfOpen ?? false;
    this.poisoner = debugViewsEnabled(options) ? new ViewPoisoner() : null;
    const ioThreads = options.ioThreads ?? defaultIoThreads();
    this.loops = ioThreads === 0 ? 1 : ioThreads;
    this.inline = ioThreads === 0;
    if (!Number.isSafeInteger(ioThreads) || ioThreads < 0 || ioThreads > 64) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `ioThreads must be an integer in 0..64, got ${ioThreads}`);
    }
    // Several loops share a port through SO_REUSEPORT, which Windows lacks.
    if ((kind === 'iocp' || kind === 'rio') && ioThreads > 1) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `ioThreads must be 0 or 1 for the ${kind} engine (no SO_REUSEPORT on Windows), got ${ioThreads}`);
    }
    try {
      const backend: NativeBackendName = kind === 'rio' && resolveRioTable(options.rioTable).table === 'emulated' ? 'rio-emulated' : kind;
      this.native = new ctor(backend, ioThreads, this.limits.maxPendingBytes, DEFAULT_RECV_BYTES, this.onBatch);
    } catch (err) {
      const e = err as { errno?: unknown; message?: string };
      if (typeof e.errno === 'number') {
        const failure = errorOf(e.errno, `${kind} engine`);
        const hint = startFailureHint(kind, -e.errno);
        throw hint === '' ? failure : new FastPortError(failure.code, failure.message + hint, failure.errno);
      }
      throw err;
    }
    const b = this.native.buffers();
    this.rec = new Uint32Array(b.events);
    this.cmd8 = new Uint8Array(b.commands);
    this.cmd32 = new Uint32Array(b.commands);
    this.cmdCap = b.commandBytes;
    this.regions = b.regions;
    this.chunkBytes = b.sendChunkBytes ?? 64 * 1024;
    const features: Record<string, boolean | number | string> = {
      keepAliveTuning: true,
      userTimeout: true,
      bufferSizes: true,
      reusePort: process.platform !== 'win32',
      batchedCrossing: true,
      eventCapacity: b.eventCapacity,
      sendChunkBytes: this.chunkBytes,
    };
    if (b.sendSlabReserveBytes !== undefined) features['sendSlabReserveBytes'] = b.sendSlabReserveBytes;
    if (this.poisoner !== null) features['debugViews'] = true;
    for (const [k, v] of Object.entries(this.native.features())) {
      features[k] = v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v;
    }
    this.info = { kind, requested, reason, ioThreads, features };
  }

  // ---------------------------------------------------------------- batches

  /**
   * The one native→JS crossing: `count` records wait in the event buffer.
   * Counting: jsCrossings = onBatch calls + microtask flushes that delivered
   * records (a JS→native call whose answer carried events); batches =
   * deliveries that carried at least one handler event (a delivery of only
   * "bytes sent" records is a crossing but no batch), and onBatchEnd runs once
   * per batch, before the gathered sends are submitted.
   */
  private readonly onBatch = (count: number): void => {
    this.counters.jsCrossings++;
    this.runBatch(count);
  };

  private runBatch(count: number): void {
    this.inBatch = true;
    let failure: { err: unknown } | null = null;
    const eventsBefore = this.counters.events;
    let ended = false;
    try {
      let n = count;
      for (;;) {
        if (this.releasing.length > 0) {
          const f = this.releaseHeld();
          if (f !== null && failure === null) failure = f;
        }
        if (n > 0) {
          const f = this.processRecords(n);
          if (f !== null && failure === null) failure = f;
        }
        if (!ended && this.counters.events !== eventsBefore) {
          ended = true;
          this.counters.batches++;
          try {
            this.handler.onBatchEnd?.();
          } catch (err) {
            if (failure === null) failure = { err };
          }
        }
        if (!this.alive) break;
        n = this.native.flush(this.cmdLen, true);
        this.resetCmd();
        if (n === 0 && this.releasing.length === 0) break;
      }
    } finally {
      this.inBatch = false;
      this.poisoner?.endBatch();
    }
    if (failure !== null) throw failure.err;
  }

  private processRecords(n: number): { err: unknown } | null {
    const w = this.rec;
    let failure: { err: unknown } | null = null;
    for (let i = 0, o = 0; i < n; i++, o += REC_WORDS) {
      try {
        this.processRecord(w, o);
      } catch (err) {
        if (failure === null) failure = { err };
      }
    }
    return failure;
  }

  private conn(slot: number, gen: number): NConn | undefined {
    const c = this.table[slot];
    if (c !== undefined && c.gen === gen) return c;
    return this.limbo.size === 0 ? undefined : this.limbo.get(gen * SLOT_COUNT + slot);
  }

  private processRecord(w: Uint32Array, o: number): void {
    const type = w[o] as number;
    if (type === REC_DATA) {
      const c = this.conn(w[o + 1] as number, w[o + 2] as number);
      if (c === undefined) return;
      const len = w[o + 4] as number;
      c.bytesIn += len;
      this.counters.bytesIn += len;
      if (c.closeMode !== MODE_NONE) return; // closing locally: input is discarded
      const view = new Uint8Array(this.regions[w[o + 5] as number] as ArrayBuffer, w[o + 3] as number, len);
      if (c.paused || c.held !== null) {
        (c.held ??= []).push(view.slice()); // the view dies with the batch
        return;
      }
      this.counters.events++;
      this.handler.onData(c.id, this.poisoner === null ? view : this.poisoner.view(view));
      return;
    }
    if (type === REC_SENT) {
      const c = this.conn(w[o + 1] as number, w[o + 2] as number);
      if (c === undefined) return;
      const bytes = (w[o + 3] as number) + (w[o + 4] as number) * 2 ** 32;
      c.heldChunks = w[o + 5] as number;
      if (bytes === 0) return; // only the chunk count changed
      c.pending -= bytes;
      c.bytesOut += bytes;
      this.counters.bytesOut += bytes;
      if (c.aboveHigh && c.pending <= this.limits.lowWaterMark) {
        c.aboveHigh = false;
        this.counters.events++;
        this.handler.onDrain?.(c.id);
      }
      return;
    }
    switch (type) {
      case REC_ACCEPT: {
        const slot = w[o + 1] as number;
        const gen = w[o + 2] as number;
        const c = new NConn(slot, gen, true, addressFromWords(w, o + 4));
        this.adopt(c);
        this.counters.accepted++;
        this.counters.events++;
        if (this.destroyed) this.close(c.id, 'abort');
        this.handler.onAccept(c.id, w[o + 3] as number, { ...c.remote });
        return;
      }
      case REC_CONNECT: {
        const c = this.conn(w[o + 1] as number, w[o + 2] as number);
        if (c === undefined) return;
        if (c.connectTimer !== null) clearTimeout(c.connectTimer);
        c.connectTimer = null;
        c.connected = true;
        c.remote = addressFromWords(w, o + 4);
        this.counters.connected++;
        this.counters.events++;
        this.handler.onConnect(c.id, { ...c.remote });
        return;
      }
      case REC_END: {
        const c = this.conn(w[o + 1] as number, w[o + 2] as number);
        if (c === undefined) return;
        if (c.closeMode === MODE_NONE && (c.paused || c.held !== null)) {
          c.endHeld = true;
          return;
        }
        this.peerEnd(c);
        return;
      }
      case REC_CLOSE: {
        const c = this.conn(w[o + 1] as number, w[o + 2] as number);
        if (c === undefined) return;
        this.finish(c, w[o + 3] as number, w[o + 4] as number);
        return;
      }
      case REC_LISTENER_ERROR: {
        const errno = w[o + 4] as number;
        this.handler.onListenerError?.(w[o + 3] as number, new FastPortError(codeOfErrno(errno), `accept failed: ${closeMessage(errno)}`, errno));
        return;
      }
      case REC_LISTENER_CLOSED: {
        const id = w[o + 3] as number;
        const waiter = this.listenerClosing.get(id);
        if (waiter !== undefined && --waiter.remaining <= 0) {
          this.listenerClosing.delete(id);
          waiter.wake();
        }
        return;
      }
      default:
        return;
    }
  }

  private peerEnd(c: NConn): void {
    if (c.closeMode === MODE_NONE) {
      this.counters.events++;
      if (!this.allowHalfOpen || c.shutdownRequested) c.closedByPeer = true;
      this.handler.onEnd?.(c.id);
    }
    if (!this.allowHalfOpen || c.closeMode !== MODE_NONE || c.shutdownRequested) this.close(c.id, 'graceful');
  }

  /** Connections resumed with DATA or END held: released at the start of the next batch step. */
  private readonly releasing: NConn[] = [];

  private releaseHeld(): { err: unknown } | null {
    let failure: { err: unknown } | null = null;
    const list = this.releasing.splice(0);
    for (const c of list) {
      c.releaseQueued = false;
      if (this.find(c.id) !== c || c.paused) continue; // gone, or paused again: the next resume queues it
      const held = c.held;
      try {
        if (held !== null) {
          let i = 0;
          while (i < held.length && !c.paused && c.closeMode === MODE_NONE) {
            const data = held[i++] as Uint8Array;
            this.counters.events++;
            this.handler.onData(c.id, data);
          }
          if (c.closeMode !== MODE_NONE || i === held.length) c.held = null;
          else c.held = held.slice(i); // paused again from a handler: the rest waits, in order
        }
        if (c.endHeld && c.held === null && !c.paused) {
          c.endHeld = false;
          this.peerEnd(c);
        }
      } catch (err) {
        if (failure === null) failure = { err };
      }
    }
    return failure;
  }

  private adopt(c: NConn): void {
    const old = this.table[c.slot];
    if (old !== undefined) this.limbo.set(old.id, old); // its close record is still on the way
    this.table[c.slot] = c;
    this.live++;
  }

  private finish(c: NConn, kind: number, errno: number): void {
    if (this.table[c.slot] === c) this.table[c.slot] = undefined;
    else this.limbo.delete(c.id);
    this.live--;
    c.held = null; // bytes held for a paused connection die with it
    if (c.connectTimer !== null) clearTimeout(c.connectTimer);
    c.connectTimer = null;
    let reason: CloseReason;
    if (this.destroyed) reason = 'destroy';
    else if (c.closeMode === MODE_ABORT || kind === CLOSE_ABORT) reason = 'abort';
    else if (kind === CLOSE_ERROR) reason = 'error';
    else if (c.closedByPeer) reason = 'peer';
    else reason = 'local';
    const info: CloseInfo = { reason, unsentBytes: Math.max(0, c.pending) };
    if (kind === CLOSE_ERROR) {
      const code = codeOfErrno(errno);
      this.errorCounts[code] = (this.errorCounts[code] ?? 0) + 1;
      if (reason === 'error') {
        info.code = code;
        info.message = closeMessage(errno);
      }
    }
    this.counters.closed++;
    this.counters.events++;
    try {
      this.handler.onClose(c.id, info);
    } finally {
      if (this.live === 0) for (const wake of this.closeWaiters.splice(0)) wake();
    }
  }

  // ---------------------------------------------------------------- commands

  private resetCmd(): void {
    this.cmdLen = 0;
    this.lastSendConn = null;
  }

  private readonly microFlush = (): void => {
    this.flushScheduled = false;
    if (!this.alive || this.inBatch) return;
    const n = this.native.flush(this.cmdLen, true);
    this.resetCmd();
    if (n > 0 || this.releasing.length > 0) {
      this.counters.jsCrossings++;
      this.runBatch(n);
    }
  };

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inBatch) return;
    this.flushScheduled = true;
    queueMicrotask(this.microFlush);
  }

  /** Hands the commands to the addon now, leaving its records for the next delivery. */
  private flushCommandsOnly(): void {
    if (this.cmdLen === 0) return;
    this.native.flush(this.cmdLen, false);
    this.resetCmd();
  }

  private writeOp(op: number, c: NConn): void {
    if (this.cmdLen + CMD_HEADER_BYTES > this.cmdCap) this.flushCommandsOnly();
    this.lastSendConn = null;
    const w = this.cmdLen >>> 2;
    const cmd = this.cmd32;
    cmd[w] = op;
    cmd[w + 1] = c.slot;
    cmd[w + 2] = c.gen;
    cmd[w + 3] = 0;
    this.cmdLen += CMD_HEADER_BYTES;
    this.scheduleFlush();
  }

  /**
   * Copies `data` into the command buffer (split when it does not fit).
   * Consecutive sends to the same connection extend one SEND command, so the
   * addon sees one contiguous run of bytes per connection and batch.
   */
  private writeSend(c: NConn, data: Uint8Array, len: number): void {
    if (len >= DIRECT_SEND_BYTES && this.inline) {
      // Large: hand the bytes over in place (one N-API call) instead of copying
      // them into the command buffer; earlier commands go first to keep order.
      this.flushCommandsOnly();
      this.lastSendConn = null;
      this.native.sendNow(c.slot, c.gen, data);
      this.scheduleFlush();
      return;
    }
    let off = 0;
    if (this.lastSendConn === c) {
      const end = this.lastSendEnd;
      const room = this.cmdCap - end;
      if (room > 0) {
        const take = len < room ? len : room;
        this.cmd8.set(take === len ? data : data.subarray(0, take), end);
        this.cmd32[this.lastSendWord + 3] = (this.cmd32[this.lastSendWord + 3] as number) + take;
        this.lastSendEnd = end + take;
        this.cmdLen = (end + take + 3) & ~3;
        off = take;
      }
    }
    while (off < len) {
      let room = this.cmdCap - this.cmdLen - CMD_HEADER_BYTES;
      if (room < len - off && room < 65536) {
        this.flushCommandsOnly();
        room = this.cmdCap - CMD_HEADER_BYTES;
      }
      const take = len - off < room ? len - off : room;
      const p = this.cmdLen;
      const w = p >>> 2;
      const cmd = this.cmd32;
      cmd[w] = CMD_SEND;
      cmd[w + 1] = c.slot;
      cmd[w + 2] = c.gen;
      cmd[w + 3] = take;
      this.cmd8.set(off === 0 && take === len ? data : data.subarray(off, off + take), p + CMD_HEADER_BYTES);
      this.cmdLen = (p + CMD_HEADER_BYTES + take + 3) & ~3;
      this.lastSendConn = c;
      this.lastSendWord = w;
      this.lastSendEnd = p + CMD_HEADER_BYTES + take;
      off += take;
    }
    this.scheduleFlush();
  }

  private find(id: ConnectionId): NConn | undefined {
    if (typeof id !== 'number') return undefined;
    const c = this.table[id % SLOT_COUNT];
    if (c !== undefined && c.id === id) return c;
    return this.limbo.size === 0 ? undefined : this.limbo.get(id);
  }

  // ---------------------------------------------------------------- Engine

  listen(options: ListenOptions): Promise<ListenerInfo> {
    if (this.destroyed) return Promise.reject(new FastPortError('ERR_ENGINE_DESTROYED', 'engine destroyed'));
    const opts = optsArray({ ...this.socketDefaults, ...pickSocketOptions(options) });
    const host = options.host ?? '0.0.0.0';
    const r = this.native.listen(host, options.port, options.backlog ?? 511, options.reusePort ?? false, options.ipv6Only ?? false, opts);
    if (typeof r === 'number') return Promise.reject(errorOf(r, `listen ${host}:${options.port}`));
    const id = r[0] as number;
    this.listenerIds.add(id);
    const addr = addressFromWords(r, 1);
    return Promise.resolve({ id, ...addr });
  }

  closeListener(listener: ListenerId): Promise<void> {
    if (!this.listenerIds.has(listener)) return Promise.resolve();
    this.listenerIds.delete(listener);
    const done = new Promise<void>((resolve) => this.listenerClosing.set(listener, { remaining: this.loops, wake: resolve }));
    const r = this.native.closeListener(listener);
    if (r < 0) {
      this.listenerClosing.delete(listener);
      return Promise.resolve();
    }
    this.scheduleFlush();
    return done;
  }

  connect(options: ConnectOptions): ConnectionId {
    if (this.destroyed) throw new FastPortError('ERR_ENGINE_DESTROYED', 'engine destroyed');
    const opts = optsArray({ ...this.socketDefaults, ...pickSocketOptions(options) });
    const [slot, gen] = this.native.connect(options.host, options.port, options.localAddress ?? null, opts);
    const c = new NConn(slot, gen, false, {
      address: options.host,
      port: options.port,
      family: net.isIPv6(options.host) ? 'IPv6' : 'IPv4',
    });
    this.adopt(c);
    const timeoutMs = options.timeoutMs ?? 10_000;
    c.connectTimer = setTimeout(() => {
      c.connectTimer = null;
      if (!c.connected && this.find(c.id) === c && this.alive) this.writeOp(CMD_CONNECT_TIMEOUT, c);
    }, timeoutMs);
    this.scheduleFlush(); // a connect that failed at once reports its close in the next delivery
    return c.id;
  }

  send(conn: ConnectionId, data: Uint8Array): SendStatus {
    this.counters.sends++;
    const c = this.find(conn);
    if (c === undefined || c.closeMode !== MODE_NONE || c.shutdownRequested) return SendStatus.Closed;
    const len = data.byteLength;
    const pending = c.pending + len;
    if (pending > this.limits.maxPendingBytes) {
      this.counters.sendsRefused++;
      c.aboveHigh = true; // a refused sender is owed an onDrain too
      return SendStatus.Refused;
    }
    if (len > 0) {
      c.pending = pending;
      this.writeSend(c, data, len);
    }
    if (pending > this.limits.highWaterMark) {
      c.aboveHigh = true;
      return SendStatus.AboveHighWater;
    }
    return SendStatus.Queued;
  }

  sendv(conn: ConnectionId, chunks: readonly Uint8Array[]): SendStatus {
    this.counters.sends++;
    const c = this.find(conn);
    if (c === undefined || c.closeMode !== MODE_NONE || c.shutdownRequested) return SendStatus.Closed;
    let len = 0;
    for (let i = 0; i < chunks.length; i++) len += (chunks[i] as Uint8Array).byteLength;
    const pending = c.pending + len;
    if (pending > this.limits.maxPendingBytes) {
      this.counters.sendsRefused++;
      c.aboveHigh = true;
      return SendStatus.Refused;
    }
    c.pending = pending;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array;
      if (chunk.byteLength > 0) this.writeSend(c, chunk, chunk.byteLength);
    }
    if (pending > this.limits.highWaterMark) {
      c.aboveHigh = true;
      return SendStatus.AboveHighWater;
    }
    return SendStatus.Queued;
  }

  shutdown(conn: ConnectionId): boolean {
    const c = this.find(conn);
    if (c === undefined || c.closeMode !== MODE_NONE) return false;
    if (c.shutdownRequested) return true;
    c.shutdownRequested = true;
    this.writeOp(CMD_SHUTDOWN, c);
    return true;
  }

  close(conn: ConnectionId, mode: 'graceful' | 'abort' = 'graceful'): boolean {
    const c = this.find(conn);
    if (c === undefined) return false;
    if (mode === 'abort') {
      if (c.closeMode === MODE_ABORT) return true;
      c.closeMode = MODE_ABORT;
      this.writeOp(CMD_ABORT, c);
      return true;
    }
    if (c.closeMode !== MODE_NONE) return true;
    c.closeMode = MODE_GRACEFUL;
    this.writeOp(CMD_CLOSE, c);
    return true;
  }

  setSocketOptions(conn: ConnectionId, options: SocketOptions): boolean {
    const c = this.find(conn);
    if (c === undefined || !this.alive) return false;
    return this.native.setSocketOptions(c.slot, c.gen, optsArray(options)) === 0;
  }

  pauseReceiving(conn: ConnectionId): boolean {
    const c = this.find(conn);
    if (c === undefined || !this.alive) return false;
    if (!c.paused) {
      c.paused = true;
      this.writeOp(CMD_PAUSE_RECV, c);
    }
    return true;
  }

  resumeReceiving(conn: ConnectionId): boolean {
    const c = this.find(conn);
    if (c === undefined || !this.alive) return false;
    if (!c.paused) return true;
    c.paused = false;
    this.writeOp(CMD_RESUME_RECV, c);
    if ((c.held !== null || c.endHeld) && !c.releaseQueued) {
      // Delivered as part of the next batch step (never from inside this call),
      // ahead of any record the resume lets in.
      c.releaseQueued = true;
      this.releasing.push(c);
    }
    return true;
  }

  isOpen(conn: ConnectionId): boolean {
    return this.find(conn) !== undefined;
  }

  pendingBytes(conn: ConnectionId): number {
    return this.find(conn)?.pending ?? 0;
  }

  heldBytes(conn: ConnectionId): number {
    const c = this.find(conn);
    // heldChunks is as of the last SENT record; bytes queued since then are
    // at least their own size.
    return c === undefined ? 0 : Math.max(c.pending, c.heldChunks * this.chunkBytes);
  }

  remoteAddress(conn: ConnectionId): AddressInfo | undefined {
    const c = this.find(conn);
    return c === undefined ? undefined : { ...c.remote };
  }

  connectionStats(conn: ConnectionId): ConnectionStats | undefined {
    const c = this.find(conn);
    if (c === undefined) return undefined;
    return { bytesIn: c.bytesIn, bytesOut: c.bytesOut, pendingBytes: c.pending, heldBytes: c.heldChunks * this.chunkBytes };
  }

  stats(): EngineStats {
    let pendingBytes = 0;
    for (const c of this.table) if (c !== undefined) pendingBytes += c.pending;
    for (const c of this.limbo.values()) pendingBytes += c.pending;
    const native = this.alive ? this.native.counters() : [this.lastSubmissions, 0, 0, 0];
    this.lastSubmissions = native[0] ?? this.lastSubmissions;
    return {
      ...this.counters,
      sendSubmissions: this.lastSubmissions,
      connections: this.live,
      pendingBytes,
      sendChunkBytesHeld: native[2] ?? 0,
      sendSlabBytes: native[3] ?? 0,
      errors: { ...this.errorCounts },
    };
  }

  private lastSubmissions = 0;

  async destroy(graceMs = 0): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.listenerIds].map((id) => this.closeListener(id)));
    if (this.live > 0) {
      const allClosed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
      const ids = (): ConnectionId[] => [
        ...this.table.filter((c): c is NConn => c !== undefined).map((c) => c.id),
        ...this.limbo.keys(),
      ];
      for (const id of ids()) this.close(id, graceMs > 0 ? 'graceful' : 'abort');
      if (graceMs > 0) {
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        });
        await Promise.race([allClosed, expired]);
        if (timer) clearTimeout(timer);
        for (const id of ids()) this.close(id, 'abort');
      }
      await allClosed;
    }
    this.lastSubmissions = this.native.counters()[0] ?? this.lastSubmissions;
    this.alive = false;
    this.native.destroy();
  }
}

/** The addon's engine constructor, or null when the addon (or this backend) is missing. */
export function nativeEngineConstructor(kind: NativeEngineKind): NativeEngineConstructor | null {
  const binding = loadNative();
  if (binding === null || binding.NativeEngine === undefined) return null;
  if (binding.backends !== undefined && !binding.backends.includes(kind)) return null;
  return binding.NativeEngine;
}

type Register = (
  kind: EngineKind,
  factory: (handler: EngineHandler, options: EngineOptions, requested: EngineRequest, reason: string) => Engine,
) => void;

/** Registers the native engines this build of the addon has (called by engine.ts on import). */
export function registerNativeEngines(register: Register): void {
  for (const kind of PLATFORM_NATIVE_KINDS[process.platform] ?? []) {
    const ctor = nativeEngineConstructor(kind);
    if (ctor === null) continue;
    register(kind, (handler, options, requested, reason) => new NativeEngine(ctor, kind, handler, options, requested, reason));
  }
}
