declare const sessionIdBrand: unique symbol;
declare const connectionIdBrand: unique symbol;

/**
 * A session's stable id (its first connection's id; ids are never reused in
 * a process). Branded: a plain number, or a ConnectionId, is not a SessionId
 * to the compiler, so the two cannot be mixed up (a resumed session's
 * connection id differs from its id).
 */
export type SessionId = number & { readonly [sessionIdBrand]: true };

/** The id of the connection under a session now (changes when a session resumes; 0 while it has none). Branded as SessionId is. */
export type ConnectionId = number & { readonly [connectionIdBrand]: true };

/**
 * A SessionId from a number that came from outside the type system (an admin
 * request, a log line, a persisted record): checked to be a positive safe
 * integer. Whether a session with that id exists is `sessions.get(id)`'s answer.
 */
export function toSessionId(value: number): SessionId {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw Object.assign(new RangeError(`The "value" argument must be a positive safe integer (a session id). Received ${String(value)}`), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  return value as SessionId;
}
