/**
 * A typed packet router: `router.on(EchoRequest, (session, msg) => ...)`.
 *
 * It knows nothing of sockets or framing: whoever owns the connection (e.g.
 * @fastport/session) calls `router.dispatch(session, packetId, payload)` for
 * each received frame, and the router decodes the payload with the message
 * type registered under the id and calls the handler. `dispatch` never
 * throws: unknown ids, undecodable payloads and failing handlers are answered
 * with an `ErrorResponse` (or close the session, or are ignored, per option).
 */

import { ErrorResponse } from './generated/tests';
import { ResultCode } from './generated/commons';
import { decodeMessage, encodeMessage, type MessageType, type PartialMessage } from './message-type';
import {
  PacketId,
  ProtocolError,
  defaultRegistry,
  formatPacketId,
  type PacketDefinition,
  type PacketRegistry,
} from './packet-ids';

/** What the router needs of a session (a connection). */
export interface RouterSession {
  readonly id: number;
  /** Sends one packet: `payload` is the encoded message, `packetId` its id. */
  send(payload: Uint8Array, packetId: number): unknown;
  close(reason?: string): void;
}

/** A handler: gets the session and the decoded message (a copy it may keep). */
export type Handler<S, T> = (session: S, message: T, packetId: number) => unknown;

/** What to do with a packet whose id is not registered, or has no handler. */
export type UnknownPacketPolicy = 'reply' | 'close' | 'ignore';
/** What to do with a payload the registered type cannot decode. */
export type DecodeErrorPolicy = 'reply' | 'close' | 'ignore';
/** What to do when a handler throws or its promise rejects. */
export type HandlerErrorPolicy = 'reply' | 'close' | 'ignore';

/**
 * Outcome of one `dispatch`:
 * - `handled`: the handler ran and returned (not a promise);
 * - `pending`: the handler returned a promise (its outcome is counted when it settles);
 * - `unknown`: no packet is registered under the id;
 * - `unhandled`: the id is registered but no handler is installed for it;
 * - `decode_error`: the payload is not a valid message of the registered type;
 * - `handler_error`: the handler threw.
 */
export type DispatchResult = 'handled' | 'pending' | 'unknown' | 'unhandled' | 'decode_error' | 'handler_error';

/** Kinds of problems reported to `onError`. */
export type RouterErrorKind = 'unknown' | 'unhandled' | 'decode' | 'handler' | 'send';

export interface RouterErrorEvent<S extends RouterSession = RouterSession> {
  readonly kind: RouterErrorKind;
  readonly session: S;
  readonly packetId: number;
  /** Registered name of the packet, when the id is registered. */
  readonly name: string | undefined;
  /** The decode error, the handler's error, or the error of a failed send/close. */
  readonly error: unknown;
  /** What the router did about it. */
  readonly action: 'reply' | 'close' | 'ignore';
}

export interface RouterOptions<S extends RouterSession = RouterSession> {
  /** Packet ids ⇄ message types. Default: `defaultRegistry` (the built-in packets). */
  registry?: PacketRegistry;
  /** Unknown id or no handler. Default `'reply'`: ErrorResponse{UNKNOWN_PACKET, packetId}. */
  onUnknown?: UnknownPacketPolicy;
  /** Undecodable payload. Default `'reply'`: ErrorResponse{DECODE_ERROR, packetId}. */
  onDecodeError?: DecodeErrorPolicy;
  /** Handler threw / rejected. Default `'reply'`: ErrorResponse{INTERNAL, packetId}. */
  onHandlerError?: HandlerErrorPolicy;
  /**
   * Put the handler's error message in the ErrorResponse sent to the peer
   * (default false: the peer only learns that the handler failed).
   */
  exposeHandlerErrors?: boolean;
  /** Called for every problem (after the policy's action). Exceptions thrown by it are swallowed. */
  onError?: (event: RouterErrorEvent<S>) => void;
}

