import { afterEach, describe, expect, it } from 'vitest';
import { FrameEncoder, PROXY_V2_SIGNATURE, ProxyProtocolError, Server, type Session } from '../src';
import { ipv6Text, parseProxyHeader, type ProxyParseResult } from '../src/proxy-protocol';
import { waitFor, connectRaw, type RawPeer } from '@fastport/test-utils';
import { forEachEngine } from './helpers';

const v1 = (line: string) => Buffer.from(line, 'latin1');

/** A v2 header built byte by byte from the spec's layout (not with the decoder's code). */
function v2(verCmd: number, famProto: number, body: number[]): Buffer {
  return Buffer.from([...PROXY_V2_SIGNATURE, verCmd, famProto, body.length >> 8, body.length & 0xff, ...body]);
}
const TCP4_BODY = [192, 168, 0, 1, 10, 0, 0, 2, 0xd4, 0x31, 0x23, 0x28]; // 192.168.0.1:54321 → 10.0.0.2:9000
const TCP6_BODY = [
  0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
  0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, // fe80::1234
  0x04, 0xd2, 0x23, 0x28, // 1234 → 9000
];

/** Feeds `bytes` one byte at a time, the way a peer that trickles them would: the first decision must come only at the end. */
function parseByteByByte(bytes: Buffer, max?: number): { result: ProxyParseResult; decidedAt: number } {
  for (let n = 1; n <= bytes.length; n++) {
    const r = parseProxyHeader(bytes.subarray(0, n), max);
    if (r.kind !== 'incomplete') return { result: r, decidedAt: n };
  }
  return { result: { kind: 'incomplete' }, decidedAt: -1 };
}

