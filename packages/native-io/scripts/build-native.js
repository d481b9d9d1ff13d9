#!/usr/bin/env node
'use strict';
/*
 * Builds the FastPort native addon (build/Release/fastport_native.node) with
 * node-gyp, always against the headers of the Node that runs this script, so
 * node-gyp never downloads anything.
 *
 *   node scripts/build-native.js             build unless an up-to-date build exists
 *   node scripts/build-native.js --force     rebuild
 *   node scripts/build-native.js --prebuild  prebuildify --napi --strip into prebuilds/<platform>-<arch>/
 *   node scripts/build-native.js --install   install hook: use a prebuild or an up-to-date
 *                                            build if one loads, else build; never fails
 *   node scripts/build-native.js --check     exit 0 if an up-to-date build exists, 1 if not (builds nothing)
 *   --debug    Debug build (build/Debug)
 *   --verbose  node-gyp --verbose
 *
 * Exit codes: 0 built / up to date / no toolchain on this machine (warning
 * printed: the `node` engine still works); 1 the compiler or node-gyp failed.
 * FASTPORT_SKIP_NATIVE=1 skips everything (exit 0).
 */
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const TARGET = 'fastport_native';
const STAMP = 'fastport-native.stamp.json';
const NO_TOOLCHAIN = 'no C++ toolchain (Visual Studio) found';

const argv = process.argv.slice(2);
const flags = new Set(argv);
for (const a of argv) {
  if (!['--force', '--prebuild', '--install', '--check', '--debug', '--verbose'].includes(a)) {
    fail(`unknown option ${a}`);
  }
}
const FORCE = flags.has('--force');
const PREBUILD = flags.has('--prebuild');
const INSTALL = flags.has('--install');
const CHECK = flags.has('--check');
const DEBUG = flags.has('--debug');
const VERBOSE = flags.has('--verbose');

function log(msg) {
  process.stdout.write(`[native-io] ${msg}\n`);
}
function warn(msg) {
  process.stderr.write(`[native-io] WARNING: ${msg}\n`);
}
function fail(msg) {
  process.stderr.write(`[native-io] ERROR: ${msg}\n`);
  process.exit(1);
}

// ------------------------------------------------------------ environment

/** The Node install prefix holding include/node/node_api.h, or null. */
function resolveNodeDir() {
  const hasHeaders = (dir) => !!dir && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'));
  const fromExec = path.resolve(path.dirname(process.execPath), '..');
  if (hasHeaders(fromExec)) return fromExec;
  const fromEnv = process.env.npm_config_nodedir;
  if (hasHeaders(fromEnv)) return path.resolve(fromEnv);
  return null;
}

function commandWorks(cmd, args) {
  if (!cmd) return false;
  const r = spawnSync(cmd, args, { stdio: 'ignore', windowsHide: true, shell: false });
  return r.status === 0;
}

/**
 * What node-gyp needs besides itself: python, make and a C++ compiler
 * (POSIX), or Visual Studio (Windows, found by node-gyp itself).
 * Returns the list of what is missing.
 */
function missingToolchain() {
  const missing = [];
  const python = [process.env.PYTHON, process.env.npm_config_python, 'python3', 'python'];
  if (!python.some((p) => commandWorks(p, ['--version']))) missing.push('python3');
  if (process.platform === 'win32') return missing; // node-gyp looks for Visual Studio
  const cxx = [process.env.CXX, 'c++', 'g++', 'clang++'];
  if (!cxx.some((c) => commandWorks(c, ['--version']))) missing.push('a C++ compiler (g++ or clang++)');
  const make = process.platform.endsWith('bsd') ? ['gmake', 'make'] : ['make'];
  if (!make.some((m) => commandWorks(m, ['--version']))) missing.push('make');
  return missing;
}

function resolveFrom(request) {
  try {
    return require.resolve(request, { paths: [PKG_ROOT] });
  } catch {
    return null;
  }
}

/** node-gyp's entry script: ours (devDependency), else the one npm runs lifecycle scripts with. */
function nodeGypJs() {
  const js = resolveFrom('node-gyp/bin/node-gyp.js');
  if (js) return js;
  const npms = process.env.npm_config_node_gyp;
  if (npms && npms.endsWith('.js') && fs.existsSync(npms)) return npms;
  return null;
}

function childEnv(nodedir) {
  const env = { ...process.env };
  if (nodedir) env.npm_config_nodedir = nodedir;
  return env;
}

// ------------------------------------------------------------ up-to-date check

function listFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Hash of everything the binary depends on. */
function buildFingerprint(nodedir) {
  const h = crypto.createHash('sha256');
  const pkg = JSON.parse(fs.readFileSync(path.join(PKG_ROOT, 'package.json'), 'utf8'));
  const addonApi = resolveFrom('node-addon-api/package.json');
  const inputs = {
    version: pkg.version,
    node: process.version,
    arch: process.arch,
    platform: process.platform,
    nodedir,
    debug: DEBUG,
    nodeAddonApi: addonApi ? JSON.parse(fs.readFileSync(addonApi, 'utf8')).version : null,
  };
  h.update(JSON.stringify(inputs));
  const files = [path.join(PKG_ROOT, 'binding.gyp'), ...listFiles(path.join(PKG_ROOT, 'src')).sort()];
  for (const f of files) {
    h.update(path.relative(PKG_ROOT, f).split(path.sep).join('/'));
    h.update('\0');
    h.update(fs.readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex');
}

function outputDir() {
  return path.join(PKG_ROOT, 'build', DEBUG ? 'Debug' : 'Release');
}

function addonPath() {
  return path.join(outputDir(), `${TARGET}.node`);
}

function stampPath() {
  return path.join(PKG_ROOT, 'build', STAMP);
}

function isUpToDate(fingerprint) {
  if (!fs.existsSync(addonPath())) return false;
  try {
    const stamp = JSON.parse(fs.readFileSync(stampPath(), 'utf8'));
    return stamp.fingerprint === fingerprint;
  } catch {
    return false;
  }
}

/** Loads the addon in a child process (a fresh Node), returns an error text or null. */
function checkLoads(file) {
  const script =
    'const a = require(process.argv[1]);' +
    "if (typeof a.probe !== 'function' || typeof a.version !== 'function') throw new Error('bad exports');" +
    'process.stdout.write(a.version());';
  const r = spawnSync(process.execPath, ['-e', script, file], { encoding: 'utf8' });
  if (r.status !== 0) return (r.stderr || r.stdout || `exit ${r.status}`).trim();
  return null;
}

// ------------------------------------------------------------ build

function runNodeGyp(nodedir) {
  const gyp = nodeGypJs();
  if (!gyp) return 'node-gyp is not installed (devDependency of @fastport/native-io): run pnpm install';
  const args = [gyp, 'rebuild', DEBUG ? '--debug' : '--release', `--jobs=${os.cpus().length || 1}`];
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  args.push(VERBOSE ? '--verbose' : '--loglevel=warn');
  log(`node-gyp ${args.slice(1).join(' ')}`);
  // On Windows the output is captured to tell "no Visual Studio" (a missing
  // toolchain: warn) from a compile error (fail); elsewhere it streams.
  const capture = process.platform === 'win32';
  const r = spawnSync(process.execPath, args, {
    cwd: PKG_ROOT,
    env: childEnv(nodedir),
    stdio: capture ? 'pipe' : 'inherit',
    encoding: 'utf8',
    windowsHide: true,
  });
  if (capture) {
    process.stdout.write(r.stdout || '');
    process.stderr.write(r.stderr || '');
  }
  if (r.error) return `could not run node-gyp: ${r.error.message}`;
  if (r.status !== 0) {
    if (capture && /could not find any visual studio/i.test(`${r.stdout}${r.stderr}`)) {
      return NO_TOOLCHAIN;
    }
    return `node-gyp exited with ${r.status === null ? r.signal : r.status}`;
  }
  return null;
}

function build(nodedir) {
  const fingerprint = buildFingerprint(nodedir);
  if (!FORCE && isUpToDate(fingerprint)) {
    log(`up to date: ${path.relative(PKG_ROOT, addonPath())} (use --force to rebuild)`);
    return null;
  }
  fs.rmSync(stampPath(), { force: true });
  const err = runNodeGyp(nodedir);
  if (err) return err;
  if (!fs.existsSync(addonPath())) return `node-gyp succeeded but ${addonPath()} is missing`;
  const loadErr = checkLoads(addonPath());
  if (loadErr) return `the built addon does not load: ${loadErr}`;
  fs.writeFileSync(
    stampPath(),
    JSON.stringify({ fingerprint, node: process.version, nodedir, builtAt: new Date().toISOString() }, null, 2) + '\n',
  );
  log(`built ${path.relative(PKG_ROOT, addonPath())}`);
  return null;
}

// ------------------------------------------------------------ prebuild

function copyInto(src, dest) {
  fs.cpSync(src, dest, { recursive: true });
}

/**
 * prebuildify --napi --strip, run in a staging copy of the sources so the
 * package's own build/ is never rebuilt underneath a running test or app.
 * Output: prebuilds/<platform>-<arch>/@fastport+native-io.node
 */
function prebuild(nodedir) {
  const bin = resolveFrom('prebuildify/bin.js');
  if (!bin) return 'prebuildify is not installed (devDependency of @fastport/native-io): run pnpm install';
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-prebuild-'));
  try {
    copyInto(path.join(PKG_ROOT, 'binding.gyp'), path.join(stage, 'binding.gyp'));
    copyInto(path.join(PKG_ROOT, 'package.json'), path.join(stage, 'package.json'));
    copyInto(path.join(PKG_ROOT, 'src'), path.join(stage, 'src'));
    fs.symlinkSync(
      path.join(PKG_ROOT, 'node_modules'),
      path.join(stage, 'node_modules'),
      process.platform === 'win32' ? 'junction' : 'dir',
    );

    const env = childEnv(nodedir);
    // prebuildify spawns node-gyp itself; make it ours (the .bin shim), with nodedir in env.
    const shim = path.join(PKG_ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
    if (fs.existsSync(shim)) env.PREBUILD_NODE_GYP = shim;
    if (!VERBOSE) env.npm_config_loglevel = 'warn';

    const outDir = path.join(PKG_ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    const args = [bin, '--napi', '--strip', `--target=${process.versions.node}`, `--out=${PKG_ROOT}`];
    if (DEBUG) args.push('--debug');
    log(`prebuildify ${args.slice(1).join(' ')} (staged in ${stage})`);
    const r = spawnSync(process.execPath, args, { cwd: stage, env, stdio: 'inherit', windowsHide: true });
    if (r.error) return `could not run prebuildify: ${r.error.message}`;
    if (r.status !== 0) return `prebuildify exited with ${r.status === null ? r.signal : r.status}`;

    const built = fs.existsSync(outDir) ? fs.readdirSync(outDir).filter((f) => f.endsWith('.node')) : [];
    if (built.length === 0) return `prebuildify succeeded but ${outDir} holds no .node file`;
    for (const f of built) {
      const loadErr = checkLoads(path.join(outDir, f));
      if (loadErr) return `prebuild ${f} does not load: ${loadErr}`;
      log(`prebuilt ${path.relative(PKG_ROOT, path.join(outDir, f))}`);
    }
    return null;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------ main

function main() {
  if (process.env.FASTPORT_SKIP_NATIVE === '1') {
    log('FASTPORT_SKIP_NATIVE=1: native addon not built (the node engine still works)');
    return;
  }
  if (!fs.existsSync(path.join(PKG_ROOT, 'binding.gyp'))) fail('binding.gyp not found');

  if (CHECK) {
    const nodedir = resolveNodeDir();
    if (isUpToDate(buildFingerprint(nodedir))) {
      log(`up to date: ${path.relative(PKG_ROOT, addonPath())}`);
      return;
    }
    fail(`no up-to-date build at ${path.relative(PKG_ROOT, addonPath())}: run node scripts/build-native.js`);
  }

  if (INSTALL) {
    // A shipped prebuild, or a dev build of these very sources, that loads? Then done.
    let found = null;
    try {
      found = require('node-gyp-build').path(PKG_ROOT);
    } catch {
      // nothing there: build below
    }
    if (found) {
      const isPrebuild = found.includes(`${path.sep}prebuilds${path.sep}`);
      if ((isPrebuild || isUpToDate(buildFingerprint(resolveNodeDir()))) && !checkLoads(found)) {
        log(`using ${path.relative(PKG_ROOT, found)}`);
        return;
      }
    }
  }

  const nodedir = resolveNodeDir();
  if (nodedir) {
    log(`Node headers: ${path.join(nodedir, 'include', 'node')} (nodedir=${nodedir})`);
  } else {
    warn(
      `no Node headers next to ${process.execPath} (../include/node/node_api.h) nor in npm_config_nodedir; ` +
        'node-gyp will try to download them',
    );
  }

  const missing = missingToolchain();
  if (missing.length > 0) {
    const msg =
      `cannot build the native addon: ${missing.join(', ')} not found. ` +
      'The uring/epoll/iocp/rio engines are unavailable; the `node` engine still works.';
    if (PREBUILD) fail(msg);
    warn(msg);
    return;
  }

  const err = PREBUILD ? prebuild(nodedir) : build(nodedir);
  if (err === NO_TOOLCHAIN && !PREBUILD) {
    warn(`cannot build the native addon: ${err}. The native engines are unavailable; the \`node\` engine still works.`);
    return;
  }
  if (err) {
    if (INSTALL) {
      warn(`${err}. The native engines are unavailable; the \`node\` engine still works.`);
      return;
    }
    fail(err);
  }
}

main();
