/**
 * Test harness for the engine conformance suite.
 *
 * Everything here goes through the public contract (`createEngine`, `Engine`,
 * `EngineHandler`), so the same suite runs unchanged against every engine.
 * Outcomes are decided by events and counters only: `waitFor` polls a
 * predicate and rejects after a deadline, it never decides a result by time.
 */
import * as net from 'node:net';
import { createEngine, type CreateEngineOptions } from '../../lib/engine';
import {
  type AddressInfo,
  type CloseInfo,
  type CloseReason,
  type ConnectionId,
  type ConnectOptions,
  type Engine,
  type EngineHandler,
  type EngineKind,
  type ListenerId,
  type ListenerInfo,
  SendStatus,
} from '../../lib/types';
import type { FastPortError } from '../../lib/errors';

/** Default deadline for waiting on an event (well under the per-test vitest timeout). */
export const WAIT_MS = 10_000;
/** Per-test timeout handed to vitest. */
export const TEST_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------
// waiting

/**
 * FASTPORT_TEST_TIME_SCALE (default 1) stretches the hang-guard deadlines below (waitFor,
 * withDeadline): scripts/test-arm64.sh sets it for arm64 Node under qemu-user, which runs
 * JS several times slower. A longer guard can only turn a would-be timeout into a later
 * verdict, never a failure into a pass.
 */
const TIME_SCALE = Math.max(1, Number(process.env['FASTPORT_TEST_TIME_SCALE']) || 1);

/** Resolves once `predicate()` is true; rejects after `timeoutMs` or if the predicate throws. */
export function waitFor(predicate: () => boolean, timeoutMs: number = WAIT_MS, what = 'condition'): Promise<void> {
  timeoutMs *= TIME_SCALE;
  return new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      let ok: boolean;
      try {
        ok = predicate();
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (ok) {
        resolve();
        return;
      }
      if (Date.now() >= deadline) {
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        return;
      }
      // Polled less often when stretched: a predicate over 1,000 connections every 2 ms
      // would take most of an emulated CPU's time from the engine it waits for.
      setTimeout(check, 2 * TIME_SCALE);
    };
    check();
  });
}

/** Races `promise` against a deadline (for promises the contract says must settle, e.g. destroy()). */
export function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  timeoutMs *= TIME_SCALE;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Resolves true as soon as `predicate()` holds, false once `ms` passed. Only for
 * choosing a path (e.g. "the peer stalled, resume it now"), never for a verdict.
 */
export function eventually(predicate: () => boolean, ms: number): Promise<boolean> {
  return waitFor(predicate, ms, 'path choice').then(
    () => true,
    () => false,
  );
}

/** Lets the event loop turn once (I/O callbacks included). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------------------
// data

/** Deterministic pseudo-random bytes (xorshift32), so a mismatch is reproducible. */
export function pattern(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A chunk whose first 4 bytes carry `seq` (u32 BE) followed by pattern bytes. */
export function sequencedChunk(size: number, seq: number): Buffer {
  const out = pattern(size, seq + 1);
  if (size >= 4) out.writeUInt32BE(seq >>> 0, 0);
  return out;
}

/** Describes the first difference between two buffers (for readable failures on big payloads). */
export function firstDifference(actual: Uint8Array, expected: Uint8Array): string | null {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) return `byte ${i} differs: got ${actual[i]}, expected ${expected[i]}`;
  }
  if (actual.length !== expected.length) return `length differs: got ${actual.length}, expected ${expected.length}`;
  return null;
}

// ---------------------------------------------------------------------------
// cleanup registry: every engine, raw server and raw socket a test makes is torn down after it

interface Disposable {
  close(): Promise<void>;
  /** Invariant failures found after close (checked once everything is closed). */
  verify?(): string[];
}

const disposables: Disposable[] = [];

export function track(d: Disposable): void {
  disposables.push(d);
}

