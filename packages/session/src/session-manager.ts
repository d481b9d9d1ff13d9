import type { SessionId } from './ids';
import type { Session, SendResult } from './session';

/**
 * The live sessions of one host, by id. JS runs handlers on one thread, so
 * there is no lock to partition; lookups are a Map hit on the hot path.
 */
export class SessionManager implements Iterable<Session> {
  private readonly byId = new Map<SessionId, Session>();

  get size(): number {
    return this.byId.size;
  }

  add(session: Session): void {
    this.byId.set(session.id, session);
  }

  delete(session: Session): boolean {
    return this.byId.get(session.id) === session && this.byId.delete(session.id);
  }

  /** The session with this id, or undefined if it closed (ids are never reused). */
  get(id: SessionId): Session | undefined {
    return this.byId.get(id);
  }

  [Symbol.iterator](): Iterator<Session> {
    return this.byId.values();
  }

  /** Sends to every open session (or those `filter` keeps); returns how many accepted it. */
  broadcast(payload: Uint8Array, packetId = 0, filter?: (session: Session) => boolean): number {
    let accepted = 0;
    for (const session of this.byId.values()) {
      if (filter !== undefined && !filter(session)) continue;
      let result: SendResult;
      try {
        result = session.trySend(payload, packetId);
      } catch {
        continue; // over its limit under policy 'reject': skip this one, reach the rest
      }
      if (result === 'queued' || result === 'high-water') accepted++;
    }
    return accepted;
  }
}
