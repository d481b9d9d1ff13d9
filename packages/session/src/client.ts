import { FastPortError, type ConnectionId, type ConnectOptions, type Engine } from '@fastport/native-io';
import type { ClientEvents } from './events';
import { checkHost, checkObject, checkPort, invalidArgType } from './arguments';
import { SessionHost } from './host';
import type { SessionHostOptions } from './host-options';
import { HostOwner } from './host-owner';
import type { Session, SessionCloseInfo } from './session';

export type ClientOptions = SessionHostOptions;

interface PendingConnect {
  resolve: (session: Session) => void;
  reject: (err: FastPortError) => void;
}

/** Makes outbound sessions; one Client (one engine) can hold many of them. */
export class Client extends HostOwner<ClientEvents> {
  /** @internal */
  readonly host: SessionHost;
  private readonly pending = new Map<ConnectionId, PendingConnect>();
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

  /** Resolves with the session once connected; rejects with the connect error's code. */
  connect(options: ConnectOptions): Promise<Session>;
  /** As node:net: `connect(port, host = 'localhost', options)`. */
  connect(port: number, host?: string, options?: Omit<ConnectOptions, 'host' | 'port'>): Promise<Session>;
  connect(portOrOptions: ConnectOptions | number, host?: string, more?: Omit<ConnectOptions, 'host' | 'port'>): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      if (this.closing !== undefined) {
        reject(new FastPortError('ERR_ENGINE_DESTROYED', 'client closed'));
        return;
      }
      // A bad argument rejects here, with Node's code, instead of failing inside the addon.
      const options = connectOptionsOf(portOrOptions, host, more);
      const conn = this.engine.connect(options);
      this.pending.set(conn, { resolve, reject });
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

  private onOutboundOpen(session: Session): void {
    const waiter = this.pending.get(session.id);
    if (waiter === undefined) return;
    this.pending.delete(session.id);
    waiter.resolve(session);
  }

  private onOutboundClose(conn: ConnectionId, info: SessionCloseInfo): void {
    const waiter = this.pending.get(conn);
    if (waiter === undefined) return;
    this.pending.delete(conn);
    waiter.reject(new FastPortError(info.code ?? 'ECONNABORTED', info.message ?? `connect failed (${info.reason})`));
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

/** The options of `connect(options)` or of `connect(port, host, options)`, checked. */
function connectOptionsOf(portOrOptions: unknown, host: unknown, more: unknown): ConnectOptions {
  if (typeof portOrOptions === 'number') {
    const port = checkPort('port', portOrOptions, false);
    const h = host === undefined ? 'localhost' : checkHost('host', host);
    const extra = more === undefined ? {} : checkObject('options', more);
    return { ...extra, host: h, port };
  }
  if (typeof portOrOptions !== 'object' || portOrOptions === null) {
    throw invalidArgType('options', 'of type object or a port number', portOrOptions);
  }
  const o = portOrOptions as Record<string, unknown>;
  checkHost('options.host', o['host']);
  checkPort('options.port', o['port'], false);
  return portOrOptions as ConnectOptions;
}