/** Closes everything the test created, then checks the recorders' invariants; throws on any failure. */
export async function cleanupAll(): Promise<void> {
  const items = disposables.splice(0).reverse();
  const problems: string[] = [];
  for (const d of items) {
    try {
      await withDeadline(d.close(), WAIT_MS, 'cleanup');
    } catch (err) {
      problems.push(`cleanup failed: ${(err as Error).message}`);
    }
  }
  for (const d of items) if (d.verify) problems.push(...d.verify());
  if (problems.length > 0) throw new Error(`engine invariants violated:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------
// recording engine side

export type EventType = 'accept' | 'connect' | 'data' | 'end' | 'drain' | 'close';

export interface ConnLog {
  id: ConnectionId;
  origin: 'accepted' | 'outbound';
  listener?: ListenerId;
  remote?: AddressInfo;
  events: EventType[];
  /** Copies of every onData view (the views themselves may be reused by the engine). */
  chunks: Buffer[];
  bytes: number;
  connected: boolean;
  ended: boolean;
  drains: number;
  closeCount: number;
  close?: CloseInfo;
}

const CLOSE_REASONS: readonly CloseReason[] = ['local', 'abort', 'peer', 'error', 'destroy'];

export interface SideOptions extends Omit<CreateEngineOptions, 'handler' | 'kind'> {
  /** Label in failure messages. */
  name?: string;
  /** Echo every onData back on the same connection. */
  echo?: boolean;
}

/**
 * One engine plus a recorder of everything it reports. The recorder checks the
 * per-connection invariants as events arrive (exactly one onClose, nothing after
 * it, no data after onEnd, ids never reused, ...) and the cleanup fails the test
 * if any was violated or if a connection never got its onClose.
 */
export class Side {
  readonly name: string;
  readonly kind: EngineKind;
  readonly engine: Engine;
  readonly conns = new Map<ConnectionId, ConnLog>();
  /** Accepted connection ids in accept order. */
  readonly accepted: ConnectionId[] = [];
  readonly violations: string[] = [];
  readonly echoFailures: string[] = [];
  readonly listenerErrors: { listener: ListenerId; err: FastPortError }[] = [];
  /** Events in delivery order, across connections. */
  readonly timeline: { type: EventType; id: ConnectionId }[] = [];
  echo: boolean;
  /** Test-specific reactions, called after the recorder has logged the event. */
  hooks: Partial<EngineHandler> = {};
  batchEnds = 0;
  dataCalls = 0;
  private everIds = new Set<ConnectionId>();
  private destroyed = false;

  constructor(kind: EngineKind, options: SideOptions = {}) {
    const { name, echo, ...engineOptions } = options;
    this.kind = kind;
    this.name = name ?? 'engine';
    this.echo = echo ?? false;
    // Closures, not methods: an engine may call the handler's functions unbound.
    const handler: EngineHandler = {
      onAccept: (conn, listener, remote) => this.onAccept(conn, listener, remote),
      onConnect: (conn, remote) => this.onConnect(conn, remote),
      onData: (conn, data) => this.onData(conn, data),
      onEnd: (conn) => this.onEnd(conn),
      onDrain: (conn) => this.onDrain(conn),
      onClose: (conn, info) => this.onClose(conn, info),
      onListenerError: (listener, err) => {
        this.listenerErrors.push({ listener, err });
        this.hook('onListenerError', () => this.hooks.onListenerError?.(listener, err));
      },
      onBatchEnd: () => {
        this.batchEnds++;
        this.hook('onBatchEnd', () => this.hooks.onBatchEnd?.());
      },
    };
    this.engine = createEngine({ ...engineOptions, kind, handler });
    track({ close: () => this.destroy(), verify: () => this.verify() });
  }

  // --- actions -------------------------------------------------------------

  listen(port = 0, host = '127.0.0.1', extra: Partial<Parameters<Engine['listen']>[0]> = {}): Promise<ListenerInfo> {
    return this.engine.listen({ ...extra, host, port });
  }

  /** engine.connect(), registering the id so its events are expected. */
  connect(port: number, host = '127.0.0.1', extra: Partial<ConnectOptions> = {}): ConnectionId {
    const id = this.engine.connect({ ...extra, host, port });
    if (!Number.isSafeInteger(id) || id <= 0) this.violate(`connect() returned an invalid id ${id}`);
    const existing = this.conns.get(id);
    if (existing !== undefined) {
      this.violate(`connect() returned id ${id} that already had events (${existing.events.join(',')}) before connect() returned`);
      return id;
    }
    if (this.everIds.has(id)) this.violate(`connect() returned id ${id}, already used by an earlier connection`);
    this.everIds.add(id);
    this.conns.set(id, newLog(id, 'outbound'));
    return id;
  }

  async destroy(graceMs?: number): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await withDeadline(this.engine.destroy(graceMs), WAIT_MS, `${this.name}.destroy()`);
  }

  // --- queries -------------------------------------------------------------

  log(id: ConnectionId): ConnLog {
    const log = this.conns.get(id);
    if (log === undefined) throw new Error(`${this.name}: no connection ${id} recorded`);
    return log;
  }

  received(id: ConnectionId): Buffer {
    return Buffer.concat(this.log(id).chunks);
  }

  bytes(id: ConnectionId): number {
    return this.conns.get(id)?.bytes ?? 0;
  }

  isClosed(id: ConnectionId): boolean {
    return (this.conns.get(id)?.closeCount ?? 0) > 0;
  }

  closeInfo(id: ConnectionId): CloseInfo {
    const info = this.log(id).close;
    if (info === undefined) throw new Error(`${this.name}: connection ${id} has no onClose yet`);
    return info;
  }

  /** Connection ids (any origin) that have not been closed yet. */
  openIds(): ConnectionId[] {
    return [...this.conns.values()].filter((c) => c.closeCount === 0).map((c) => c.id);
  }

  // --- waits ---------------------------------------------------------------

  waitConnected(id: ConnectionId, timeoutMs = WAIT_MS): Promise<void> {
    return waitFor(
      () => {
        const log = this.log(id);
        if (log.connected) return true;
        if (log.closeCount > 0) throw new Error(`${this.name}: connection ${id} closed before connecting: ${JSON.stringify(log.close)}`);
        return false;
      },
      timeoutMs,
      `${this.name}: onConnect for ${id}`,
    );
  }

  waitClosed(id: ConnectionId, timeoutMs = WAIT_MS): Promise<CloseInfo> {
    return waitFor(() => this.isClosed(id), timeoutMs, `${this.name}: onClose for ${id}`).then(() => this.closeInfo(id));
  }

  waitBytes(id: ConnectionId, n: number, timeoutMs = WAIT_MS): Promise<void> {
    return waitFor(
      () => {
        const log = this.log(id);
        if (log.bytes >= n) return true;
        if (log.closeCount > 0) throw new Error(`${this.name}: connection ${id} closed after ${log.bytes}/${n} bytes: ${JSON.stringify(log.close)}`);
        return false;
      },
      timeoutMs,
      `${this.name}: ${n} bytes on ${id}`,
    );
  }

  waitAccepted(count: number, timeoutMs = WAIT_MS): Promise<void> {
    return waitFor(() => this.accepted.length >= count, timeoutMs, `${this.name}: ${count} accepted connections`);
  }

  // --- handler ---------------------------------------------------------------

  private violate(message: string): void {
    this.violations.push(`${this.name}: ${message}`);
  }

  private hook(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.violate(`test hook ${name} threw: ${(err as Error).stack ?? String(err)}`);
    }
  }

  /** Log of a live connection for an event; records a violation for unknown or closed ids. */
  private live(id: ConnectionId, type: EventType): ConnLog | undefined {
    const log = this.conns.get(id);
    if (log === undefined) {
      this.violate(`${type} for unknown connection ${id}`);
      return undefined;
    }
    if (log.closeCount > 0) this.violate(`${type} for connection ${id} after its onClose`);
    log.events.push(type);
    this.timeline.push({ type, id });
    return log;
  }

  private onAccept(id: ConnectionId, listener: ListenerId, remote: AddressInfo): void {
    if (!Number.isSafeInteger(id) || id <= 0) this.violate(`onAccept with invalid id ${id}`);
    if (this.everIds.has(id)) this.violate(`onAccept with id ${id}, already used by an earlier connection`);
    this.everIds.add(id);
    const log = newLog(id, 'accepted');
    log.listener = listener;
    log.remote = { ...remote };
    log.connected = true;
    log.events.push('accept');
    this.timeline.push({ type: 'accept', id });
    this.conns.set(id, log);
    this.accepted.push(id);
    this.hook('onAccept', () => this.hooks.onAccept?.(id, listener, remote));
  }

  private onConnect(id: ConnectionId, remote: AddressInfo): void {
    const log = this.live(id, 'connect');
    if (log !== undefined) {
      if (log.origin !== 'outbound') this.violate(`onConnect for accepted connection ${id}`);
      if (log.connected) this.violate(`second onConnect for ${id}`);
      log.connected = true;
      log.remote = { ...remote };
    }
    this.hook('onConnect', () => this.hooks.onConnect?.(id, remote));
  }

  private onData(id: ConnectionId, data: Uint8Array): void {
    this.dataCalls++;
    const log = this.live(id, 'data');
    if (!(data instanceof Uint8Array)) {
      this.violate(`onData for ${id} got a ${Object.prototype.toString.call(data)}, not a Uint8Array`);
      return;
    }
    if (data.byteLength === 0) this.violate(`onData for ${id} with an empty view`);
    if (log !== undefined) {
      if (!log.connected) this.violate(`onData for ${id} before onConnect`);
      if (log.ended) this.violate(`onData for ${id} after onEnd`);
      log.chunks.push(Buffer.from(data)); // copy: the view may be reused after this call
      log.bytes += data.byteLength;
    }
    if (this.echo) {
      const status = this.engine.send(id, data); // send() copies, so echoing the view itself is allowed
      if (status === SendStatus.Refused) this.echoFailures.push(`echo of ${data.byteLength} bytes on ${id} refused`);
    }
    this.hook('onData', () => this.hooks.onData?.(id, data));
  }

  private onEnd(id: ConnectionId): void {
    const log = this.live(id, 'end');
    if (log !== undefined) {
      if (!log.connected) this.violate(`onEnd for ${id} before onConnect`);
      if (log.ended) this.violate(`second onEnd for ${id}`);
      log.ended = true;
    }
    this.hook('onEnd', () => this.hooks.onEnd?.(id));
  }

  private onDrain(id: ConnectionId): void {
    const log = this.live(id, 'drain');
    if (log !== undefined) log.drains++;
    this.hook('onDrain', () => this.hooks.onDrain?.(id));
  }

  private onClose(id: ConnectionId, info: CloseInfo): void {
    const log = this.conns.get(id);
    if (log === undefined) {
      this.violate(`onClose for unknown connection ${id}`);
    } else {
      log.closeCount++;
      if (log.closeCount > 1) this.violate(`onClose #${log.closeCount} for ${id} (${JSON.stringify(info)})`);
      else log.close = { ...info };
      log.events.push('close');
      this.timeline.push({ type: 'close', id });
    }
    if (!CLOSE_REASONS.includes(info.reason)) this.violate(`onClose for ${id} with unknown reason ${String(info.reason)}`);
    if (info.reason === 'error' && typeof info.code !== 'string') this.violate(`onClose for ${id}: reason 'error' without a code`);
    if (!Number.isSafeInteger(info.unsentBytes) || info.unsentBytes < 0) this.violate(`onClose for ${id}: bad unsentBytes ${info.unsentBytes}`);
    // A dead id must be dead from inside its own onClose on.
    if (this.engine.isOpen(id)) this.violate(`isOpen(${id}) is true inside its onClose`);
    if (this.engine.send(id, ONE_BYTE) !== SendStatus.Closed) this.violate(`send(${id}) inside its onClose is not Closed`);
    this.hook('onClose', () => this.hooks.onClose?.(id, info));
  }

  /** Invariants checked after the engine was destroyed. */
  verify(): string[] {
    const problems = [...this.violations, ...this.echoFailures.map((m) => `${this.name}: ${m}`)];
    for (const log of this.conns.values()) {
      if (log.closeCount !== 1) {
        problems.push(`${this.name}: connection ${log.id} (${log.origin}) got ${log.closeCount} onClose calls (events: ${log.events.join(',')})`);
      }
    }
    return problems;
  }
}

