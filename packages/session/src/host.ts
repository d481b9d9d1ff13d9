import { EventEmitter } from 'node:events';
import {
  createEngine,
  toFastPortError,
  type AddressInfo,
  type CloseInfo,
  type ConnectionId,
  type Engine,
  type EngineHandler,
  type EngineOptions,
  type EngineRequest,
  type EngineStats,
  type FastPortError,
  type ListenerId,
  type SocketOptions,
} from '@fastport/native-io';
import { FrameDecoder, FrameEncoder, resolveFrameSpec, type Frame, type FrameSpec, type FramingOption } from './framing';
import { Session, type BackpressurePolicy, type SessionCloseInfo, type SessionHostLink } from './session';
import { SessionManager } from './session-manager';

export interface SessionHostOptions {
  /** Engine to run on. Default 'auto'. */
  engine?: EngineRequest;
  /** Native I/O threads (0 = inline on the JS loop). Default: the engine's. */
  ioThreads?: number;
  /** Frame format. Default 'fastport' (u16 BE size incl. header + u16 BE id). */
  framing?: FramingOption;
  /** Per-session limit of queued, unsent bytes. Default 10 MiB. */
  maxPendingBytes?: number;
  /** Default 1 MiB. */
  highWaterMark?: number;
  /** Default 256 KiB. */
  lowWaterMark?: number;
  /** What a send past maxPendingBytes does. Default 'reject' (throws ERR_BACKPRESSURE). */
  backpressure?: BackpressurePolicy;
  /** Keep a session writable after the peer's FIN. Default false. */
  allowHalfOpen?: boolean;
  /** Socket options for every connection. Default { noDelay: true }. */
  socket?: SocketOptions;
}

export interface HostStats {
  engine: EngineStats;
  sessions: number;
  sessionsTotal: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  framingErrors: number;
  handlerErrors: number;
  closeReasons: Record<string, number>;
}

interface SessionSlot {
  session: Session;
  decoder: FrameDecoder;
  onFrame: (frame: Frame) => void;
  onError: (err: FastPortError) => void;
}

/**
 * Owns an engine and the sessions on it; Server and Client are its two faces.
 * Events: 'session' (session), 'frame' (session, frame), 'close' (session, info), 'error' (err, session?).
 * The 'frame' frame is valid only during the listener call: copy what you keep.
 */
export class SessionHost extends EventEmitter implements SessionHostLink {
  readonly engine: Engine;
  readonly encoder: FrameEncoder;
  readonly frameSpec: FrameSpec;
  readonly policy: BackpressurePolicy;
  readonly headerScratch: Uint8Array;
  readonly sessions = new SessionManager();
  protected readonly slots = new Map<ConnectionId, SessionSlot>();
  private readonly totals = {
    sessionsTotal: 0,
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    framingErrors: 0,
    handlerErrors: 0,
  };
  private readonly closeReasons: Record<string, number> = {};

  constructor(options: SessionHostOptions, side: 'server' | 'client') {
    super();
    this.frameSpec = resolveFrameSpec(options.framing ?? 'fastport');
    this.encoder = new FrameEncoder(this.frameSpec);
    this.headerScratch = new Uint8Array(this.frameSpec.headerSize);
    this.policy = options.backpressure ?? 'reject';
    const engineOptions: EngineOptions = { kind: options.engine ?? 'auto' };
    if (options.ioThreads !== undefined) engineOptions.ioThreads = options.ioThreads;
    if (options.maxPendingBytes !== undefined) engineOptions.maxPendingBytes = options.maxPendingBytes;
    if (options.highWaterMark !== undefined) engineOptions.highWaterMark = options.highWaterMark;
    if (options.lowWaterMark !== undefined) engineOptions.lowWaterMark = options.lowWaterMark;
    if (options.allowHalfOpen !== undefined) engineOptions.allowHalfOpen = options.allowHalfOpen;
    if (options.socket !== undefined) engineOptions.socket = options.socket;
    this.engine = createEngine({ ...engineOptions, handler: this.makeHandler(side) });
  }

