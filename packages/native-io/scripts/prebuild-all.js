#!/usr/bin/env node
'use strict';
/*
 * Every prebuild the published package ships, in the prebuildify layout
 * (prebuilds/<platform>-<arch>/@fastport+native-io.node), built on this
 * Linux machine (package scripts prebuild:all and prepack):
 *
 *   linux-x64  node scripts/build-native.js --prebuild   (prebuildify, this Node's headers)
 *   linux-arm64 node scripts/build-arm64.js --if-stale   (g++-aarch64-linux-gnu cross build)
 *   win32-x64  node scripts/build-win32.js               (mingw-w64 cross build)
 *
 * Exit 1 naming the target whose build failed or whose file is missing.
 * The list below is the one place to add a target (another platform-arch).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const FILE = `${require(path.join(PKG_ROOT, 'package.json')).name.replace(/\//g, '+')}.node`;

const TARGETS = [
  { dir: 'linux-x64', cmd: ['scripts/build-native.js', '--prebuild'] },
  { dir: 'linux-arm64', cmd: ['scripts/build-arm64.js', '--if-stale'] },
  { dir: 'win32-x64', cmd: ['scripts/build-win32.js'] },
];

for (const t of TARGETS) {
  process.stdout.write(`[prebuild-all] ${t.dir}: node ${t.cmd.join(' ')}\n`);
  const r = spawnSync(process.execPath, t.cmd, { cwd: PKG_ROOT, stdio: 'inherit' });
  const file = path.join(PKG_ROOT, 'prebuilds', t.dir, FILE);
  if (r.status !== 0 || !fs.existsSync(file)) {
    process.stderr.write(`[prebuild-all] ERROR: ${t.dir}: build failed or ${path.relative(PKG_ROOT, file)} missing\n`);
    process.exit(1);
  }
  process.stdout.write(`[prebuild-all] ${t.dir}: ${path.relative(PKG_ROOT, file)} (${fs.statSync(file).size} bytes)\n`);
}
