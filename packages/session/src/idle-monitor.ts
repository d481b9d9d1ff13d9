import { ControlFrameId, encodePing } from './control';
import { HeartbeatMonitor, type HeartbeatEvent } from './heartbeat';
import type { Session, SessionHostLink } from './session';
import type { WheelEntry } from './timer-wheel';

/**
 * @internal The idle-state monitor of one session's connection: heartbeat
 * probes and liveness, the idle timeout, the connection's lifetime, the
 * frame (slowloris) timeout, the close and resume-handshake deadlines, and
 * the replay log's age bound. It holds no timer: the host's timer wheel
 * calls `check` when `nextCheckAt` comes, so a host's sessions share one.
 */
export class IdleMonitor implements WheelEntry {
  wheelSlot = -1;
  wheelDue = 0;
  readonly session: Session;
  /** Heartbeat state of the current connection, when this host drives heartbeats. */
  heartbeat: HeartbeatMonitor | null = null;
  private readonly host: SessionHostLink;
  private idleFrames = -1;
  private idleSince = 0;
  private partialFrames = -1;
  private partialSince = 0;

  constructor(session: Session, host: SessionHostLink) {
    this.session = session;
    this.host = host;
  }

  /** A connection starts under the session: every timer starts over. */
  start(now: number): void {
    const hb = this.host.timing.heartbeat;
    this.heartbeat = hb !== null && this.host.controlEnabled ? new HeartbeatMonitor(hb, now, this.session.counters.bytesIn) : null;
    this.idleFrames = -1;
    this.idleSince = now;
    this.partialFrames = -1;
    this.partialSince = now;
    this.host.scheduleCheck(this);
  }

  /** The connection is gone: nothing to watch until the next one. */
  stop(): void {
    this.heartbeat = null;
    this.host.cancelCheck(this);
  }

  /**
   * When this session next needs a look. Deadlines the monitor knows are
   * exact; what it learns by sampling counters (idle, an incomplete frame)
   * is sampled at a quarter of its timeout, so a timeout fires at most a
   * quarter late (the bound the host-wide sweep had).
   */
  nextCheckAt(now: number): number {
    const s = this.session;
    if (s.state === 'closed') return Infinity;
    if (s.state === 'closing') return s.closeDeadline !== 0 ? s.closeDeadline : Infinity;
    const t = this.host.timing;
    let at = Infinity;
    if (s.awaitingHello) at = Math.min(at, s.helloDeadline);
    const rel = s.rel;
    if (rel !== null && rel.handshake === 'pending') at = Math.min(at, s.transportSince + t.closeTimeoutMs);
    if (this.heartbeat !== null) at = Math.min(at, this.heartbeat.nextAt);
    if (t.idleTimeoutMs > 0) at = Math.min(at, this.idleSince + t.idleTimeoutMs, now + quarter(t.idleTimeoutMs));
    if (t.maxLifetimeMs > 0 && s.state === 'open') at = Math.min(at, s.transportSince + t.maxLifetimeMs);
    if (t.frameTimeoutMs > 0) at = Math.min(at, this.partialSince + t.frameTimeoutMs, now + quarter(t.frameTimeoutMs));
    if (rel !== null) {
      const replay = this.host.replay;
      if (replay !== null) at = Math.min(at, now + quarter(replay.maxReplayAgeMs));
      // Frames the engine refused wait for a drain; this is the fallback if none comes.
      if (rel.out.unwritten > 0) at = now + 1;
    }
    return at;
  }