  onSessionSent(frames: number, bytes: number): void {
    this.totals.framesOut += frames;
    this.totals.bytesOut += bytes;
  }

  onSessionDropped(): void {
    this.totals.dropped++;
  }

  stats(): HostStats {
    return {
      engine: this.engine.stats(),
      sessions: this.sessions.size,
      ...this.totals,
      closeReasons: { ...this.closeReasons },
    };
  }

  /** Hook for the outbound side: a connect finished. */
  protected onOutboundOpen(_session: Session): void {}
  /** Hook for the outbound side: a connection closed before or after it opened. */
  protected onOutboundClose(_conn: ConnectionId, _info: SessionCloseInfo, _session: Session | undefined): void {}

  protected reportError(err: Error, session?: Session): void {
    if (this.listenerCount('error') > 0) this.emit('error', err, session);
    else process.emitWarning(`FastPort: ${err.message}`, { code: 'FASTPORT_UNHANDLED' });
  }

  private openSession(conn: ConnectionId, remote: AddressInfo, side: 'server' | 'client'): Session {
    const session = new Session(this, conn, remote, side);
    const decoder = new FrameDecoder(this.frameSpec);
    const slot: SessionSlot = {
      session,
      decoder,
      onFrame: (frame: Frame) => {
        session.counters.framesIn++;
        this.totals.framesIn++;
        try {
          this.emit('frame', session, frame);
        } catch (err) {
          this.totals.handlerErrors++;
          this.reportError(toFastPortError(err), session);
        }
      },
      onError: (err: FastPortError) => {
        this.totals.framingErrors++;
        session.closeWith('graceful', { reason: 'framing', code: err.code, message: err.message });
      },
    };
    this.slots.set(conn, slot);
    this.sessions.add(session);
    this.totals.sessionsTotal++;
    return session;
  }

  private makeHandler(side: 'server' | 'client'): EngineHandler {
    return {
      onAccept: (conn, _listener: ListenerId, remote) => {
        const session = this.openSession(conn, remote, side);
        this.emit('session', session);
      },
      onConnect: (conn, remote) => {
        const session = this.openSession(conn, remote, side);
        this.onOutboundOpen(session);
        this.emit('session', session);
      },
      onData: (conn, data) => {
        const slot = this.slots.get(conn);
        if (slot === undefined) return;
        slot.session.counters.bytesIn += data.byteLength;
        this.totals.bytesIn += data.byteLength;
        if (slot.session.state !== 'open') return;
        slot.decoder.push(data, slot.onFrame, slot.onError);
      },
      onEnd: (conn) => {
        this.slots.get(conn)?.session.emit('end');
      },
      onDrain: (conn) => {
        this.slots.get(conn)?.session.emit('drain');
      },
      onClose: (conn, info: CloseInfo) => {
        const slot = this.slots.get(conn);
        const own = slot?.session.pendingCloseReason;
        const closeInfo: SessionCloseInfo = { reason: own?.reason ?? info.reason, unsentBytes: info.unsentBytes };
        const code = own?.code ?? info.code;
        const message = own?.message ?? info.message;
        if (code !== undefined) closeInfo.code = code;
        if (message !== undefined) closeInfo.message = message;
        this.closeReasons[closeInfo.reason] = (this.closeReasons[closeInfo.reason] ?? 0) + 1;
        if (slot === undefined) {
          this.onOutboundClose(conn, closeInfo, undefined);
          return;
        }
        this.slots.delete(conn);
        const session = slot.session;
        this.sessions.delete(session);
        session.state = 'closed';
        session.closeInfo = closeInfo;
        this.onOutboundClose(conn, closeInfo, session);
        session.emit('close', closeInfo);
        this.emit('close', session, closeInfo);
      },
    };
  }
}
