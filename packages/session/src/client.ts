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

  constructor(options: ClientOptions = {}) {
    super(options, 'client');
  }

  /** Resolves with the session once connected; rejects with the connect error's code. */
  connect(options: ConnectOptions): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      const conn = this.engine.connect(options);
      this.pending.set(conn, { resolve, reject });
    });
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

  /** Closes every session and releases the engine. */
  async close(graceMs = 1000): Promise<void> {
    for (const session of [...this.sessions]) session.close('client-close');
    await this.engine.destroy(graceMs);
  }
}
