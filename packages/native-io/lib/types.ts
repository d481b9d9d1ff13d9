import type { ErrorCode, FastPortError } from './errors';

/** The engines. `auto` resolves to uring → epoll on Linux, rio → iocp on Windows, node elsewhere. */
export type EngineKind = 'uring' | 'epoll' | 'iocp' | 'rio' | 'node';
export type EngineRequest = EngineKind | 'auto';
export const ENGINE_KINDS: readonly EngineKind[] = ['uring', 'epoll', 'iocp', 'rio', 'node'];

/**
 * A connection id: slot index in the low 22 bits, a per-slot generation above.
 * A closed connection's id never matches a later connection in the same slot,
 * so a stale id is rejected instead of reaching a stranger (OIOCPNet's SocketUnique).
 * Always a positive safe integer; 0 is never a valid id.
 */
export type ConnectionId = number;
export type ListenerId = number;

export interface KeepAliveOptions {
  /** Seconds of idle before the first probe (TCP_KEEPIDLE). Default 60. */
  idleSec?: number;
  /** Seconds between probes (TCP_KEEPINTVL). Default 10. */
  intervalSec?: number;
  /** Unanswered probes before the kernel drops the connection (TCP_KEEPCNT). Default 5. */
  count?: number;
}

export interface SocketOptions {
  /** TCP_NODELAY. Default true: the framework batches writes itself. */
  noDelay?: boolean;
  /** SO_KEEPALIVE with its timings; `false` or absent leaves it off. */
  keepAlive?: boolean | KeepAliveOptions;
  /** TCP_USER_TIMEOUT in ms (Linux): unacknowledged data older than this kills the connection. */
  userTimeoutMs?: number;
  /** SO_SNDBUF in bytes; absent keeps the kernel's autotuning. */
  sendBufferSize?: number;
  /** SO_RCVBUF in bytes; absent keeps the kernel's autotuning. */
  receiveBufferSize?: number;
}

export interface ListenOptions extends SocketOptions {
  /** Address to bind. Default '0.0.0.0'; use '::' for dual-stack IPv6. */
  host?: string;
  /** Port; 0 picks a free one (see the returned ListenerInfo). */
  port: number;
  /** listen() backlog. Default 511. */
  backlog?: number;
  /** SO_REUSEPORT: several processes or engines share the port. Default false. */
  reusePort?: boolean;
  /** IPV6_V6ONLY for '::' binds. Default false. */
  ipv6Only?: boolean;
}

export interface ConnectOptions extends SocketOptions {
  host: string;
  port: number;
  /** Source address to bind before connecting (spread load over 127.0.0.x). */
  localAddress?: string;
  /** Connect timeout in ms. Default 10000. */
  timeoutMs?: number;
}

