/**
 * probe() on this machine. The hard expectations (io_uring with multishot,
 * buffer rings, DEFER_TASKRUN) hold on Linux >= 6.1 with io_uring enabled,
 * which is what this project's machine runs (Linux 6.18). Elsewhere set
 * FASTPORT_EXPECT_URING=0 to check only the shape and consistency.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  loadNative,
  nativeLoadError,
  type NativeBinding,
  type ProbeResult,
  URING_FEATURE_NAMES,
  URING_OP_NAMES,
  URING_SETUP_FLAG_NAMES,
} from '../../lib/native';
import { PKG_ROOT, describeRun, loadScript, run } from './helpers';

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [ma, mi] = [Number(m[1]), Number(m[2])];
  return ma > major || (ma === major && mi >= minor);
}

function uringSysctl(): number | null {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim());
  } catch {
    return null;
  }
}

const EXPECT_URING =
  process.platform === 'linux' &&
  process.env.FASTPORT_EXPECT_URING !== '0' &&
  kernelAtLeast(os.release(), 6, 1) &&
  (uringSysctl() ?? 0) === 0;

describe('native addon: probe()', () => {
  let binding: NativeBinding;
  let result: ProbeResult;

  beforeAll(() => {
    const b = loadNative();
    if (b === null) throw new Error(`addon did not load: ${nativeLoadError()?.message}`);
    binding = b;
    result = binding.probe();
  });

  it('describes this OS', () => {
    expect(result.platform).toBe(process.platform);
    if (process.platform === 'linux') {
      expect(result.kernel).toBe(os.release());
      expect(result.note).toBeUndefined();
    }
  });

  it('reports every known capability by name, in the order lib/native.ts declares', () => {
    expect(Object.keys(result.uring.features)).toEqual([...URING_FEATURE_NAMES]);
    expect(Object.keys(result.uring.ops)).toEqual([...URING_OP_NAMES]);
    expect(Object.keys(result.uring.setupFlags)).toEqual([...URING_SETUP_FLAG_NAMES]);
    for (const group of [result.uring.features, result.uring.ops, result.uring.setupFlags]) {
      for (const v of Object.values(group)) expect(typeof v).toBe('boolean');
    }
  });

  it('is self-consistent', () => {
    const u = result.uring;
    // features mirror the raw mask, bit i = i-th name
    URING_FEATURE_NAMES.forEach((name, i) => {
      expect(u.features[name], name).toBe((u.featuresMask & (1 << i)) !== 0);
    });
    // no opcode beyond lastOp
    URING_OP_NAMES.forEach((name, i) => {
      if (u.ops[name]) expect(i, name).toBeLessThanOrEqual(u.lastOp ?? -1);
    });
    if (u.setupFlags.deferTaskrun) expect(u.setupFlags.singleIssuer).toBe(true);
    if (u.setupFlags.taskrunFlag) expect(u.setupFlags.coopTaskrun).toBe(true);
    if (u.multishotRecv) expect(u.bufRing).toBe(true);
    if (u.bufRingIncremental) expect(u.bufRing).toBe(true);
    if (u.available) {
      expect(u.error).toBeUndefined();
      expect(u.errno).toBeUndefined();
    } else {
      expect(u.error).toMatch(/^E[A-Z0-9]+$/);
      expect(typeof u.errno).toBe('number');
      expect(u.featuresMask).toBe(0);
      expect(u.multishotAccept || u.multishotRecv || u.bufRing).toBe(false);
    }
  });

  it.runIf(EXPECT_URING)('finds io_uring with everything the uring engine needs (Linux >= 6.1)', () => {
    const u = result.uring;
    expect(u.available).toBe(true);
    expect(u.disabledSysctl === null || u.disabledSysctl === 0).toBe(true);
    expect(u.notes).toEqual([]);
    for (const f of ['singleMmap', 'nodrop', 'submitStable', 'fastPoll', 'extArg'] as const) {
      expect(u.features[f], f).toBe(true);
    }
    for (const op of ['accept', 'recv', 'send', 'sendmsg', 'connect', 'close', 'shutdown', 'asyncCancel', 'sendZc'] as const) {
      expect(u.ops[op], op).toBe(true);
    }
    expect(u.setupFlags.singleIssuer).toBe(true);
    expect(u.setupFlags.deferTaskrun).toBe(true);
    expect(u.setupFlags.coopTaskrun).toBe(true);
    expect(u.bufRing).toBe(true);
    expect(u.multishotAccept).toBe(true);
    expect(u.multishotRecv).toBe(true);
    expect(u.lastOp).toBeGreaterThanOrEqual(URING_OP_NAMES.indexOf('sendmsgZc'));
  });

  it.runIf(EXPECT_URING && kernelAtLeast(os.release(), 6, 12))('finds bundles and incremental buffer rings (Linux >= 6.12)', () => {
    expect(result.uring.features.recvsendBundle).toBe(true);
    expect(result.uring.bufRingIncremental).toBe(true);
  });

  it.runIf(process.platform === 'linux')('finds epoll', () => {
    expect(result.epoll).toEqual({ available: true });
  });

  it('gives the same answer every time', () => {
    const again = binding.probe();
    expect(again).toEqual(result);
  });

  it.runIf(process.platform === 'linux')('leaves no fd, ring or mapping behind (fresh process, 200 probes)', () => {
    const script = [
      'const fs = require("fs");',
      loadScript(PKG_ROOT),
      'const fds = () => fs.readdirSync("/proc/self/fd").length;',
      'const ringMaps = () => fs.readFileSync("/proc/self/maps", "utf8").split("\\n").filter((l) => /io_uring/.test(l)).length;',
      'addon.probe();',
      'const before = { fds: fds(), maps: ringMaps() };',
      'for (let i = 0; i < 200; i++) addon.probe();',
      'const after = { fds: fds(), maps: ringMaps() };',
      'process.stdout.write(JSON.stringify({ before, after }));',
    ].join('\n');
    const r = run(process.execPath, ['-e', script]);
    expect(r.status, describeRun(r)).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as { before: { fds: number; maps: number }; after: { fds: number; maps: number } };
    expect(after.fds).toBe(before.fds);
    expect(before.maps).toBe(0);
    expect(after.maps).toBe(0);
  });
});
