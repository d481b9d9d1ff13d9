import { EventEmitter } from 'node:events';
import { FastPortError, type ConnectOptions } from '@fastport/native-io';
import { backoffDelay, resolveBackoff, type BackoffOptions, type ResolvedBackoff } from './backoff';
import { Client, type ClientOptions } from './client';
import type { ReconnectingClientEvents } from './events';
import { hexToToken, TOKEN_BYTES, type GoAway } from './control';
import type { Frame } from './framing';
import { controlFramesError } from './host-options';
import { resolveReplay, type LostMessages, type ReplayOptions } from './reliable';
import type { ResumeFailedInfo, ResumeInfo, SendResult, Session, SessionCloseInfo } from './session';
import { resolveFrameSpec } from './framing';

export interface ClientResumeOptions extends ReplayOptions {
  /**
   * Resume a session another process started (after a crash): its token
   * (32 hex chars, from `session.token` / `resumeState()`)...
   */
  token?: string;
  /** ...and how many of the server's frames it had delivered. The server replays after that. */
  received?: number;
}

export interface ReconnectingClientOptions extends ClientOptions {
  host: string;
  port: number;
  localAddress?: string;
  /** Per attempt. Default 10,000 ms. */
  connectTimeoutMs?: number;
  /** Backoff between attempts; false: never reconnect. Default { initialDelayMs: 100, maxDelayMs: 10,000, multiplier: 2, jitter: 0.5 }. */
  reconnect?: BackoffOptions | false;
  /** Resume the session after a reconnect (sequence numbers, acks, replay). Default true; false: each connection is a new session. */
  resume?: boolean | ClientResumeOptions;
}

export interface ConnectInfo {
  /** Attempts it took (1 = first try). */
  attempt: number;
  /** The session continued (replayed what the server had not got); false on the first connect or after a refusal. */
  resumed: boolean;
  /** Connections established so far, this one included. */
  connects: number;
}

/**
 * A client that stays connected: on a lost connection (reset, heartbeat
 * timeout, GOAWAY) it reconnects with exponential backoff and jitter and, by
 * default, resumes its session — both sides replay what the other has not
 * acknowledged, exactly once, in order. `session` is one Session object for
 * the client's whole life; `send` on it while disconnected keeps the frame
 * for replay (bounded by the replay buffer).
 *
 * Events: 'connect' (session, ConnectInfo), 'disconnect' (session, SessionCloseInfo),
 * 'reconnecting' ({ attempt, delayMs, error? }), 'frame' (session, frame),
 * 'resume' (session, ResumeInfo), 'resume-failed' (session, ResumeFailedInfo),
 * 'lost' (session, LostMessages), 'goaway' (session, GoAway), 'liveness' (session, state, prev),
 * 'give-up' (error), 'close' (session | undefined, reason), 'error' (err).
 */
export class ReconnectingClient extends EventEmitter<ReconnectingClientEvents> {
  readonly client: Client;
  /** The session (created by the first connection). */
  session: Session | undefined;
  /** Consecutive failed attempts. */
  attempts = 0;
  connects = 0;
  private readonly connectOptions: ConnectOptions;
  private readonly backoff: ResolvedBackoff | null;
  private readonly resume: boolean;
  private readonly importToken: Uint8Array | undefined;
  private readonly importReceived: number;
  private closing = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private startPromise: Promise<Session> | undefined;
  private startResolve: ((s: Session) => void) | undefined;
  private startReject: ((e: Error) => void) | undefined;
  private lastGoAway: GoAway | undefined;
  private fatal: string | undefined;
  private attemptOfConnect = 0;

