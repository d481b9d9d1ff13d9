import { invalidArgType } from './arguments';

/**
 * What an aborted operation rejects with, as in Node (`events.once`,
 * `timers/promises`, `fetch`): name 'AbortError', code 'ABORT_ERR', and the
 * signal's `reason` as `cause`.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR' as const;

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** @internal The AbortError for `signal`, carrying its reason. */
export function abortErrorOf(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason });
}

/** @internal A `signal` option: undefined, or an AbortSignal (ERR_INVALID_ARG_TYPE otherwise). */
export function checkSignal(name: string, signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType(name, 'an instance of AbortSignal', signal);
  return signal;
}

/**
 * @internal Calls `onAbort` once if `signal` aborts; returns what removes the
 * listener (call it when the operation settles, so a long-lived signal does
 * not collect listeners).
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
