#!/usr/bin/env node
'use strict';
/*
 * Copies an app of this workspace with its runtime dependencies into a
 * directory with a plain (hoisted) node_modules, for Windows node.exe under
 * Wine: Wine shows pnpm's symlinks as plain directories, so node.exe never
 * resolves them to the .pnpm store and a package's own dependencies (its
 * siblings there) are not found.
 *
 *   node scripts/stage-win32-app.js <app dir> <out dir>
 *
 * Each dependency is found the way Node finds it from the real path of the
 * package that needs it; the first version met goes to <out>/node_modules,
 * another version of the same name is nested under the package that needs
 * it. Workspace packages are copied without their src/test (dist/,
 * prebuilds/, package.json, bin/). Nothing is downloaded.
 */
const fs = require('node:fs');
const path = require('node:path');

const [appDir, outDir] = process.argv.slice(2).map((p) => p && path.resolve(p));
if (!appDir || !outDir) {
  process.stderr.write('usage: stage-win32-app.js <app dir> <out dir>\n');
  process.exit(2);
}
const SKIP = new Set(['node_modules', 'src', 'test', '.win32', 'build', '.turbo']);

function copyTree(from, to, skipTop) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (skipTop && SKIP.has(e.name)) continue;
    if (e.name === 'node_modules') continue;
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    const st = fs.statSync(src);
    if (st.isDirectory()) copyTree(src, dst, false);
    else fs.copyFileSync(src, dst);
  }
}

function depDir(name, fromRealDir) {
  // The package directory Node would pick from fromRealDir.
  let dir = fromRealDir;
  for (;;) {
    const cand = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return fs.realpathSync(cand);
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

const placed = new Map(); // name -> real dir placed at top level
let copied = 0;
function stage(realDir, stagedDir, isWorkspace) {
  const pkg = JSON.parse(fs.readFileSync(path.join(realDir, 'package.json'), 'utf8'));
  for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    const real = depDir(name, realDir);
    if (real === null) {
      if (pkg.optionalDependencies && name in pkg.optionalDependencies) continue;
      throw new Error(`${pkg.name}: dependency ${name} not installed (run pnpm install)`);
    }
    const top = placed.get(name);
    if (top === real) continue;
    const target = top === undefined ? path.join(outDir, 'node_modules', name) : path.join(stagedDir, 'node_modules', name);
    if (fs.existsSync(target)) continue;
    if (top === undefined) placed.set(name, real);
    const workspace = !real.includes(`${path.sep}.pnpm${path.sep}`);
    copyTree(real, target, workspace);
    copied++;
    stage(real, target, workspace);
  }
  return isWorkspace;
}

fs.rmSync(outDir, { recursive: true, force: true });
const appStaged = path.join(outDir, 'app');
copyTree(appDir, appStaged, true);
stage(fs.realpathSync(appDir), appStaged, true);
process.stdout.write(`[stage-win32-app] ${path.basename(appDir)} and ${copied} packages -> ${outDir}\n`);
