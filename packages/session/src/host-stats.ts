import type { EngineStats } from '@fastport/native-io';
import type { MemoryBudgetStats } from './memory-budget';

export interface HostStats {
  engine: EngineStats;
  sessions: number;
  /** Resumable sessions waiting for a new connection. */
  detached: number;
  sessionsTotal: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  /** Application sends refused (backpressure, memory budget, replay buffer), whatever the policy. */
  refused: number;
  /** Sessions whose reading was paused by read backpressure (counted per pause). */
  readPauses: number;
  /** Sessions paused now. */
  readPaused: number;
  controlIn: number;
  controlOut: number;
  framingErrors: number;
  handlerErrors: number;
  /** Connections reset at accept because maxSessions was reached. */
  refusedConnections: number;
  closeReasons: Record<string, number>;
  memory: MemoryBudgetStats | null;
}

/**
 * @internal A host's running totals. Plain fields, bumped in place: several
 * sit on the per-frame path.
 */
export class HostTotals {
  sessionsTotal = 0;
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  dropped = 0;
  refused = 0;
  controlIn = 0;
  controlOut = 0;
  framingErrors = 0;
  handlerErrors = 0;
  refusedConnections = 0;
  readPauses = 0;
  /** Closes by reason name. */
  readonly closeReasons: Record<string, number> = {};

  countClose(reason: string): void {
    this.closeReasons[reason] = (this.closeReasons[reason] ?? 0) + 1;
  }

  /** A snapshot with what only the host knows now (engine figures, live and detached sessions, paused reads, the budget). */
  snapshot(now: Pick<HostStats, 'engine' | 'sessions' | 'detached' | 'readPaused' | 'memory'>): HostStats {
    return {
      engine: now.engine,
      sessions: now.sessions,
      detached: now.detached,
      sessionsTotal: this.sessionsTotal,
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      dropped: this.dropped,
      refused: this.refused,
      readPauses: this.readPauses,
      readPaused: now.readPaused,
      controlIn: this.controlIn,
      controlOut: this.controlOut,
      framingErrors: this.framingErrors,
      handlerErrors: this.handlerErrors,
      refusedConnections: this.refusedConnections,
      closeReasons: { ...this.closeReasons },
      memory: now.memory,
    };
  }
}
