/*
 * The supervisor and its workers talk over the cluster IPC channel: requests
 * with an id answered by responses (status, session pages, metrics), and a
 * few one-way notices (a worker listens; the supervisor asks for a stop).
 * Every message carries `fp` so messages of other libraries on the same
 * channel are left alone.
 */

export type IpcMessage =
  | { fp: 'req'; id: number; op: string; args?: unknown }
  | { fp: 'res'; id: number; ok: true; value: unknown }
  | { fp: 'res'; id: number; ok: false; error: string }
  | { fp: 'listening'; port: number; address: string; engine: string; pid: number }
  | { fp: 'shutdown'; signal: string };

export interface IpcChannel {
  send(message: IpcMessage): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export type IpcHandlers = Record<string, (args: unknown) => unknown>;

function isIpc(m: unknown): m is IpcMessage {
  return typeof m === 'object' && m !== null && typeof (m as { fp?: unknown }).fp === 'string';
}

/** Requests and responses over one channel; both ends can call and answer. */
export class Rpc {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listener: (m: unknown) => void;
  private closedWith: Error | undefined;

  constructor(
    private readonly channel: IpcChannel,
    private readonly handlers: IpcHandlers,
    /** Notices (non-request messages) go here. */
    onNotice: (m: IpcMessage) => void = () => {},
  ) {
    this.listener = (m) => {
      if (!isIpc(m)) return;
      if (m.fp === 'req') this.answer(m.id, m.op, m.args);
      else if (m.fp === 'res') this.settle(m);
      else onNotice(m);
    };
    channel.on('message', this.listener);
  }

  call<T>(op: string, args?: unknown, timeoutMs = 5_000): Promise<T> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`IPC ${op}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        this.channel.send({ fp: 'req', id, op, args });
      } catch (err) {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(err as Error);
      }
    });
  }

  /** The other end is gone: pending calls fail now instead of at their timeout. */
  close(reason: string): void {
    this.closedWith = new Error(reason);
    this.channel.off('message', this.listener);
    for (const [, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(this.closedWith);
    }
    this.waiting.clear();
  }

  private settle(m: Extract<IpcMessage, { fp: 'res' }>): void {
    const w = this.waiting.get(m.id);
    if (w === undefined) return;
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.ok) w.resolve(m.value);
    else w.reject(new Error(m.error));
  }

  private answer(id: number, op: string, args: unknown): void {
    const handler = this.handlers[op];
    const reply = (msg: IpcMessage) => {
      try {
        this.channel.send(msg);
      } catch {
        // the channel closed while answering: the caller's timeout or close() reports it
      }
    };
    if (handler === undefined) {
      reply({ fp: 'res', id, ok: false, error: `unknown IPC op '${op}'` });
      return;
    }
    Promise.resolve()
      .then(() => handler(args))
      .then(
        (value) => reply({ fp: 'res', id, ok: true, value }),
        (err: unknown) => reply({ fp: 'res', id, ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  }
}
