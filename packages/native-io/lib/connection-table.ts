import type { ConnectionId } from './types';
import { MAX_GENERATION, SLOT_BITS, SLOT_COUNT } from './wire';

/** Low bits of a ConnectionId hold the slot; the generation sits above (see ConnectionId). */
export { SLOT_BITS };

export function slotOf(id: ConnectionId): number {
  return id % SLOT_COUNT;
}

export function generationOf(id: ConnectionId): number {
  return Math.floor(id / SLOT_COUNT);
}

export function makeConnectionId(slot: number, generation: number): ConnectionId {
  return generation * SLOT_COUNT + slot;
}

/**
 * Slots reused LIFO with a generation bumped on every release, so lookups of
 * stale ids miss. Used by the node engine; native engines keep the same
 * encoding in C++.
 */
export class ConnectionTable<T> {
  private readonly values: (T | undefined)[] = [];
  private readonly generations: number[] = [];
  private readonly free: number[] = [];
  private live = 0;

  get size(): number {
    return this.live;
  }

  add(value: T): ConnectionId {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.values.length;
      if (slot >= SLOT_COUNT) throw new RangeError('connection table full');
      this.values.push(undefined);
      this.generations.push(1);
    }
    this.values[slot] = value;
    this.live++;
    return makeConnectionId(slot, this.generations[slot] as number);
  }

  get(id: ConnectionId): T | undefined {
    if (!Number.isSafeInteger(id) || id <= 0) return undefined;
    const slot = slotOf(id);
    if (this.generations[slot] !== generationOf(id)) return undefined;
    return this.values[slot];
  }

  delete(id: ConnectionId): boolean {
    if (this.get(id) === undefined) return false;
    const slot = slotOf(id);
    this.values[slot] = undefined;
    const next = (this.generations[slot] as number) + 1;
    this.generations[slot] = next > MAX_GENERATION ? 1 : next;
    this.free.push(slot);
    this.live--;
    return true;
  }

  *entries(): IterableIterator<[ConnectionId, T]> {
    for (let slot = 0; slot < this.values.length; slot++) {
      const value = this.values[slot];
      if (value !== undefined) yield [makeConnectionId(slot, this.generations[slot] as number), value];
    }
  }
}