const ONE_BYTE = new Uint8Array([0x21]);

function newLog(id: ConnectionId, origin: ConnLog['origin']): ConnLog {
  return { id, origin, events: [], chunks: [], bytes: 0, connected: false, ended: false, drains: 0, closeCount: 0 };
}

// ---------------------------------------------------------------------------
// server/client pairs

export interface Pair {
  server: Side;
  client: Side;
  listener: ListenerInfo;
  port: number;
  host: string;
}

export async function startPair(
  kind: EngineKind,
  options: { server?: SideOptions; client?: SideOptions; host?: string } = {},
): Promise<Pair> {
  const host = options.host ?? '127.0.0.1';
  const server = new Side(kind, { name: `${kind}-server`, ...options.server });
  const client = new Side(kind, { name: `${kind}-client`, ...options.client });
  const listener = await server.listen(0, host);
  return { server, client, listener, port: listener.port, host };
}

/** Connects one client connection and waits for both ends: `cid` on the client, `sid` on the server. */
export async function connectPair(pair: Pair): Promise<{ cid: ConnectionId; sid: ConnectionId }> {
  const before = pair.server.accepted.length;
  const cid = pair.client.connect(pair.port, pair.host);
  await pair.client.waitConnected(cid);
  await pair.server.waitAccepted(before + 1);
  if (pair.server.accepted.length !== before + 1) throw new Error('connectPair: unexpected extra accepted connection');
  return { cid, sid: pair.server.accepted[before] as ConnectionId };
}

