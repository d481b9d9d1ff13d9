/**
 * Stable error codes. OS errors keep their POSIX names on every platform
 * (Windows WSA codes are mapped onto them); framework errors start with ERR_.
 */
export const OS_ERROR_CODES = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'EACCES',
  'EPERM',
  'EMFILE',
  'ENFILE',
  'ENOBUFS',
  'ENOMEM',
  'EINVAL',
  'EIO',
  'ENOTCONN',
  'ENOTFOUND',
  'ENOSYS',
  'EOPNOTSUPP',
  'EUNKNOWN',
] as const;

export const FRAMEWORK_ERROR_CODES = [
  'ERR_CONN_CLOSED',
  'ERR_SEND_REFUSED',
  'ERR_ENGINE_UNAVAILABLE',
  'ERR_ENGINE_DESTROYED',
  'ERR_INVALID_ARGUMENT',
  'ERR_FRAME_TOO_LARGE',
  'ERR_FRAME_MALFORMED',
  'ERR_CONNECT_TIMEOUT',
  'ERR_HEARTBEAT_TIMEOUT',
  'ERR_IDLE_TIMEOUT',
  'ERR_BACKPRESSURE',
] as const;

export type OsErrorCode = (typeof OS_ERROR_CODES)[number];
export type FrameworkErrorCode = (typeof FRAMEWORK_ERROR_CODES)[number];
export type ErrorCode = OsErrorCode | FrameworkErrorCode;

const KNOWN = new Set<string>([...OS_ERROR_CODES, ...FRAMEWORK_ERROR_CODES]);

export class FastPortError extends Error {
  readonly code: ErrorCode;
  /** The OS error number when the error came from the kernel. */
  readonly errno: number | undefined;

  constructor(code: ErrorCode, message: string, errno?: number) {
    super(message);
    this.name = 'FastPortError';
    this.code = code;
    this.errno = errno;
  }
}

/** Maps any error (node:net's, the addon's) onto a stable code. */
export function toErrorCode(err: unknown): ErrorCode {
  if (err instanceof FastPortError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (KNOWN.has(code)) return code as ErrorCode;
    if (code === 'ERR_SOCKET_CONNECTION_TIMEOUT') return 'ETIMEDOUT';
    if (code === 'EAI_AGAIN' || code === 'EAI_NONAME') return 'ENOTFOUND';
  }
  return 'EUNKNOWN';
}

export function toFastPortError(err: unknown): FastPortError {
  if (err instanceof FastPortError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const errno = (err as { errno?: unknown } | null)?.errno;
  return new FastPortError(toErrorCode(err), message, typeof errno === 'number' ? errno : undefined);
}
