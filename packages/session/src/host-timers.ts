import type { ConnectionId } from '@fastport/native-io';
import type { IdleMonitor } from './idle-monitor';
import type { MemoryBudget } from './memory-budget';
import type { ResolvedReplay } from './reliable';
import type { Session, SessionTiming } from './session';
import type { SessionSlot } from './session-slot';
import { TimerWheel, type Clock } from './timer-wheel';

/** @internal What a host's timers read of it and call back. */
export interface TimerHost {
  readonly clock: Clock;
  readonly timing: SessionTiming;
  readonly replay: ResolvedReplay | null;
  readonly budget: MemoryBudget | null;
  readonly slots: ReadonlyMap<ConnectionId, SessionSlot>;
  readonly detached: ReadonlySet<Session>;
  announce(session: Session): void;
  /** Per-tick work on sessions waiting for a resume. */
  sweepDetached(now: number): void;
  /** Periods (ms) the owner needs resolved besides the host's own (resume window, hello timeout). */
  extraIntervals(): number[];
}

/**
 * @internal The timers of one host: every session's timeouts on one timer
 * wheel (heartbeat, idle, lifetime, frame, close and handshake deadlines),
 * the host-wide housekeeping on its tick (detached sessions, the memory
 * budget's recount), and the batch timer of delayed acks.
 */
export class HostTimers {
  /** Created with the first session: a Server sets its resume limits after its host is built. */
  private wheel: TimerWheel<IdleMonitor> | undefined;
  private lastRecount = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private ackQueue: Session[] = [];
  private stopped = false;

  constructor(private readonly host: TimerHost) {}

  /** (Re)schedules the monitor's next check, at `monitor.nextCheckAt`. */
  scheduleCheck(monitor: IdleMonitor): void {
    const wheel = this.wheel ?? this.startWheel();
    if (wheel === null) return;
    wheel.schedule(monitor, monitor.nextCheckAt(this.host.clock.now()));
  }

  cancelCheck(monitor: IdleMonitor): void {
    this.wheel?.cancel(monitor);
  }

  /** Acks are sent in one batch a short delay after the first delivery that needs one. */
  scheduleAck(session: Session): void {
    this.ackQueue.push(session);
    if (this.ackTimer === undefined) {
      this.ackTimer = setTimeout(() => this.flushAcks(), this.host.replay?.ackDelayMs ?? 50);
      this.ackTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.wheel?.stop();
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  private flushAcks(): void {
    this.ackTimer = undefined;
    const queue = this.ackQueue;
    this.ackQueue = [];
    for (const s of queue) {
      const rel = s.rel;
      if (rel === null) continue;
      rel.ackScheduled = false;
      if (rel.received !== rel.ackedSent) rel.sendAck();
    }
  }

  /** Periods (ms) the timer wheel must resolve. */
  private intervals(): number[] {
    const t = this.host.timing;
    const out = [t.frameTimeoutMs, t.idleTimeoutMs, t.maxLifetimeMs, t.closeTimeoutMs];
    if (t.heartbeat !== null) out.push(t.heartbeat.intervalMs, t.heartbeat.fastIntervalMs);
    const replay = this.host.replay;
    if (replay !== null) out.push(replay.maxReplayAgeMs);
    out.push(...this.host.extraIntervals());
    return out.filter((v) => v > 0);
  }

  /** The wheel ticks at a quarter of the smallest period it must resolve (5..1000 ms). */
  private startWheel(): TimerWheel<IdleMonitor> | null {
    if (this.stopped) return null;
    const intervals = this.intervals();
    if (intervals.length === 0) return null;
    const tickMs = Math.max(5, Math.min(1000, Math.floor(Math.min(...intervals) / 4)));
    const wheel = new TimerWheel<IdleMonitor>(
      this.host.clock,
      tickMs,
      (monitor, now) => this.checkSession(monitor, now),
      (now) => this.housekeeping(now),
    );
    this.wheel = wheel;
    wheel.start();
    return wheel;
  }

  /** A session's check came due on the wheel. */
  private checkSession(monitor: IdleMonitor, now: number): void {
    const s = monitor.session;
    const slot = this.host.slots.get(s.connectionId);
    if (slot === undefined || slot.session !== s) return; // detached or gone: its next connection reschedules it
    if (s.awaitingHello && now >= s.helloDeadline) this.host.announce(s);
    monitor.check(now, slot.closing ? 0 : slot.decoder.bufferedBytes);
    if (s.state !== 'closed' && s.connectionId === slot.conn && monitor.wheelSlot < 0) this.wheel?.schedule(monitor, monitor.nextCheckAt(now));
  }

  /** Host-wide work once per wheel tick: sessions waiting for a resume, and the memory budget's recount. */
  private housekeeping(now: number): void {
    if (this.host.detached.size > 0) this.host.sweepDetached(now);
    const budget = this.host.budget;
    if (budget !== null && now - this.lastRecount >= Math.max(250, this.wheel?.tickMs ?? 0)) {
      this.lastRecount = now;
      budget.recount();
    }
  }
}
