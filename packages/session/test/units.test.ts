import { describe, expect, it } from 'vitest';
import { Client, MemoryBudget, ReconnectingClient, Server, toSessionId } from '../src';
// Internals, tested directly (not part of the public index).
import { resolveBackoff } from '../src/backoff';
import {
  U64_UNKNOWN,
  decodeAck,
  decodeGoAway,
  decodeNonce,
  decodeResumeOk,
  decodeResumeRefused,
  decodeResumeRequest,
  encodeAck,
  encodeGoAway,
  encodePing,
  encodeResumeOk,
  encodeResumeRefused,
  encodeResumeRequest,
  hexToToken,
  isControlId,
  tokenToHex,
} from '../src/control';
import { HeartbeatMonitor, resolveHeartbeat } from '../src/heartbeat';
import { OutboundLog } from '../src/reliable';

describe('control frame codec', () => {
  const token = new Uint8Array(16).map((_, i) => i * 7 + 1);

  it('round-trips every frame, u64 fields up to 2^53-1', () => {
    expect(decodeNonce(encodePing(0xdeadbeef))).toBe(0xdeadbeef);
    for (const n of [0, 1, 0xffffffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER]) expect(decodeAck(encodeAck(n))).toBe(n);
    const g = { reason: 'shutdown' as const, reconnect: true, resume: false, deadlineMs: 5000, message: 'bye ✓' };
    expect(decodeGoAway(encodeGoAway(g))).toEqual(g);
    const req = decodeResumeRequest(encodeResumeRequest({ token, historyUnknown: true, received: 123456789012, firstAvailable: 7 }));
    expect(req).toEqual({ version: 1, token, historyUnknown: true, received: 123456789012, firstAvailable: 7 });
    expect(decodeResumeOk(encodeResumeOk({ token, resumed: true, received: 42, sessionId: 99 }))).toEqual({ version: 1, token, resumed: true, received: 42, sessionId: 99 });
    const ref = { reason: 'replay-expired' as const, received: U64_UNKNOWN, lostFrom: 3, lostTo: 9, peerLostFrom: 1, peerLostTo: 0, message: 'too old' };
    expect(decodeResumeRefused(encodeResumeRefused(ref))).toEqual({ version: 1, ...ref });
  });

  it('rejects short payloads (null / -1), ignores trailing bytes', () => {
    expect(decodeNonce(new Uint8Array(3))).toBe(-1);
    expect(decodeAck(new Uint8Array(7))).toBe(-1);
    expect(decodeGoAway(new Uint8Array(7))).toBeNull();
    const g = encodeGoAway({ reason: 'shutdown', reconnect: false, resume: false, deadlineMs: 1, message: 'abc' });
    expect(decodeGoAway(g.subarray(0, g.length - 1))).toBeNull(); // text shorter than its length says
    expect(decodeResumeRequest(new Uint8Array(33))).toBeNull();
    expect(decodeResumeOk(new Uint8Array(29))).toBeNull();
    expect(decodeResumeRefused(new Uint8Array(43))).toBeNull();
    const withTail = new Uint8Array(20);
    withTail.set(encodeAck(5));
    expect(decodeAck(withTail)).toBe(5);
    // a u64 past 2^53 reads as "unknown", never as a wrong number
    expect(decodeAck(new Uint8Array(8).fill(0xff))).toBe(U64_UNKNOWN);
  });

  it('reserved ids and tokens', () => {
    expect(isControlId(0xff00)).toBe(true);
    expect(isControlId(0xff0f)).toBe(true);
    expect(isControlId(0xfeff)).toBe(false);
    expect(isControlId(0xff10)).toBe(false);
    expect(hexToToken(tokenToHex(token))).toEqual(token);
    expect(hexToToken('xyz')).toBeNull();
  });
});

