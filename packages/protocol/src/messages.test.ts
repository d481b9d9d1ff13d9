import { describe, expect, it } from 'vitest';
import {
  BenchmarkRequest,
  EchoRequest,
  Messages,
  PingRequest,
  ResultCode,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  ProtocolError,
  type MessageType,
  type PacketName,
} from './index';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const BIG = 2 ** 40 + 123; // above 32 bits, below 2^53

// A sample with every field set to a non-default value, per built-in message.
const samples: { [K in PacketName]: Record<string, any> } = {
  PingRequest: { clientTimeUs: BIG, seq: 7 },
  PingResponse: { clientTimeUs: BIG, serverTimeUs: BIG + 1, seq: 4294967295 },
  EchoRequest: { data: bytes(0, 1, 2, 255), seq: 9 },
  EchoResponse: { data: bytes(9, 8, 7), seq: 10 },
  ErrorResponse: { code: ResultCode.DECODE_ERROR, message: 'bad — ünïcode ✓', packetId: 0x1001 },
  BenchmarkRequest: { seq: 1, clientTimeNs: BIG, payload: new Uint8Array(1000).fill(0xab) },
  BenchmarkResponse: { seq: 2, clientTimeNs: BIG, payload: bytes(1), serverTimeNs: BIG + 5 },
  BenchmarkStart: {
    testName: 't',
    connections: 50,
    payloadSize: 64,
    durationMs: 10000,
    warmupMs: 1000,
    inflight: 4,
    engine: 'uring',
  },
  BenchmarkEnd: {
    testName: 't',
    sent: BIG,
    received: BIG - 1,
    errors: 3,
    elapsedNs: BIG,
    rttMinNs: 1,
    rttAvgNs: 2,
    rttP50Ns: 3,
    rttP90Ns: 4,
    rttP95Ns: 5,
    rttP99Ns: 6,
    rttP999Ns: 7,
    rttMaxNs: 8,
    jitterNs: 12.5,
    packetsPerSecond: 152000.25,
    megabytesPerSecond: 9.75,
    serverPacketsIn: 11,
    serverBytesIn: 12,
    serverCpuPercent: 99.5,
    serverMemoryBytes: BIG,
  },
  ServerStatusRequest: { header: { seq: 1, timestampUs: BIG, sessionId: 3 }, authToken: 'tok' },
  ServerStatusResponse: {
    header: { seq: 1, timestampUs: BIG, sessionId: 0 },
    result: ResultCode.OK,
    uptimeMs: BIG,
    engineName: 'epoll',
    connections: 20000,
    totalConnections: BIG,
    bytesIn: BIG,
    bytesOut: BIG + 1,
    packetsIn: 5,
    packetsOut: 6,
    idleDisconnects: 7,
    memoryRssBytes: 123456789,
    cpuPercent: 42.5,
    serverTimeMs: 1700000000000,
    ioThreads: 2,
    version: '0.1.0',
  },
  SessionListRequest: { header: undefined, offset: 10, limit: 100, authToken: '' },
  SessionListResponse: {
    header: { seq: 2, timestampUs: 0, sessionId: 0 },
    result: ResultCode.NOT_FOUND,
    sessions: [
      {
        id: BIG,
        remoteAddress: '127.0.0.1',
        remotePort: 50000,
        bytesIn: 1,
        bytesOut: 2,
        packetsIn: 3,
        packetsOut: 4,
        connectedAtMs: 1700000000000,
        lastRecvMs: 1700000000001,
        sendQueueBytes: 10 * 1024 * 1024,
      },
      {
        id: 2,
        remoteAddress: '::1',
        remotePort: 1,
        bytesIn: 0,
        bytesOut: 0,
        packetsIn: 0,
        packetsOut: 0,
        connectedAtMs: 0,
        lastRecvMs: 0,
        sendQueueBytes: 0,
      },
    ],
    total: 2,
    offset: 0,
  },
  ChatMessage: { room: 'lobby', from: 'ann', text: 'héllo 👋', timeMs: 1700000000000 },
  Heartbeat: { seq: BIG, timeUs: BIG },
  HeartbeatAck: { seq: BIG, timeUs: BIG, peerTimeUs: BIG + 2 },
  ResumeRequest: { token: bytes(1, 2, 3), lastReceivedSeq: BIG },
  ResumeResponse: { result: ResultCode.OK, token: bytes(4), lastReceivedSeq: 77, sessionId: 99 },
  Ack: { seq: BIG },
};

