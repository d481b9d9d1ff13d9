/**
 * `pnpm --filter @fastport/native-io run prebuildify` (prebuildify --napi
 * --strip) leaves prebuilds/<platform>-<arch>/*.node, and node-gyp-build
 * loads it when there is no build/: checked in a temp copy of the package
 * (package.json + prebuilds/ only), so the real build/ is never touched.
 * When the prebuild is missing or older than the sources it is made here
 * first (the prebuild script compiles in a staging dir, never in build/).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChild } from '@fastport/test-utils';
import type { ProbeResult } from '../../lib/native';
import { findExecutable } from '@fastport/test-utils';
import { BUILD_SCRIPT, PKG_ROOT, PKG_VERSION, PREBUILD_DIR, describeRun, probeScript, run } from './helpers';

function prebuildFiles(): string[] {
  return fs.existsSync(PREBUILD_DIR) ? fs.readdirSync(PREBUILD_DIR).filter((f) => f.endsWith('.node')) : [];
}

function newestSourceMtime(): number {
  let newest = fs.statSync(path.join(PKG_ROOT, 'binding.gyp')).mtimeMs;
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(PKG_ROOT, 'src'));
  return newest;
}

/** Missing, or older than a source file. */
function prebuildIsStale(): boolean {
  const files = prebuildFiles();
  if (files.length === 0) return true;
  const oldest = Math.min(...files.map((f) => fs.statSync(path.join(PREBUILD_DIR, f)).mtimeMs));
  return oldest < newestSourceMtime();
}

/** Does an ELF file still carry a symbol table (SHT_SYMTAB)? i.e. not stripped. */
function elfHasSymtab(file: string): boolean {
  const b = fs.readFileSync(file);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(b[4]).toBe(2); // ELFCLASS64
  const le = b[5] === 1;
  const u16 = (o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (o: number): number => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const shoff = u64(0x28);
  const shentsize = u16(0x3a);
  const shnum = u16(0x3c);
  for (let i = 0; i < shnum; i++) {
    if (u32(shoff + i * shentsize + 4) === 2) return true; // sh_type == SHT_SYMTAB
  }
  return false;
}

interface ChildProbe {
  file: string;
  version: string;
  napi: number;
  probe: ProbeResult;
}

describe('native addon: prebuild (prebuildify --napi --strip)', () => {
  let tmp = '';

  beforeAll(async () => {
    if (prebuildIsStale()) {
      // Off the worker's thread: a compile of a minute would starve vitest's RPC.
      const pnpm = findExecutable('pnpm');
      const r = pnpm
        ? await runChild(pnpm, ['--filter', '@fastport/native-io', 'run', 'prebuildify'], { timeoutMs: 170_000 })
        : await runChild(process.execPath, [BUILD_SCRIPT, '--prebuild'], { timeoutMs: 170_000 });
      if (r.status !== 0) throw new Error(`prebuild failed:\n${describeRun(r)}`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-prebuilt-'));
    fs.copyFileSync(path.join(PKG_ROOT, 'package.json'), path.join(tmp, 'package.json'));
    fs.cpSync(path.join(PKG_ROOT, 'prebuilds'), path.join(tmp, 'prebuilds'), { recursive: true });
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('exists in prebuilds/<platform>-<arch>/, N-API tagged (no ABI in the name)', () => {
    const files = prebuildFiles();
    expect(files).toEqual(['@fastport+native-io.node']);
  });

  it.runIf(process.platform === 'linux')('is stripped', () => {
    for (const f of prebuildFiles()) expect(elfHasSymtab(path.join(PREBUILD_DIR, f)), f).toBe(false);
  });

  it('loads with node-gyp-build from a package copy without build/', () => {
    expect(fs.existsSync(path.join(tmp, 'build'))).toBe(false);
    const r = run(process.execPath, ['-e', probeScript(tmp)]);
    expect(r.status, describeRun(r)).toBe(0);
    const out = JSON.parse(r.stdout) as ChildProbe;
    expect(out.file).toBe(path.join(tmp, 'prebuilds', `${process.platform}-${process.arch}`, '@fastport+native-io.node'));
    expect(out.version).toBe(PKG_VERSION);
    expect(out.napi).toBe(8);
    expect(out.probe.platform).toBe(process.platform);
  });

  it('answers probe() like the dev build', () => {
    const fromPrebuild = run(process.execPath, ['-e', probeScript(tmp)]);
    const fromBuild = run(process.execPath, ['-e', probeScript(PKG_ROOT)]);
    expect(fromPrebuild.status, describeRun(fromPrebuild)).toBe(0);
    expect(fromBuild.status, describeRun(fromBuild)).toBe(0);
    const a = JSON.parse(fromPrebuild.stdout) as ChildProbe;
    const b = JSON.parse(fromBuild.stdout) as ChildProbe;
    expect(b.file).toBe(path.join(PKG_ROOT, 'build', 'Release', 'fastport_native.node'));
    expect(a.probe).toEqual(b.probe);
  });
});