/** Counters per outcome; `router.stats` is live, `resetStats()` zeroes it. */
export interface RouterStats {
  /** `dispatch` calls. */
  dispatched: number;
  /** Handlers that returned (sync) or resolved (async). */
  handled: number;
  /** Async handlers not settled yet. */
  pending: number;
  unknown: number;
  unhandled: number;
  decodeErrors: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** ErrorResponse packets sent. */
  errorReplies: number;
  /** Sessions closed by the router's policies. */
  closed: number;
  /** Failed `session.send` / `session.close` calls made by the router itself. */
  sendErrors: number;
}

interface Route<S> {
  readonly def: PacketDefinition<any>;
  readonly handler: Handler<S, any>;
}

function newStats(): RouterStats {
  return {
    dispatched: 0,
    handled: 0,
    pending: 0,
    unknown: 0,
    unhandled: 0,
    decodeErrors: 0,
    handlerErrors: 0,
    errorReplies: 0,
    closed: 0,
    sendErrors: 0,
  };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

export class Router<S extends RouterSession = RouterSession> {
  readonly registry: PacketRegistry;
  readonly stats: RouterStats = newStats();

  private readonly routes = new Map<number, Route<S>>();
  private readonly onUnknown: UnknownPacketPolicy;
  private readonly onDecodeError: DecodeErrorPolicy;
  private readonly onHandlerError: HandlerErrorPolicy;
  private readonly exposeHandlerErrors: boolean;
  private readonly errorHook: ((event: RouterErrorEvent<S>) => void) | undefined;
  private readonly errorResponseId: number;

  constructor(options: RouterOptions<S> = {}) {
    this.registry = options.registry ?? defaultRegistry;
    this.onUnknown = options.onUnknown ?? 'reply';
    this.onDecodeError = options.onDecodeError ?? 'reply';
    this.onHandlerError = options.onHandlerError ?? 'reply';
    this.exposeHandlerErrors = options.exposeHandlerErrors ?? false;
    this.errorHook = options.onError;
    this.errorResponseId = this.registry.byType(ErrorResponse)?.id ?? PacketId.ErrorResponse;
  }

  /**
   * Installs the handler for `type` (which must be registered). Throws
   * `ProtocolError` `ERR_UNREGISTERED_TYPE`, or `ERR_DUPLICATE_HANDLER` when
   * the type already has one (use `off` first to replace it).
   */
  on<T>(type: MessageType<T>, handler: Handler<S, T>): this {
    const def = this.registry.byType(type);
    if (def === undefined) {
      // idOf throws the ERR_UNREGISTERED_TYPE error with the type's name.
      this.registry.idOf(type);
      throw new ProtocolError('ERR_UNREGISTERED_TYPE', 'message type is not registered');
    }
    if (this.routes.has(def.id)) {
      throw new ProtocolError('ERR_DUPLICATE_HANDLER', `${def.name} (${formatPacketId(def.id)}) already has a handler`);
    }
    this.routes.set(def.id, { def, handler: handler as Handler<S, any> });
    return this;
  }

  /** Removes the handler of `type`; true when there was one. */
  off(type: MessageType<any>): boolean {
    const def = this.registry.byType(type);
    return def !== undefined && this.routes.delete(def.id);
  }

  /** Whether `type` has a handler. */
  handles(type: MessageType<any>): boolean {
    const def = this.registry.byType(type);
    return def !== undefined && this.routes.has(def.id);
  }

  /**
   * Routes one received packet. `payload` may be a view that is only valid
   * during this call: the decoded message never aliases it. Never throws.
   */
  dispatch(session: S, packetId: number, payload: Uint8Array): DispatchResult {
    this.stats.dispatched++;
    const route = this.routes.get(packetId);
    if (route === undefined) {
      const def = this.registry.byId(packetId);
      if (def === undefined) {
        this.stats.unknown++;
        this.fail(session, 'unknown', packetId, undefined, undefined, this.onUnknown, ResultCode.UNKNOWN_PACKET,
          `unknown packet id ${formatPacketId(packetId)}`);
        return 'unknown';
      }
      this.stats.unhandled++;
      this.fail(session, 'unhandled', packetId, def.name, undefined, this.onUnknown, ResultCode.UNKNOWN_PACKET,
        `no handler for packet ${formatPacketId(packetId)} (${def.name})`);
      return 'unhandled';
    }

    let message: unknown;
    try {
      message = decodeMessage(route.def.type, payload);
    } catch (error) {
      this.stats.decodeErrors++;
      this.fail(session, 'decode', packetId, route.def.name, error, this.onDecodeError, ResultCode.DECODE_ERROR,
        `cannot decode packet ${formatPacketId(packetId)} as ${route.def.name}: ${errorText(error)}`);
      return 'decode_error';
    }

    let returned: unknown;
    try {
      returned = route.handler(session, message, packetId);
    } catch (error) {
      this.handlerFailed(session, route.def, error);
      return 'handler_error';
    }
    if (isPromiseLike(returned)) {
      this.stats.pending++;
      returned.then(
        () => {
          this.stats.pending--;
          this.stats.handled++;
        },
        (error: unknown) => {
          this.stats.pending--;
          this.handlerFailed(session, route.def, error);
        },
      );
      return 'pending';
    }
    this.stats.handled++;
    return 'handled';
  }

  /**
   * Encodes `message` (partial allowed: missing fields take their defaults)
   * as `type` and sends it on `session` with `type`'s packet id. Returns what
   * `session.send` returns. Throws `ERR_UNREGISTERED_TYPE` for an unregistered type.
   */
  send<T>(session: S, type: MessageType<T>, message: PartialMessage<T>): ReturnType<S['send']> {
    const id = this.registry.idOf(type);
    return session.send(encodeMessage(type, message), id) as ReturnType<S['send']>;
  }

  /** Same as `send`; reads better inside a handler. */
  reply<T>(session: S, type: MessageType<T>, message: PartialMessage<T>): ReturnType<S['send']> {
    return this.send(session, type, message);
  }

  /** Sets every counter of `stats` back to 0 except `pending`. */
  resetStats(): void {
    const pending = this.stats.pending;
    Object.assign(this.stats, newStats(), { pending });
  }

  private handlerFailed(session: S, def: PacketDefinition<any>, error: unknown): void {
    this.stats.handlerErrors++;
    const text = this.exposeHandlerErrors
      ? `handler for ${def.name} (${formatPacketId(def.id)}) failed: ${errorText(error)}`
      : `internal error handling ${def.name} (${formatPacketId(def.id)})`;
    this.fail(session, 'handler', def.id, def.name, error, this.onHandlerError, ResultCode.INTERNAL, text);
  }

  private fail(
    session: S,
    kind: Exclude<RouterErrorKind, 'send'>,
    packetId: number,
    name: string | undefined,
    error: unknown,
    policy: 'reply' | 'close' | 'ignore',
    code: ResultCode,
    text: string,
  ): void {
    let action = policy;
    // Never answer an ErrorResponse with an ErrorResponse: two routers would
    // bounce errors at each other forever.
    if (action === 'reply' && packetId === this.errorResponseId) action = 'ignore';

    if (action === 'reply') {
      try {
        const payload = ErrorResponse.encode({ code, message: text, packetId }).finish();
        session.send(payload, this.errorResponseId);
        this.stats.errorReplies++;
      } catch (sendError) {
        this.stats.sendErrors++;
        this.report({ kind: 'send', session, packetId, name, error: sendError, action: 'ignore' });
      }
    } else if (action === 'close') {
      try {
        session.close(text);
        this.stats.closed++;
      } catch (closeError) {
        this.stats.sendErrors++;
        this.report({ kind: 'send', session, packetId, name, error: closeError, action: 'ignore' });
      }
    }
    this.report({ kind, session, packetId, name, error, action });
  }

  private report(event: RouterErrorEvent<S>): void {
    if (this.errorHook === undefined) return;
    try {
      this.errorHook(event);
    } catch {
      // A failing hook must not break dispatch.
    }
  }
}
