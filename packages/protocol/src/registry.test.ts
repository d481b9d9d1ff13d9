import { describe, expect, it } from 'vitest';
import {
  BenchmarkRequest,
  BenchmarkResponse,
  EchoRequest,
  EchoResponse,
  ErrorResponse,
  MAX_PACKET_ID,
  Messages,
  PacketId,
  PacketRegistry,
  PingRequest,
  ProtocolError,
  createDefaultRegistry,
  defaultRegistry,
  formatPacketId,
  type MessageType,
  type PacketName,
} from './index';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as ProtocolError).code;
  }
  return undefined;
}

describe('PacketRegistry', () => {
  it('registers and looks up by id, type and name', () => {
    const r = new PacketRegistry();
    const def = r.register(EchoRequest, 0x0003);
    expect(def).toEqual({ id: 3, name: 'fastport.EchoRequest', type: EchoRequest });
    expect(r.byId(3)).toBe(def);
    expect(r.byType(EchoRequest)).toBe(def);
    expect(r.byName('fastport.EchoRequest')).toBe(def);
    expect(r.idOf(EchoRequest)).toBe(3);
    expect(r.typeOf(3)).toBe(EchoRequest);
    expect(r.has(3)).toBe(true);
    expect(r.hasType(EchoRequest)).toBe(true);
    expect(r.size).toBe(1);
    expect(r.byId(4)).toBeUndefined();
    expect(r.byType(EchoResponse)).toBeUndefined();
    expect(r.has(4)).toBe(false);
  });

  it('uses an explicit name when given', () => {
    const r = new PacketRegistry();
    expect(r.register(PingRequest, 0x8001, 'my.Ping').name).toBe('my.Ping');
    expect(r.byName('my.Ping')?.id).toBe(0x8001);
    expect(r.byName('fastport.PingRequest')).toBeUndefined();
  });

  it('rejects a duplicate id', () => {
    const r = new PacketRegistry();
    r.register(EchoRequest, 7);
    expect(codeOf(() => r.register(EchoResponse, 7))).toBe('ERR_DUPLICATE_PACKET_ID');
    expect(r.byId(7)?.type).toBe(EchoRequest);
    expect(r.hasType(EchoResponse)).toBe(false);
  });

  it('rejects a duplicate type', () => {
    const r = new PacketRegistry();
    r.register(EchoRequest, 7);
    expect(codeOf(() => r.register(EchoRequest, 8))).toBe('ERR_DUPLICATE_PACKET_TYPE');
    expect(r.has(8)).toBe(false);
    expect(r.size).toBe(1);
  });

  it('rejects a duplicate name', () => {
    const r = new PacketRegistry();
    r.register(EchoRequest, 7, 'x');
    expect(codeOf(() => r.register(EchoResponse, 8, 'x'))).toBe('ERR_DUPLICATE_PACKET_NAME');
    expect(r.size).toBe(1);
  });

  it('rejects ids outside 1..0xFFFF and non-integers', () => {
    const r = new PacketRegistry();
    for (const id of [0, -1, 0x10000, 1.5, Number.NaN]) {
      expect(codeOf(() => r.register(EchoRequest, id))).toBe('ERR_INVALID_PACKET_ID');
    }
    expect(r.size).toBe(0);
    expect(r.register(EchoRequest, MAX_PACKET_ID).id).toBe(0xffff);
    expect(r.register(EchoResponse, 1).id).toBe(1);
  });

  it('rejects something that is not a message type', () => {
    const r = new PacketRegistry();
    expect(codeOf(() => r.register({} as unknown as MessageType<unknown>, 5))).toBe('ERR_INVALID_MESSAGE_TYPE');
  });

  it('idOf throws ERR_UNREGISTERED_TYPE with the type name', () => {
    const r = new PacketRegistry();
    expect(codeOf(() => r.idOf(EchoRequest))).toBe('ERR_UNREGISTERED_TYPE');
    expect(() => r.idOf(EchoRequest)).toThrow(/fastport\.EchoRequest/);
  });

  it('builds from tuples and lists by ascending id', () => {
    const r = new PacketRegistry([
      [BenchmarkResponse, 0x1002],
      [EchoRequest, 3],
      [BenchmarkRequest, 0x1001, 'bench.req'],
    ]);
    expect(r.list().map((d) => d.id)).toEqual([3, 0x1001, 0x1002]);
    expect([...r].map((d) => d.name)).toEqual(['fastport.EchoRequest', 'bench.req', 'fastport.BenchmarkResponse']);
  });

  it('freeze() blocks register, clone() gives an extensible copy', () => {
    const r = new PacketRegistry([[EchoRequest, 3]]).freeze();
    expect(r.isFrozen).toBe(true);
    expect(codeOf(() => r.register(EchoResponse, 4))).toBe('ERR_REGISTRY_FROZEN');
    const c = r.clone();
    expect(c.isFrozen).toBe(false);
    c.register(EchoResponse, 4);
    expect(c.idOf(EchoRequest)).toBe(3);
    expect(c.idOf(EchoResponse)).toBe(4);
    expect(r.has(4)).toBe(false);
  });
});

