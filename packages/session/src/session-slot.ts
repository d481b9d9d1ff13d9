import type { ConnectionId, FastPortError } from '@fastport/native-io';
import type { Frame, FrameDecoder } from './framing';
import type { MemoryBudget } from './memory-budget';
import type { Session } from './session';

/** @internal One connection's decoding state. */
export interface SessionSlot {
  conn: ConnectionId;
  session: Session;
  decoder: FrameDecoder;
  /** Reassembly bytes charged to the memory budget. */
  reserved: number;
  closing: boolean;
  /** Closed by the memory budget: its queue no longer counts. */
  evicted: boolean;
  onFrame: (frame: Frame) => void;
  onError: (err: FastPortError) => void;
}

/** @internal Bytes a decoder holds for an incomplete frame: what its peer really sent (up to 2x), never the declared length. */
export function reassemblyBytes(d: FrameDecoder): number {
  return d.heldBytes;
}

/** @internal Input of a closing connection is discarded: free what its decoder holds now, not at the close. */
export function stopReading(slot: SessionSlot, budget: MemoryBudget | null): void {
  slot.closing = true;
  slot.decoder.reset();
  if (slot.reserved > 0) {
    budget?.release(slot.reserved);
    slot.reserved = 0;
  }
}
