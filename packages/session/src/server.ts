import { FastPortError, type CloseInfo, type Engine, type EngineHandler, type ListenerInfo, type ListenOptions } from '@fastport/native-io';
import {
  ControlFrameId,
  RESUME_PROTOCOL_VERSION,
  U64_UNKNOWN,
  encodeResumeOk,
  encodeResumeRefused,
  isZeroToken,
  tokenToHex,
  type ResumeRefused,
  type ResumeRefusedReason,
  type ResumeRequest,
} from './control';
import { resolveFrameSpec } from './framing';
import type { EventEmitter } from 'node:events';
import type { HostEvents, ServerEvents } from './events';
import { abortErrorOf, checkSignal, whenAborted } from './abort';
import { checkHost, checkObject, checkPort } from './arguments';
import { SessionHost } from './host';
import type { SessionId } from './ids';
import { controlFramesError, type SessionHostOptions } from './host-options';
import { HostOwner } from './host-owner';
import { resolveReplay, type ReplayOptions } from './reliable';
import { newToken } from './reliable';
import { type ResumeInfo, type Session, type SessionCloseInfo } from './session';
import { ProxyProtocolGate, type ProxyProtocolOptions, type ProxyProtocolStats } from './proxy-protocol';

export interface ServerResumeOptions extends ReplayOptions {
  /** How long a session that lost its connection waits for its client to resume it. Default 60,000 ms. */
  resumeWindowMs?: number;
  /**
   * With resume on, a new connection is announced ('session') once its first
   * frame shows whether it resumes; a connection silent this long is
   * announced as a plain session. Default 5,000 ms.
   */
  helloTimeoutMs?: number;
  /** Most sessions kept waiting for a resume; past it a lost connection ends its session. Default 10,000. */
  maxDetached?: number;
}

export interface ServerOptions extends SessionHostOptions {
  /** Default '0.0.0.0'. */
  host?: string;
  /** Default 9000 (FastPort's); 0 picks a free port. */
  port?: number;
  /** Default 511. */
  backlog?: number;
  /** SO_REUSEPORT, to spread one port over processes. Default false. */
  reusePort?: boolean;
  ipv6Only?: boolean;
  /** Resume sessions of clients that ask (ReconnectingClient). Default off. */
  resume?: boolean | ServerResumeOptions;
  /**
   * Expect a PROXY protocol header (v1 or v2) at the start of every
   * connection (behind HAProxy, an NLB...): sessions get the client's address.
   * A connection without a valid header in time is closed ('proxy-rejected'
   * event). Default off.
   */
  proxyProtocol?: boolean | ProxyProtocolOptions;
}

export interface ServerCloseResult {
  /** Sessions that closed within the grace period. */
  flushed: number;
  /** Sessions reset when the grace period ran out. */
  aborted: number;
}

/** `listen()`'s third argument. */
export interface ListenCallOptions {
  /** Aborts the listen while it is being set up (see `Server.listen`). */
  signal?: AbortSignal;
}

export interface ShutdownOptions {
  /**
   * Ends the grace period when aborted: what is left is reset at once, the
   * engine is released, and this call rejects with an AbortError (the
   * server is closed all the same). An already-aborted signal rejects at
   * once and starts nothing.
   */
  signal?: AbortSignal;
  /** Time for the whole stop; what is not finished by then is reset. Default 5,000 ms. */
  deadlineMs?: number;
  /** Send GOAWAY to peers that speak the session protocol. Default true. */
  goaway?: boolean;
  /** GOAWAY tells clients they may reconnect (to a restarted server). Default true. */
  reconnect?: boolean;
  /** Text carried by the GOAWAY. Default 'server shutting down'. */
  message?: string;
}

/**
 * Per-session outcome of a shutdown: 'flushed' — everything queued went out
 * and the connection closed gracefully; 'timed-out' — reset at the deadline
 * with `bytesLeft` never sent; 'failed' — the connection broke on its own
 * (reset by the peer...) before it could finish.
 */
export type ShutdownOutcome = 'flushed' | 'timed-out' | 'failed';

export interface SessionShutdownOutcome {
  id: SessionId;
  remote: string;
  outcome: ShutdownOutcome;
  bytesLeft: number;
  /** The close reason the session reported. */
  reason: string;
  /** A GOAWAY was sent (the peer speaks the session protocol). */
  goaway: boolean;
}

export interface ShutdownReport {
  flushed: number;
  timedOut: number;
  failed: number;
  sessions: SessionShutdownOutcome[];
  /** Resumable sessions that were waiting for a resume and ended. */
  detachedClosed: number;
  durationMs: number;
}