describe('HeartbeatMonitor', () => {
  const o = resolveHeartbeat({ intervalMs: 100, fastIntervalMs: 20 });

  it('tolerates misses 1-2, is suspect with fast probes from the 3rd, dead at the 5th', () => {
    const hb = new HeartbeatMonitor(o, 0, 0);
    const seen: string[] = [];
    let now = 0;
    for (let i = 0; i < 6; i++) {
      now = hb.nextAt;
      const r = hb.tick(now, 0); // nothing ever arrives
      seen.push(`${r.action}:${hb.misses}:${hb.liveness}:${r.action === 'probe' ? hb.nextAt - now : '-'}`);
      if (r.action === 'dead') break;
    }
    expect(seen).toEqual(['probe:0:active:100', 'probe:1:active:100', 'probe:2:active:100', 'probe:3:suspect:20', 'probe:4:suspect:20', 'dead:5:dead:-']);
  });

  it('any received byte resets the misses; a pong restores active at once', () => {
    const hb = new HeartbeatMonitor(o, 0, 0);
    let bytes = 0;
    for (let i = 0; i < 4; i++) hb.tick(hb.nextAt, bytes);
    expect(hb.liveness).toBe('suspect');
    expect(hb.onPong(hb.lastNonce, hb.nextAt - 5)).toBe('active');
    expect(hb.misses).toBe(0);
    bytes += 10;
    hb.tick(hb.nextAt, bytes);
    expect(hb.misses).toBe(0);
    expect(hb.rttMs).toBe(15);
  });

  it('validates options', () => {
    expect(() => resolveHeartbeat({ intervalMs: 0 })).toThrow(/intervalMs/);
    expect(() => resolveHeartbeat({ suspectAfterMisses: 6, maxMisses: 5 })).toThrow(/suspectAfterMisses/);
    expect(resolveHeartbeat(true)).toEqual({ intervalMs: 15000, fastIntervalMs: 5000, suspectAfterMisses: 3, maxMisses: 5 });
  });
});

describe('OutboundLog', () => {
  const frame = (n: number) => new Uint8Array(n);

  it('acks drop entries; an ack past what was written is refused', () => {
    const log = new OutboundLog();
    for (let i = 0; i < 5; i++) log.append(1, frame(10), 0);
    log.writeSeq = 4; // 1..3 handed to the connection
    expect(log.ack(4)).toBe(-1);
    expect(log.ack(2)).toBe(20);
    expect(log.firstSeq).toBe(3);
    expect(log.unwritten).toBe(2);
    expect(log.peekUnwritten()?.seq).toBe(4);
    log.rewindTo(2);
    expect(log.peekUnwritten()?.seq).toBe(3);
  });

  it('byte bound evicts only written entries and records what a resume would need', () => {
    const log = new OutboundLog();
    for (let i = 0; i < 4; i++) log.append(1, frame(100), 0);
    log.writeSeq = 3; // 1, 2 written
    expect(log.evictForBytes(100, 250)).toBe(200);
    expect(log.evictedThrough).toBe(2);
    expect(log.evictedBy).toBe('replay-overflow');
    expect(log.bytes).toBe(200); // unwritten 3, 4 stay: the caller refuses the new send instead
  });

  it('age bound evicts old entries, returning the unsent ones as lost', () => {
    const log = new OutboundLog();
    log.append(1, frame(1), 0);
    log.append(1, frame(1), 10);
    log.append(1, frame(1), 50);
    log.writeSeq = 2;
    const lost = log.evictOlderThan(20);
    expect(lost.map((e) => e.seq)).toEqual([2]);
    expect(log.evictedThrough).toBe(2);
    expect(log.evictedBy).toBe('replay-expired');
    expect(log.firstSeq).toBe(3);
    expect(log.writeSeq).toBe(3);
  });

  it('clear keeps the numbering and the ack count', () => {
    const log = new OutboundLog();
    for (let i = 0; i < 3; i++) log.append(1, frame(1), 0);
    log.writeSeq = 4;
    log.ack(2);
    expect(log.clear()).toBe(1);
    expect({ next: log.nextSeq, acked: log.ackedThrough, length: log.length }).toEqual({ next: 4, acked: 2, length: 0 });
  });
});

describe('MemoryBudget', () => {
  it('reserves up to the limit, recounts before refusing', () => {
    let held = 0;
    const b = new MemoryBudget({ limitBytes: 100 });
    b.register({ memoryUsage: () => held });
    expect(b.reserve(60)).toBe(true);
    held = 10; // most of it drained since
    expect(b.reserve(60)).toBe(true); // recount (10) + 60 fits
    expect(b.usedBytes).toBe(70);
    expect(b.reserve(60)).toBe(false); // already recounted this turn
    expect(b.stats().refusals).toBe(1);
    b.release(1000);
    expect(b.usedBytes).toBe(0);
    expect(() => new MemoryBudget({ limitBytes: 0 })).toThrow(/limitBytes/);
  });
});

