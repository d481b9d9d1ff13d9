import { FastPortError } from './errors';
import type { EngineOptions } from './types';

export interface EngineLimits {
  maxPendingBytes: number;
  highWaterMark: number;
  lowWaterMark: number;
}

export const DEFAULT_MAX_PENDING_BYTES = 10 * 1024 * 1024;
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_LOW_WATER_MARK = 256 * 1024;

/** Fills defaults and rejects inconsistent limits up front, not on the first send. */
export function resolveEngineLimits(options: EngineOptions): EngineLimits {
  const maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
  // Defaults keep high below the limit, so a sender always sees AboveHighWater (and later onDrain) before Refused.
  const highWaterMark = options.highWaterMark ?? Math.min(DEFAULT_HIGH_WATER_MARK, Math.floor(maxPendingBytes / 2));
  const lowWaterMark = options.lowWaterMark ?? Math.min(DEFAULT_LOW_WATER_MARK, Math.floor(highWaterMark / 4));
  for (const [name, value] of Object.entries({ maxPendingBytes, highWaterMark, lowWaterMark })) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${value}`);
    }
  }
  if (!(lowWaterMark <= highWaterMark && highWaterMark <= maxPendingBytes)) {
    throw new FastPortError(
      'ERR_INVALID_ARGUMENT',
      `need lowWaterMark <= highWaterMark <= maxPendingBytes, got ${lowWaterMark}, ${highWaterMark}, ${maxPendingBytes}`,
    );
  }
  return { maxPendingBytes, highWaterMark, lowWaterMark };
}
