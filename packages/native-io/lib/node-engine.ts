import * as net from 'node:net';
import { ConnectionTable } from './connection-table';
import { FastPortError, toErrorCode, toFastPortError } from './errors';
import { debugViewsEnabled, ViewPoisoner } from './debug-views';
import { resolveEngineLimits, type EngineLimits } from './limits';
import { pickSocketOptions } from './socket-options';
import {
  SendStatus,
  type AddressInfo,
  type CloseReason,
  type ConnectionId,
  type ConnectionStats,
  type ConnectOptions,
  type Engine,
  type EngineHandler,
  type EngineInfo,
  type EngineOptions,
  type EngineRequest,
  type EngineStats,
  type ListenerId,
  type ListenerInfo,
  type ListenOptions,
  type SocketOptions,
} from './types';

/** First staging buffer: Buffer.allocUnsafe takes sizes below 4 KiB from its pool (no allocation of its own). */
const STAGING_MIN = 2048;

interface NodeConnection {
  id: ConnectionId;
  socket: net.Socket;
  remote: AddressInfo;
  /** Bytes sent by the user but not yet handed to the socket (coalesced until the batch or tick ends). */
  staging: Buffer | null;
  stagedBytes: number;
  dirty: boolean;
  aboveHigh: boolean;
  open: boolean;
  connected: boolean;
  closeMode: 'graceful' | 'abort' | null;
  shutdownRequested: boolean;
  peerEnded: boolean;
  /** The peer's FIN came before any local close: the close is the peer's doing. */
  closedByPeer: boolean;
  errorCode: ReturnType<typeof toErrorCode> | null;
  errorMessage: string | undefined;
  bytesIn: number;
  bytesOut: number;
  /**
   * Bytes handed to socket.write() whose write has not completed successfully.
   * Tracked here rather than read from socket.writableLength, which node:net
   * clears when the socket is destroyed (so an abort or a reset would report
   * its lost bytes as sent).
   */
  inFlight: number;
  /** Staged bytes thrown away by an abort; reported in CloseInfo.unsentBytes. */
  droppedBytes: number;
  /** The one write callback of this connection (a closure per write cost an allocation per flush, and node:net coalesces repeated callbacks of one function). */
  writeDone: (err?: Error | null) => void;
  connectTimer: NodeJS.Timeout | null;
  /** pauseReceiving() is in force: the socket is paused and nothing is delivered. */
  paused: boolean;
  /**
   * Chunks node:net handed over while paused (or while earlier held chunks wait): delivered,
   * in order, after resumeReceiving(). node:net stops emitting once paused, so this only
   * catches what a stream emits anyway in the same tick; it is never refilled from the kernel.
   */
  held: Buffer[] | null;
  /** The peer's FIN came while paused or while chunks were held: reported after them. */
  endHeld: boolean;
  releaseScheduled: boolean;
}

function noop(): void {}

function addressOf(address: string | undefined, port: number | undefined, family: string | undefined): AddressInfo {
  return {
    address: address ?? '',
    port: port ?? 0,
    family: family === 'IPv6' ? 'IPv6' : 'IPv4',
  };
}

/**
 * The portable engine: node:net underneath, the same batched contract on top.
 * A "batch" here is one socket callback (node:net gives no wider view); writes
 * made during it, or in the same tick outside any callback, go out as one write.
 */
export class NodeEngine implements Engine {
  readonly info: EngineInfo;
  private readonly handler: EngineHandler;
  private readonly limits: EngineLimits;
  private readonly socketDefaults: SocketOptions;
  private readonly allowHalfOpen: boolean;
  private readonly conns = new ConnectionTable<NodeConnection>();
  private readonly listeners = new Map<ListenerId, net.Server>();
  private nextListenerId = 1;
  private readonly dirty: NodeConnection[] = [];
  private inBatch = false;
  private flushScheduled = false;
  private destroyed = false;
  private readonly closeWaiters: (() => void)[] = [];
  private readonly counters: Omit<EngineStats, 'connections' | 'pendingBytes' | 'errors'> = {
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
    sendSubmissions: 0,
  };
  private readonly errorCounts: Record<string, number> = {};
  /** debugViews: views are copies detached when the batch ends (see debug-views.ts). */
  private readonly poisoner: ViewPoisoner | null;

