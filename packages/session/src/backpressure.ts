import { FastPortError } from '@fastport/native-io';
import type { SendResult, Session, SessionHostLink } from './session';

/** What a session does when a send would pass its pending-bytes limit (or the memory budget). Default 'drop'. */
export type BackpressurePolicy = 'drop' | 'reject' | 'close';

/** Why a send was refused: the session's queue limit, the process memory budget, or the replay buffer's bound. */
export type RefusalCause = 'backpressure' | 'memory-budget' | 'replay-buffer';

/**
 * @internal One session's backpressure: the send-side limit checks, what a
 * refused send does under the host's policy, the memory-budget admission,
 * and read backpressure (reading pauses while the queue is above the high
 * watermark and resumes at the drain).
 */
export class Backpressure {
  /** The engine reported the queue above the high watermark; cleared by the drain. */
  aboveHigh = false;
  /** Reading is paused until the queue drains (read backpressure). */
  readPaused = false;
  /** Reading is paused because the session's for-await loop is behind (its buffer is full). */
  readerPaused = false;
  /**
   * False from a resume until the next read: each drain lets at least one
   * read through, so an application that refills the queue on every 'drain'
   * cannot keep the peer's input (its PONGs and ACKs too) unread forever.
   */
  private readArmed = true;
  private readonly owner: Session;
  private readonly host: SessionHostLink;

  constructor(owner: Session, host: SessionHostLink) {
    this.owner = owner;
    this.host = host;
  }

  /**
   * True when a send of `size` bytes would pass the user's pending-bytes
   * limit. Below the high watermark a send smaller than the gap to the limit
   * cannot pass it, so the engine is only asked when it could.
   */
  wouldPassLimit(size: number): boolean {
    const host = this.host;
    return (this.aboveHigh || size > host.sizeCheckThreshold) && host.engine.pendingBytes(this.owner.connectionId) + size > host.userMaxPending;
  }

  /** Budget for `bytes`: free room, else decided by what this session holds (the largest holders pay, see MemoryBudget.admit). */
  reserveBudget(bytes: number): boolean {
    const budget = this.host.budget;
    if (budget === null) return true;
    return budget.tryReserve(bytes) || budget.admit(bytes, this.host.heldBy(this.owner));
  }

  /** The engine queued a frame above the high watermark. */
  markAboveHigh(): void {
    this.aboveHigh = true;
    this.pauseReading();
  }

  /** A send was refused: counts it and applies the host's policy (drop, close, or throw for 'reject'). */
  refuse(bytes: number, why: RefusalCause): SendResult {
    const host = this.host;
    const owner = this.owner;
    owner.counters.refused++;
    host.onSessionRefused();
    // A peer whose replies do not fit is not read until its queue drains (its requests wait in the kernel).
    if (why === 'backpressure') this.pauseReading();
    if (host.policy === 'drop') {
      owner.counters.dropped++;
      host.onSessionDropped();
      return 'dropped';
    }
    const what =
      why === 'backpressure'
        ? `pending bytes would pass the limit of ${host.userMaxPending}`
        : why === 'memory-budget'
          ? `the process memory budget (${host.budget?.limitBytes ?? 0} bytes) is used up`
          : `the replay buffer would pass ${host.replay?.maxReplayBytes ?? 0} bytes`;
    if (host.policy === 'close') {
      owner.closeWith('abort', {
        reason: why === 'memory-budget' ? 'memory-budget' : 'backpressure',
        code: 'ERR_BACKPRESSURE',
        message: `${what} (send of ${bytes} bytes refused)`,
      });
      return 'closed';
    }
    throw new FastPortError('ERR_BACKPRESSURE', `session ${owner.id}: send of ${bytes} bytes refused: ${what}`);
  }

  /**
   * Stops reading the session's connection: called when its queue passes the
   * high watermark or a send is refused for the limit. Undone by the drain at
   * the low watermark. A no-op on engines without pause/resume, or with
   * `readBackpressure: false`.
   */
  pauseReading(): void {
    const owner = this.owner;
    if (this.readPaused || !this.readArmed || owner.state !== 'open' || owner.connectionId === 0) return;
    // Already paused for the loop: the engine is paused; only the reason is recorded.
    if (this.readerPaused ? this.host.readBackpressure : this.host.pauseReceiving(owner.connectionId)) {
      this.readPaused = true;
      owner.counters.readPauses++;
    }
  }

  /** Reading resumes (drain, or a new connection under a resumed session). */
  resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    this.readArmed = false;
    if (this.owner.connectionId !== 0 && !this.readerPaused) this.host.resumeReceiving(this.owner.connectionId);
  }

  /** The for-await loop is behind: stop reading (whatever readBackpressure says: it is the loop's buffer that is bounded). */
  pauseForReader(): void {
    const owner = this.owner;
    const conn = owner.connectionId;
    if (this.readerPaused || conn === 0 || owner.state === 'closed') return;
    if (this.readPaused || this.host.holdReceiving(conn)) this.readerPaused = true;
  }

  /** The loop caught up (or ended): read again unless read backpressure still holds the session. */
  resumeForReader(): void {
    if (!this.readerPaused) return;
    this.readerPaused = false;
    const conn = this.owner.connectionId;
    if (!this.readPaused && conn !== 0) this.host.releaseReceiving(conn);
  }

  /** A read was delivered: pausing is allowed again, and done now if the queue is still high. */
  afterRead(): void {
    this.readArmed = true;
    if (this.aboveHigh && !this.readPaused) this.pauseReading();
  }

  /** The engine's queue fell to the low watermark. */
  onDrain(): void {
    this.resumeReading();
    this.aboveHigh = false;
  }

  /** A new (or no) connection: nothing is queued or paused on it. */
  reset(): void {
    this.aboveHigh = false;
    this.readPaused = false;
    this.readerPaused = false;
    this.readArmed = true;
  }
}
