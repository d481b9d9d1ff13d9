import { EventEmitter } from 'node:events';
import {
  FastPortError,
  SendStatus,
  type AddressInfo,
  type ConnectionId,
  type Engine,
  type ErrorCode,
} from '@fastport/native-io';
import type { FrameEncoder } from './framing';

/** What a session does when a send would pass its pending-bytes limit. */
export type BackpressurePolicy = 'reject' | 'drop' | 'close';

/**
 * Outcome of `Session.send`:
 * - 'queued': accepted, below the high watermark;
 * - 'high-water': accepted, but pending bytes passed the high watermark (wait for 'drain');
 * - 'dropped': over the limit under policy 'drop' — not sent;
 * - 'closed': the session is closing or closed (or was closed by policy 'close') — not sent.
 * Under policy 'reject' an over-limit send throws ERR_BACKPRESSURE instead.
 */
export type SendResult = 'queued' | 'high-water' | 'dropped' | 'closed';

/** TCP-level state. Liveness (heartbeats) is tracked separately. */
export type SessionState = 'open' | 'closing' | 'closed';
/** Logical liveness from application heartbeats: active → suspect (missed probes) → dead. */
export type Liveness = 'active' | 'suspect' | 'dead';

export interface SessionCloseInfo {
  /**
   * 'local' | 'abort' | 'peer' | 'error' | 'destroy' from the engine, or the
   * session's own reason: 'framing', 'backpressure', or what the user passed to close().
   */
  reason: string;
  code?: ErrorCode;
  message?: string;
  /** Bytes that were queued but never reached the kernel. */
  unsentBytes: number;
}

export interface SessionCounters {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
  dropped: number;
}

/** Internal bridge from a session to the host that owns its engine. */
export interface SessionHostLink {
  readonly engine: Engine;
  readonly encoder: FrameEncoder;
  readonly policy: BackpressurePolicy;
  /** Scratch space for one frame header; engines copy on send, so one buffer serves every send. */
  readonly headerScratch: Uint8Array;
  onSessionSent(frames: number, bytes: number): void;
  onSessionDropped(): void;
}

/**
 * One connection, server-side (accepted) or client-side (outbound).
 * Events: 'drain' (), 'end' () when the peer half-closed, 'close' (info: SessionCloseInfo).
 */
export class Session<UserData = unknown> extends EventEmitter {
  readonly id: ConnectionId;
  readonly remote: AddressInfo;
  readonly side: 'server' | 'client';
  readonly connectedAt: number;
  /** Free for the application: player, user, room... */
  data: UserData | undefined;
  state: SessionState = 'open';
  liveness: Liveness = 'active';
  closeInfo: SessionCloseInfo | undefined;
  /** Reason recorded when the session closes itself; reported in the close info. */
  pendingCloseReason: { reason: string; code?: ErrorCode; message?: string } | undefined;
  readonly counters: SessionCounters = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0, dropped: 0 };
  private readonly host: SessionHostLink;

  constructor(host: SessionHostLink, id: ConnectionId, remote: AddressInfo, side: 'server' | 'client') {
    super();
    this.host = host;
    this.id = id;
    this.remote = remote;
    this.side = side;
    this.connectedAt = Date.now();
  }

  /**
   * Frames `payload` with `packetId` (ignored by formats without an id) and queues it.
   * The payload is copied before this returns; writes made in the same tick or
   * batch go out in one submission.
   */
  send(payload: Uint8Array, packetId = 0): SendResult {
    if (this.state !== 'open') return 'closed';
    const host = this.host;
    const headerLength = host.encoder.writeHeader(host.headerScratch, payload.byteLength, packetId);
    const header = host.headerScratch.subarray(0, headerLength);
    return this.submit(host.engine.sendv(this.id, [header, payload]), headerLength + payload.byteLength);
  }

  /** Queues bytes that already are one or more whole frames (relays, echo of `frame.bytes`). */
  sendFrame(frameBytes: Uint8Array): SendResult {
    if (this.state !== 'open') return 'closed';
    return this.submit(this.host.engine.send(this.id, frameBytes), frameBytes.byteLength);
  }

  private submit(status: SendStatus, bytes: number): SendResult {
    switch (status) {
      case SendStatus.Queued:
        this.counters.framesOut++;
        this.counters.bytesOut += bytes;
        this.host.onSessionSent(1, bytes);
        return 'queued';
      case SendStatus.AboveHighWater:
        this.counters.framesOut++;
        this.counters.bytesOut += bytes;
        this.host.onSessionSent(1, bytes);
        return 'high-water';
      case SendStatus.Refused:
        return this.overLimit(bytes);
      default:
        return 'closed';
    }
  }

  private overLimit(bytes: number): SendResult {
    const policy = this.host.policy;
    if (policy === 'drop') {
      this.counters.dropped++;
      this.host.onSessionDropped();
      return 'dropped';
    }
    if (policy === 'close') {
      this.closeWith('abort', {
        reason: 'backpressure',
        code: 'ERR_BACKPRESSURE',
        message: `pending bytes would pass the limit (send of ${bytes} bytes refused)`,
      });
      return 'closed';
    }
    throw new FastPortError(
      'ERR_BACKPRESSURE',
      `session ${this.id}: send of ${bytes} bytes refused, ${this.pendingBytes} bytes already pending`,
    );
  }

  /** Bytes queued but not yet taken by the kernel. */
  get pendingBytes(): number {
    return this.host.engine.pendingBytes(this.id);
  }

  /** Flushes what is queued, then closes. */
  close(reason = 'local'): void {
    this.closeWith('graceful', { reason });
  }

  /** Drops the queue and resets the connection. */
  abort(reason = 'abort'): void {
    this.closeWith('abort', { reason });
  }

  /** Half-close: FIN after the queue is flushed; frames keep arriving until the peer closes. */
  shutdown(): boolean {
    return this.state === 'open' && this.host.engine.shutdown(this.id);
  }

  /** Closes with a recorded reason; the engine's onClose completes it. */
  closeWith(mode: 'graceful' | 'abort', why: { reason: string; code?: ErrorCode; message?: string }): void {
    if (this.state === 'closed') return;
    if (this.pendingCloseReason === undefined) this.pendingCloseReason = why;
    if (this.state === 'open' || mode === 'abort') {
      this.state = 'closing';
      this.host.engine.close(this.id, mode);
    }
  }
}
