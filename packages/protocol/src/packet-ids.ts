/**
 * Packet ids and the registry that maps them to message types.
 *
 * A FastPort packet on the wire is `[u16 size][u16 packet id][protobuf payload]`
 * (framing is done by @fastport/session); the id says which message the
 * payload is. Ids are 16-bit and 0 is reserved (never a valid packet id).
 *
 * | range           | what                                              |
 * |-----------------|---------------------------------------------------|
 * | 0x0001..0x0FFF  | core / tests: ping, echo, error reply             |
 * | 0x1000..0x1FFF  | benchmark (0x1001/0x1002 are FastPort's own ids)  |
 * | 0x2000..0x2FFF  | admin channel: server status, session list        |
 * | 0x3000..0x3FFF  | our own: chat, heartbeat, resume                  |
 * | 0x8000..0xFEFF  | free for applications                             |
 * | 0xFF00..0xFF0F  | reserved: @fastport/session control frames         |
 * | 0xFF10..0xFFFF  | free for applications                             |
 */

import { ServerStatusRequest, ServerStatusResponse, SessionListRequest, SessionListResponse } from './generated/admin';
import { BenchmarkEnd, BenchmarkRequest, BenchmarkResponse, BenchmarkStart } from './generated/benchmark';
import { Ack, ChatMessage, Heartbeat, HeartbeatAck, ResumeRequest, ResumeResponse } from './generated/chat';
import { EchoRequest, EchoResponse, ErrorResponse, PingRequest, PingResponse } from './generated/tests';
import type { MessageType } from './message-type';

/** The packet ids of the built-in messages. */
export const PacketId = {
  PingRequest: 0x0001,
  PingResponse: 0x0002,
  EchoRequest: 0x0003,
  EchoResponse: 0x0004,
  ErrorResponse: 0x000f,

  BenchmarkRequest: 0x1001,
  BenchmarkResponse: 0x1002,
  BenchmarkStart: 0x1003,
  BenchmarkEnd: 0x1004,

  ServerStatusRequest: 0x2001,
  ServerStatusResponse: 0x2002,
  SessionListRequest: 0x2003,
  SessionListResponse: 0x2004,

  ChatMessage: 0x3001,
  Heartbeat: 0x3002,
  HeartbeatAck: 0x3003,
  ResumeRequest: 0x3004,
  ResumeResponse: 0x3005,
  Ack: 0x3006,
} as const;

export type PacketName = keyof typeof PacketId;

/** Smallest and largest valid packet id (the id is a u16 on the wire; 0 is reserved). */
export const MIN_PACKET_ID = 0x0001;
export const MAX_PACKET_ID = 0xffff;

/** The built-in message types, by the same names as `PacketId`. */
export const Messages = {
  PingRequest,
  PingResponse,
  EchoRequest,
  EchoResponse,
  ErrorResponse,
  BenchmarkRequest,
  BenchmarkResponse,
  BenchmarkStart,
  BenchmarkEnd,
  ServerStatusRequest,
  ServerStatusResponse,
  SessionListRequest,
  SessionListResponse,
  ChatMessage,
  Heartbeat,
  HeartbeatAck,
  ResumeRequest,
  ResumeResponse,
  Ack,
} as const satisfies { readonly [K in PacketName]: MessageType<any> };

export type ProtocolErrorCode =
  | 'ERR_INVALID_PACKET_ID'
  | 'ERR_INVALID_MESSAGE_TYPE'
  | 'ERR_DUPLICATE_PACKET_ID'
  | 'ERR_DUPLICATE_PACKET_TYPE'
  | 'ERR_DUPLICATE_PACKET_NAME'
  | 'ERR_UNREGISTERED_TYPE'
  | 'ERR_UNKNOWN_PACKET_ID'
  | 'ERR_DECODE_FAILED'
  | 'ERR_REGISTRY_FROZEN'
  | 'ERR_DUPLICATE_HANDLER';

