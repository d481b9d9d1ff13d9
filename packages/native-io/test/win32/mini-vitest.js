'use strict';
/*
 * A small stand-in for the part of vitest's API the engine suite uses
 * (describe, it/test with .skip/.skipIf, afterEach/beforeEach, expect with
 * the matchers the suite calls), so the compiled suite runs unchanged in
 * Windows node.exe under Wine, where vitest itself cannot (its esbuild and
 * rollup binaries are Linux ones here). scripts/test-win32.sh installs it
 * as node_modules/vitest in the staged package and runs it with
 * run-suite.js; scripts/test-arm64.sh does the same for arm64 Node under
 * qemu-user (vitest's esbuild there would be the x64 binary, and its worker
 * pool is slow under emulation). Tests run one at a time in file order, as
 * vitest runs a file. A test without its own timeout gets run()'s
 * defaultTimeout (vitest's testTimeout); run()'s timeScale multiplies every
 * test and hook timeout (hang guards only: for a slow emulator).
 */
const util = require('node:util');

const root = { name: '', children: [], beforeEach: [], afterEach: [], parent: null };
let current = root;

function describe(name, fn) {
  const s = { name, children: [], beforeEach: [], afterEach: [], parent: current };
  current.children.push({ suite: s });
  const prev = current;
  current = s;
  try {
    fn();
  } finally {
    current = prev;
  }
}

function addTest(name, fn, timeout, skip) {
  current.children.push({ test: { name, fn, timeout: typeof timeout === 'number' ? timeout : undefined, skip, suite: current } });
}
function it(name, fn, timeout) {
  addTest(name, fn, timeout, false);
}
it.skip = (name, fn, timeout) => addTest(name, fn, timeout, true);
it.skipIf = (cond) => (name, fn, timeout) => addTest(name, fn, timeout, !!cond);
it.runIf = (cond) => (name, fn, timeout) => addTest(name, fn, timeout, !cond);
const test = it;
function afterEach(fn) {
  current.afterEach.push(fn);
}
function beforeEach(fn) {
  current.beforeEach.push(fn);
}

// ------------------------------------------------------------------ expect

class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AssertionError';
  }
}

const show = (v) => util.inspect(v, { depth: 4, maxArrayLength: 20, maxStringLength: 200, breakLength: Infinity });

function isObj(v) {
  return typeof v === 'object' && v !== null;
}

// expect.objectContaining(...) and friends: an expected value that decides the match itself.
class Asymmetric {
  constructor(name, sample, match) {
    this.name = name;
    this.sample = sample;
    this.asymmetricMatch = match;
  }
  [util.inspect.custom]() {
    return `${this.name}(${show(this.sample)})`;
  }
}
const isAsymmetric = (v) => v instanceof Asymmetric;

// vitest's toEqual: recursive, undefined properties ignored, class ignored.
function equals(a, b) {
  if (isAsymmetric(b)) return b.asymmetricMatch(a);
  if (isAsymmetric(a)) return a.asymmetricMatch(b);
  if (Object.is(a, b)) return true;
  if (!isObj(a) || !isObj(b)) return false;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equals(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof Map || b instanceof Map || a instanceof Set || b instanceof Set) {
    return util.isDeepStrictEqual(a, b);
  }
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || !equals(a[k], b[k])) return false;
  return true;
}

function matchesObject(actual, expected) {
  if (isAsymmetric(expected)) return expected.asymmetricMatch(actual);
  if (!isObj(expected)) return equals(actual, expected);
  if (!isObj(actual)) return false;
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => matchesObject(actual[i], e));
  }
  return Object.keys(expected).every((k) => matchesObject(actual[k], expected[k]));
}

function makeMatchers(actual, negate) {
  const check = (pass, message) => {
    if (pass === negate) throw new AssertionError((negate ? 'not: ' : '') + message);
  };
  const m = {
    toBe: (e) => check(Object.is(actual, e), `expected ${show(actual)} to be ${show(e)} // Object.is equality`),
    toEqual: (e) => check(equals(actual, e), `expected ${show(actual)} to deeply equal ${show(e)}`),
    toStrictEqual: (e) => check(util.isDeepStrictEqual(actual, e), `expected ${show(actual)} to strictly equal ${show(e)}`),
    toMatchObject: (e) => check(matchesObject(actual, e), `expected ${show(actual)} to match object ${show(e)}`),
    toBeGreaterThan: (e) => check(actual > e, `expected ${show(actual)} to be greater than ${show(e)}`),
    toBeGreaterThanOrEqual: (e) => check(actual >= e, `expected ${show(actual)} to be greater than or equal to ${show(e)}`),
    toBeLessThan: (e) => check(actual < e, `expected ${show(actual)} to be less than ${show(e)}`),
    toBeLessThanOrEqual: (e) => check(actual <= e, `expected ${show(actual)} to be less than or equal to ${show(e)}`),
    toBeNull: () => check(actual === null, `expected ${show(actual)} to be null`),
    toBeUndefined: () => check(actual === undefined, `expected ${show(actual)} to be undefined`),
    toBeDefined: () => check(actual !== undefined, `expected ${show(actual)} to be defined`),
    toBeTruthy: () => check(!!actual, `expected ${show(actual)} to be truthy`),
    toBeFalsy: () => check(!actual, `expected ${show(actual)} to be falsy`),
    toBeInstanceOf: (c) => check(actual instanceof c, `expected ${show(actual)} to be an instance of ${c && c.name}`),
    toContain: (e) => {
      const has = typeof actual === 'string' ? actual.includes(e) : Array.from(actual ?? []).some((x) => Object.is(x, e));
      check(has, `expected ${show(actual)} to contain ${show(e)}`);
    },
    toMatch: (re) => {
      const ok = typeof actual === 'string' && (re instanceof RegExp ? re.test(actual) : actual.includes(re));
      check(ok, `expected ${show(actual)} to match ${show(re)}`);
    },
    toHaveLength: (n) => check(actual != null && actual.length === n, `expected length ${actual && actual.length} to be ${n}`),
    toThrow: (want) => {
      let thrown = false;
      let err;
      try {
        actual();
      } catch (e) {
        thrown = true;
        err = e;
      }
      let ok = thrown;
      if (thrown && want !== undefined) {
        const msg = err && err.message !== undefined ? String(err.message) : String(err);
        if (want instanceof RegExp) ok = want.test(msg);
        else if (typeof want === 'string') ok = msg.includes(want);
        else if (typeof want === 'function') ok = err instanceof want;
      }
      check(ok, thrown ? `expected the thrown ${show(err && err.message)} to match ${show(want)}` : 'expected the function to throw');
    },
  };
  return m;
}

