import type { ConnectionId, Engine } from '@fastport/native-io';
import type { BudgetHolder, BudgetMember, MemoryBudget } from './memory-budget';
import type { Session } from './session';
import { reassemblyBytes, stopReading, type SessionSlot } from './session-slot';

/** @internal What the memory accounting reads of its host. */
export interface MemoryHost {
  readonly engine: Engine;
  readonly budget: MemoryBudget | null;
  readonly slots: ReadonlyMap<ConnectionId, SessionSlot>;
  readonly detached: ReadonlySet<Session>;
}

/**
 * @internal A host's membership in the memory budget: what its sessions
 * hold (send queues as the engine holds them, reassembly, replay buffers),
 * who holds the most, and closing those when the budget is full.
 */
export class HostMemory implements BudgetMember {
  constructor(private readonly host: MemoryHost) {}

  /** Bytes this session holds now (its queue, reassembly and replay buffer): what the memory budget weighs it by. */
  heldBy(session: Session): number {
    const slot = this.host.slots.get(session.connectionId);
    const kept = (session.rel !== null ? session.rel.out.bytes : 0) + (session.inbox !== null ? session.inbox.bytes : 0);
    if (slot === undefined || slot.evicted) return kept;
    return this.host.engine.heldBytes(slot.conn) + slot.reserved + kept;
  }

  sessionCount(): number {
    return this.host.slots.size + this.host.detached.size;
  }

  holders(minBytes: number): BudgetHolder[] {
    const out: BudgetHolder[] = [];
    for (const slot of this.host.slots.values()) {
      const session = slot.session;
      if (slot.evicted || session.connectionId !== slot.conn || session.state === 'closed') continue;
      const bytes = this.heldBy(session);
      if (bytes <= minBytes) continue;
      out.push({ bytes, evict: (message: string) => this.evict(slot, message) });
    }
    return out;
  }

  /** Bytes held now (send-queue memory as the engine holds it, reassembly, replay buffers): what the memory budget counts. */
  memoryUsage(): number {
    let total = 0;
    const engine = this.host.engine;
    for (const slot of this.host.slots.values()) {
      const r = slot.closing ? 0 : reassemblyBytes(slot.decoder);
      slot.reserved = r;
      if (slot.evicted) continue;
      total += engine.heldBytes(slot.conn) + r;
      const session = slot.session;
      if (session.connectionId !== slot.conn) continue;
      if (session.rel !== null) total += session.rel.out.bytes;
      if (session.inbox !== null) total += session.inbox.bytes;
    }
    for (const s of this.host.detached) if (s.connectionId === 0 && s.rel !== null) total += s.rel.out.bytes;
    return total;
  }

  /** Closes a session that holds the most of a full budget; returns what leaves the budget now. */
  private evict(slot: SessionSlot, message: string): number {
    const session = slot.session;
    const queued = this.host.engine.heldBytes(slot.conn);
    slot.evicted = true;
    stopReading(slot, this.host.budget); // gives its reassembly bytes back itself
    if (session.rel !== null) session.rel.final = true; // its replay buffer is given back when it ends
    session.closeWith('abort', { reason: 'memory-budget', code: 'ENOBUFS', message });
    return queued;
  }
}
