import type { SocketOptions } from './types';

/**
 * The socket options out of a listen/connect options object, leaving out
 * absent fields so a spread over the engine's defaults keeps those defaults.
 */
export function pickSocketOptions(options: SocketOptions): SocketOptions {
  const out: SocketOptions = {};
  if (options.noDelay !== undefined) out.noDelay = options.noDelay;
  if (options.keepAlive !== undefined) out.keepAlive = options.keepAlive;
  if (options.userTimeoutMs !== undefined) out.userTimeoutMs = options.userTimeoutMs;
  if (options.sendBufferSize !== undefined) out.sendBufferSize = options.sendBufferSize;
  if (options.receiveBufferSize !== undefined) out.receiveBufferSize = options.receiveBufferSize;
  return out;
}
