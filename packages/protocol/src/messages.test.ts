import { describe, expect, it } from 'vitest';
import {
  BenchmarkRequest,
  BenchmarkResponse,
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
// uint64 fields are bigint (ts-proto forceLong=bigint): full 64-bit range, no precision loss.
const NS_EPOCH = 1_733_000_000_000_000_000n; // nanoseconds since the epoch (Dec 2024), above 2^53
const U64_MAX = 2n ** 64n - 1n;
const BIG = NS_EPOCH;

// A sample with every field set to a non-default value, per built-in message.
const samples: { [K in PacketName]: Record<string, any> } = {
  PingRequest: { clientTimeUs: BIG, seq: 7 },
  PingResponse: { clientTimeUs: BIG, serverTimeUs: U64_MAX, seq: 4294967295 },
  EchoRequest: { data: bytes(0, 1, 2, 255), seq: 9 },
  EchoResponse: { data: bytes(9, 8, 7), seq: 10 },
  ErrorResponse: { code: ResultCode.DECODE_ERROR, message: 'bad — ünïcode ✓', packetId: 0x1001 },
  BenchmarkRequest: { seq: 1, clientTimeNs: NS_EPOCH, payload: new Uint8Array(1000).fill(0xab) },
  BenchmarkResponse: { seq: 2, clientTimeNs: NS_EPOCH, payload: bytes(1), serverTimeNs: U64_MAX },
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
    received: BIG - 1n,
    errors: 3n,
    elapsedNs: U64_MAX,
    rttMinNs: 1n,
    rttAvgNs: 2n,
    rttP50Ns: 3n,
    rttP90Ns: 4n,
    rttP95Ns: 5n,
    rttP99Ns: 6n,
    rttP999Ns: 7n,
    rttMaxNs: 8n,
    jitterNs: 12.5,
    packetsPerSecond: 152000.25,
    megabytesPerSecond: 9.75,
    serverPacketsIn: 11n,
    serverBytesIn: 12n,
    serverCpuPercent: 99.5,
    serverMemoryBytes: BIG,
  },
  ServerStatusRequest: { header: { seq: 1n, timestampUs: BIG, sessionId: 3n }, authToken: 'tok' },
  ServerStatusResponse: {
    header: { seq: 1n, timestampUs: BIG, sessionId: 0n },
    result: ResultCode.OK,
    uptimeMs: BIG,
    engineName: 'epoll',
    connections: 20000,
    totalConnections: BIG,
    bytesIn: BIG,
    bytesOut: U64_MAX,
    packetsIn: 5n,
    packetsOut: 6n,
    idleDisconnects: 7n,
    memoryRssBytes: 123456789n,
    cpuPercent: 42.5,
    serverTimeMs: 1700000000000n,
    ioThreads: 2,
    version: '0.1.0',
  },
  SessionListRequest: { header: undefined, offset: 10, limit: 100, authToken: '' },
  SessionListResponse: {
    header: { seq: 2n, timestampUs: 0n, sessionId: 0n },
    result: ResultCode.NOT_FOUND,
    sessions: [
      {
        id: U64_MAX,
        remoteAddress: '127.0.0.1',
        remotePort: 50000,
        bytesIn: 1n,
        bytesOut: 2n,
        packetsIn: 3n,
        packetsOut: 4n,
        connectedAtMs: 1700000000000n,
        lastRecvMs: 1700000000001n,
        sendQueueBytes: 10n * 1024n * 1024n,
      },
      {
        id: 2n,
        remoteAddress: '::1',
        remotePort: 1,
        bytesIn: 0n,
        bytesOut: 0n,
        packetsIn: 0n,
        packetsOut: 0n,
        connectedAtMs: 0n,
        lastRecvMs: 0n,
        sendQueueBytes: 0n,
      },
    ],
    total: 2,
    offset: 0,
  },
  ChatMessage: { room: 'lobby', from: 'ann', text: 'héllo 👋', timeMs: 1700000000000n },
  Heartbeat: { seq: BIG, timeUs: BIG },
  HeartbeatAck: { seq: BIG, timeUs: BIG, peerTimeUs: U64_MAX },
  ResumeRequest: { token: bytes(1, 2, 3), lastReceivedSeq: BIG },
  ResumeResponse: { result: ResultCode.OK, token: bytes(4), lastReceivedSeq: 77n, sessionId: 99n },
  Ack: { seq: U64_MAX },
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
    const wire = encodeMessage(BenchmarkRequest, { seq: 1, clientTimeNs: 300n, payload: bytes(0xaa) });
    // field 1 varint 1; field 2 varint 300 = ac 02; field 3 len 1 aa
    expect([...wire]).toEqual([0x08, 0x01, 0x10, 0xac, 0x02, 0x1a, 0x01, 0xaa]);
  });

  it('64-bit fields round-trip at full range (above 2^53, up to 2^64-1)', () => {
    // What a C++ FastPort client sends: nanoseconds since the epoch.
    const req = { seq: 42, clientTimeNs: NS_EPOCH, payload: bytes(1, 2) };
    const back = decodeMessage(BenchmarkRequest, encodeMessage(BenchmarkRequest, req));
    expect(back.clientTimeNs).toBe(NS_EPOCH);
    expect(back.clientTimeNs > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    const resp = decodeMessage(BenchmarkResponse, encodeMessage(BenchmarkResponse, { clientTimeNs: U64_MAX, serverTimeNs: 2n ** 53n + 1n }));
    expect(resp.clientTimeNs).toBe(U64_MAX);
    expect(resp.serverTimeNs).toBe(2n ** 53n + 1n);
    // Ten-byte varint of 2^64-1 decodes exactly (it threw MAX_SAFE_INTEGER with forceLong=number).
    const max = decodeMessage(PingRequest, bytes(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01));
    expect(max.clientTimeUs).toBe(U64_MAX);
    // A value that does not fit 64 bits is refused on encode, never truncated.
    expect(() => encodeMessage(PingRequest, { clientTimeUs: 2n ** 64n })).toThrow(/too large/);
    expect(() => encodeMessage(PingRequest, { clientTimeUs: -1n })).toThrow(/too large/);
    console.log(`[protocol] BenchmarkRequest.client_time_ns ${NS_EPOCH} and uint64 max ${U64_MAX} round-tripped exactly`);
  });

  it('skips unknown fields (forward compatibility)', () => {
    // PingRequest seq=5 plus an unknown field 9 (varint 1).
    const msg = decodeMessage(PingRequest, bytes(0x10, 0x05, 0x48, 0x01));
    expect(msg).toEqual({ clientTimeUs: 0n, seq: 5 });
  });

  it('rejects malformed input', () => {
    expect(() => decodeMessage(EchoRequest, bytes(0xff, 0xff, 0xff, 0xff, 0x0f))).toThrow();
    // field 1 (bytes) says 5 bytes follow, only 1 does.
    expect(() => decodeMessage(EchoRequest, bytes(0x0a, 0x05, 0x01))).toThrow();
    // A varint longer than 10 bytes is not a valid uint64.
    expect(() =>
      decodeMessage(PingRequest, bytes(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
    ).toThrow();
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
