/**
 * The addon builds fresh, loads through lib/native.ts, and the loader records
 * (never throws) why it could not load.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUILD_SCRIPT, PKG_ROOT, PKG_VERSION, describeRun, run } from './helpers';

type NativeModule = typeof import('../../lib/native');

/** A fresh instance of lib/native.ts (its load cache starts empty). */
async function freshLoader(): Promise<NativeModule> {
  vi.resetModules();
  return (await import('../../lib/native')) as NativeModule;
}

const PREBUILD_ENV = '@FASTPORT/NATIVE_IO_PREBUILD'; // node-gyp-build's per-package dir override

describe('native addon: build and load', () => {
  afterEach(() => {
    delete process.env.FASTPORT_NATIVE_DISABLE;
    delete process.env[PREBUILD_ENV];
  });

  it('has an up-to-date build of the current sources', () => {
    const r = run(process.execPath, [BUILD_SCRIPT, '--check']);
    expect(r.status, `build/ is stale or missing: run node scripts/build-native.js\n${describeRun(r)}`).toBe(0);
  });

  it('loads from build/Release through loadNative()', async () => {
    const native = await freshLoader();
    const binding = native.loadNative();
    expect(native.nativeLoadError()).toBeNull();
    expect(binding).not.toBeNull();
    expect(native.nativeAddonPath()).toBe(path.join(PKG_ROOT, 'build', 'Release', 'fastport_native.node'));
    expect(binding?.version()).toBe(PKG_VERSION);
    expect(binding?.NAPI_VERSION).toBe(8);
    // Cached: the same object every time.
    expect(native.loadNative()).toBe(binding);
  });

  it('exports exactly probe, version, NAPI_VERSION and WIRE_VERSION (plus the engine class and its backends on Linux)', async () => {
    const binding = (await freshLoader()).loadNative();
    expect(binding).not.toBeNull();
    const expected = process.platform === 'linux' ? ['NAPI_VERSION', 'NativeEngine', 'WIRE_VERSION', 'backends', 'probe', 'version'] : ['NAPI_VERSION', 'WIRE_VERSION', 'probe', 'version'];
    expect(Object.keys(binding ?? {}).sort()).toEqual(expected);
    if (process.platform === 'linux') expect(binding?.backends).toContain('epoll');
  });

  it('reports, without throwing, an addon that is not there', async () => {
    process.env[PREBUILD_ENV] = path.join(PKG_ROOT, 'does-not-exist');
    const native = await freshLoader();
    expect(() => native.loadNative()).not.toThrow();
    expect(native.loadNative()).toBeNull();
    const err = native.nativeLoadError();
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/native addon not found/);
    expect(err?.message).toMatch(/No native build was found/);
    expect(native.nativeAddonPath()).toBeNull();
  });

  it('can be disabled with FASTPORT_NATIVE_DISABLE=1', async () => {
    process.env.FASTPORT_NATIVE_DISABLE = '1';
    const native = await freshLoader();
    expect(native.loadNative()).toBeNull();
    expect(native.nativeLoadError()?.message).toMatch(/FASTPORT_NATIVE_DISABLE/);
  });
});
