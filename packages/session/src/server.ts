import { type ListenerInfo, type ListenOptions } from '@fastport/native-io';
import { SessionHost, type SessionHostOptions } from './host';

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
}

export interface ServerCloseResult {
  /** Sessions that closed within the grace period, queues flushed. */
  flushed: number;
  /** Sessions reset when the grace period ran out. */
  aborted: number;
}

/** Accepts connections and turns each into a Session. See SessionHost for events. */
export class Server extends SessionHost {
  private readonly options: ServerOptions;
  private listener: ListenerInfo | undefined;

  constructor(options: ServerOptions = {}) {
    super(options, 'server');
    this.options = options;
  }

  get address(): ListenerInfo | undefined {
    return this.listener;
  }

  async listen(port = this.options.port ?? 9000, host = this.options.host ?? '0.0.0.0'): Promise<ListenerInfo> {
    const listenOptions: ListenOptions = { port, host };
    if (this.options.backlog !== undefined) listenOptions.backlog = this.options.backlog;
    if (this.options.reusePort !== undefined) listenOptions.reusePort = this.options.reusePort;
    if (this.options.ipv6Only !== undefined) listenOptions.ipv6Only = this.options.ipv6Only;
    this.listener = await this.engine.listen(listenOptions);
    this.emit('listening', this.listener);
    return this.listener;
  }

  /** Stops accepting, lets sessions flush for up to `graceMs`, resets the rest, releases the engine. */
  async close(graceMs = 5000): Promise<ServerCloseResult> {
    if (this.listener !== undefined) {
      await this.engine.closeListener(this.listener.id);
      this.listener = undefined;
    }
    let flushed = 0;
    let aborted = 0;
    const pending = [...this.sessions];
    const closed = pending.map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.state === 'closed') return resolve();
          session.once('close', () => resolve());
        }),
    );
    for (const session of pending) session.close('shutdown');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all(closed).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    for (const session of pending) {
      if (session.state === 'closed') flushed++;
      else {
        aborted++;
        session.abort('shutdown-timeout');
      }
    }
    if (timedOut) await Promise.all(closed);
    await this.engine.destroy();
    this.emit('closed');
    return { flushed, aborted };
  }
}