export interface AddressInfo {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export interface ListenerInfo extends AddressInfo {
  id: ListenerId;
}

/** Why a connection ended. */
export type CloseReason =
  | 'local' // closed by this side, gracefully (queued bytes flushed, then FIN)
  | 'abort' // closed by this side, abortively (RST, queue dropped)
  | 'peer' // the peer closed (FIN) and this side finished
  | 'error' // an OS error (see code): reset, timeout, ...
  | 'destroy'; // the engine was destroyed

export interface CloseInfo {
  reason: CloseReason;
  /** Stable code for errors (reason 'error'), e.g. 'ECONNRESET'. */
  code?: ErrorCode;
  message?: string;
  /** Bytes still queued (never sent) when the connection ended. */
  unsentBytes: number;
}

/** Result of a send; numeric so the hot path allocates nothing. */
export const SendStatus = {
  /** Queued; pending bytes are below the high watermark. */
  Queued: 0,
  /** Queued, but pending bytes passed the high watermark: slow down, wait for onDrain. */
  AboveHighWater: 1,
  /** Refused: queuing it would pass maxPendingBytes. Nothing was queued; onDrain follows once the queue drains to the low watermark. */
  Refused: 2,
  /** The id is not an open connection (closed, closing, or of an older generation). */
  Closed: 3,
} as const;
export type SendStatus = (typeof SendStatus)[keyof typeof SendStatus];

/**
 * Events from an engine. The engine crosses into JS once per batch and calls
 * these handlers for every ready event of every connection in that batch.
 * `data` views point into engine memory and are valid only during the call:
 * copy (`data.slice()`) what you keep. Sends made while a batch runs are
 * gathered and submitted together when it ends.
 */
export interface EngineHandler {
  /** A listener accepted a connection. */
  onAccept(conn: ConnectionId, listener: ListenerId, remote: AddressInfo): void;
  /** An outbound connection from `connect()` is established. */
  onConnect(conn: ConnectionId, remote: AddressInfo): void;
  onData(conn: ConnectionId, data: Uint8Array): void;
  /** The peer half-closed (FIN). With allowHalfOpen off the engine closes after flushing. */
  onEnd?(conn: ConnectionId): void;
  /** Pending bytes fell to the low watermark after passing the high one or after a Refused send. */
  onDrain?(conn: ConnectionId): void;
  /** The connection is gone; its id is dead from now on. Always the last event of a connection. */
  onClose(conn: ConnectionId, info: CloseInfo): void;
  /** A listener failed after listen() resolved (rare: e.g. EMFILE storms are reported, not fatal). */
  onListenerError?(listener: ListenerId, err: FastPortError): void;
  /** Called after the last event of a batch, before gathered sends are submitted. */
  onBatchEnd?(): void;
}

export interface EngineOptions {
  kind?: EngineRequest;
  /** Native I/O threads; 0 runs the engine inline on the JS thread's loop. Default: engine's measured best. */
  ioThreads?: number;
  /** Per-connection limit of bytes queued but not yet taken by the kernel. Default 10 MiB (FastPort's). */
  maxPendingBytes?: number;
  /** Pending bytes above which send() answers AboveHighWater. Default 1 MiB. */
  highWaterMark?: number;
  /** Pending bytes at or below which onDrain fires after a high-water crossing. Default 256 KiB. */
  lowWaterMark?: number;
  /** Keep a connection open for writing after the peer's FIN. Default false. */
  allowHalfOpen?: boolean;
  /** Socket options applied to every accepted and connected socket unless overridden. */
  socket?: SocketOptions;
  /**
   * Debug mode for onData views: each view is a copy that is detached when its
   * batch ends, so a view kept by mistake reads as empty (byteLength 0) and its
   * methods throw, instead of showing other bytes later. Costs a copy per
   * view. Default: on when FASTPORT_DEBUG_VIEWS=1, else off.
   */
  debugViews?: boolean;
  /**
   * Which RIO function table the `rio` engine runs on. 'system' (default):
   * the one Windows provides; where it is absent (Wine) `rio` is
   * unavailable. 'emulated': a table with RIO's documented semantics built
   * on overlapped WSARecv/WSASend, for tests where there is no RIO; the
   * engine's code is the same, `info.features.rioTable` says 'emulated'.
   * Never chosen by `auto`. Default: FASTPORT_RIO_TABLE (system|emulated),
   * else 'system'. Ignored by the other engines.
   */
  rioTable?: RioTable;
}

/** See EngineOptions.rioTable. */
export type RioTable = 'system' | 'emulated';

export interface EngineInfo {
  kind: EngineKind;
  requested: EngineRequest;
  /** Why this engine: e.g. "io_uring available" or "io_uring_setup failed: EPERM; fell back to epoll". */
  reason: string;
  ioThreads: number;
  /** What the engine detected or enabled (e.g. multishotRecv, deferTaskrun). */
  features: Readonly<Record<string, boolean | number | string>>;
}

export interface EngineStats {
  connections: number;
  accepted: number;
  connected: number;
  closed: number;
  bytesIn: number;
  bytesOut: number;
  /** Events delivered to JS. */
  events: number;
  /** Batches delivered (each one JS crossing from the engine). */
  batches: number;
  /** Native→JS calls; for the node engine, one per socket callback. */
  jsCrossings: number;
  /** send() calls and how many were refused for backpressure. */
  sends: number;
  sendsRefused: number;
  /** Kernel submissions of send data (after coalescing). */
  sendSubmissions: number;
  pendingBytes: number;
  /**
   * Native engines: memory the send queues hold, in whole chunks (64 KiB; a
   * queue of one byte holds a chunk). What a memory budget should count.
   */
  sendChunkBytesHeld?: number;
  /** Native engines: send memory mapped (slabs of chunks, idle ones included; idle slabs go back after a peak). */
  sendSlabBytes?: number;
  errors: Record<string, number>;
}

export interface ConnectionStats {
  bytesIn: number;
  bytesOut: number;
  pendingBytes: number;
  /** Native engines: send-queue memory this connection holds (whole chunks), as of the engine's last report. */
  heldBytes?: number;
}

/** The contract every engine implements. */
export interface Engine {
  readonly info: EngineInfo;
  listen(options: ListenOptions): Promise<ListenerInfo>;
  closeListener(listener: ListenerId): Promise<void>;
  /** Starts an outbound connection; its outcome arrives as onConnect or onClose. */
  connect(options: ConnectOptions): ConnectionId;
  /** Copies `data` and queues it; see SendStatus. */
  send(conn: ConnectionId, data: Uint8Array): SendStatus;
  /** Scatter-gather: queues the chunks as one contiguous write, copying each. */
  sendv(conn: ConnectionId, chunks: readonly Uint8Array[]): SendStatus;
  /** Half-close: FIN after the queue is flushed; reading goes on. */
  shutdown(conn: ConnectionId): boolean;
  /** 'graceful' flushes then closes; 'abort' drops the queue and sends RST. Returns false for a dead id. */
  close(conn: ConnectionId, mode?: 'graceful' | 'abort'): boolean;
  setSocketOptions(conn: ConnectionId, options: SocketOptions): boolean;
  /**
   * Read backpressure: stops reading `conn` from the kernel, so unread bytes stay in the
   * kernel's buffers and TCP flow control pushes back on the peer. No onData (and no onEnd)
   * is delivered while paused; bytes the engine had already taken from the kernel are held
   * and delivered, in order, after resumeReceiving(). Sending, close(), shutdown() and error
   * reporting (onClose) go on as usual; bytes still held when the connection closes are
   * dropped. Pausing twice is pausing once. Returns true if `conn` is open (false for a
   * closed or unknown id).
   */
  pauseReceiving(conn: ConnectionId): boolean;
  /** Reading starts again: held bytes first, then the rest, nothing lost or reordered; a peer FIN that came meanwhile is reported (onEnd) after them. Returns true if `conn` is open. */
  resumeReceiving(conn: ConnectionId): boolean;
  isOpen(conn: ConnectionId): boolean;
  pendingBytes(conn: ConnectionId): number;
  /**
   * Memory the engine holds for `conn`'s send queue: at least pendingBytes,
   * more where the queue is kept in fixed-size chunks (a 1-byte queue pins a
   * whole chunk in the native engines). What a memory budget should charge.
   */
  heldBytes(conn: ConnectionId): number;
  remoteAddress(conn: ConnectionId): AddressInfo | undefined;
  connectionStats(conn: ConnectionId): ConnectionStats | undefined;
  stats(): EngineStats;
  /** Closes listeners and connections (abortively after `graceMs`, default 0) and releases the engine. */
  destroy(graceMs?: number): Promise<void>;
}
