#!/usr/bin/env node
'use strict';
/*
 * Packs @fastport/native-io into a temp dir (npm pack --ignore-scripts: what
 * `files` ships, no build run) and lists the tarball; exit 1 naming every
 * required path that is not in it.
 *
 *   node scripts/check-pack.js <path in the package>...
 *   node scripts/check-pack.js prebuilds/linux-arm64/@fastport+native-io.node
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const required = process.argv.slice(2);

function fail(msg) {
  process.stderr.write(`[check-pack] ERROR: ${msg}\n`);
  process.exit(1);
}

if (required.length === 0) fail('name at least one path the tarball must hold');
const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-pack-'));
try {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const packed = spawnSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', dest], {
    cwd: PKG_ROOT,
    encoding: 'utf8',
  });
  if (packed.status !== 0) fail(`npm pack failed: ${(packed.stderr || packed.stdout || '').trim()}`);
  const tgz = fs.readdirSync(dest).find((f) => f.endsWith('.tgz'));
  if (!tgz) fail(`npm pack left no tarball in ${dest}`);
  const listed = spawnSync('tar', ['tzf', path.join(dest, tgz)], { encoding: 'utf8' });
  if (listed.status !== 0) fail(`tar tzf ${tgz} failed: ${listed.stderr.trim()}`);
  const entries = new Set(listed.stdout.split('\n').filter(Boolean).map((e) => e.replace(/^package\//, '')));
  const missing = required.filter((p) => !entries.has(p));
  if (missing.length > 0) fail(`${tgz} lacks ${missing.join(', ')} (${entries.size} entries)`);
  const prebuilds = [...entries].filter((e) => e.startsWith('prebuilds/')).sort();
  process.stdout.write(`[check-pack] ${tgz}: ${entries.size} entries, prebuilds: ${prebuilds.join(', ')}\n`);
} finally {
  fs.rmSync(dest, { recursive: true, force: true });
}