describe('MemoryBudget fairness', () => {
  it('when full, a small holder gets an overdraft and the largest holders above the fair share are closed; a big holder is refused', () => {
    const MiB = 1024 * 1024;
    const holders = new Map<string, number>([
      ['hog-a', 4 * MiB],
      ['hog-b', 3 * MiB],
      ['small', 0],
    ]);
    const evicted: string[] = [];
    const b = new MemoryBudget({ limitBytes: 8 * MiB });
    b.register({
      memoryUsage: () => [...holders.values()].reduce((x, y) => x + y, 0),
      sessionCount: () => holders.size,
      holders: (min) =>
        [...holders]
          .filter(([, n]) => n > min)
          .map(([name, bytes]) => ({
            bytes,
            evict: () => {
              evicted.push(name);
              holders.delete(name);
              return bytes;
            },
          })),
    });
    b.recount();
    holders.set('hog-b', 4 * MiB - 100); // full to within 100 bytes
    b.recount();
    expect(b.fairShare()).toBe(Math.floor((8 * MiB) / 3));
    // A big holder asking for more is refused (it holds more than its share).
    expect(b.tryReserve(4096) || b.admit(4096, holders.get('hog-a')!)).toBe(false);
    expect(b.stats().refusals).toBe(1);
    // The small one is served, and the largest holder pays.
    expect(b.tryReserve(4096) || b.admit(4096, holders.get('small')!)).toBe(true);
    expect(evicted).toEqual(['hog-a']);
    expect(b.usedBytes).toBeLessThanOrEqual(8 * MiB);
    expect(b.stats()).toMatchObject({ overdrafts: 1, evictions: 1 });
    console.log(`[budget] full 8 MiB budget: big holder refused, small holder's 4 KiB granted, evicted ${evicted.join(',')}; ${JSON.stringify(b.stats())}`);
  });
});

describe('options that need control frames', () => {
  it('heartbeat and resume on u32le (no packet id) fail with a clear error', () => {
    expect(() => new Client({ engine: 'node', framing: 'u32le', heartbeat: true, memoryBudget: false })).toThrow(/heartbeat needs session control frames.*no packet id/);
    expect(() => new Server({ engine: 'node', framing: 'u32le', resume: true, memoryBudget: false })).toThrow(/resume needs session control frames/);
    expect(() => new ReconnectingClient({ engine: 'node', host: '127.0.0.1', port: 1, framing: 'u32le' })).toThrow(/resume needs session control frames/);
    expect(() => new Client({ engine: 'node', heartbeat: true, controlFrames: false, memoryBudget: false })).toThrow(/controlFrames is false/);
  });

  it('application sends on reserved ids are refused where control frames are on', async () => {
    const server = new Server({ engine: 'node', memoryBudget: false });
    const { port } = await server.listen(0, '127.0.0.1');
    const c = new Client({ engine: 'node', memoryBudget: false });
    const s = await c.connect({ host: '127.0.0.1', port });
    expect(() => s.send(new Uint8Array(1), 0xff01)).toThrow(/reserved/);
    await c.close(100);
    await server.close(100);
    const plain = new Client({ engine: 'node', framing: 'u32le', memoryBudget: false });
    expect(plain.controlEnabled).toBe(false);
    await plain.close(10);
  });

  it('bad reconnect and resume options fail up front', () => {
    expect(() => resolveBackoff({ jitter: 2 })).toThrow(/jitter/);
    expect(() => new ReconnectingClient({ engine: 'node', host: '127.0.0.1', port: 1, resume: { token: 'nope' } })).toThrow(/token/);
    expect(() => new Server({ engine: 'node', resume: { resumeWindowMs: -1 }, memoryBudget: false })).toThrow(/resumeWindowMs/);
  });
});

describe('toSessionId', () => {
  it('brands a positive safe integer and refuses anything else with ERR_INVALID_ARG_VALUE', () => {
    expect(toSessionId(42)).toBe(42);
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53]) {
      expect(() => toSessionId(bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
  });
});