/**
 * Sends chunks on `id` (one tick per round, until a send is refused) until the
 * queue stops draining: the peer does not read and the kernel buffers are full.
 * Returns the accepted chunks in order. The short wait only picks the moment to
 * stop filling; callers assert on what the engine reports afterwards.
 */
export async function fillUntilStalled(side: Side, id: ConnectionId, chunkSize = 16 * 1024, maxRounds = 2000): Promise<Buffer[]> {
  const accepted: Buffer[] = [];
  let seq = 0;
  for (let round = 0; round < maxRounds; round++) {
    const drainsBefore = side.log(id).drains;
    let refused = false;
    for (let i = 0; i < 64 && !refused; i++) {
      const chunk = sequencedChunk(chunkSize, seq++);
      const status = side.engine.send(id, chunk);
      if (status === SendStatus.Closed) throw new Error(`fillUntilStalled: connection ${id} closed`);
      if (status === SendStatus.Refused) refused = true;
      else accepted.push(chunk);
    }
    if (!refused) {
      await nextTurn();
      continue;
    }
    if (!(await eventually(() => side.log(id).drains > drainsBefore, 100))) return accepted;
  }
  throw new Error(`fillUntilStalled: connection ${id} never stalled in ${maxRounds} rounds`);
}

// ---------------------------------------------------------------------------
// raw node:net peers (an independent implementation on the other end)