  /** Runs the checks that are due; `partialBytes` is what the decoder holds of an incomplete frame. */
  check(now: number, partialBytes: number): void {
    const s = this.session;
    if (s.state === 'closing') {
      if (s.closeDeadline !== 0 && now >= s.closeDeadline) {
        s.closeDeadline = 0;
        s.closeWith('abort', { reason: s.pendingCloseReason?.reason ?? 'close-timeout' });
      }
      return;
    }
    if (s.state === 'closed') return;
    const t = this.host.timing;
    const rel = s.rel;
    if (rel !== null && rel.handshake === 'pending' && now - s.transportSince >= t.closeTimeoutMs) {
      // No answer to our RESUME_REQUEST: drop this connection; the reconnecting client tries again.
      s.closeWith('abort', { reason: 'handshake-timeout', code: 'ETIMEDOUT', message: `no answer to the resume request within ${t.closeTimeoutMs} ms` });
      return;
    }
    const hb = this.heartbeat;
    if (hb !== null && now >= hb.nextAt) {
      const paused = s.readPaused;
      const sent = paused ? (this.host.engine.connectionStats(s.connectionId)?.bytesOut ?? 0) : 0;
      const r = hb.tick(now, s.counters.bytesIn, sent, paused);
      if (r.changed !== undefined) s.setLiveness(r.changed);
      if (r.action === 'dead') {
        this.emitHeartbeat({ type: 'timeout', misses: hb.misses });
        s.closeWith('abort', {
          reason: 'heartbeat-timeout',
          code: 'ERR_HEARTBEAT_TIMEOUT',
          message: `no answer to ${hb.misses} heartbeat probes`,
        });
        return;
      }
      s.sendControl(ControlFrameId.Ping, encodePing(r.nonce));
      this.emitHeartbeat({ type: 'probe', nonce: r.nonce, misses: hb.misses, liveness: hb.liveness, nextIntervalMs: hb.intervalNowMs });
    }
    if (t.idleTimeoutMs > 0) {
      const frames = s.counters.framesIn + s.counters.framesOut;
      if (frames !== this.idleFrames) {
        this.idleFrames = frames;
        this.idleSince = now;
      } else if (now - this.idleSince >= t.idleTimeoutMs) {
        if (rel !== null) rel.final = true;
        s.goAwayAndClose(
          { reason: 'idle-timeout', reconnect: true, message: `no application frame for ${t.idleTimeoutMs} ms` },
          'idle-timeout',
          t.closeTimeoutMs,
          'ERR_IDLE_TIMEOUT',
        );
        return;
      }
    }
    if (t.maxLifetimeMs > 0 && now - s.transportSince >= t.maxLifetimeMs && s.state === 'open') {
      // A resumable session only rotates its connection: the peer may resume on a new one.
      s.goAwayAndClose(
        { reason: 'max-lifetime', reconnect: true, resume: rel !== null, message: `connection older than ${t.maxLifetimeMs} ms` },
        'max-lifetime',
        t.closeTimeoutMs,
      );
      return;
    }
    if (t.frameTimeoutMs > 0) {
      const frames = s.counters.framesIn + s.counters.controlIn;
      // While reading is paused the rest of a frame waits in the kernel by our choice: not a slowloris.
      if (partialBytes === 0 || frames !== this.partialFrames || s.readPaused) {
        this.partialFrames = frames;
        this.partialSince = now;
      } else if (now - this.partialSince >= t.frameTimeoutMs) {
        s.closeWith('abort', {
          reason: 'frame-timeout',
          code: 'ETIMEDOUT',
          message: `a frame stayed incomplete for ${t.frameTimeoutMs} ms (${partialBytes} bytes received of it)`,
        });
        return;
      }
    }
    if (rel !== null) {
      rel.expire(now);
      if (rel.out.unwritten > 0) rel.flush();
    }
  }

  /** A PONG arrived. */
  onPong(nonce: number, now: number): void {
    const hb = this.heartbeat;
    if (hb === null) return;
    const changed = hb.onPong(nonce, now);
    this.emitHeartbeat({ type: 'pong', nonce, rttMs: nonce === hb.lastNonce ? hb.rttMs : undefined });
    if (changed !== undefined) {
      this.session.setLiveness(changed);
      this.host.scheduleCheck(this);
    }
  }

  private emitHeartbeat(e: HeartbeatEvent): void {
    if (this.session.listenerCount('heartbeat') > 0) this.session.emit('heartbeat', e);
    this.host.relay('heartbeat', this.session, e);
  }
}

function quarter(ms: number): number {
  return Math.max(1, Math.floor(ms / 4));
}
