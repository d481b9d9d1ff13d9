import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { echoBenchArgs, echoBenchHeader } from '../src/echobench';
import { sourceAddresses, splitConnections } from '../src/idle';
import { PayloadPattern, maxFrameFor, maxPayload } from '../src/payload';
import { defaultCpus, parseCpuList, pinPrefix } from '../src/pin';
import { parseStat, parseStatusKb } from '../src/proc';
import { renderProgress } from '../src/progress';
import { clientCandidates, split } from '../src/runner';
import { formatReport } from '../src/report';
import { clientCores, isClientSaturated } from '../src/saturation';
import { parseTarget } from '../src/servers';
import { report, result } from './fixtures';

describe('payload verification catches any wrong byte', () => {
  // 5000: past the prebuilt requests (256 × 5000 B > 1 MiB), built per send and compared in C++
  for (const size of [1, 7, 8, 9, 64, 1000, 5000]) {
    it(`size ${size}`, () => {
      const p = new PayloadPattern(size);
      const msg = Buffer.from(p.raw(3, 41)); // copy: raw() reuses its scratch
      expect(p.verifyRaw(msg, 3, 41)).toBe(true);
      for (let i = 0; i < size; i++) {
        const bad = Buffer.from(msg);
        bad[i] = bad[i]! ^ 0x01;
        expect(p.verifyRaw(bad, 3, 41)).toBe(false);
      }
      expect(p.verifyRaw(msg.subarray(0, size - 1), 3, 41)).toBe(false);
      if (size >= 8) {
        expect(p.verifyRaw(msg, 4, 41)).toBe(false); // another connection's message
        expect(p.verifyRaw(msg, 3, 42)).toBe(false); // out of order
      }
      // a neighbouring message differs from this one
      expect(Buffer.compare(Buffer.from(p.raw(3, 42)), msg)).not.toBe(0);
    });
  }
  it('prebuilt requests carry their header and every connection/seq, across all 256 windows', () => {
    const header = (f: Buffer) => f.writeUInt32LE(60, 0);
    const p = new PayloadPattern(60, 4, header);
    const seen = new Set<string>();
    for (let seq = 0; seq < 600; seq++) {
      const payload = p.raw(7, seq);
      expect(p.frame.readUInt32LE(0)).toBe(60);
      expect(p.frame.subarray(4).equals(payload)).toBe(true);
      expect(payload.readUInt32LE(0)).toBe(7);
      expect(payload.readUInt32LE(4)).toBe(seq);
      const copy = Buffer.from(payload);
      expect(p.verifyRaw(copy, 7, seq)).toBe(true);
      expect(p.verifyRaw(copy, 7, seq + 1)).toBe(false);
      // a reply at an odd offset inside a larger buffer (as a read delivers it)
      const inRead = Buffer.alloc(3 + copy.length + 5);
      copy.copy(inRead, 3);
      expect(p.verifyRawAt(inRead, 3, 60, 7, seq)).toBe(true);
      inRead[3 + 59] = inRead[3 + 59]! ^ 0x10;
      expect(p.verifyRawAt(inRead, 3, 60, 7, seq)).toBe(false);
      seen.add(copy.toString('hex'));
    }
    expect(seen.size).toBe(600);
  });
  it('BenchmarkRequest bodies too', () => {
    const p = new PayloadPattern(100);
    const body = Buffer.from(p.body(9));
    expect(p.verifyBody(body, 9)).toBe(true);
    expect(p.verifyBody(body, 10)).toBe(false);
    body[99] = body[99]! ^ 0x80;
    expect(p.verifyBody(body, 9)).toBe(false);
  });
  it('framing limits', () => {
    expect(maxPayload('fastport', 0xffff)).toBe(65531);
    expect(maxFrameFor('large', 1024)).toBe(16 * 1024 * 1024);
    expect(maxFrameFor('large', 32 * 1024 * 1024)).toBeGreaterThan(32 * 1024 * 1024 + 6);
  });
});

describe('pinning', () => {
  it('parses cpu lists', () => {
    expect(parseCpuList('0')).toEqual([0]);
    expect(parseCpuList('1-3')).toEqual([1, 2, 3]);
    expect(parseCpuList('0,2,4-5')).toEqual([0, 2, 4, 5]);
    expect(() => parseCpuList('a')).toThrow(/bad cpu list/);
    expect(() => parseCpuList('3-1')).toThrow(/bad cpu range/);
  });
  it('splits the cores between server and load generator', () => {
    expect(defaultCpus(1)).toBeUndefined();
    expect(defaultCpus(2)).toEqual({ server: '0', client: '1' });
    expect(defaultCpus(8)).toEqual({ server: '0-3', client: '4-7' });
    expect(pinPrefix('1')).toEqual(['taskset', '-c', '1']);
    expect(pinPrefix(undefined)).toEqual([]);
  });
});

