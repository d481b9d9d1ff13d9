/**
 * The shape of a message "type" as ts-proto generates it: the exported const
 * that shares its name with the message interface (`EchoRequest`, ...).
 * Any object with these methods can be registered, so hand-written codecs
 * work too.
 */

type Builtin = Date | Function | Uint8Array | string | number | boolean | undefined;

/** A message with every field optional, recursively (ts-proto's `DeepPartial`). */
export type PartialMessage<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<PartialMessage<U>>
    : T extends ReadonlyArray<infer U>
      ? ReadonlyArray<PartialMessage<U>>
      : T extends {}
        ? { [K in keyof T]?: PartialMessage<T[K]> }
        : Partial<T>;

export interface MessageType<T> {
  /** Fully-qualified protobuf name (`fastport.EchoRequest`); ts-proto sets it with `outputTypeAnnotations`. */
  readonly $type?: string;
  /** Encodes a complete message (every field set: use `fromPartial` first for partial objects). */
  encode(message: T): { finish(): Uint8Array };
  /** Decodes a message; throws on malformed input. Bytes fields may be views into `input`. */
  decode(input: Uint8Array): T;
  /** Builds a complete message from a partial one, defaulting the missing fields. */
  fromPartial(object: PartialMessage<T>): T;
}

/** The message interface a `MessageType` encodes and decodes. */
export type MessageOf<M> = M extends MessageType<infer T> ? T : never;

/**
 * Replaces, in place and recursively, every `Uint8Array` of a decoded message
 * that is a view of `input`'s memory by a copy, so the message stays valid
 * after the caller reuses or releases `input`. Returns the message.
 */
export function detachBytes<T>(message: T, input: Uint8Array): T {
  detachObject(message as unknown, input.buffer, 0);
  return message;
}

const MAX_DEPTH = 100;

function detachObject(value: unknown, buffer: ArrayBufferLike, depth: number): void {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item instanceof Uint8Array) {
        if (item.buffer === buffer) value[i] = item.slice();
      } else if (item !== null && typeof item === 'object') {
        detachObject(item, buffer, depth + 1);
      }
    }
    return;
  }
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const field = record[key];
    if (field instanceof Uint8Array) {
      if (field.buffer === buffer) record[key] = field.slice();
    } else if (field !== null && typeof field === 'object') {
      detachObject(field, buffer, depth + 1);
    }
  }
}

/**
 * Decodes `bytes` as a `type` message. The result never aliases `bytes`:
 * bytes fields that the decoder returned as views are copied. Throws what the
 * decoder throws on malformed input.
 */
export function decodeMessage<T>(type: MessageType<T>, bytes: Uint8Array): T {
  return detachBytes(type.decode(bytes), bytes);
}

/** Encodes a (possibly partial) message: missing fields take their protobuf defaults. */
export function encodeMessage<T>(type: MessageType<T>, message: PartialMessage<T>): Uint8Array {
  return type.encode(type.fromPartial(message)).finish();
}
