import type { EventEmitter } from 'node:events';

type Listener = (...args: never[]) => unknown;

/**
 * The listeners of one hot event, called directly. `emitter.emit()` takes its
 * arguments as a rest array and copies the listener list on every call; for
 * the per-frame event that was an allocation and a megamorphic call per frame.
 * This keeps a snapshot of `rawListeners(event)` (once-wrappers included, so
 * `once` still removes itself), refreshed lazily after any listener change.
 * Semantics are emit()'s: listeners run in order, with the emitter as `this`,
 * and the first one that throws stops the rest and the error propagates.
 */
export class ListenerCache<A, B> {
  private snapshot: readonly Listener[] = [];
  private stale = true;
  private readonly invalidate: (name: string | symbol) => void;

  constructor(
    private readonly emitter: EventEmitter,
    private readonly event: string,
  ) {
    // The hooks themselves can be removed (removeAllListeners()): any change
    // to them also marks the snapshot stale, and a refresh puts them back.
    this.invalidate = (name) => {
      if (name === event || name === 'newListener' || name === 'removeListener') this.stale = true;
    };
  }

  private refresh(): void {
    const emitter = this.emitter;
    const hooks = emitter.listeners('newListener');
    if (!hooks.includes(this.invalidate)) emitter.on('newListener', this.invalidate);
    if (!emitter.listeners('removeListener').includes(this.invalidate)) emitter.on('removeListener', this.invalidate);
    this.snapshot = emitter.rawListeners(this.event) as Listener[];
    this.stale = false;
  }

  /** Calls every listener with (a, b); false when there is none. */
  call(a: A, b: B): boolean {
    if (this.stale) this.refresh();
    const list = this.snapshot;
    const n = list.length;
    if (n === 0) return false;
    const emitter = this.emitter;
    if (n === 1) {
      (list[0] as (this: EventEmitter, a: A, b: B) => unknown).call(emitter, a, b);
      return true;
    }
    for (let i = 0; i < n; i++) (list[i] as (this: EventEmitter, a: A, b: B) => unknown).call(emitter, a, b);
    return true;
  }
}