describe('round trip of every built-in message', () => {
  for (const name of Object.keys(samples) as PacketName[]) {
    it(name, () => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const type = Messages[name] as MessageType<any>;
      const msg = type.fromPartial(samples[name]);
      const wire = type.encode(msg).finish();
      expect(wire.length).toBeGreaterThan(0);
      const back = type.decode(wire);
      expect(back).toEqual(msg);
      // The sample sets every field: a default-valued message would not be equal.
      expect(back).not.toEqual(type.fromPartial({}));
      // And through the packet helpers, with the registry's id.
      const packet = encodePacket(type, samples[name]);
      expect(packet.payload).toEqual(wire);
      const decoded = decodePacket(packet.id, packet.payload);
      expect(decoded.name).toBe(`fastport.${name}`);
      expect(decoded.type).toBe(type);
      expect(decoded.message).toEqual(msg);
    });
  }

  it('an empty message encodes to zero bytes and decodes to defaults', () => {
    expect(encodeMessage(EchoRequest, {}).length).toBe(0);
    expect(decodeMessage(EchoRequest, new Uint8Array(0))).toEqual({ data: new Uint8Array(0), seq: 0 });
  });
});

describe('wire format', () => {
  it('matches protobuf encoding (BenchmarkRequest seq=1, client_time_ns=300, payload=[0xAA])', () => {
    const wire = encodeMessage(BenchmarkRequest, { seq: 1, clientTimeNs: 300, payload: bytes(0xaa) });
    // field 1 varint 1; field 2 varint 300 = ac 02; field 3 len 1 aa
    expect([...wire]).toEqual([0x08, 0x01, 0x10, 0xac, 0x02, 0x1a, 0x01, 0xaa]);
  });

  it('skips unknown fields (forward compatibility)', () => {
    // PingRequest seq=5 plus an unknown field 9 (varint 1).
    const msg = decodeMessage(PingRequest, bytes(0x10, 0x05, 0x48, 0x01));
    expect(msg).toEqual({ clientTimeUs: 0, seq: 5 });
  });

  it('rejects malformed input', () => {
    expect(() => decodeMessage(EchoRequest, bytes(0xff, 0xff, 0xff, 0xff, 0x0f))).toThrow();
    // field 1 (bytes) says 5 bytes follow, only 1 does.
    expect(() => decodeMessage(EchoRequest, bytes(0x0a, 0x05, 0x01))).toThrow();
    // A uint64 above 2^53 cannot be represented with forceLong=number.
    expect(() =>
      decodeMessage(PingRequest, bytes(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
    ).toThrow(/MAX_SAFE_INTEGER/);
  });

  it('decodePacket reports unknown ids and bad payloads with codes', () => {
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as ProtocolError;
      }
      throw new Error('did not throw');
    };
    expect(err(() => decodePacket(0x7777, new Uint8Array(0))).code).toBe('ERR_UNKNOWN_PACKET_ID');
    const bad = err(() => decodePacket(0x0003, bytes(0xff, 0xff, 0xff, 0xff, 0x0f)));
    expect(bad.code).toBe('ERR_DECODE_FAILED');
    expect(bad.cause).toBeInstanceOf(Error);
  });

  it('decodeMessage copies bytes fields out of the input', () => {
    const input = encodeMessage(EchoRequest, { data: bytes(1, 2, 3), seq: 1 });
    const raw = EchoRequest.decode(input);
    // ts-proto alone returns a view of the input ...
    expect(raw.data.buffer).toBe(input.buffer);
    const msg = decodeMessage(EchoRequest, input);
    // ... decodeMessage does not.
    expect(msg.data.buffer).not.toBe(input.buffer);
    input.fill(0);
    expect([...msg.data]).toEqual([1, 2, 3]);
  });
});
