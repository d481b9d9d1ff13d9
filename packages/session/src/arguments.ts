/**
 * Argument checks at the API boundary, with Node's error codes and classes,
 * so a wrong call fails where it is made and says what is expected (not deep
 * in the addon).
 */

export type ArgumentErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_SOCKET_BAD_PORT';

export interface ArgumentError extends Error {
  readonly code: ArgumentErrorCode;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '(anonymous)'}`;
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  let shown = String(value);
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${typeof value === 'string' ? `'${shown}'` : shown})`;
}

function withCode<E extends Error>(err: E, code: ArgumentErrorCode): E & ArgumentError {
  Object.defineProperty(err, 'code', { value: code, enumerable: true });
  err.name = `${err.name} [${code}]`;
  return err as E & ArgumentError;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError & ArgumentError {
  return withCode(new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`), 'ERR_INVALID_ARG_TYPE');
}

export function invalidArgValue(name: string, reason: string, actual: unknown): TypeError & ArgumentError {
  return withCode(new TypeError(`The argument '${name}' ${reason}. Received ${describe(actual)}`), 'ERR_INVALID_ARG_VALUE');
}

export function checkPort(name: string, port: unknown, allowZero: boolean): number {
  if (typeof port !== 'number') throw invalidArgType(name, 'of type number', port);
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw withCode(new RangeError(`${name} should be >= ${allowZero ? 0 : 1} and < 65536. Received ${describe(port)}`), 'ERR_SOCKET_BAD_PORT');
  }
  return port;
}

export function checkHost(name: string, host: unknown): string {
  if (typeof host !== 'string') throw invalidArgType(name, 'of type string', host);
  if (host.length === 0) throw invalidArgValue(name, 'must not be empty', host);
  return host;
}

export function checkObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgType(name, 'of type object', value);
  return value as Record<string, unknown>;
}