describe('PROXY header parser', () => {
  it('v1 TCP4, byte-exact, split one byte at a time, followed by application bytes', () => {
    const h = v1('PROXY TCP4 192.168.0.1 10.0.0.2 54321 9000\r\n');
    const { result, decidedAt } = parseByteByByte(h);
    expect(decidedAt).toBe(h.length);
    expect(result).toEqual({
      kind: 'header',
      header: {
        version: 1,
        command: 'proxy',
        source: { address: '192.168.0.1', port: 54321, family: 'IPv4' },
        destination: { address: '10.0.0.2', port: 9000, family: 'IPv4' },
        length: h.length,
      },
    });
    const withData = Buffer.concat([h, Buffer.from([0, 8, 0, 1, 1, 2, 3, 4])]);
    expect(parseProxyHeader(withData)).toMatchObject({ kind: 'header', header: { length: h.length } });
  });

  it('v1 TCP6 and UNKNOWN', () => {
    const h6 = v1('PROXY TCP6 2001:db8::1 fe80::1234 1234 9000\r\n');
    expect(parseByteByByte(h6).result).toMatchObject({
      kind: 'header',
      header: { version: 1, command: 'proxy', source: { address: '2001:db8::1', port: 1234, family: 'IPv6' }, destination: { address: 'fe80::1234', port: 9000 } },
    });
    // UNKNOWN: the rest of the line is ignored, the real address stays.
    const unk = v1('PROXY UNKNOWN ffff:f...f:ffff 65535\r\n');
    expect(parseByteByByte(unk)).toEqual({ result: { kind: 'header', header: { version: 1, command: 'unknown', length: unk.length } }, decidedAt: unk.length });
    expect(parseProxyHeader(v1('PROXY UNKNOWN\r\n'))).toMatchObject({ kind: 'header', header: { command: 'unknown', length: 15 } });
  });

  it('v1 the longest legal line (107 bytes) passes; 107 bytes without CRLF are oversize', () => {
    const longest = v1('PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n');
    expect(longest.length).toBe(107);
    expect(parseByteByByte(longest).result.kind).toBe('header');
    const tooLong = v1('PROXY UNKNOWN ' + 'x'.repeat(120));
    const { result, decidedAt } = parseByteByByte(tooLong);
    expect(decidedAt).toBe(107);
    expect(result).toMatchObject({ kind: 'error', error: { reason: 'proxy-oversize' } });
  });

  it.each([
    ['TCP5', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['IPv6 address under TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n'],
    ['port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['leading zero port', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['control byte', 'PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n'],
  ])('v1 malformed: %s', (_name, line) => {
    expect(parseByteByByte(v1(line)).result).toMatchObject({ kind: 'error', error: { reason: 'proxy-malformed' } });
  });

  it('v2 PROXY TCP4 and TCP6, byte-exact, one byte at a time', () => {
    const h4 = v2(0x21, 0x11, TCP4_BODY);
    expect(h4.length).toBe(28);
    expect(parseByteByByte(h4)).toEqual({
      result: {
        kind: 'header',
        header: {
          version: 2,
          command: 'proxy',
          source: { address: '192.168.0.1', port: 54321, family: 'IPv4' },
          destination: { address: '10.0.0.2', port: 9000, family: 'IPv4' },
          length: 28,
        },
      },
      decidedAt: 28,
    });
    const h6 = v2(0x21, 0x21, TCP6_BODY);
    expect(parseByteByByte(h6).result).toMatchObject({
      kind: 'header',
      header: { command: 'proxy', source: { address: '2001:db8::1', port: 1234, family: 'IPv6' }, destination: { address: 'fe80::1234', port: 9000 }, length: 52 },
    });
  });

  it('v2 TLVs after the addresses are skipped; LOCAL and UNSPEC keep the real address', () => {
    const tlv = [0x04, 0x00, 0x03, 0x61, 0x62, 0x63]; // PP2_TYPE_NOOP-like TLV, 3 bytes
    const withTlv = v2(0x21, 0x11, [...TCP4_BODY, ...tlv]);
    expect(parseProxyHeader(withTlv)).toMatchObject({ kind: 'header', header: { command: 'proxy', length: 34, source: { port: 54321 } } });
    const local = v2(0x20, 0x00, []);
    expect(parseByteByByte(local)).toEqual({ result: { kind: 'header', header: { version: 2, command: 'local', length: 16 } }, decidedAt: 16 });
    // LOCAL may carry an address block the receiver must skip.
    expect(parseProxyHeader(v2(0x20, 0x11, TCP4_BODY))).toEqual({ kind: 'header', header: { version: 2, command: 'local', length: 28 } });
    expect(parseProxyHeader(v2(0x21, 0x00, []))).toEqual({ kind: 'header', header: { version: 2, command: 'unknown', length: 16 } });
    expect(parseProxyHeader(v2(0x21, 0x12, TCP4_BODY))).toMatchObject({ kind: 'header', header: { command: 'unknown' } }); // UDP4
  });

  it.each([
    ['version 1 in a v2 header', v2(0x11, 0x11, TCP4_BODY), 'proxy-malformed'],
    ['command 2', v2(0x22, 0x11, TCP4_BODY), 'proxy-malformed'],
    ['family 4', v2(0x21, 0x41, TCP4_BODY), 'proxy-malformed'],
    ['TCP4 block too short', v2(0x21, 0x11, TCP4_BODY.slice(0, 11)), 'proxy-malformed'],
    ['TCP6 block too short', v2(0x21, 0x21, TCP4_BODY), 'proxy-malformed'],
    ['length past the limit', v2(0x21, 0x11, [...TCP4_BODY, ...new Array<number>(5000).fill(0)]), 'proxy-oversize'],
    ['HTTP instead of a header', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'proxy-missing'],
    ['a fastport frame instead of a header', Buffer.from([0, 8, 0, 1, 1, 2, 3, 4]), 'proxy-missing'],
    ['signature with one wrong byte', Buffer.from([...PROXY_V2_SIGNATURE.slice(0, 11), 0x0b, 0x21, 0x11, 0, 12, ...TCP4_BODY]), 'proxy-missing'],
  ])('v2 / garbage: %s', (_name, bytes, reason) => {
    expect(parseByteByByte(bytes).result).toMatchObject({ kind: 'error', error: { reason } });
  });

  it('prints IPv6 addresses as RFC 5952 text, IPv4-mapped ones in the mixed notation', () => {
    const bytes = (...g: number[]) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]));
    expect(ipv6Text(bytes(0, 0, 0, 0, 0, 0, 0, 1))).toBe('::1');
    expect(ipv6Text(bytes(0, 0, 0, 0, 0, 0, 0, 0))).toBe('::');
    expect(ipv6Text(bytes(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1))).toBe('2001:db8::1:0:0:1'); // the first of two equal runs
    expect(ipv6Text(bytes(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1))).toBe('2001:db8:0:1:1:1:1:1'); // a single zero group stays
    expect(ipv6Text(bytes(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201))).toBe('::ffff:192.0.2.1');
  });

  it('decides at the first byte that cannot start a header, without waiting for more', () => {
    expect(parseByteByByte(Buffer.from('PROXZ TCP4 ...')).decidedAt).toBe(5);
    expect(parseByteByByte(Buffer.from('hello')).decidedAt).toBe(1);
    const r = parseProxyHeader(Buffer.from('x'));
    expect(r.kind === 'error' && r.error instanceof ProxyProtocolError).toBe(true);
  });
});

