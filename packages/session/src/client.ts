import { FastPortError, type ConnectionId, type ConnectOptions } from '@fastport/native-io';
import { SessionHost, type SessionHostOptions } from './host';
import type { Session, SessionCloseInfo } from './session';

export type ClientOptions = SessionHostOptions;

interface PendingConnect {
  resolve: (session: Session) => void;
  reject: (err: FastPortError) => void;
}

/** Makes outbound sessions; one Client (one engine) can hold many of them. */
export class Client extends SessionHost {
  private readonly pending = new Map<ConnectionId, PendingConnect>();
  private closing: Promise<void> | undefined;
  /** @internal Set by a ReconnectingClient: which resumable sessions wait for a new connection. */
  detachPolicy: ((session: Session) => boolean) | undefined;

  constructor(options: ClientOptions = {}) {
    super(options, 'client');
  }

  /** Resolves with the session once connected; rejects with the connect error's code. */
  connect(options: ConnectOptions): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      if (this.closing !== undefined) {
        reject(new FastPortError('ERR_ENGINE_DESTROYED', 'client closed'));
        return;
      }
      const conn = this.engine.connect(options);
      this.pending.set(conn, { resolve, reject });
    });
  }

  /** @internal Moves the connection of a new session under a resumable one (ReconnectingClient). */
  adoptConnection(logical: Session, provisional: Session): void {
    this.adopt(logical, provisional, false);
  }

  /** @internal Ends a resumable session that has no connection. */
  endDetached(session: Session, info: SessionCloseInfo): void {
    this.finalizeDetached(session, info);
  }

  protected override shouldDetach(session: Session, info: SessionCloseInfo): boolean {
    if (this.closing !== undefined) return false;
    if (this.detachPolicy !== undefined && session.rel !== null) return this.detachPolicy(session);
    return super.shouldDetach(session, info);
  }

  protected override onOutboundOpen(session: Session): void {
    const waiter = this.pending.get(session.id);
    if (waiter === undefined) return;
    this.pending.delete(session.id);
    waiter.resolve(session);
  }

  protected override onOutboundClose(conn: ConnectionId, info: SessionCloseInfo, _session: Session | undefined): void {
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
    for (const session of [...this.detached]) {
      if (session.connectionId === 0) this.finalizeDetached(session, { reason: 'client-close', unsentBytes: 0 });
    }
    for (const session of [...this.sessions]) session.close('client-close');
    this.releaseHost();
    await this.engine.destroy(graceMs);
  }
}
