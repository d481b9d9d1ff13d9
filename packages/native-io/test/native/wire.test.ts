/**
 * The JS <-> native wire has one definition (wire/wire.json): the checked-in
 * C++ header and TypeScript constants are what it generates, the addon speaks
 * that version, and a build that speaks another one is refused by name.
 */
import Module from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as wire from '../../lib/wire';
import { PKG_ROOT, describeRun, run } from './helpers';
import * as path from 'node:path';

type NativeModule = typeof import('../../lib/native');
type NodeLoader = (m: { exports: unknown }, filename: string) => void;

const GEN = path.join(PKG_ROOT, 'scripts', 'gen-wire.js');
const extensions = (Module as unknown as { _extensions: Record<string, NodeLoader> })._extensions;
const realNodeLoader = extensions['.node'] as NodeLoader;

async function freshLoader(): Promise<NativeModule> {
  vi.resetModules();
  return (await import('../../lib/native')) as NativeModule;
}

describe('native wire: one definition', () => {
  afterEach(() => {
    extensions['.node'] = realNodeLoader;
  });

  it('src/common/wire.h and lib/wire.ts are what wire/wire.json generates', () => {
    const r = run(process.execPath, [GEN, '--check']);
    expect(r.status, `stale generated wire files: run node scripts/gen-wire.js\n${describeRun(r)}`).toBe(0);
  });

  it('the generator rejects a definition that reuses a value', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const gen = require(GEN) as { cpp: (w: unknown) => string; ts: (w: unknown) => string; load: () => { spec: unknown; wireVersion: string } };
    const w = gen.load();
    expect(w.wireVersion).toBe(wire.WIRE_VERSION);
    // Both outputs come from the same constants.
    const header = gen.cpp(w);
    expect(header).toContain(`kRecWords = ${wire.REC_WORDS};`);
    expect(header).toContain(`kCmdSend = ${wire.CMD_SEND},`);
    expect(header).toContain(`kErrResolveFailed = ${wire.ERR_RESOLVE_FAILED};`);
  });

  it('the addon reports the wire version this JavaScript expects', async () => {
    const native = await freshLoader();
    const binding = native.loadNative();
    expect(native.nativeLoadError()).toBeNull();
    expect(binding?.WIRE_VERSION).toBe(wire.WIRE_VERSION);
  });

  it('an addon that speaks another wire version is refused with a clear error', async () => {
    const first = await freshLoader();
    const real = first.loadNative();
    const file = first.nativeAddonPath();
    expect(real).not.toBeNull();
    expect(file).not.toBeNull();
    // Stand in for a stale build: the same exports with another WIRE_VERSION.
    const req = Module.createRequire(path.join(PKG_ROOT, 'package.json'));
    delete req.cache[file as string];
    extensions['.node'] = (m, filename) => {
      if (filename === file) m.exports = { ...(real as object), WIRE_VERSION: '0-stale' };
      else realNodeLoader(m, filename);
    };
    const native = await freshLoader();
    expect(native.loadNative()).toBeNull();
    const err = native.nativeLoadError();
    expect(err?.message).toContain('wire version 0-stale');
    expect(err?.message).toContain(wire.WIRE_VERSION);
    expect(err?.message).toContain('rebuild');
  });
});
