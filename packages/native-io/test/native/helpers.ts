/** Shared bits of the native addon tests. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PKG_ROOT = path.resolve(__dirname, '..', '..');
export const BUILD_SCRIPT = path.join(PKG_ROOT, 'scripts', 'build-native.js');
export const PKG_VERSION: string = (
  JSON.parse(fs.readFileSync(path.join(PKG_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
export const PREBUILD_DIR = path.join(PKG_ROOT, 'prebuilds', `${process.platform}-${process.arch}`);

/** node-gyp-build as the package resolves it. */
export const NODE_GYP_BUILD = require.resolve('node-gyp-build', { paths: [PKG_ROOT] });

/** Lines for `node -e` that load the addon with node-gyp-build from `dir` into `file` and `addon`. */
export function loadScript(dir: string): string {
  return [
    `const ngb = require(${JSON.stringify(NODE_GYP_BUILD)});`,
    `const file = ngb.path(${JSON.stringify(dir)});`,
    'const addon = require(file);',
  ].join('\n');
}

/** A `node -e` script that loads the addon from `dir` and prints one JSON line: { file, version, napi, probe }. */
export function probeScript(dir: string): string {
  return [
    loadScript(dir),
    'process.stdout.write(JSON.stringify({ file, version: addon.version(), napi: addon.NAPI_VERSION, probe: addon.probe() }) + "\\n");',
  ].join('\n');
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? PKG_ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: 170_000,
  });
  if (r.error) throw new Error(`could not run ${cmd}: ${r.error.message}`);
  return r;
}

/** Explains a failed child process in an assertion message. */
export function describeRun(r: Pick<SpawnSyncReturns<string>, 'status' | 'signal' | 'stdout' | 'stderr'>): string {
  return `exit ${r.status ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
