import cluster, { type Worker } from 'node:cluster';
import type pino from 'pino';
import { backoffDelay, resolveBackoff, type ResolvedBackoff } from '@fastport/session';
import { pageAcross, sumStatus, type SessionPage, type StatusSummary } from './admin';
import { Rpc, type IpcChannel, type IpcMessage } from './ipc';
import type { MetricsJson } from './metrics';

/*
 * `fastport-server --workers N`: this process runs no engine. It forks N
 * workers (node:cluster; each has its own engine and listens on the same
 * port with SO_REUSEPORT, or, on the node engine, through cluster's shared
 * handle), restarts one that dies with backoff, turns SIGTERM/SIGINT into a
 * graceful stop of all, and answers for all of them (admin, metrics).
 */

/** Environment the supervisor gives a worker. */
export const ENV_WORKER_ID = 'FASTPORT_WORKER_ID';
export const ENV_WORKER_PORT = 'FASTPORT_WORKER_PORT';

export interface SupervisorOptions {
  workers: number;
  /** The port asked for; 0: the first worker picks one, the rest (and restarts) reuse it. */
  port: number;
  /** The node engine shares the port through cluster's handle, which port 0 already makes common. */
  sharedByCluster: boolean;
  /** ms the workers get for their graceful stop; the supervisor adds a margin, then kills. */
  graceMs: number;
  /** First restart delay after a crash; doubles per crash in a row (cap 30 s). */
  restartDelayMs: number;
  /** A worker that ran this long before dying starts the backoff over. */
  stableMs?: number;
}

interface Slot {
  id: number;
  worker: Worker | undefined;
  rpc: Rpc | undefined;
  pid: number;
  listening: boolean;
  everListened: boolean;
  startedAt: number;
  /** Crashes in a row (reset after a stable run). */
  streak: number;
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
  exited: Promise<void>;
  markExited: () => void;
}

const EMPTY_PAGE: SessionPage = { total: 0, sessions: [] };

export interface WorkerExit {
  worker: number;
  pid: number;
  code: number | null;
  signal: string | null;
}

export class Supervisor {
  private readonly slots: Slot[] = [];
  private port: number;
  private stopping = false;
  private readonly backoff: ResolvedBackoff;
  private readonly exits: WorkerExit[] = [];
  private startupFailed: ((err: Error) => void) | undefined;

  constructor(
    private readonly opts: SupervisorOptions,
    private readonly logger: pino.Logger,
  ) {
    this.port = opts.port;
    this.backoff = resolveBackoff({ initialDelayMs: opts.restartDelayMs, maxDelayMs: 30_000, multiplier: 2, jitter: 0.2 });
  }

  get boundPort(): number {
    return this.port;
  }

  get running(): number {
    return this.slots.filter((s) => s.worker !== undefined).length;
  }

  restarts(): Map<number, number> {
    return new Map(this.slots.map((s) => [s.id, s.restarts]));
  }

  /** Forks every worker and resolves when all listen; rejects (after stopping the others) if one dies first. */
  async start(): Promise<void> {
    for (let id = 0; id < this.opts.workers; id++) this.slots.push(this.newSlot(id));
    const failed = new Promise<never>((_, reject) => {
      this.startupFailed = reject;
    });
    failed.catch(() => {});
    try {
      if (this.port === 0 && !this.opts.sharedByCluster) {
        // Each SO_REUSEPORT socket bound to port 0 gets a port of its own: the first one chooses for all.
        await Promise.race([this.fork(this.slots[0]!), failed]);
        await Promise.race([Promise.all(this.slots.slice(1).map((s) => this.fork(s))), failed]);
      } else {
        await Promise.race([Promise.all(this.slots.map((s) => this.fork(s))), failed]);
      }
    } catch (err) {
      await this.shutdown('startup-failed');
      throw err;
    } finally {
      this.startupFailed = undefined;
    }
  }

  private newSlot(id: number): Slot {
    let markExited = () => {};
    const exited = new Promise<void>((r) => (markExited = r));
    return { id, worker: undefined, rpc: undefined, pid: 0, listening: false, everListened: false, startedAt: 0, streak: 0, restarts: 0, restartTimer: undefined, exited, markExited };
  }

