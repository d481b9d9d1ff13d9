import { FastPortError } from '@fastport/native-io';

/** Logical liveness from application heartbeats: active → suspect (missed probes) → dead. */
export type Liveness = 'active' | 'suspect' | 'dead';

export interface HeartbeatOptions {
  /** Probe period while the peer answers. Default 15,000 ms. */
  intervalMs?: number;
  /** Probe period once the session is suspect. Default intervalMs / 3 (at least 1 ms). */
  fastIntervalMs?: number;
  /** Consecutive misses that make the session 'suspect' and switch to fast probes. Default 3. */
  suspectAfterMisses?: number;
  /** Consecutive misses that close the session ('heartbeat-timeout'). Default 5. */
  maxMisses?: number;
}

export interface ResolvedHeartbeat {
  intervalMs: number;
  fastIntervalMs: number;
  suspectAfterMisses: number;
  maxMisses: number;
}

export const DEFAULT_HEARTBEAT: Readonly<ResolvedHeartbeat> = Object.freeze({
  intervalMs: 15_000,
  fastIntervalMs: 5_000,
  suspectAfterMisses: 3,
  maxMisses: 5,
});

export function resolveHeartbeat(options: HeartbeatOptions | true): ResolvedHeartbeat {
  const o: HeartbeatOptions = options === true ? {} : options;
  const intervalMs = o.intervalMs ?? DEFAULT_HEARTBEAT.intervalMs;
  const fastIntervalMs = o.fastIntervalMs ?? Math.max(1, Math.floor(intervalMs / 3));
  const suspectAfterMisses = o.suspectAfterMisses ?? DEFAULT_HEARTBEAT.suspectAfterMisses;
  const maxMisses = o.maxMisses ?? DEFAULT_HEARTBEAT.maxMisses;
  for (const [name, v] of Object.entries({ intervalMs, fastIntervalMs, suspectAfterMisses, maxMisses })) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `heartbeat.${name} must be a positive integer (got ${String(v)})`);
    }
  }
  if (suspectAfterMisses > maxMisses) {
    throw new FastPortError(
      'ERR_INVALID_ARGUMENT',
      `heartbeat.suspectAfterMisses (${suspectAfterMisses}) must not exceed maxMisses (${maxMisses})`,
    );
  }
  return { intervalMs, fastIntervalMs, suspectAfterMisses, maxMisses };
}

/** What the heartbeat reports through the session's 'heartbeat' event. */
export type HeartbeatEvent =
  | { type: 'probe'; nonce: number; misses: number; liveness: Liveness; nextIntervalMs: number }
  | { type: 'pong'; nonce: number; rttMs: number | undefined }
  | { type: 'timeout'; misses: number };

export interface HeartbeatTick {
  /** 'probe': send a PING with `nonce`; 'dead': close the session. */
  action: 'probe' | 'dead';
  nonce: number;
  /** The new liveness when it changed at this tick. */
  changed: Liveness | undefined;
}

/**
 * Progressive heartbeat (seed 003): a probe every interval; a probe interval
 * in which nothing at all arrived from the peer is a miss. Misses 1..(suspect-1)
 * are tolerated; at `suspectAfterMisses` the session turns 'suspect' and
 * probes come every `fastIntervalMs`; at `maxMisses` it is 'dead'.
 * Any received byte is evidence of life (a peer busy sending a backlog is
 * alive even if our PONG is queued behind it), and a PONG restores 'active'
 * at once. While the session does not read (read backpressure, a paused
 * frame loop) nothing can be received, so the kernel taking our queued bytes
 * counts instead: a peer that reads nothing and sends nothing still dies.
 * Pure state: the session feeds it the clock, its byte counters and whether
 * it reads.
 */
export class HeartbeatMonitor {
  readonly options: ResolvedHeartbeat;
  misses = 0;
  liveness: Liveness = 'active';
  nextAt: number;
  probes = 0;
  pongs = 0;
  rttMs: number | undefined;
  private nonce = 0;
  private lastProbeAt = 0;
  private bytesAtProbe: number;
  private sentAtProbe = 0;

  constructor(options: ResolvedHeartbeat, now: number, bytesIn: number) {
    this.options = options;
    this.nextAt = now + options.intervalMs;
    this.bytesAtProbe = bytesIn;
  }

  /**
   * Call when `now >= nextAt`. `bytesSent` is what the kernel has taken of
   * our sends so far; it counts only while `readPaused`: then the peer's
   * PONG (and everything else it sends) waits unread in the socket, and the
   * one sign of life left is the peer reading what we send. The session
   * passes 0 while it reads, so the first probe after reading stopped
   * always finds progress: a pause costs at most one more interval.
   */
  tick(now: number, bytesIn: number, bytesSent = 0, readPaused = false): HeartbeatTick {
    const o = this.options;
    const before = this.liveness;
    const heard = bytesIn !== this.bytesAtProbe;
    const readsUs = readPaused && bytesSent !== this.sentAtProbe;
    if (this.probes > 0 && !heard && !readsUs) this.misses++;
    else this.misses = 0;
    this.sentAtProbe = bytesSent;
    if (this.misses >= o.maxMisses) {
      this.liveness = 'dead';
      return { action: 'dead', nonce: this.nonce, changed: before === 'dead' ? undefined : 'dead' };
    }
    const suspect = this.misses >= o.suspectAfterMisses;
    this.liveness = suspect ? 'suspect' : 'active';
    this.nonce = (this.nonce + 1) >>> 0;
    this.probes++;
    this.bytesAtProbe = bytesIn;
    this.lastProbeAt = now;
    this.nextAt = now + (suspect ? o.fastIntervalMs : o.intervalMs);
    return { action: 'probe', nonce: this.nonce, changed: this.liveness === before ? undefined : this.liveness };
  }

  /** A PONG arrived. Returns the new liveness if it changed (suspect → active). */
  onPong(nonce: number, now: number): Liveness | undefined {
    this.pongs++;
    if (nonce === this.nonce && this.lastProbeAt > 0) this.rttMs = now - this.lastProbeAt;
    if (this.liveness === 'dead') return undefined;
    this.misses = 0;
    if (this.liveness === 'suspect') {
      this.liveness = 'active';
      this.nextAt = Math.min(this.nextAt, now + this.options.intervalMs);
      return 'active';
    }
    return undefined;
  }

  get intervalNowMs(): number {
    return this.liveness === 'suspect' ? this.options.fastIntervalMs : this.options.intervalMs;
  }

  get lastNonce(): number {
    return this.nonce;
  }
}