/** Error thrown by the registry and the helpers; `code` is stable, the message is for people. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/** `0x1001` style rendering of a packet id. */
export function formatPacketId(id: number): string {
  return `0x${id.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** One registered packet: its id, its name and the type that encodes and decodes it. */
export interface PacketDefinition<T = unknown> {
  readonly id: number;
  readonly name: string;
  readonly type: MessageType<T>;
}

export function isValidPacketId(id: number): boolean {
  return Number.isInteger(id) && id >= MIN_PACKET_ID && id <= MAX_PACKET_ID;
}

function isMessageType(value: unknown): value is MessageType<unknown> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const t = value as Record<string, unknown>;
  return typeof t['encode'] === 'function' && typeof t['decode'] === 'function' && typeof t['fromPartial'] === 'function';
}

/**
 * Two-way map between packet ids and message types. An id maps to one type
 * and a type to one id; names (the protobuf full name by default) are unique.
 */
export class PacketRegistry implements Iterable<PacketDefinition> {
  private readonly ids = new Map<number, PacketDefinition<any>>();
  private readonly types = new Map<MessageType<any>, PacketDefinition<any>>();
  private readonly names = new Map<string, PacketDefinition<any>>();
  private frozen = false;

  /** A registry holding `definitions` (e.g. `[[EchoRequest, 3], ...]` or another registry's entries). */
  constructor(definitions?: Iterable<readonly [MessageType<any>, number, string?] | PacketDefinition<any>>) {
    if (definitions) {
      for (const d of definitions) {
        if (Array.isArray(d)) this.register(d[0] as MessageType<any>, d[1] as number, d[2] as string | undefined);
        else {
          const def = d as PacketDefinition<any>;
          this.register(def.type, def.id, def.name);
        }
      }
    }
  }

  /**
   * Registers `type` under packet `id`. `name` defaults to the type's
   * `$type` (e.g. `fastport.EchoRequest`), else `packet 0x....`.
   * Throws a `ProtocolError`: `ERR_INVALID_PACKET_ID` (not an integer in
   * 1..0xFFFF), `ERR_INVALID_MESSAGE_TYPE`, `ERR_DUPLICATE_PACKET_ID`,
   * `ERR_DUPLICATE_PACKET_TYPE`, `ERR_DUPLICATE_PACKET_NAME`, `ERR_REGISTRY_FROZEN`.
   */
  register<T>(type: MessageType<T>, id: number, name?: string): PacketDefinition<T> {
    if (this.frozen) {
      throw new ProtocolError('ERR_REGISTRY_FROZEN', 'this packet registry is frozen; clone() it to add packets');
    }
    if (!isValidPacketId(id)) {
      throw new ProtocolError(
        'ERR_INVALID_PACKET_ID',
        `invalid packet id ${String(id)}: must be an integer from ${MIN_PACKET_ID} to ${formatPacketId(MAX_PACKET_ID)}`,
      );
    }
    if (!isMessageType(type)) {
      throw new ProtocolError('ERR_INVALID_MESSAGE_TYPE', 'not a message type (needs encode, decode and fromPartial)');
    }
    const packetName = name ?? type.$type ?? `packet ${formatPacketId(id)}`;
    const byId = this.ids.get(id);
    if (byId !== undefined) {
      throw new ProtocolError(
        'ERR_DUPLICATE_PACKET_ID',
        `packet id ${formatPacketId(id)} is already registered to ${byId.name}; cannot register ${packetName}`,
      );
    }
    const byType = this.types.get(type);
    if (byType !== undefined) {
      throw new ProtocolError(
        'ERR_DUPLICATE_PACKET_TYPE',
        `${byType.name} is already registered as packet ${formatPacketId(byType.id)}; cannot register it again as ${formatPacketId(id)}`,
      );
    }
    const byName = this.names.get(packetName);
    if (byName !== undefined) {
      throw new ProtocolError(
        'ERR_DUPLICATE_PACKET_NAME',
        `the name ${packetName} is already used by packet ${formatPacketId(byName.id)}`,
      );
    }
    const def: PacketDefinition<T> = Object.freeze({ id, name: packetName, type });
    this.ids.set(id, def);
    this.types.set(type, def);
    this.names.set(packetName, def);
    return def;
  }

  /** The packet registered under `id`, if any. */
  byId(id: number): PacketDefinition | undefined {
    return this.ids.get(id);
  }

  /** The packet `type` is registered as, if any. */
  byType<T>(type: MessageType<T>): PacketDefinition<T> | undefined {
    return this.types.get(type);
  }

  /** The packet registered under `name` (e.g. `fastport.EchoRequest`), if any. */
  byName(name: string): PacketDefinition | undefined {
    return this.names.get(name);
  }

  /** The id of `type`; throws `ProtocolError` `ERR_UNREGISTERED_TYPE` when it is not registered. */
  idOf(type: MessageType<any>): number {
    const def = this.types.get(type);
    if (def === undefined) {
      const name = isMessageType(type) && type.$type !== undefined ? type.$type : 'this message type';
      throw new ProtocolError('ERR_UNREGISTERED_TYPE', `${name} is not registered in this packet registry`);
    }
    return def.id;
  }

  /** The type registered under `id`, if any. */
  typeOf(id: number): MessageType<unknown> | undefined {
    return this.ids.get(id)?.type;
  }

  has(id: number): boolean {
    return this.ids.has(id);
  }

  hasType(type: MessageType<any>): boolean {
    return this.types.has(type);
  }

  get size(): number {
    return this.ids.size;
  }

  /** All packets, by ascending id. */
  list(): PacketDefinition[] {
    return [...this.ids.values()].sort((a, b) => a.id - b.id);
  }

  [Symbol.iterator](): Iterator<PacketDefinition> {
    return this.list()[Symbol.iterator]();
  }

  /** Makes `register` throw `ERR_REGISTRY_FROZEN` from now on. */
  freeze(): this {
    this.frozen = true;
    return this;
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /** An unfrozen copy with the same packets (to extend a frozen registry). */
  clone(): PacketRegistry {
    return new PacketRegistry(this.list());
  }
}

/** A new, unfrozen registry holding every built-in packet of `PacketId`. */
export function createDefaultRegistry(): PacketRegistry {
  const registry = new PacketRegistry();
  for (const name of Object.keys(PacketId) as PacketName[]) {
    registry.register(Messages[name] as MessageType<any>, PacketId[name]);
  }
  return registry;
}

/**
 * The built-in packets, frozen (shared by every user of the package):
 * `defaultRegistry.clone()` gives an extensible copy.
 */
export const defaultRegistry: PacketRegistry = createDefaultRegistry().freeze();