/** expect(promise).resolves / .rejects: the matchers applied to the settled value, returning a promise. */
function settledMatchers(promise, wantRejection) {
  const settle = () =>
    Promise.resolve(promise).then(
      (value) => {
        if (wantRejection) throw new AssertionError(`expected the promise to reject, it resolved with ${show(value)}`);
        return value;
      },
      (err) => {
        if (!wantRejection) throw new AssertionError(`expected the promise to resolve, it rejected with ${show(err)}`);
        return err;
      },
    );
  const wrap = (negate) =>
    new Proxy(
      {},
      {
        get: (_, name) =>
          name === 'not'
            ? wrap(!negate)
            : (...args) =>
                settle().then((v) => {
                  const m = makeMatchers(v, negate);
                  if (typeof m[name] !== 'function') throw new Error(`mini-vitest has no matcher ${String(name)}`);
                  m[name](...args);
                }),
      },
    );
  return wrap(false);
}

function expect(actual) {
  const m = makeMatchers(actual, false);
  m.not = makeMatchers(actual, true);
  m.resolves = settledMatchers(actual, false);
  m.rejects = settledMatchers(actual, true);
  return m;
}
expect.objectContaining = (sample) =>
  new Asymmetric('ObjectContaining', sample, (actual) => isObj(actual) && Object.keys(sample).every((k) => equals(actual[k], sample[k])));
expect.arrayContaining = (sample) =>
  new Asymmetric('ArrayContaining', sample, (actual) => Array.isArray(actual) && sample.every((e) => actual.some((a) => equals(a, e))));

// ------------------------------------------------------------------ run

function fullName(t) {
  const parts = [t.name];
  for (let s = t.suite; s && s !== root; s = s.parent) parts.unshift(s.name);
  return parts.join(' > ');
}

function withTimeout(fn, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out in ${ms}ms`)), ms);
    Promise.resolve()
      .then(fn)
      .then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
  });
}

function collect(suite, out) {
  for (const c of suite.children) {
    if (c.suite) collect(c.suite, out);
    else out.push(c.test);
  }
  return out;
}

/** Runs every collected test; report(line) gets one line per test. Returns the tally and failures. */
async function run({ report, filter, hookTimeout = 30000, defaultTimeout = 5000, timeScale = 1 } = {}) {
  const tests = collect(root, []);
  const tally = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for (const t of tests) {
    const name = fullName(t);
    if (t.skip || (filter && !filter.test(name))) {
      tally.skipped++;
      report(`SKIP ${name}`);
      continue;
    }
    const chain = [];
    for (let s = t.suite; s; s = s.parent) chain.unshift(s);
    const started = Date.now();
    let error = null;
    try {
      for (const s of chain) for (const h of s.beforeEach) await withTimeout(h, hookTimeout * timeScale, 'beforeEach');
      await withTimeout(t.fn, (t.timeout ?? defaultTimeout) * timeScale, 'test');
    } catch (e) {
      error = e;
    }
    for (const s of chain.slice().reverse()) {
      for (const h of s.afterEach) {
        try {
          await withTimeout(h, hookTimeout * timeScale, 'afterEach');
        } catch (e) {
          if (error === null) error = e;
        }
      }
    }
    const ms = Date.now() - started;
    if (error === null) {
      tally.passed++;
      report(`PASS ${name} (${ms} ms)`);
    } else {
      tally.failed++;
      const text = error && error.stack ? error.stack : String(error);
      tally.failures.push({ name, error: text });
      report(`FAIL ${name} (${ms} ms)\n  ${text.split('\n').slice(0, 8).join('\n  ')}`);
    }
  }
  return tally;
}

module.exports = { describe, it, test, expect, afterEach, beforeEach, run, AssertionError };