  constructor(options: ReconnectingClientOptions) {
    super();
    const { host, port, localAddress, connectTimeoutMs, reconnect, resume, ...hostOptions } = options;
    this.resume = resume !== false;
    const ro: ClientResumeOptions = typeof resume === 'object' ? resume : {};
    if (this.resume) {
      const spec = resolveFrameSpec(hostOptions.framing ?? 'fastport');
      if ((spec.idWidth ?? 0) < 2 || hostOptions.controlFrames === false) {
        throw controlFramesError('resume', spec, hostOptions.controlFrames === false);
      }
      resolveReplay(ro, 'resume');
      if (ro.token !== undefined) {
        const t = hexToToken(ro.token);
        if (t === null) throw new FastPortError('ERR_INVALID_ARGUMENT', `resume.token must be ${TOKEN_BYTES * 2} hex chars`);
        this.importToken = t;
      }
    }
    this.importReceived = ro.received ?? 0;
    if (!Number.isSafeInteger(this.importReceived) || this.importReceived < 0) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `resume.received must be a non-negative integer (got ${String(ro.received)})`);
    }
    this.backoff = reconnect === false ? null : resolveBackoff(reconnect ?? {});
    this.connectOptions = { host, port };
    if (localAddress !== undefined) this.connectOptions.localAddress = localAddress;
    if (connectTimeoutMs !== undefined) this.connectOptions.timeoutMs = connectTimeoutMs;
    this.client = new Client(hostOptions);
    if (this.resume) this.client.host.replay = resolveReplay(ro, 'resume');
    this.client.detachPolicy = (s) => s === this.session && !this.closing;
    this.wire();
  }

  /** True while a connection carries the session (handshake done). */
  get connected(): boolean {
    return this.session !== undefined && this.session.state === 'open';
  }

  /** Connects (retrying per the backoff); resolves with the session once the first connection is up. */
  start(): Promise<Session> {
    if (this.startPromise === undefined) {
      this.startPromise = new Promise<Session>((resolve, reject) => {
        this.startResolve = resolve;
        this.startReject = reject;
      });
      this.connectOnce();
    }
    return this.startPromise;
  }

  /** `session.send`: while disconnected a resumable session keeps the frame for replay. Throws ERR_CONN_CLOSED before the first connection. */
  send(payload: Uint8Array, packetId = 0): boolean {
    return this.trySend(payload, packetId) === 'queued';
  }

  /** `session.trySend`: what happened to the frame. */
  trySend(payload: Uint8Array, packetId = 0): SendResult {
    const s = this.session;
    if (s === undefined) throw new FastPortError('ERR_CONN_CLOSED', 'not connected yet: await start() first');
    return s.trySend(payload, packetId);
  }

  /**
   * Ends the session for good: GOAWAY, final acks both ways, close; waits up
   * to `graceMs` for that, then releases the engine.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closing) {
      await this.client.close(graceMs);
      return;
    }
    this.closing = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.session;
    if (s !== undefined && s.state !== 'closed') {
      const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
      s.close('client-close');
      let t: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((r) => (t = setTimeout(r, graceMs)))]);
      if (t !== undefined) clearTimeout(t);
    }
    await this.client.close(graceMs);
    this.finish('client-close');
  }

  /** `await using rc = new ReconnectingClient(...)`: `close()` at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private wire(): void {
    const c = this.client;
    c.on('frame', (s: Session, f: Frame) => {
      if (s === this.session) this.emit('frame', s, f);
    });
    c.on('resume', (s: Session, info: ResumeInfo) => {
      if (s !== this.session) return;
      this.connects++;
      const attempt = this.attemptOfConnect;
      this.attempts = 0;
      this.emit('resume', s, info);
      this.emit('connect', s, { attempt, resumed: info.resumed, connects: this.connects } satisfies ConnectInfo);
      this.resolveStart(s);
    });
    c.on('resume-failed', (s: Session, info: ResumeFailedInfo) => {
      if (s !== this.session) return;
      if (!info.restarted) this.fatal = `resume refused: ${info.reason}: ${info.message}`;
      this.emit('resume-failed', s, info);
    });
    c.on('lost', (s: Session, lost: LostMessages) => {
      if (s === this.session) this.emit('lost', s, lost);
    });
    c.on('goaway', (s: Session, g: GoAway) => {
      if (s !== this.session) return;
      this.lastGoAway = g;
      this.emit('goaway', s, g);
    });
    c.on('liveness', (s, state, prev) => {
      if (s === this.session) this.emit('liveness', s, state, prev);
    });
    c.on('detach', (s: Session, info: SessionCloseInfo) => {
      if (s !== this.session) return;
      this.emit('disconnect', s, info);
      this.afterDisconnect(info);
    });
    c.on('close', (s: Session, info: SessionCloseInfo) => {
      if (s !== this.session) return;
      if (!this.resume && !this.closing) {
        // Plain mode: every connection is a new session.
        this.emit('disconnect', s, info);
        this.afterDisconnect(info);
        return;
      }
      this.finish(info.reason);
    });
    c.on('error', (err: Error) => this.emitError(err));
  }

  private emitError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private afterDisconnect(info: SessionCloseInfo): void {
    if (this.closing) return;
    const g = this.lastGoAway;
    this.lastGoAway = undefined;
    const s = this.session;
    if (this.fatal !== undefined) {
      this.giveUp(new FastPortError('ERR_CONN_CLOSED', this.fatal));
      return;
    }
    if (g !== undefined && !g.reconnect) {
      this.giveUp(new FastPortError('ERR_CONN_CLOSED', `server said GOAWAY (${g.reason}) without reconnect`));
      return;
    }
    if (this.backoff === null) {
      this.giveUp(new FastPortError(info.code ?? 'ECONNRESET', info.message ?? `connection closed (${info.reason}); reconnect is off`));
      return;
    }
    if (s !== undefined && s.rel !== null && s.rel.final) {
      // The server will not resume it (GOAWAY without resume): start over, keeping unsent frames.
      s.rel.restartFresh(g?.reason ?? 'goaway');
    }
    this.scheduleReconnect(new FastPortError(info.code ?? 'ECONNRESET', info.message ?? `connection closed (${info.reason})`), g !== undefined);
  }

  private connectOnce(): void {
    if (this.closing) return;
    this.timer = undefined;
    this.attemptOfConnect = this.attempts + 1;
    this.client.connect(this.connectOptions).then(
      (s) => this.onTransport(s),
      (err: FastPortError) => {
        this.emit('connect-error', err);
        this.scheduleReconnect(err, false);
      },
    );
  }

  private onTransport(s: Session): void {
    if (this.closing) {
      s.abort('client-close');
      return;
    }
    if (!this.resume) {
      this.session = s;
      this.connects++;
      const attempt = this.attemptOfConnect;
      this.attempts = 0;
      this.emit('connect', s, { attempt, resumed: false, connects: this.connects } satisfies ConnectInfo);
      this.resolveStart(s);
      return;
    }
    let logical = this.session;
    if (logical === undefined || logical.state === 'closed') {
      logical = s;
      this.session = s;
      const token = this.importToken ?? new Uint8Array(TOKEN_BYTES);
      s.makeReliable(token, this.importToken !== undefined ? this.importReceived : 0, this.importToken !== undefined);
      s.currentState = 'detached';
    } else {
      this.client.adoptConnection(logical, s);
    }
    logical.rel!.startClientHandshake();
  }

  private scheduleReconnect(err: Error, immediate: boolean): void {
    if (this.closing) return;
    if (this.backoff === null) {
      this.giveUp(err);
      return;
    }
    this.attempts++;
    if (this.attempts > this.backoff.maxAttempts) {
      this.giveUp(err);
      return;
    }
    // After a GOAWAY the server asked us to come back: the first retry waits only the jittered base delay.
    const delayMs = backoffDelay(immediate ? 1 : this.attempts, this.backoff);
    this.emit('reconnecting', { attempt: this.attempts, delayMs, error: err });
    this.timer = setTimeout(() => this.connectOnce(), delayMs);
  }

  private giveUp(err: Error): void {
    if (this.closing) return;
    this.closing = true;
    this.emit('give-up', err);
    const s = this.session;
    if (s !== undefined && s.state !== 'closed') {
      if (s.rel !== null) s.rel.final = true;
      if (s.connectionId === 0) this.client.endDetached(s, { reason: 'gave-up', message: err.message, unsentBytes: 0 });
      else s.abort('gave-up');
    }
    if (this.startReject !== undefined) {
      this.startReject(err);
      this.startReject = undefined;
      this.startResolve = undefined;
    }
    void this.client.close(0).then(() => this.finish('gave-up'));
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.startReject !== undefined) {
      this.startReject(new FastPortError('ERR_CONN_CLOSED', `closed before connecting (${reason})`));
      this.startReject = undefined;
      this.startResolve = undefined;
    }
    this.emit('close', this.session, reason);
  }

  private resolveStart(s: Session): void {
    if (this.startResolve !== undefined) {
      this.startResolve(s);
      this.startResolve = undefined;
      this.startReject = undefined;
    }
  }
}
