/** Helpers that pair a message with its packet id, for code that does not use a Router. */

import { decodeMessage, encodeMessage, type MessageType, type PartialMessage } from './message-type';
import { ProtocolError, defaultRegistry, formatPacketId, type PacketRegistry } from './packet-ids';
import type { RouterSession } from './router';

/** An encoded packet: the id to put in the frame header and the protobuf payload. */
export interface EncodedPacket {
  readonly id: number;
  readonly payload: Uint8Array;
}

/** A decoded packet. */
export interface DecodedPacket<T = unknown> {
  readonly id: number;
  /** Registered name, e.g. `fastport.EchoRequest`. */
  readonly name: string;
  readonly type: MessageType<T>;
  /** The message; it does not alias the payload it was decoded from. */
  readonly message: T;
}

/**
 * Encodes `message` (partial allowed) as `type` and returns it with `type`'s
 * packet id. Throws `ProtocolError` `ERR_UNREGISTERED_TYPE` for a type the
 * registry does not have.
 */
export function encodePacket<T>(
  type: MessageType<T>,
  message: PartialMessage<T>,
  registry: PacketRegistry = defaultRegistry,
): EncodedPacket {
  const id = registry.idOf(type);
  return { id, payload: encodeMessage(type, message) };
}

/**
 * Decodes a received packet by its id. Throws `ProtocolError`
 * `ERR_UNKNOWN_PACKET_ID` for an unregistered id and `ERR_DECODE_FAILED`
 * (with the decoder's error as `cause`) for a malformed payload.
 */
export function decodePacket(
  packetId: number,
  payload: Uint8Array,
  registry: PacketRegistry = defaultRegistry,
): DecodedPacket {
  const def = registry.byId(packetId);
  if (def === undefined) {
    throw new ProtocolError('ERR_UNKNOWN_PACKET_ID', `unknown packet id ${formatPacketId(packetId)}`);
  }
  let message: unknown;
  try {
    message = decodeMessage(def.type, payload);
  } catch (error) {
    throw new ProtocolError(
      'ERR_DECODE_FAILED',
      `cannot decode packet ${formatPacketId(packetId)} as ${def.name}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return { id: def.id, name: def.name, type: def.type, message };
}

/**
 * Encodes `message` (partial allowed) as `type` and sends it on `session`
 * with `type`'s packet id; returns what `session.send` returns.
 */
export function send<S extends RouterSession, T>(
  session: S,
  type: MessageType<T>,
  message: PartialMessage<T>,
  registry: PacketRegistry = defaultRegistry,
): ReturnType<S['send']> {
  const id = registry.idOf(type);
  return session.send(encodeMessage(type, message), id) as ReturnType<S['send']>;
}