describe('default registry', () => {
  const expected: Array<[PacketName, number]> = [
    ['PingRequest', 0x0001],
    ['PingResponse', 0x0002],
    ['EchoRequest', 0x0003],
    ['EchoResponse', 0x0004],
    ['ErrorResponse', 0x000f],
    ['BenchmarkRequest', 0x1001],
    ['BenchmarkResponse', 0x1002],
    ['BenchmarkStart', 0x1003],
    ['BenchmarkEnd', 0x1004],
    ['ServerStatusRequest', 0x2001],
    ['ServerStatusResponse', 0x2002],
    ['SessionListRequest', 0x2003],
    ['SessionListResponse', 0x2004],
    ['ChatMessage', 0x3001],
    ['Heartbeat', 0x3002],
    ['HeartbeatAck', 0x3003],
    ['ResumeRequest', 0x3004],
    ['ResumeResponse', 0x3005],
    ['Ack', 0x3006],
  ];

  it('holds every built-in packet under its documented id and protobuf name', () => {
    expect(defaultRegistry.size).toBe(expected.length);
    expect(Object.keys(PacketId).length).toBe(expected.length);
    for (const [name, id] of expected) {
      expect(PacketId[name]).toBe(id);
      const def = defaultRegistry.byId(id);
      expect(def?.type).toBe(Messages[name]);
      expect(def?.name).toBe(`fastport.${name}`);
      expect(defaultRegistry.idOf(Messages[name] as MessageType<unknown>)).toBe(id);
    }
  });

  it('keeps FastPort benchmark ids', () => {
    expect(defaultRegistry.idOf(BenchmarkRequest)).toBe(0x1001);
    expect(defaultRegistry.idOf(BenchmarkResponse)).toBe(0x1002);
    expect(defaultRegistry.idOf(ErrorResponse)).toBe(0x000f);
  });

  it('is frozen; createDefaultRegistry() returns fresh extensible copies', () => {
    expect(defaultRegistry.isFrozen).toBe(true);
    expect(codeOf(() => defaultRegistry.register(EchoRequest, 0x9000))).toBe('ERR_REGISTRY_FROZEN');
    const a = createDefaultRegistry();
    const b = createDefaultRegistry();
    expect(a).not.toBe(b);
    expect(a.size).toBe(defaultRegistry.size);
    // Same message type under a second id is still rejected.
    expect(codeOf(() => a.register(EchoRequest, 0x9000))).toBe('ERR_DUPLICATE_PACKET_TYPE');
  });

  it('formats ids', () => {
    expect(formatPacketId(0x1001)).toBe('0x1001');
    expect(formatPacketId(15)).toBe('0x000F');
  });
});