describe('/proc parsing', () => {
  it('reads utime, stime and threads from stat, even with spaces in the name', () => {
    const stat = '1234 (node (a b)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 12345 1000000 2000 rest';
    expect(parseStat(stat)).toEqual({ utime: 250, stime: 75, threads: 7 });
  });
  it('reads kB fields from status', () => {
    const status = 'Name:\tnode\nVmHWM:\t   90000 kB\nVmRSS:\t   81234 kB\n';
    expect(parseStatusKb(status, 'VmRSS')).toBe(81234 * 1024);
    expect(parseStatusKb(status, 'VmSwap')).toBeNaN();
  });
});

describe('splitting the load', () => {
  it('splits connections over threads and processes', () => {
    expect(split(50, 1)).toEqual([50]);
    expect(split(10, 3)).toEqual([4, 3, 3]);
    expect(splitConnections(15000, 10000)).toEqual([7500, 7500]);
    expect(splitConnections(100, 10000)).toEqual([100]);
    expect(splitConnections(20001, 10000)).toEqual([6667, 6667, 6667]);
  });
  it('names source addresses from 127.0.0.2', () => {
    expect(sourceAddresses(3)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(sourceAddresses(300)[254]).toBe('127.0.1.0');
  });
  it('client engine candidates: auto tries the platform order, ending with node', () => {
    const auto = clientCandidates('auto');
    expect(auto[auto.length - 1]).toBe('node');
    expect(clientCandidates('epoll')).toEqual(['epoll']);
  });
});

describe('misc', () => {
  it('parses targets', () => {
    expect(parseTarget('127.0.0.1:9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseTarget('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(() => parseTarget('nope')).toThrow(/host:port/);
  });
  it('builds echo-bench command lines with the same settings and pinning', () => {
    expect(echoBenchHeader('large')).toBeUndefined();
    const kit = fs.mkdtempSync(path.join(os.tmpdir(), 'kit-'));
    const o = { kit, host: '127.0.0.1', port: 9101, connections: 50, depth: 4, size: 64, framing: 'u32le' as const, duration: 5, warmup: 1, threads: 1, cpus: '1' };
    expect(() => echoBenchArgs(o)).toThrow(/build-kit\.sh/);
    fs.writeFileSync(path.join(kit, 'echo-bench'), '');
    expect(echoBenchArgs(o)).toEqual(['taskset', '-c', '1', path.join(kit, 'echo-bench'), '-a', '127.0.0.1', '-p', '9101', '-c', '50', '-k', '4', '-s', '64', '-d', '5', '-w', '1', '-t', '1', '-H', 'u32le']);
    expect(() => echoBenchArgs({ ...o, framing: 'large' })).toThrow(/no 'large' framing/);
  });
  it('renders a progress line', () => {
    const line = renderProgress({ label: 'epoll', phase: 'measure', elapsedSec: 2.5, totalSec: 5, rate: 123456, unit: 'msgs/s', connected: 50, errors: 0, mismatches: 0 });
    expect(line).toContain('123,456 msgs/s');
    expect(line).toContain('2.5/5s');
    expect(line).toContain('█'.repeat(12));
  });
});

describe('client saturation rule', () => {
  it('is >= 90% of the cores the client may use', () => {
    expect(isClientSaturated(89.9, 1)).toBe(false);
    expect(isClientSaturated(90, 1)).toBe(true);
    expect(isClientSaturated(170, 2)).toBe(false);
    expect(isClientSaturated(180, 2)).toBe(true);
    expect(isClientSaturated(undefined, 1)).toBeUndefined();
    expect(isClientSaturated(NaN, 1)).toBeUndefined();
  });
  it('counts the cores of the pinning in force', () => {
    const list = fs.readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s+(\S+)/m)?.[1];
    expect(clientCores()).toBe(parseCpuList(list ?? '0').length);
  });
  it('is marked SAT in the table', () => {
    const r = result('uring', 100_000, { clientCpuPct: 95, clientCpus: 1, clientSaturated: true });
    expect(formatReport(report([r]))).toMatch(/95\.0 SAT/);
    const r2 = result('uring', 100_000, { clientCpuPct: 50, clientCpus: 1, clientSaturated: false });
    expect(formatReport(report([r2]))).not.toMatch(/SAT/);
  });
});
