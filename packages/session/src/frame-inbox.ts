import { FastPortError } from '@fastport/native-io';
import type { Frame } from './framing';
import type { Session, SessionCloseInfo } from './session';

/** Default bytes a `for await` loop may fall behind before its session stops reading. */
export const DEFAULT_FRAMES_HIGH_WATER_MARK = 64 * 1024;

/** What a buffered frame costs beyond its bytes (the Frame object and its views). */
const FRAME_OVERHEAD_BYTES = 64;

/** Past this many high watermarks without a way to pause (an engine without pauseReceiving), the session is reset. */
const NO_PAUSE_LIMIT_FACTOR = 16;

export interface FramesOptions {
  /**
   * Bytes of received frames (plus a small per-frame overhead) kept for the
   * loop before the session stops reading; reading resumes when the loop
   * has taken the buffer down to half. Default 64 KiB.
   */
  highWaterMark?: number;
}

/** The error a `for await` loop over a session throws when the session closed abnormally. */
export interface SessionClosedError extends FastPortError {
  readonly closeInfo: SessionCloseInfo;
}

/**
 * @internal The frames of one session waiting for its `for await` loop.
 * Frames are copied (the engine's views die with the callback), buffered up
 * to the high watermark, and then the session's reading is paused, so a
 * slow loop costs a bounded buffer, not a growing one. One loop at a time.
 */
export class FrameInbox implements AsyncIterableIterator<Frame> {
  /** Buffered bytes, as counted against the high watermark. */
  bytes = 0;
  private readonly queue: Frame[] = [];
  private head = 0;
  private waiter: ((r: IteratorResult<Frame>) => void) | undefined;
  private failWaiter: ((err: Error) => void) | undefined;
  private ended = false;
  private error: Error | undefined;
  private readonly highWaterMark: number;

  constructor(
    private readonly session: Session,
    options: FramesOptions,
  ) {
    const hwm = options.highWaterMark ?? DEFAULT_FRAMES_HIGH_WATER_MARK;
    if (!Number.isSafeInteger(hwm) || hwm < 1) {
      throw Object.assign(new RangeError(`The "options.highWaterMark" argument must be a positive integer. Received ${String(options.highWaterMark)}`), {
        code: 'ERR_OUT_OF_RANGE',
      });
    }
    this.highWaterMark = hwm;
  }

  /** A frame arrived (its views are valid only now): keep a copy, pause the session's reading if the loop is behind. */
  push(frame: Frame): void {
    const bytes = frame.bytes.slice();
    const copy: Frame = { id: frame.id, payload: bytes.subarray(bytes.byteLength - frame.payload.byteLength), bytes };
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      this.failWaiter = undefined;
      waiter({ value: copy, done: false });
      return;
    }
    this.queue.push(copy);
    this.bytes += bytes.byteLength + FRAME_OVERHEAD_BYTES;
    if (this.bytes >= this.highWaterMark) {
      const flow = this.session.flow;
      flow.pauseForReader();
      if (!flow.readerPaused && this.bytes >= this.highWaterMark * NO_PAUSE_LIMIT_FACTOR) {
        this.session.closeWith('abort', {
          reason: 'backpressure',
          code: 'ERR_BACKPRESSURE',
          message: `the for-await loop fell ${this.bytes} bytes behind and reading cannot be paused on this engine`,
        });
      }
    }
  }

  /** The session closed for good: the loop gets what is buffered, then ends — or throws if the close was abnormal. */
  end(info: SessionCloseInfo, clean: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (!clean) this.error = closedError(this.session, info);
    if (this.waiter !== undefined) {
      const waiter = this.waiter;
      const fail = this.failWaiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      if (this.error !== undefined) fail?.(this.error);
      else waiter({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Frame>> {
    if (this.head < this.queue.length) {
      const frame = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Frame; // let the copy go
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      }
      this.bytes -= frame.bytes.byteLength + FRAME_OVERHEAD_BYTES;
      if (this.bytes <= this.highWaterMark / 2) this.session.flow.resumeForReader();
      return Promise.resolve({ value: frame, done: false });
    }
    if (this.ended) return this.finish();
    if (this.waiter !== undefined) return Promise.reject(invalidState('next() called again before the previous one settled'));
    this.session.flow.resumeForReader();
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  /** `break` (or return()): the loop stops; the session stays open and is read again. */
  return(): Promise<IteratorResult<Frame>> {
    this.detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err?: unknown): Promise<IteratorResult<Frame>> {
    this.detach();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Frame> {
    return this;
  }

  private finish(): Promise<IteratorResult<Frame>> {
    const err = this.error;
    this.detach();
    if (err !== undefined) {
      this.error = undefined;
      return Promise.reject(err);
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  private detach(): void {
    this.queue.length = 0;
    this.head = 0;
    this.bytes = 0;
    this.ended = true;
    if (this.waiter !== undefined) {
      const waiter = this.waiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      waiter({ value: undefined, done: true });
    }
    if (this.session.inbox === this) this.session.inbox = null;
    this.session.flow.resumeForReader();
  }
}

function closedError(session: Session, info: SessionCloseInfo): SessionClosedError {
  const err = new FastPortError(
    info.code ?? 'ERR_CONN_CLOSED',
    `session ${session.id} closed (${info.reason})${info.message !== undefined ? `: ${info.message}` : ''}`,
  );
  return Object.assign(err, { closeInfo: info });
}

function invalidState(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_INVALID_STATE' });
}

/** @internal The error for a second loop while one runs. */
export function loopRunningError(session: Session): Error {
  return invalidState(`session ${session.id} is already being iterated: one for-await loop at a time`);
}
