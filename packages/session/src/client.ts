import { FastPortError, type ConnectionId, type ConnectOptions, type Engine } from '@fastport/native-io';
import type { ClientEvents } from './events';
import { abortErrorOf, checkSignal, whenAborted } from './abort';
import { checkHost, checkObject, checkPort, invalidArgType } from './arguments';
import { SessionHost } from './host';
import type { SessionHostOptions } from './host-options';
import { HostOwner } from './host-owner';
import type { Session, SessionCloseInfo } from './session';

export type ClientOptions = SessionHostOptions;

/** `connect()`'s options: the engine's, and a signal that aborts the attempt. */
export interface ClientConnectOptions extends ConnectOptions {
  signal?: AbortSignal;
}

interface PendingConnect {
  resolve: (session: Session) => void;
  reject: (err: FastPortError) => void;
}

/** Makes outbound sessions; one Client (one engine) can hold many of them. */
export class Client extends HostOwner<ClientEvents> {
  /** @internal */
  readonly host: SessionHost;
  private readonly pending = new Map<ConnectionId, PendingConnect>();
  /** Connects aborted by their signal, until the engine reports them closed (or, in a race, open). */
  private readonly abandoned = new Set<ConnectionId>();
  private closing: Promise<void> | undefined;
  /** @internal Set by a ReconnectingClient: which resumable sessions wait for a new connection. */
  detachPolicy: ((session: Session) => boolean) | undefined;

  constructor(options: ClientOptions = {}) {
    super();
    this.host = new SessionHost(options, 'client', this, {
      onOutboundOpen: (session) => this.onOutboundOpen(session),
      onOutboundClose: (conn, info) => this.onOutboundClose(conn, info),
      shouldDetach: (session, _info, resumable) => this.shouldDetach(session, resumable),
    });
  }

  /**
   * Resolves with the session once connected; rejects with the connect
   * error's code. `signal` aborts the attempt: it rejects with an AbortError
   * (code 'ABORT_ERR', the signal's reason as `cause`) and the connection
   * is reset; an already-aborted signal rejects at once, before connecting.
   */
  connect(options: ClientConnectOptions): Promise<Session>;
  /** As node:net: `connect(port, host = 'localhost', options)`. */
  connect(port: number, host?: string, options?: Omit<ClientConnectOptions, 'host' | 'port'>): Promise<Session>;
  connect(portOrOptions: ClientConnectOptions | number, host?: string, more?: Omit<ClientConnectOptions, 'host' | 'port'>): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      if (this.closing !== undefined) {
        reject(new FastPortError('ERR_ENGINE_DESTROYED', 'client closed'));
        return;
      }
      // A bad argument rejects here, with Node's code, instead of failing inside the addon.
      const { signal, options } = connectOptionsOf(portOrOptions, host, more);
      if (signal?.aborted) {
        reject(abortErrorOf(signal));
        return;
      }
      const conn = this.engine.connect(options);
      if (signal === undefined) {
        this.pending.set(conn, { resolve, reject });
        return;
      }
      const release = whenAborted(signal, () => {
        if (this.pending.get(conn) === undefined) return;
        this.pending.delete(conn);
        this.abandoned.add(conn);
        this.engine.close(conn, 'abort');
        reject(abortErrorOf(signal));
      });
      this.pending.set(conn, {
        resolve: (session) => {
          release();
          resolve(session);
        },
        reject: (err) => {
          release();
          reject(err);
        },
      });
    });
  }

  /** @internal Moves the connection of a new session under a resumable one (ReconnectingClient). */
  adoptConnection(logical: Session, provisional: Session): void {
    this.host.adopt(logical, provisional, false);
  }

  /** @internal Ends a resumable session that has no connection. */
  endDetached(session: Session, info: SessionCloseInfo): void {
    this.host.finalizeDetached(session, info);
  }

  private shouldDetach(session: Session, resumable: boolean): boolean {
    if (this.closing !== undefined) return false;
    if (this.detachPolicy !== undefined && session.rel !== null) return this.detachPolicy(session);
    return resumable;
  }

  /** False: the attempt was aborted meanwhile (its session is never announced). */
  private onOutboundOpen(session: Session): boolean {
    if (this.abandoned.delete(session.id)) {
      session.abort('connect-aborted');
      return false;
    }
    const waiter = this.pending.get(session.id);
    if (waiter === undefined) return true;
    this.pending.delete(session.id);
    waiter.resolve(session);
    return true;
  }

  private onOutboundClose(conn: ConnectionId, info: SessionCloseInfo): void {
    this.abandoned.delete(conn);
    const waiter = this.pending.get(conn);
    if (waiter === undefined) return;
    this.pending.delete(conn);
    waiter.reject(new FastPortError(info.code ?? 'ECONNABORTED', info.message ?? `connect failed (${info.reason})`));
  }

  /** `await using client = new Client(...)`: `close()` at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Closes every session (resumable ones end for good) and releases the engine after up to `graceMs`. */
  close(graceMs = 1000): Promise<void> {
    if (this.closing === undefined) this.closing = this.runClose(graceMs);
    return this.closing;
  }

  private async runClose(graceMs: number): Promise<void> {
    for (const session of [...this.host.detached]) {
      if (session.connectionId === 0) this.host.finalizeDetached(session, { reason: 'client-close', unsentBytes: 0 });
    }
    for (const session of [...this.sessions]) session.close('client-close');
    this.host.releaseHost();
    await this.engine.destroy(graceMs);
  }
}

/** The options of `connect(options)` or of `connect(port, host, options)`, checked; the signal apart (the engine never sees it). */
function connectOptionsOf(portOrOptions: unknown, host: unknown, more: unknown): { signal: AbortSignal | undefined; options: ConnectOptions } {
  if (typeof portOrOptions === 'number') {
    const port = checkPort('port', portOrOptions, false);
    const h = host === undefined ? 'localhost' : checkHost('host', host);
    const { signal, ...extra } = more === undefined ? {} : checkObject('options', more);
    return { signal: checkSignal('options.signal', signal), options: { ...extra, host: h, port } };
  }
  if (typeof portOrOptions !== 'object' || portOrOptions === null) {
    throw invalidArgType('options', 'of type object or a port number', portOrOptions);
  }
  const { signal, ...o } = portOrOptions as Record<string, unknown>;
  checkHost('options.host', o['host']);
  checkPort('options.port', o['port'], false);
  return { signal: checkSignal('options.signal', signal), options: o as unknown as ConnectOptions };
}