forEachEngine('Server with proxyProtocol', (kind) => {
  let server: Server | undefined;
  const peers: RawPeer[] = [];
  afterEach(async () => {
    for (const p of peers.splice(0)) p.socket.destroy();
    await server?.close(100);
    server = undefined;
  });

  async function start(headerTimeoutMs = 10_000): Promise<{ port: number; sessions: Session[]; rejected: string[] }> {
    server = new Server({ engine: kind, proxyProtocol: { headerTimeoutMs }, memoryBudget: false });
    const sessions: Session[] = [];
    const rejected: string[] = [];
    server.on('session', (s) => sessions.push(s));
    server.on('frame', (s, f) => s.sendFrame(f.bytes));
    server.on('proxy-rejected', (_remote, err) => rejected.push(err.reason));
    const { port } = await server.listen(0, '127.0.0.1');
    return { port, sessions, rejected };
  }
  const frame = new FrameEncoder('fastport').encode(Buffer.from('hi'), 0x1001);

  it('v1 and v2 headers, sent one byte at a time, give the session the client address; the frame after it is echoed', async () => {
    const { port, sessions } = await start();
    const headers = [v1('PROXY TCP4 192.168.0.1 10.0.0.2 54321 9000\r\n'), v2(0x21, 0x21, TCP6_BODY)];
    for (const h of headers) {
      const peer = await connectRaw(port);
      peers.push(peer);
      for (const byte of Buffer.concat([h, frame])) {
        peer.socket.write(Buffer.from([byte]));
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => peer.bytes === frame.length, 'echo after the header');
    }
    expect(sessions.map((s) => s.remote)).toEqual([
      { address: '192.168.0.1', port: 54321, family: 'IPv4' },
      { address: '2001:db8::1', port: 1234, family: 'IPv6' },
    ]);
    expect(server!.proxyStats()).toMatchObject({ accepted: { proxy: 2, local: 0, unknown: 0 }, pending: 0 });
  });

  it('a header and 36 KB of frames in one write: everything after the header reaches the session', async () => {
    const { port, sessions } = await start();
    const peer = await connectRaw(port);
    peers.push(peer);
    const frames = Buffer.concat(Array.from({ length: 6000 }, () => frame));
    peer.socket.write(Buffer.concat([v2(0x21, 0x11, TCP4_BODY), frames]));
    await waitFor(() => peer.bytes === frames.length, 'every frame echoed');
    expect(sessions[0]!.remote).toEqual({ address: '192.168.0.1', port: 54321, family: 'IPv4' });
  });

  it('LOCAL keeps the real address; garbage, oversize and a silent peer are closed with a reason and never become sessions', async () => {
    const { port, sessions, rejected } = await start(300);
    const local = await connectRaw(port);
    peers.push(local);
    local.socket.write(Buffer.concat([v2(0x20, 0x00, []), frame]));
    await waitFor(() => local.bytes === frame.length, 'echo on LOCAL');
    expect(sessions[0]!.remote.address).toBe('127.0.0.1');

    const garbage = await connectRaw(port);
    garbage.socket.write(frame); // speaks the app protocol directly: no header
    const oversize = await connectRaw(port);
    oversize.socket.write(v2(0x21, 0x11, [...TCP4_BODY, ...new Array<number>(5000).fill(7)]));
    const silent = await connectRaw(port);
    silent.socket.write(v1('PROXY TCP4 1.2.3.4')); // never finishes
    for (const p of [garbage, oversize, silent]) await p.closed;
    expect(garbage.bytes + oversize.bytes + silent.bytes).toBe(0);
    expect(rejected.sort()).toEqual(['proxy-missing', 'proxy-oversize', 'proxy-timeout']);
    expect(sessions.length).toBe(1);
    expect(server!.proxyStats()).toMatchObject({
      accepted: { local: 1 },
      rejected: { 'proxy-missing': 1, 'proxy-oversize': 1, 'proxy-timeout': 1, 'proxy-malformed': 0 },
      pending: 0,
    });
  });
});