  /** Starts the slot's worker; resolves when it listens. */
  private fork(slot: Slot): Promise<void> {
    const env: Record<string, string> = { [ENV_WORKER_ID]: String(slot.id) };
    if (this.port !== 0) env[ENV_WORKER_PORT] = String(this.port);
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.listening = false;
    slot.startedAt = Date.now();
    slot.pid = worker.process.pid ?? 0;
    let exited = () => {};
    slot.exited = new Promise<void>((r) => (exited = r));
    slot.markExited = exited;
    this.logger.info({ worker: slot.id, pid: slot.pid, restarts: slot.restarts }, 'worker started');
    return new Promise<void>((resolve) => {
      const channel: IpcChannel = {
        send: (m: IpcMessage) => worker.send(m),
        on: (e, l) => worker.on(e, l),
        off: (e, l) => worker.off(e, l),
      };
      slot.rpc = new Rpc(
        channel,
        {
          'admin-status': () => this.status(),
          'admin-sessions': (args) => {
            const a = args as { offset: number; limit: number };
            return this.sessions(a.offset, a.limit);
          },
        },
        (m) => {
          if (m.fp !== 'listening') return;
          if (this.port === 0) this.port = m.port;
          slot.listening = true;
          slot.everListened = true;
          this.logger.info({ worker: slot.id, pid: m.pid, port: m.port, engine: m.engine }, 'worker listening');
          resolve();
        },
      );
      worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    });
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.rpc?.close(`worker ${slot.id} exited`);
    slot.worker = undefined;
    slot.rpc = undefined;
    slot.listening = false;
    const pid = worker.process.pid ?? 0;
    this.exits.push({ worker: slot.id, pid, code, signal });
    slot.markExited();
    if (this.stopping) {
      this.logger.info({ worker: slot.id, pid, code, signal }, 'worker stopped');
      return;
    }
    if (!slot.everListened && this.startupFailed !== undefined) {
      this.logger.error({ worker: slot.id, pid, code, signal }, 'worker died before it listened');
      this.startupFailed(new Error(`worker ${slot.id} exited (${signal ?? code}) before it listened`));
      return;
    }
    const ranMs = Date.now() - slot.startedAt;
    if (ranMs >= (this.opts.stableMs ?? 30_000)) slot.streak = 0;
    slot.streak++;
    const delayMs = backoffDelay(slot.streak, this.backoff);
    this.logger.warn({ worker: slot.id, pid, code, signal, ranMs, crashesInARow: slot.streak, restartInMs: delayMs }, 'worker died: restarting');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping) return;
      slot.restarts++;
      void this.fork(slot);
    }, delayMs);
  }

  /**
   * Graceful stop of every worker (each runs its layered shutdown), then
   * resolves with how each exited. Workers still alive `graceMs` + 5 s later are killed.
   */
  async shutdown(signal: string): Promise<WorkerExit[]> {
    this.stopping = true;
    const firstExit = this.exits.length;
    for (const slot of this.slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      try {
        slot.worker?.send({ fp: 'shutdown', signal } satisfies IpcMessage);
      } catch {
        // its channel is gone; it is exiting
      }
    }
    const live = this.slots.filter((s) => s.worker !== undefined);
    let killTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(live.map((s) => s.exited)),
      new Promise<void>((resolve) => {
        killTimer = setTimeout(() => {
          for (const s of live) {
            if (s.worker !== undefined) {
              this.logger.warn({ worker: s.id, pid: s.pid }, 'worker did not stop in time: killing it');
              s.worker.process.kill('SIGKILL');
            }
          }
          resolve();
        }, this.opts.graceMs + 5_000);
      }),
    ]);
    await Promise.all(live.map((s) => s.exited));
    if (killTimer !== undefined) clearTimeout(killTimer);
    return this.exits.slice(firstExit);
  }

  private live(): Slot[] {
    return this.slots.filter((s) => s.rpc !== undefined && s.listening);
  }

  /**
   * Asks every live worker; a worker that does not answer (dying, or stuck past the IPC
   * timeout) is left out rather than failing the whole answer.
   */
  private async ask<T>(op: string): Promise<{ slot: Slot; value: T }[]> {
    const live = this.live();
    const settled = await Promise.allSettled(live.map((s) => s.rpc!.call<T>(op)));
    const out: { slot: Slot; value: T }[] = [];
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') out.push({ slot: live[i]!, value: r.value });
      else this.logger.warn({ worker: live[i]!.id, op, err: r.reason as Error }, 'worker did not answer');
    });
    return out;
  }

  /** Status summed over the workers that answer. */
  async status(): Promise<StatusSummary> {
    return sumStatus((await this.ask<StatusSummary>('status')).map((r) => r.value));
  }

  /** One page of the concatenated session lists (worker order). */
  async sessions(offset: number, limit: number): Promise<SessionPage> {
    const counted = await this.ask<number>('count');
    const ranges = pageAcross(
      counted.map((c) => c.value),
      offset,
      limit,
    );
    const pages = await Promise.all(
      counted.map((c, i) => (ranges[i]!.limit > 0 ? c.slot.rpc?.call<SessionPage>('sessions', ranges[i]).catch(() => EMPTY_PAGE) ?? EMPTY_PAGE : EMPTY_PAGE)),
    );
    return { total: counted.reduce((a, c) => a + c.value, 0), sessions: pages.flatMap((p) => p.sessions) };
  }

  /** The metrics registry of every worker that answers, as JSON. */
  async metrics(): Promise<MetricsJson[]> {
    return (await this.ask<MetricsJson>('metrics')).map((r) => r.value);
  }

  /** Sends `signal` to every running worker. */
  signalAll(signal: NodeJS.Signals): void {
    for (const s of this.slots) if (s.worker !== undefined && s.worker.process.exitCode === null) s.worker.process.kill(signal);
  }

  /** Engine/session stats of each worker that answers. */
  async stats(): Promise<{ worker: number; stats: unknown }[]> {
    return (await this.ask<unknown>('stats')).map((r) => ({ worker: r.slot.id, stats: r.value }));
  }
}