export const DEFAULT_RESUME_WINDOW_MS = 60_000;
export const DEFAULT_HELLO_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_DETACHED = 10_000;
export const DEFAULT_SHUTDOWN_DEADLINE_MS = 5_000;

/**
 * Accepts connections and turns each into a Session. See SessionHost for events;
 * also 'listening' (info), 'shutdown' (phase), 'closed' ().
 */
export class Server extends HostOwner<ServerEvents> {
  /** @internal */
  readonly host: SessionHost;
  private readonly options: ServerOptions;
  private listener: ListenerInfo | undefined;
  private readonly resumeWindowMs: number;
  private readonly helloTimeoutMs: number;
  private readonly maxDetached: number;
  private readonly resumeEnabled: boolean;
  /** token (hex) → resumable session. */
  private readonly registry = new Map<string, Session>();
  private stopping = false;
  private proxyGate: ProxyProtocolGate | undefined;
  private shutdownPromise: Promise<ShutdownReport> | undefined;
  /** Set while a shutdown runs: ends its grace period now (an aborted signal). */
  private forceShutdown: (() => void) | undefined;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = options;
    const r = options.resume;
    this.resumeEnabled = r !== undefined && r !== false;
    const ro: ServerResumeOptions = typeof r === 'object' ? r : {};
    this.host = new SessionHost(Server.validate(options), 'server', this as EventEmitter as EventEmitter<HostEvents>, {
      onAccept: (session) => this.acceptSession(session),
      intervals: () => (this.resumeEnabled ? [this.resumeWindowMs, this.helloTimeoutMs] : []),
      sweepDetached: (now) => this.expireDetached(now),
      shouldDetach: (session, _info, resumable) => this.shouldDetach(resumable),
      onSessionFinal: (session) => this.forget(session),
      onResumeRequest: (session, req) => this.onResumeRequest(session, req),
      wrapHandler: this.proxyWrapper(options.proxyProtocol),
    });
    if (this.resumeEnabled) this.host.replay = resolveReplay(ro, 'resume');
    this.resumeWindowMs = ro.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
    this.helloTimeoutMs = ro.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.maxDetached = ro.maxDetached ?? DEFAULT_MAX_DETACHED;
  }

  /** Checks the resume options before an engine exists (a bad option must not leak one). */
  private static validate(options: ServerOptions): ServerOptions {
    const r = options.resume;
    if (r === undefined || r === false) return options;
    const spec = resolveFrameSpec(options.framing ?? 'fastport');
    if ((spec.idWidth ?? 0) < 2 || options.controlFrames === false) {
      throw controlFramesError('resume', spec, options.controlFrames === false);
    }
    const ro: ServerResumeOptions = typeof r === 'object' ? r : {};
    resolveReplay(ro, 'resume');
    const limits = {
      resumeWindowMs: ro.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS,
      helloTimeoutMs: ro.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
      maxDetached: ro.maxDetached ?? DEFAULT_MAX_DETACHED,
    };
    for (const [name, v] of Object.entries(limits)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new FastPortError('ERR_INVALID_ARGUMENT', `resume.${name} must be a positive integer (got ${String(v)})`);
    }
    return options;
  }

  private proxyWrapper(p: ServerOptions['proxyProtocol']): ((h: EngineHandler, e: () => Engine) => EngineHandler) | undefined {
    if (p === undefined || p === false) return undefined;
    return (handler, engine) => {
      this.proxyGate = new ProxyProtocolGate(handler, engine, p === true ? {} : p, (remote, error) => {
        if (this.listenerCount('proxy-rejected') > 0) this.emit('proxy-rejected', remote, error);
      });
      return this.proxyGate.handler();
    };
  }

  /** PROXY protocol counters (null when it is off). */
  proxyStats(): ProxyProtocolStats | null {
    return this.proxyGate?.stats() ?? null;
  }

  get address(): ListenerInfo | undefined {
    return this.listener;
  }

  /** True once shutdown() (or close()) started. */
  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * Starts accepting. `signal` aborts the listen while it is being set up: it
   * rejects with an AbortError (code 'ABORT_ERR', the reason as `cause`) once
   * whatever the engine opened is closed again; an already-aborted signal
   * rejects at once. Unlike node:net's `server.listen({ signal })`, the
   * signal does not stay attached afterwards (stop a running server with
   * `shutdown({ signal })`, `close()` or `await using`).
   */
  async listen(port = this.options.port ?? 9000, host = this.options.host ?? '0.0.0.0', options: ListenCallOptions = {}): Promise<ListenerInfo> {
    const listenOptions: ListenOptions = { port: checkPort('port', port, true), host: checkHost('host', host) };
    const signal = checkSignal('options.signal', checkObject('options', options)['signal']);
    if (signal?.aborted) throw abortErrorOf(signal);
    if (this.options.backlog !== undefined) listenOptions.backlog = this.options.backlog;
    if (this.options.reusePort !== undefined) listenOptions.reusePort = this.options.reusePort;
    if (this.options.ipv6Only !== undefined) listenOptions.ipv6Only = this.options.ipv6Only;
    let aborted = false;
    const release = signal === undefined ? undefined : whenAborted(signal, () => (aborted = true));
    let listener: ListenerInfo;
    try {
      listener = await this.engine.listen(listenOptions);
    } finally {
      release?.();
    }
    if (aborted) {
      await this.engine.closeListener(listener.id);
      throw abortErrorOf(signal!);
    }
    this.listener = listener;
    this.emit('listening', listener);
    return listener;
  }

  /** Stops accepting, lets sessions flush for up to `graceMs`, resets the rest, releases the engine. */
  async close(graceMs = DEFAULT_SHUTDOWN_DEADLINE_MS): Promise<ServerCloseResult> {
    const report = await this.shutdown({ deadlineMs: graceMs });
    return { flushed: report.flushed + report.failed, aborted: report.timedOut };
  }

  /**
   * Graceful stop in layers: (1) stop accepting; (2) GOAWAY to every peer
   * that speaks the session protocol — it acks what it got, stops sending and
   * half-closes, then we send our final ack; plain peers get a graceful close
   * (flush, FIN) at once; (3) queues flush while peers finish, up to the
   * deadline; (4) half-close and close; (5) what is left at the deadline is
   * reset. Returns each session's outcome. Idempotent (returns the same promise).
   */
  shutdown(options: ShutdownOptions = {}): Promise<ShutdownReport> {
    let signal: AbortSignal | undefined;
    try {
      signal = checkSignal('options.signal', checkObject('options', options)['signal']);
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(abortErrorOf(signal));
    if (this.shutdownPromise === undefined) this.shutdownPromise = this.runShutdown(options);
    if (signal === undefined) return this.shutdownPromise;
    const running = this.shutdownPromise;
    const aborting = signal;
    // Aborting skips the rest of the grace period: what is left is reset now, the engine released, then this call rejects.
    const release = whenAborted(aborting, () => this.forceShutdown?.());
    return running.then(
      (report) => {
        release();
        if (aborting.aborted) throw abortErrorOf(aborting);
        return report;
      },
      (err: unknown) => {
        release();
        throw err;
      },
    );
  }

  /** `await using server = new Server(...)`: a shutdown with the default deadline at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  private async runShutdown(o: ShutdownOptions): Promise<ShutdownReport> {
    const started = Date.now();
    const deadlineMs = o.deadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS;
    const deadline = started + deadlineMs;
    this.stopping = true;
    let forced = false;
    let aborted = false;
    this.forceShutdown = () => {
      forced = true;
      aborted = true;
    };

    // 1. Stop accepting.
    if (this.listener !== undefined) {
      await this.engine.closeListener(this.listener.id);
      this.listener = undefined;
    }
    this.emit('shutdown', 'stopped-accepting');

    // Sessions waiting for a resume cannot be resumed by this process any more.
    let detachedClosed = 0;
    for (const s of [...this.host.detached]) {
      if (s.connectionId !== 0) continue;
      if (s.rel !== null) s.rel.final = true;
      this.host.finalizeDetached(s, { reason: 'shutdown', unsentBytes: 0 });
      detachedClosed++;
    }

    // 2. GOAWAY or graceful close, per connection.
    const outcomes: SessionShutdownOutcome[] = [];
    const waits: Promise<void>[] = [];
    const open = new Map<number, SessionShutdownOutcome>();
    for (const slot of [...this.host.slots.values()]) {
      const session = slot.session;
      const conn = slot.conn;
      const record: SessionShutdownOutcome = {
        id: session.id,
        remote: `${session.remote.address}:${session.remote.port}`,
        outcome: 'flushed',
        bytesLeft: 0,
        reason: '',
        goaway: false,
      };
      outcomes.push(record);
      open.set(conn, record);
      waits.push(
        new Promise<void>((resolve) => {
          this.host.transportWatchers.set(conn, (info: SessionCloseInfo, raw?: CloseInfo) => {
            open.delete(conn);
            record.reason = info.reason;
            record.bytesLeft = Math.max(record.bytesLeft, info.unsentBytes);
            const engineReason = raw?.reason ?? info.reason;
            if (engineReason === 'abort' || engineReason === 'destroy') record.outcome = 'timed-out';
            else if (engineReason === 'error' || info.unsentBytes > 0) record.outcome = 'failed';
            else if (record.outcome !== 'timed-out') record.outcome = 'flushed';
            resolve();
          });
        }),
      );
      if (session.connectionId !== conn) {
        this.engine.close(conn, 'abort'); // an old connection of a resumed session
        continue;
      }
      if (session.rel !== null) session.rel.final = true;
      if (o.goaway !== false) {
        record.goaway = session.goAwayAndClose(
          { reason: 'shutdown', reconnect: o.reconnect ?? true, resume: false, message: o.message ?? 'server shutting down' },
          'shutdown',
          deadlineMs,
        );
      } else {
        session.closeWith('graceful', { reason: 'shutdown' });
      }
    }
    this.emit('shutdown', 'draining');

    // 3 + 4. Flush and half-close while the peers finish, up to the deadline (or until forced by an abort).
    const all = Promise.all(waits);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = forced || (await Promise.race([
      all.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()));
        this.forceShutdown = () => {
          aborted = true;
          resolve(true);
        };
      }),
    ]));
    this.forceShutdown = undefined;
    if (timer !== undefined) clearTimeout(timer);

    // 5. Force what is left.
    if (timedOut) {
      this.emit('shutdown', 'forcing');
      for (const [conn, record] of open) {
        record.outcome = 'timed-out';
        record.bytesLeft = Math.max(record.bytesLeft, this.engine.pendingBytes(conn));
        const slot = this.host.slots.get(conn);
        if (slot !== undefined && slot.session.connectionId === conn) {
          slot.session.pendingCloseReason = {
            reason: 'shutdown-timeout',
            message: aborted ? 'not finished when the shutdown was aborted' : `not finished within ${deadlineMs} ms`,
          };
          slot.session.closeWith('abort', { reason: 'shutdown-timeout' });
        }
        else this.engine.close(conn, 'abort');
      }
      await all;
    }
    this.host.releaseHost();
    this.proxyGate?.stop();
    await this.engine.destroy();
    this.emit('shutdown', 'closed');
    this.emit('closed');
    let flushed = 0;
    let timedOutCount = 0;
    let failed = 0;
    for (const r of outcomes) {
      if (r.outcome === 'flushed') flushed++;
      else if (r.outcome === 'timed-out') timedOutCount++;
      else failed++;
    }
    return { flushed, timedOut: timedOutCount, failed, sessions: outcomes, detachedClosed, durationMs: Date.now() - started };
  }

  // ---- resume -----------------------------------------------------------------

  private acceptSession(session: Session): void {
    if (!this.resumeEnabled) {
      this.host.announce(session);
      return;
    }
    session.awaitingHello = true;
    session.helloDeadline = this.host.clock.now() + this.helloTimeoutMs;
    this.host.scheduleCheck(session.monitor);
  }

  /** Sessions not resumed within the resume window end. */
  private expireDetached(now: number): void {
    for (const s of [...this.host.detached]) {
      const rel = s.rel;
      if (rel === null || s.connectionId !== 0) continue;
      if (now - rel.detachedAt >= this.resumeWindowMs) {
        rel.final = true;
        this.host.finalizeDetached(s, { reason: 'resume-timeout', message: `not resumed within ${this.resumeWindowMs} ms`, unsentBytes: 0 });
      }
    }
  }

  private shouldDetach(resumable: boolean): boolean {
    if (!resumable || this.stopping || !this.resumeEnabled) return false;
    return this.host.detached.size < this.maxDetached;
  }

  private forget(session: Session): void {
    const rel = session.rel;
    if (rel === null) return;
    const key = tokenToHex(rel.token);
    if (this.registry.get(key) === session) this.registry.delete(key);
  }

  private onResumeRequest(session: Session, req: ResumeRequest): void {
    if (!this.resumeEnabled) {
      this.host.refuseResume(session);
      return;
    }
    const refuse = (r: Partial<ResumeRefused> & { reason: ResumeRefusedReason; message: string }) => {
      session.sendControl(
        ControlFrameId.ResumeRefused,
        encodeResumeRefused({
          received: U64_UNKNOWN,
          lostFrom: 1,
          lostTo: 0,
          peerLostFrom: 1,
          peerLostTo: 0,
          ...r,
        }),
      );
    };
    if (!session.awaitingHello || session.rel !== null || this.stopping) {
      refuse({ reason: 'protocol', message: this.stopping ? 'server shutting down' : 'RESUME_REQUEST must be the first frame of a connection' });
      return;
    }
    if (req.version !== RESUME_PROTOCOL_VERSION) {
      refuse({ reason: 'protocol', message: `resume protocol version ${req.version} unsupported (this server speaks ${RESUME_PROTOCOL_VERSION})` });
      return;
    }

    if (isZeroToken(req.token)) {
      // A new resumable session.
      const token = newToken();
      session.makeReliable(token, 0).handshake = 'done';
      this.registry.set(tokenToHex(token), session);
      session.sendControl(ControlFrameId.ResumeOk, encodeResumeOk({ resumed: false, token, received: 0, sessionId: session.id }));
      this.host.announce(session);
      return;
    }

    const key = tokenToHex(req.token);
    const old = this.registry.get(key);
    if (old === undefined || old.state === 'closed' || old.rel === null) {
      refuse({ reason: 'unknown-token', message: 'no session with this token (expired, closed, or the server restarted)' });
      return;
    }
    const rel = old.rel;
    const out = rel.out;
    if (req.received >= out.writeSeq && req.received !== 0) {
      refuse({ reason: 'protocol', message: `client claims ${req.received} frames, only ${out.writeSeq - 1} were sent` });
      return;
    }
    let refusal: (Partial<ResumeRefused> & { reason: ResumeRefusedReason; message: string }) | undefined;
    if (req.received < out.evictedThrough) {
      refusal = {
        reason: out.evictedBy ?? 'replay-overflow',
        message: `frames ${req.received + 1}..${out.evictedThrough} were dropped from the replay buffer (${out.evictedBy === 'replay-expired' ? 'age' : 'byte'} bound) before the client got them`,
        lostFrom: req.received + 1,
        lostTo: out.evictedThrough,
      };
    } else if (!req.historyUnknown && req.firstAvailable > rel.received + 1) {
      refusal = {
        reason: 'peer-replay-overflow',
        message: `the client can replay from ${req.firstAvailable}, the server needs ${rel.received + 1}`,
        peerLostFrom: rel.received + 1,
        peerLostTo: req.firstAvailable - 1,
      };
    }
    if (refusal !== undefined) {
      refuse({ ...refusal, received: rel.received });
      // The old session cannot continue: tell its application what is lost, then end it.
      if (refusal.lostFrom !== undefined && refusal.lostTo !== undefined) {
        rel.reportLost('outbound', refusal.reason, refusal.lostFrom, refusal.lostTo, true, []);
      }
      if (refusal.peerLostFrom !== undefined && refusal.peerLostTo !== undefined) {
        rel.reportLost('inbound', refusal.reason, refusal.peerLostFrom, refusal.peerLostTo, true, []);
      }
      const notDelivered = out.after(req.received);
      if (notDelivered.length > 0) {
        rel.reportLost('outbound', refusal.reason, notDelivered[0]!.seq, notDelivered[notDelivered.length - 1]!.seq, true, notDelivered);
      }
      const cleared = out.clear();
      this.host.budget?.release(cleared);
      rel.final = true;
      if (old.connectionId === 0) this.host.finalizeDetached(old, { reason: 'resume-refused', message: refusal.message, unsentBytes: 0 });
      else old.closeWith('abort', { reason: 'resume-refused', message: refusal.message });
      return;
    }

    // Resume: the old connection (if the server has not noticed it died) is dropped.
    if (old.connectionId !== 0) {
      const oldConn = old.connectionId;
      const oldSlot = this.host.slots.get(oldConn);
      if (oldSlot !== undefined) oldSlot.closing = true;
      old.conn = 0;
      this.engine.close(oldConn, 'abort');
      this.host.totals.countClose('replaced');
    }
    const freed = out.ack(req.received);
    if (freed > 0) this.host.budget?.release(freed);
    this.host.adopt(old, session, true);
    rel.handshake = 'done';
    rel.final = false;
    rel.draining = false;
    old.sendControl(ControlFrameId.ResumeOk, encodeResumeOk({ resumed: true, token: rel.token, received: rel.received, sessionId: old.id }));
    out.rewindTo(req.received);
    const toReplay = out.unwritten;
    old.counters.replayed += rel.flush();
    const info: ResumeInfo = { resumed: true, peerReceived: req.received, replayed: toReplay, token: key };
    old.emit('resume', info);
    this.host.relay('resume', old, info);
  }
}