  constructor(handler: EngineHandler, options: EngineOptions = {}, requested: EngineRequest = 'node', reason = 'requested') {
    this.handler = handler;
    this.limits = resolveEngineLimits(options);
    this.socketDefaults = { noDelay: true, ...options.socket };
    this.allowHalfOpen = options.allowHalfOpen ?? false;
    this.info = {
      kind: 'node',
      requested,
      reason,
      ioThreads: 0,
      features: {
        keepAliveTuning: false,
        userTimeout: false,
        bufferSizes: false,
        reusePort: supportsReusePort(),
      },
    };
    this.poisoner = debugViewsEnabled(options) ? new ViewPoisoner() : null;
    if (this.poisoner !== null) (this.info.features as Record<string, boolean>)['debugViews'] = true;
  }

  listen(options: ListenOptions): Promise<ListenerInfo> {
    if (this.destroyed) return Promise.reject(new FastPortError('ERR_ENGINE_DESTROYED', 'engine destroyed'));
    if (options.reusePort && !supportsReusePort()) {
      return Promise.reject(
        new FastPortError('EOPNOTSUPP', `reusePort needs Node >= 22.12 for the node engine (this is ${process.version})`),
      );
    }
    const id = this.nextListenerId++;
    const socketOptions: SocketOptions = { ...this.socketDefaults, ...pickSocketOptions(options) };
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
      this.counters.jsCrossings++;
      this.beginBatch();
      try {
        const conn = this.adopt(socket, true, socketOptions);
        this.counters.accepted++;
        this.counters.events++;
        this.handler.onAccept(conn.id, id, conn.remote);
      } finally {
        this.endBatch();
      }
    });
    return new Promise<ListenerInfo>((resolve, reject) => {
      const onError = (err: Error) => {
        server.removeListener('listening', onListening);
        reject(toFastPortError(err));
      };
      const onListening = () => {
        server.removeListener('error', onError);
        server.on('error', (err) => this.handler.onListenerError?.(id, toFastPortError(err)));
        this.listeners.set(id, server);
        const addr = server.address() as net.AddressInfo;
        resolve({ id, address: addr.address, port: addr.port, family: addr.family === 'IPv6' ? 'IPv6' : 'IPv4' });
      };
      server.once('error', onError);
      server.once('listening', onListening);
      const listenOptions: net.ListenOptions & { reusePort?: boolean } = {
        host: options.host ?? '0.0.0.0',
        port: options.port,
        backlog: options.backlog ?? 511,
        ipv6Only: options.ipv6Only ?? false,
      };
      if (options.reusePort) listenOptions.reusePort = true;
      server.listen(listenOptions);
    });
  }

  closeListener(listener: ListenerId): Promise<void> {
    const server = this.listeners.get(listener);
    if (!server) return Promise.resolve();
    this.listeners.delete(listener);
    // server.close()'s callback waits until every connection the server accepted
    // has closed; the listening socket itself is closed synchronously. Resolve on
    // that, not on the callback, or closeListener() (and destroy(), which closes
    // listeners before connections) hangs while accepted connections are open.
    server.close();
    return new Promise((resolve) => setImmediate(resolve));
  }

  connect(options: ConnectOptions): ConnectionId {
    if (this.destroyed) throw new FastPortError('ERR_ENGINE_DESTROYED', 'engine destroyed');
    const socketOptions: SocketOptions = { ...this.socketDefaults, ...pickSocketOptions(options) };
    const connectOpts: net.NetConnectOpts = { host: options.host, port: options.port, allowHalfOpen: true };
    if (options.localAddress !== undefined) connectOpts.localAddress = options.localAddress;
    const socket = net.connect(connectOpts);
    const conn = this.adopt(socket, false, socketOptions);
    conn.remote = { address: options.host, port: options.port, family: net.isIPv6(options.host) ? 'IPv6' : 'IPv4' };
    const timeoutMs = options.timeoutMs ?? 10_000;
    conn.connectTimer = setTimeout(() => {
      conn.connectTimer = null;
      if (!conn.connected && conn.open) {
        conn.errorCode = 'ERR_CONNECT_TIMEOUT';
        conn.errorMessage = `connect to ${options.host}:${options.port} timed out after ${timeoutMs} ms`;
        socket.destroy();
      }
    }, timeoutMs);
    socket.once('connect', () => {
      if (conn.connectTimer) clearTimeout(conn.connectTimer);
      conn.connectTimer = null;
      conn.connected = true;
      conn.remote = addressOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily);
      this.counters.jsCrossings++;
      this.counters.connected++;
      this.counters.events++;
      this.beginBatch();
      try {
        this.handler.onConnect(conn.id, conn.remote);
      } finally {
        this.endBatch();
      }
    });
    return conn.id;
  }

  private adopt(socket: net.Socket, accepted: boolean, options: SocketOptions): NodeConnection {
    const conn: NodeConnection = {
      id: 0,
      socket,
      remote: addressOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily),
      staging: null,
      stagedBytes: 0,
      dirty: false,
      aboveHigh: false,
      open: true,
      connected: accepted,
      closeMode: null,
      shutdownRequested: false,
      peerEnded: false,
      closedByPeer: false,
      errorCode: null,
      errorMessage: undefined,
      bytesIn: 0,
      bytesOut: 0,
      inFlight: 0,
      droppedBytes: 0,
      writeDone: noop,
      connectTimer: null,
      paused: false,
      held: null,
      endHeld: false,
      releaseScheduled: false,
    };
    conn.id = this.conns.add(conn);
    conn.writeDone = (err) => {
      // A failed write stays counted as in flight: never sent. node:net calls back
      // with no error for writes cancelled by destroy(), hence the destroyed check.
      if (!err && !socket.destroyed) this.onWritten(conn);
    };
    applySocketOptions(socket, options);
    socket.on('data', (chunk: Buffer) => {
      this.counters.jsCrossings++;
      conn.bytesIn += chunk.length;
      this.counters.bytesIn += chunk.length;
      if (conn.closeMode !== null) return; // closing locally: input is discarded
      if (conn.paused || conn.held !== null) {
        (conn.held ??= []).push(chunk);
        return;
      }
      this.counters.events++;
      this.beginBatch();
      try {
        this.handler.onData(conn.id, this.poisoner === null ? chunk : this.poisoner.buffer(chunk));
      } finally {
        this.endBatch();
      }
    });
    socket.on('end', () => {
      conn.peerEnded = true;
      this.counters.jsCrossings++;
      if (conn.closeMode === null && (conn.paused || conn.held !== null)) {
        conn.endHeld = true;
        return;
      }
      this.beginBatch();
      try {
        this.peerEnd(conn);
      } finally {
        this.endBatch();
      }
    });
    socket.on('error', (err: Error) => {
      if (conn.errorCode === null) {
        conn.errorCode = toErrorCode(err);
        conn.errorMessage = err.message;
      }
    });
    socket.on('close', () => this.finish(conn));
    return conn;
  }

  private peerEnd(conn: NodeConnection): void {
    if (conn.closeMode === null) {
      this.counters.events++;
      this.handler.onEnd?.(conn.id);
      if (!this.allowHalfOpen || conn.shutdownRequested) conn.closedByPeer = true;
    }
    if (!this.allowHalfOpen || conn.closeMode !== null || conn.shutdownRequested) this.close(conn.id, 'graceful');
  }

  /** After resumeReceiving(): the held chunks, then a held FIN, as one batch; then the socket flows again. */
  private releaseHeld(conn: NodeConnection): void {
    conn.releaseScheduled = false;
    if (!conn.open || conn.paused) return; // closed meanwhile, or paused again: the next resume releases
    const held = conn.held;
    if (held !== null || conn.endHeld) {
      this.counters.jsCrossings++;
      this.beginBatch();
      try {
        let i = 0;
        if (held !== null) {
          while (i < held.length && !conn.paused && conn.closeMode === null) {
            const chunk = held[i++] as Buffer;
            this.counters.events++;
            this.handler.onData(conn.id, chunk);
          }
          if (conn.closeMode !== null || i === held.length) conn.held = null;
          else conn.held = held.slice(i); // paused again from a handler: keep the rest, in order
        }
        if (conn.endHeld && conn.held === null && !conn.paused) {
          conn.endHeld = false;
          this.peerEnd(conn);
        }
      } finally {
        this.endBatch();
      }
    }
    if (conn.open && !conn.paused) conn.socket.resume();
  }

  private finish(conn: NodeConnection): void {
    if (!conn.open && !this.conns.get(conn.id)) return;
    conn.open = false;
    if (conn.connectTimer) clearTimeout(conn.connectTimer);
    const unsentBytes = conn.droppedBytes + conn.stagedBytes + conn.inFlight;
    conn.staging = null;
    conn.stagedBytes = 0;
    conn.held = null;
    this.conns.delete(conn.id);
    let reason: CloseReason;
    if (this.destroyed) reason = 'destroy';
    else if (conn.closeMode === 'abort') reason = 'abort';
    else if (conn.errorCode !== null) reason = 'error';
    else if (conn.closedByPeer) reason = 'peer';
    else reason = 'local';
    if (reason === 'error' && conn.errorCode) this.errorCounts[conn.errorCode] = (this.errorCounts[conn.errorCode] ?? 0) + 1;
    this.counters.closed++;
    this.counters.events++;
    this.counters.jsCrossings++;
    this.beginBatch();
    try {
      const info = { reason, unsentBytes } as Parameters<EngineHandler['onClose']>[1];
      if (reason === 'error' && conn.errorCode) {
        info.code = conn.errorCode;
        if (conn.errorMessage !== undefined) info.message = conn.errorMessage;
      }
      this.handler.onClose(conn.id, info);
    } finally {
      this.endBatch();
    }
    if (this.conns.size === 0) for (const wake of this.closeWaiters.splice(0)) wake();
  }

  private beginBatch(): void {
    if (!this.inBatch) {
      this.inBatch = true;
      this.counters.batches++;
    }
  }

  private endBatch(): void {
    this.inBatch = false;
    try {
      this.handler.onBatchEnd?.();
    } finally {
      this.poisoner?.endBatch();
      this.flushDirty();
    }
  }

  private flushDirty(): void {
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) this.flush(dirty[i] as NodeConnection);
    dirty.length = 0;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inBatch) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flushDirty();
    });
  }

  private flush(conn: NodeConnection): void {
    conn.dirty = false;
    const staging = conn.staging;
    if (!conn.open || staging === null || conn.stagedBytes === 0) return;
    const bytes = conn.stagedBytes;
    // Buffer.from(arrayBuffer, …) makes the view directly; Buffer#subarray goes through a
    // species lookup, and a plain Uint8Array would be re-wrapped as a Buffer by write().
    const data = bytes === staging.length ? staging : Buffer.from(staging.buffer, staging.byteOffset, bytes);
    conn.staging = null;
    conn.stagedBytes = 0;
    this.counters.sendSubmissions++;
    conn.inFlight += bytes;
    const socket = conn.socket;
    socket.write(data, conn.writeDone);
    // Nothing left buffered: the kernel took the bytes during write() and node:net
    // kept no reference to them (it keeps one only for an asynchronous write),
    // so the staging buffer serves the next flush instead of a new allocation.
    // Only a small one is kept: an idle connection must not pin a burst's buffer.
    if (staging.length <= STAGING_MIN && socket.writableLength === 0 && !socket.destroyed) conn.staging = staging;
    if (conn.shutdownRequested || conn.closeMode === 'graceful') this.endSocket(conn);
  }

  /** Delayed consume: bytes count as sent only once the socket has handed them to the kernel. */
  private onWritten(conn: NodeConnection): void {
    // node:net calls back once per write, possibly several at once a tick later;
    // what is still buffered is what has not reached the kernel.
    const remaining = conn.socket.writableLength;
    if (remaining >= conn.inFlight) return;
    const bytes = conn.inFlight - remaining;
    conn.inFlight = remaining;
    conn.bytesOut += bytes;
    this.counters.bytesOut += bytes;
    if (conn.aboveHigh && conn.open && this.pendingOf(conn) <= this.limits.lowWaterMark) {
      conn.aboveHigh = false;
      this.counters.jsCrossings++;
      this.counters.events++;
      this.beginBatch();
      try {
        this.handler.onDrain?.(conn.id);
      } finally {
        this.endBatch();
      }
    }
  }

  private pendingOf(conn: NodeConnection): number {
    return conn.stagedBytes + conn.inFlight;
  }

  send(conn: ConnectionId, data: Uint8Array): SendStatus {
    const c = this.conns.get(conn);
    this.counters.sends++;
    if (c === undefined || !c.open || c.closeMode !== null || c.shutdownRequested) return SendStatus.Closed;
    const length = data.byteLength;
    const pending = this.pendingOf(c);
    if (pending + length > this.limits.maxPendingBytes) {
      this.counters.sendsRefused++;
      c.aboveHigh = true; // a refused sender is owed an onDrain too
      return SendStatus.Refused;
    }
    this.stage(c, length).set(data, c.stagedBytes);
    c.stagedBytes += length;
    return this.afterStage(c, pending + length);
  }

  sendv(conn: ConnectionId, chunks: readonly Uint8Array[]): SendStatus {
    const c = this.conns.get(conn);
    this.counters.sends++;
    if (c === undefined || !c.open || c.closeMode !== null || c.shutdownRequested) return SendStatus.Closed;
    let length = 0;
    for (let i = 0; i < chunks.length; i++) length += (chunks[i] as Uint8Array).byteLength;
    const pending = this.pendingOf(c);
    if (pending + length > this.limits.maxPendingBytes) {
      this.counters.sendsRefused++;
      c.aboveHigh = true; // a refused sender is owed an onDrain too
      return SendStatus.Refused;
    }
    const staging = this.stage(c, length);
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array;
      staging.set(chunk, c.stagedBytes);
      c.stagedBytes += chunk.byteLength;
    }
    return this.afterStage(c, pending + length);
  }

  /** Returns a staging buffer with room for `extra` more bytes. */
  private stage(c: NodeConnection, extra: number): Buffer {
    const need = c.stagedBytes + extra;
    let staging = c.staging;
    if (staging === null || staging.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(STAGING_MIN, need, staging ? staging.length * 2 : 0));
      if (staging !== null && c.stagedBytes > 0) staging.copy(grown, 0, 0, c.stagedBytes);
      c.staging = staging = grown;
    }
    return staging;
  }

  private afterStage(c: NodeConnection, pending: number): SendStatus {
    if (!c.dirty) {
      c.dirty = true;
      this.dirty.push(c);
      this.scheduleFlush();
    }
    if (pending > this.limits.highWaterMark) {
      c.aboveHigh = true;
      return SendStatus.AboveHighWater;
    }
    return SendStatus.Queued;
  }

  shutdown(conn: ConnectionId): boolean {
    const c = this.conns.get(conn);
    if (c === undefined || !c.open || c.closeMode !== null) return false;
    c.shutdownRequested = true;
    if (c.stagedBytes === 0) this.endSocket(c);
    return true;
  }

  private endSocket(c: NodeConnection): void {
    if (c.closeMode === 'graceful') {
      // Both directions are done once the FIN is out: destroySoon closes after the write side finishes.
      c.socket.destroySoon();
    } else if (!c.socket.writableEnded) {
      c.socket.end();
    }
  }

  close(conn: ConnectionId, mode: 'graceful' | 'abort' = 'graceful'): boolean {
    const c = this.conns.get(conn);
    if (c === undefined || !c.open) return false;
    if (mode === 'abort') {
      if (c.closeMode === 'abort') return true;
      c.closeMode = 'abort';
      c.droppedBytes += c.stagedBytes;
      c.staging = null;
      c.stagedBytes = 0;
      if (c.socket.connecting || c.socket.destroyed) c.socket.destroy();
      else c.socket.resetAndDestroy();
      return true;
    }
    if (c.closeMode !== null) return true;
    c.closeMode = 'graceful';
    if (c.stagedBytes === 0) this.endSocket(c);
    // else flush() ends the socket after writing the staged bytes.
    return true;
  }

  setSocketOptions(conn: ConnectionId, options: SocketOptions): boolean {
    const c = this.conns.get(conn);
    if (c === undefined || !c.open) return false;
    applySocketOptions(c.socket, options);
    return true;
  }

  pauseReceiving(conn: ConnectionId): boolean {
    const c = this.conns.get(conn);
    if (c === undefined || !c.open) return false;
    if (!c.paused) {
      c.paused = true;
      c.socket.pause();
    }
    return true;
  }

  resumeReceiving(conn: ConnectionId): boolean {
    const c = this.conns.get(conn);
    if (c === undefined || !c.open) return false;
    if (!c.paused) return true;
    c.paused = false;
    if (c.held === null && !c.endHeld) {
      c.socket.resume();
    } else if (!c.releaseScheduled) {
      // Not from inside the caller's stack: held bytes arrive as their own batch, like any data.
      c.releaseScheduled = true;
      queueMicrotask(() => this.releaseHeld(c));
    }
    return true;
  }

  isOpen(conn: ConnectionId): boolean {
    const c = this.conns.get(conn);
    return c !== undefined && c.open;
  }

  pendingBytes(conn: ConnectionId): number {
    const c = this.conns.get(conn);
    return c === undefined ? 0 : this.pendingOf(c);
  }

  /** node:net keeps queued writes as the buffers given to it: nothing beyond the pending bytes. */
  heldBytes(conn: ConnectionId): number {
    return this.pendingBytes(conn);
  }

  remoteAddress(conn: ConnectionId): AddressInfo | undefined {
    return this.conns.get(conn)?.remote;
  }

  connectionStats(conn: ConnectionId): ConnectionStats | undefined {
    const c = this.conns.get(conn);
    if (c === undefined) return undefined;
    return { bytesIn: c.bytesIn, bytesOut: c.bytesOut, pendingBytes: this.pendingOf(c) };
  }

  stats(): EngineStats {
    let pendingBytes = 0;
    for (const [, c] of this.conns.entries()) pendingBytes += this.pendingOf(c);
    return { ...this.counters, connections: this.conns.size, pendingBytes, errors: { ...this.errorCounts } };
  }

  async destroy(graceMs = 0): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.listeners.keys()].map((id) => this.closeListener(id)));
    if (this.conns.size === 0) return;
    const allClosed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    for (const [id] of this.conns.entries()) this.close(id, graceMs > 0 ? 'graceful' : 'abort');
    if (graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([allClosed, expired]);
      if (timer) clearTimeout(timer);
      for (const [id] of this.conns.entries()) this.close(id, 'abort');
    }
    await allClosed;
  }
}

function applySocketOptions(socket: net.Socket, options: SocketOptions): void {
  if (options.noDelay !== undefined) socket.setNoDelay(options.noDelay);
  if (options.keepAlive !== undefined && options.keepAlive !== false) {
    const idleSec = options.keepAlive === true ? 60 : (options.keepAlive.idleSec ?? 60);
    socket.setKeepAlive(true, idleSec * 1000);
  } else if (options.keepAlive === false) {
    socket.setKeepAlive(false);
  }
}

function supportsReusePort(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  return major > 22 || (major === 22 && minor >= 12);
}
