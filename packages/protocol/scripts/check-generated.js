#!/usr/bin/env node
// Regenerates the ts-proto output into a temporary directory with the same
// buf.gen.yaml and fails (exit 1) when it differs from the checked-in
// src/generated/. Exit 2 when the generator itself cannot run.
//
// Usage: node packages/protocol/scripts/check-generated.js   (from any cwd)
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkgRoot = path.resolve(__dirname, '..');
const checkedIn = path.join(pkgRoot, 'src', 'generated');
const REGENERATE = 'pnpm --filter @fastport/protocol generate';

class CheckFailure extends Error {
  constructor(code, lines) {
    super(lines.join('\n'));
    this.exitCode = code;
  }
}

function fail(code, lines) {
  throw new CheckFailure(code, lines);
}

/** Relative paths of all files under dir (sorted, '/' separators). */
function listFiles(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) walk(path.join(d, ent.name), r);
      else out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return out.sort();
}

/** File text with CRLF normalised to LF (a Windows checkout must not fail the check). */
function readText(file) {
  return fs.readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
}

function firstDifference(a, b) {
  const la = a.split('\n');
  const lb = b.split('\n');
  const n = Math.max(la.length, lb.length);
  for (let i = 0; i < n; i++) {
    if (la[i] !== lb[i]) {
      return `line ${i + 1}:\n      checked in: ${JSON.stringify(la[i] ?? '<end of file>')}\n      expected:   ${JSON.stringify(lb[i] ?? '<end of file>')}`;
    }
  }
  return 'contents differ';
}

function main() {
  let bufBin;
  try {
    bufBin = require.resolve('@bufbuild/buf/bin/buf', { paths: [pkgRoot] });
  } catch {
    fail(2, ['check-generated: @bufbuild/buf is not installed; run `pnpm install` first.']);
  }
  const plugin = path.join(pkgRoot, 'node_modules', '.bin', 'protoc-gen-ts_proto');
  if (!fs.existsSync(plugin)) {
    fail(2, [`check-generated: ts-proto plugin not found at ${plugin}; run \`pnpm install\` first.`]);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-protocol-gen-'));
  try {
    const res = spawnSync(process.execPath, [bufBin, 'generate', '--output', tmp], {
      cwd: pkgRoot,
      encoding: 'utf8',
    });
    if (res.error || res.status !== 0) {
      fail(2, [
        'check-generated: `buf generate` failed:',
        String(res.error ?? ''),
        res.stdout ?? '',
        res.stderr ?? '',
      ]);
    }
    const fresh = path.join(tmp, 'src', 'generated');
    const want = listFiles(fresh);
    const have = listFiles(checkedIn);
    if (want.length === 0) {
      fail(2, ['check-generated: buf generate produced no files (is proto/ empty?)']);
    }

    const problems = [];
    for (const f of want) {
      if (!have.includes(f)) problems.push(`  missing:  src/generated/${f}`);
    }
    for (const f of have) {
      if (!want.includes(f)) problems.push(`  extra:    src/generated/${f} (no .proto produces it)`);
    }
    for (const f of want) {
      if (!have.includes(f)) continue;
      const a = readText(path.join(checkedIn, f));
      const b = readText(path.join(fresh, f));
      if (a !== b) problems.push(`  modified: src/generated/${f} (${firstDifference(a, b)})`);
    }

    if (problems.length > 0) {
      fail(1, [
        'check-generated: src/generated/ is out of date with proto/ and buf.gen.yaml:',
        ...problems,
        `Generated code must not be edited by hand. Regenerate with \`${REGENERATE}\` and commit the result.`,
      ]);
    }
    process.stdout.write(`check-generated: src/generated/ is up to date (${want.length} files).\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  if (!(err instanceof CheckFailure)) throw err;
  process.stderr.write(err.message + '\n');
  process.exitCode = err.exitCode;
}
