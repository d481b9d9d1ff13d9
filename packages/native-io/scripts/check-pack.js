#!/usr/bin/env node
'use strict';
/*
 * Packs @fastport/native-io as npm would publish it and checks the tarball
 * (package script test:pack):
 *   - it holds dist/index.js and the three prebuilds,
 *     prebuilds/{linux-x64,linux-arm64,win32-x64}/@fastport+native-io.node;
 *   - unpacked, node-gyp-build picks the linux-x64 one here (on Windows the
 *     Wine suite, scripts/test-win32.sh step 4, checks it picks win32-x64
 *     from a copy holding both).
 * `npm pack` runs the prepack script (tsc + scripts/prebuild-all.js), so on a
 * fresh clone this builds everything first. --no-build packs what is there
 * (npm pack --ignore-scripts). Paths given as arguments are checked instead
 * of the full list (and the loader check is skipped). Exit 1 with what is
 * missing.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const FILE = `${require(path.join(PKG_ROOT, 'package.json')).name.replace(/\//g, '+')}.node`;
// Paths named on the command line (test-arm64.sh checks its own prebuild) replace the full list and the loader check.
const named = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const REQUIRED =
  named.length > 0
    ? named.map((p) => `package/${p}`)
    : ['package/dist/index.js', `package/prebuilds/linux-x64/${FILE}`, `package/prebuilds/linux-arm64/${FILE}`, `package/prebuilds/win32-x64/${FILE}`];

function fail(msg) {
  process.stderr.write(`[check-pack] FAIL: ${msg}\n`);
  process.exit(1);
}

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-pack-'));
try {
  const args = ['pack', '--pack-destination', out];
  if (process.argv.includes('--no-build')) args.push('--ignore-scripts');
  const r = spawnSync('npm', args, { cwd: PKG_ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) fail(`npm ${args.join(' ')} exited with ${r.status}`);
  const tgz = fs.readdirSync(out).find((f) => f.endsWith('.tgz'));
  if (!tgz) fail('npm pack wrote no tarball');
  const list = spawnSync('tar', ['-tzf', path.join(out, tgz)], { encoding: 'utf8' });
  if (list.status !== 0) fail('tar -tzf failed');
  const entries = new Set(list.stdout.split('\n').filter(Boolean));
  const missing = REQUIRED.filter((e) => !entries.has(e));
  if (missing.length > 0) fail(`${tgz} lacks ${missing.join(', ')}`);
  const prebuilds = [...entries].filter((e) => e.startsWith('package/prebuilds/'));
  if (named.length > 0) {
    process.stdout.write(`[check-pack] ${tgz}: ${entries.size} files; has ${named.join(', ')}\n`);
    process.exit(0);
  }
  // The loader's choice on this platform, from the unpacked tarball.
  const unpacked = path.join(out, 'unpacked');
  fs.mkdirSync(unpacked);
  if (spawnSync('tar', ['-xzf', path.join(out, tgz), '-C', unpacked]).status !== 0) fail('tar -xzf failed');
  const ngb = require.resolve('node-gyp-build', { paths: [PKG_ROOT] });
  const pick = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(ngb)}).path(process.argv[1]))`, path.join(unpacked, 'package')], {
    encoding: 'utf8',
  });
  const want = `${path.sep}prebuilds${path.sep}${process.platform}-${process.arch}${path.sep}${FILE}`;
  if (pick.status !== 0 || !pick.stdout.endsWith(want)) fail(`node-gyp-build picked ${pick.stdout || pick.stderr}, want ...${want}`);
  process.stdout.write(`[check-pack] ${tgz}: ${entries.size} files; prebuilds: ${prebuilds.map((p) => p.slice('package/prebuilds/'.length)).join(', ')}; node-gyp-build here picks ${path.relative(unpacked, pick.stdout)}\n`);
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
