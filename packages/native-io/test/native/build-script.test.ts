/**
 * scripts/build-native.js: no toolchain is a warning (exit 0, the node engine
 * still works), a compile error is a failure (exit 1). Both run on copies or
 * without touching build/.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILD_SCRIPT, PKG_ROOT, describeRun, run } from './helpers';

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

/** An env whose PATH has no compiler, make or python (node is run by absolute path). */
function envWithoutToolchain(): NodeJS.ProcessEnv {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-nopath-'));
  temps.push(empty);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty };
  delete env.CXX;
  delete env.CC;
  delete env.PYTHON;
  delete env.npm_config_python;
  return env;
}

describe('scripts/build-native.js', () => {
  it('warns and exits 0 when there is no toolchain, leaving build/ alone', () => {
    const addon = path.join(PKG_ROOT, 'build', 'Release', 'fastport_native.node');
    const before = fs.existsSync(addon) ? fs.statSync(addon).mtimeMs : null;
    const r = run(process.execPath, [BUILD_SCRIPT, '--force'], { env: envWithoutToolchain() });
    expect(r.status, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/WARNING: cannot build the native addon: .*not found/);
    expect(r.stderr).toMatch(/`node` engine still works/);
    const after = fs.existsSync(addon) ? fs.statSync(addon).mtimeMs : null;
    expect(after).toBe(before);
  });

  it('fails (exit 1) on --prebuild without a toolchain', () => {
    const r = run(process.execPath, [BUILD_SCRIPT, '--prebuild'], { env: envWithoutToolchain() });
    expect(r.status, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/ERROR: cannot build the native addon/);
  });

  it.runIf(process.platform === 'linux')('fails (exit 1) on a compile error', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-broken-'));
    temps.push(copy);
    for (const item of ['binding.gyp', 'package.json', 'src', 'scripts']) {
      fs.cpSync(path.join(PKG_ROOT, item), path.join(copy, item), { recursive: true });
    }
    fs.symlinkSync(path.join(PKG_ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
    fs.appendFileSync(path.join(copy, 'src', 'common', 'version.cc'), '\n#error deliberate compile error (test)\n');
    const r = run(process.execPath, [path.join(copy, 'scripts', 'build-native.js')], { cwd: copy });
    expect(r.status, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/deliberate compile error/);
    expect(r.stderr).toMatch(/ERROR: node-gyp exited with/);
  });

  it('rejects unknown options', () => {
    const r = run(process.execPath, [BUILD_SCRIPT, '--nope']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unknown option --nope/);
  });
});
