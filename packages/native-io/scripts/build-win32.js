#!/usr/bin/env node
'use strict';
/*
 * Cross-builds the addon for win32-x64 with mingw-w64, on Linux:
 *
 *   node scripts/build-win32.js          -> prebuilds/win32-x64/@fastport+native-io.node
 *   node scripts/build-win32.js --out F  -> F instead
 *   --verbose                            print every compiler command
 *
 * The source list, defines and include dirs are read from binding.gyp (its
 * OS=="win" branch, by scripts/gyp-sources.js), so the gyp file stays the
 * one list of what Windows builds. Headers: node-api-headers (js_native_api.h, node_api.h) and
 * node-addon-api (napi.h); nothing is downloaded. The N-API symbols are
 * imported from NODE.EXE through import libraries that dlltool makes from
 * node-api-headers' .def files, the same way node-gyp links against
 * node.lib with MSVC. The C++ runtime is linked statically, so the .node
 * file needs no mingw DLL beside it (only system DLLs and node.exe).
 *
 * Compiler: FASTPORT_WIN32_CXX, else x86_64-w64-mingw32-g++-posix (the posix
 * thread model: GCC 12's win32 model has no std::thread), else
 * x86_64-w64-mingw32-g++. `bash scripts/setup-win32.sh` installs it.
 * Exit 1 with the missing piece named when something is absent or a compile fails.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { gypTarget, PKG_ROOT } = require('./gyp-sources');
const { crossTools } = require('./cross-tools');

const PKG = require(path.join(PKG_ROOT, 'package.json'));
// prebuildify's file name: the package name with '/' -> '+', no ABI tag (N-API).
const PREBUILD_NAME = `${PKG.name.replace(/\//g, '+')}.node`;

let verbose = false;
const { log, fail, which, run } = crossTools('build-win32', () => verbose);

const argv = process.argv.slice(2);
let outFile = path.join(PKG_ROOT, 'prebuilds', 'win32-x64', PREBUILD_NAME);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') outFile = path.resolve(argv[++i] || fail('--out needs a file'));
  else if (argv[i] === '--verbose') verbose = true;
  else fail(`unknown option ${argv[i]}`);
}

// ------------------------------------------------------------ toolchain

const cxx =
  process.env.FASTPORT_WIN32_CXX ||
  which('x86_64-w64-mingw32-g++-posix') ||
  which('x86_64-w64-mingw32-g++') ||
  fail('no x86_64-w64-mingw32-g++ (apt g++-mingw-w64-x86-64-posix): run bash scripts/setup-win32.sh');
const dlltool =
  which('x86_64-w64-mingw32-dlltool') ||
  fail('no x86_64-w64-mingw32-dlltool (apt binutils-mingw-w64-x86-64): run bash scripts/setup-win32.sh');

let napiHeaders;
try {
  napiHeaders = path.dirname(require.resolve('node-api-headers/package.json', { paths: [PKG_ROOT] }));
} catch {
  fail('node-api-headers not installed (devDependency of @fastport/native-io): run pnpm install');
}

let target;
try {
  target = gypTarget('win');
} catch (e) {
  fail(e.message);
}
const { includeDirs, defines, sources } = target;

// ------------------------------------------------------------ build

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-win32-'));
try {
  const importLibs = [];
  for (const def of ['node_api.def', 'js_native_api.def']) {
    const lib = path.join(work, `lib${path.basename(def, '.def')}.a`);
    run(dlltool, ['-d', path.join(napiHeaders, 'def', def), '-l', lib]);
    importLibs.push(lib);
  }

  const cflags = [
    '-std=c++17',
    '-O2',
    '-Wall',
    '-Wextra',
    '-fno-exceptions',
    '-fno-rtti',
    // Windows 10 APIs (GetQueuedCompletionStatusEx, ...) without guards.
    '-D_WIN32_WINNT=0x0A00',
    '-DBUILDING_NODE_EXTENSION',
    ...defines.map((d) => `-D${d}`),
    `-I${path.join(napiHeaders, 'include')}`,
    ...includeDirs.map((d) => `-I${d}`),
  ];
  const objects = [];
  for (const src of sources) {
    const obj = path.join(work, `${path.relative(PKG_ROOT, src).replace(/[\\/]/g, '_')}.o`);
    log(`compile ${path.relative(PKG_ROOT, src)}`);
    run(cxx, [...cflags, '-c', src, '-o', obj]);
    objects.push(obj);
  }

  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const tmpOut = path.join(work, PREBUILD_NAME);
  run(cxx, [
    '-shared',
    '-s',
    '-static',
    '-static-libgcc',
    '-static-libstdc++',
    '-o',
    tmpOut,
    ...objects,
    ...importLibs,
    '-lws2_32',
    '-lmswsock',
  ]);
  fs.copyFileSync(tmpOut, outFile);
  log(`built ${path.relative(process.cwd(), outFile)} (${fs.statSync(outFile).size} bytes, ${path.basename(cxx)})`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
