'use strict';
/*
 * What binding.gyp builds for one OS (sources, defines, include dirs), for
 * the cross builds that compile without gyp (build-win32.js, build-arm64.js),
 * so binding.gyp stays the one list of what each platform compiles.
 *
 *   const { gypTarget } = require('./gyp-sources');
 *   gypTarget('linux') -> { sources, defines, includeDirs, cflags, cflagsCc } (absolute paths)
 *
 * Throws an Error naming what went wrong (the callers turn it into their exit 1).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const TARGET = 'fastport_native';

/**
 * binding.gyp is a Python literal; with its comment lines removed it is also
 * a JavaScript expression (single-quoted strings, trailing commas).
 */
function readGyp() {
  const text = fs
    .readFileSync(path.join(PKG_ROOT, 'binding.gyp'), 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');
  // eslint-disable-next-line no-new-func
  return new Function(`return (${text});`)();
}

/** Evaluates a gyp condition such as 'OS!="linux" and OS!="win"'. */
function gypCondition(expr, vars) {
  const js = expr.replace(/\band\b/g, '&&').replace(/\bor\b/g, '||').replace(/\bnot\b/g, '!');
  // eslint-disable-next-line no-new-func
  return new Function(...Object.keys(vars), `return (${js});`)(...Object.values(vars));
}

/** The target with its conditions applied (lists are appended, as gyp does). */
function resolveTarget(target, vars) {
  const out = { sources: [], defines: [], include_dirs: [], cflags: [], cflags_cc: [] };
  const merge = (t) => {
    for (const key of Object.keys(out)) if (Array.isArray(t[key])) out[key].push(...t[key]);
    for (const cond of t.conditions || []) {
      const [expr, then, otherwise] = cond;
      if (gypCondition(expr, vars)) merge(then);
      else if (otherwise) merge(otherwise);
    }
  };
  merge(target);
  return out;
}

/** gyp's '<!(cmd)' command expansion and '<(var)' variables. */
function expand(value, variables) {
  return value
    .replace(/<!\((.*)\)$/, (_, cmd) => {
      const r = spawnSync('sh', ['-c', cmd], { cwd: PKG_ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`binding.gyp command failed: ${cmd}`);
      return r.stdout.trim();
    })
    .replace(/<\((\w+)\)/g, (_, name) => {
      const v = variables[`${name}%`] ?? variables[name];
      if (v === undefined) throw new Error(`binding.gyp variable ${name} undefined`);
      return expand(v, variables);
    });
}

/** The fastport_native target as gyp would build it for `os` ('linux', 'win', ...). */
function gypTarget(os) {
  const gyp = readGyp();
  const target = gyp.targets.find((t) => t.target_name === TARGET);
  if (!target) throw new Error(`binding.gyp has no ${TARGET} target`);
  const resolved = resolveTarget(target, { OS: os });
  const variables = gyp.variables || {};
  return {
    sources: resolved.sources.map((s) => path.join(PKG_ROOT, s)),
    defines: resolved.defines.map((d) => expand(d, variables)),
    includeDirs: resolved.include_dirs.map((d) => path.resolve(PKG_ROOT, expand(d, variables))),
    cflags: resolved.cflags,
    cflagsCc: resolved.cflags_cc,
  };
}

module.exports = { gypTarget, PKG_ROOT };