export interface RawPeer {
  socket: net.Socket;
  chunks: Buffer[];
  bytes: number;
  ended: boolean;
  closed: boolean;
  error: NodeJS.ErrnoException | undefined;
  data(): Buffer;
}

function wrapRaw(socket: net.Socket): RawPeer {
  const peer: RawPeer = {
    socket,
    chunks: [],
    bytes: 0,
    ended: false,
    closed: false,
    error: undefined,
    data: () => Buffer.concat(peer.chunks),
  };
  socket.on('data', (chunk: Buffer) => {
    peer.chunks.push(chunk);
    peer.bytes += chunk.length;
  });
  socket.on('end', () => {
    peer.ended = true;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    peer.error ??= err;
  });
  socket.on('close', () => {
    peer.closed = true;
  });
  return peer;
}

export interface RawServer {
  server: net.Server;
  port: number;
  peers: RawPeer[];
}

export async function rawServer(
  options: { host?: string; pauseOnConnect?: boolean; allowHalfOpen?: boolean; onPeer?: (peer: RawPeer) => void } = {},
): Promise<RawServer> {
  const peers: RawPeer[] = [];
  const server = net.createServer({ pauseOnConnect: options.pauseOnConnect ?? false, allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
    const peer = wrapRaw(socket);
    peers.push(peer);
    options.onPeer?.(peer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host ?? '127.0.0.1', port: 0 }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  track({
    close: async () => {
      for (const p of peers) p.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return { server, port: (server.address() as net.AddressInfo).port, peers };
}

export async function rawConnect(port: number, host = '127.0.0.1'): Promise<RawPeer> {
  const socket = net.connect({ host, port, allowHalfOpen: false });
  const peer = wrapRaw(socket);
  track({ close: async () => void socket.destroy() });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve();
    });
    socket.once('error', reject);
  });
  return peer;
}

/** A raw connection attempt that is expected to fail; resolves with the error code. */
export function rawConnectError(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} unexpectedly succeeded`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'EUNKNOWN'));
  });
}

/** A loopback port nothing listens on (bound then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host, port: 0 }, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Streams sequenced chunks on `id` until the peer's kernel buffers are full:
 * the sender's pending bytes reach `stallBytes` (the kernel stopped taking
 * them). Never queues past `stallBytes + chunk`, so send() is never refused.
 * Bounded by `maxBytes` in total and `timeoutMs`; returns the accepted chunks
 * in order and whether the stall was seen. Pending bytes only grow here when
 * nothing drains the socket, so a peer that reads ends the loop at its bound
 * with `stalled` false.
 */
export async function streamUntilStalled(
  side: Side,
  id: ConnectionId,
  options: { chunkSize?: number; perTurn?: number; stallBytes?: number; maxBytes?: number; timeoutMs?: number } = {},
): Promise<{ chunks: Buffer[]; bytes: number; stalled: boolean }> {
  const chunkSize = options.chunkSize ?? 64 * 1024;
  const perTurn = options.perTurn ?? 4;
  const stallBytes = options.stallBytes ?? 2 * 1024 * 1024;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const deadline = Date.now() + (options.timeoutMs ?? WAIT_MS);
  const chunks: Buffer[] = [];
  let bytes = 0;
  let seq = 0;
  while (bytes < maxBytes && Date.now() < deadline) {
    for (let i = 0; i < perTurn && side.engine.pendingBytes(id) < stallBytes && bytes < maxBytes; i++) {
      const chunk = sequencedChunk(chunkSize, seq++);
      const status = side.engine.send(id, chunk);
      if (status === SendStatus.Closed) throw new Error(`streamUntilStalled: connection ${id} closed`);
      if (status === SendStatus.Refused) throw new Error(`streamUntilStalled: send refused at ${side.engine.pendingBytes(id)} pending`);
      chunks.push(chunk);
      bytes += chunk.length;
    }
    if (side.engine.pendingBytes(id) >= stallBytes) return { chunks, bytes, stalled: true };
    await nextTurn();
  }
  return { chunks, bytes, stalled: side.engine.pendingBytes(id) >= stallBytes };
}
