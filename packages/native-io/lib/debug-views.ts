/**
 * Debug mode for received views (EngineOptions.debugViews or
 * FASTPORT_DEBUG_VIEWS=1). A native engine's onData view points into receive
 * memory that is reused once the batch is over, so a handler that keeps the
 * view past its call reads some other connection's bytes later, silently. In
 * this mode each view is a copy over its own ArrayBuffer, and every one of
 * them is detached (transferred away) when the batch ends: a kept view then
 * has byteLength 0, reads undefined, and its methods throw a TypeError.
 * Costs a copy per view: for development and tests, not production.
 */
import type { EngineOptions } from './types';

export function debugViewsEnabled(options: EngineOptions, env: NodeJS.ProcessEnv = process.env): boolean {
  if (options.debugViews !== undefined) return options.debugViews;
  const v = env['FASTPORT_DEBUG_VIEWS'];
  return v === '1' || v === 'true';
}

export class ViewPoisoner {
  private handedOut: ArrayBuffer[] = [];

  /** A copy of `src` as a Uint8Array over a buffer detached at the end of the batch. */
  view(src: Uint8Array): Uint8Array {
    const copy = new Uint8Array(src.byteLength);
    copy.set(src);
    this.handedOut.push(copy.buffer);
    return copy;
  }

  /** The same as a Buffer (for the node engine, whose views are Buffers). */
  buffer(src: Uint8Array): Buffer {
    const copy = Buffer.from(new ArrayBuffer(src.byteLength));
    copy.set(src);
    this.handedOut.push(copy.buffer as ArrayBuffer);
    return copy;
  }

  /** Detaches every buffer handed out since the last call. */
  endBatch(): void {
    if (this.handedOut.length === 0) return;
    const list = this.handedOut;
    this.handedOut = [];
    // Transferring a buffer detaches it where it was (Node 17+; ArrayBuffer.prototype.transfer is newer).
    structuredClone(list, { transfer: list });
  }
}
