import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// What a user gets from the registry: native-io, protocol and session packed
// (pnpm pack, as published: workspace:* rewritten), unpacked into a project
// outside the workspace, type-checked under a strict tsconfig with
// skipLibCheck off. No network: the packages' own dependencies are linked
// from the workspace's node_modules, where the install put them.

const ROOT = path.resolve(__dirname, '../../..');
const PACKAGES = ['native-io', 'protocol', 'session'] as const;
const FIXTURES = path.join(__dirname, 'fixtures', 'packed');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-packed-'));

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * The pnpm running this test (pnpm test), else the one the workspace is installed with.
 * Lifecycle scripts are off: native-io's prepack cross-builds every prebuild (minutes,
 * and it would rewrite prebuilds/ under the native-io tests running beside this one);
 * the types need only dist/, which the build made.
 */
function pnpm(args: string[], cwd: string): string {
  const env = { ...process.env, npm_config_ignore_scripts: 'true' };
  const execPath = process.env['npm_execpath'];
  if (execPath !== undefined && /pnpm/.test(path.basename(execPath)) && fs.existsSync(execPath)) {
    return execFileSync(process.execPath, [execPath, ...args], { cwd, env, encoding: 'utf8', stdio: 'pipe' });
  }
  return execFileSync('npx', ['-y', 'pnpm@10', ...args], { cwd, env, encoding: 'utf8', stdio: 'pipe' });
}

function packageDir(name: string): string {
  return path.join(ROOT, 'packages', name);
}

/** Packs the packages into `dest` in one pnpm run; returns each tarball's path by package name. */
function packAll(dest: string): Map<string, string> {
  for (const name of PACKAGES) {
    const dir = packageDir(name);
    if (!fs.existsSync(path.join(dir, 'dist', 'index.d.ts'))) {
      // The test task runs after the build; run alone, build what is missing (TypeScript only, no addon).
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], { stdio: 'pipe' });
    }
  }
  pnpm(['-r', ...PACKAGES.flatMap((n) => ['--filter', `@fastport/${n}`]), 'pack', '--pack-destination', dest], ROOT);
  const out = new Map<string, string>();
  for (const name of PACKAGES) {
    const tarball = fs.readdirSync(dest).find((f) => f.startsWith(`fastport-${name}-`) && f.endsWith('.tgz'));
    expect(tarball, `tarball of ${name}`).toBeDefined();
    out.set(name, path.join(dest, tarball!));
  }
  return out;
}

/** Unpacks a tarball as node_modules/<name> would hold it. */
function unpack(tarball: string, into: string): void {
  fs.mkdirSync(into, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', into, '--strip-components=1'], { stdio: 'pipe' });
}

/** Links a third-party dependency of `fromPackage` (or of the workspace root) into the project's node_modules. */
function linkDependency(dep: string, fromPackage: string, modules: string): void {
  const target = path.join(modules, dep);
  if (fs.existsSync(target)) return;
  const candidates = [path.join(packageDir(fromPackage), 'node_modules', dep), path.join(ROOT, 'node_modules', dep)];
  const found = candidates.find((c) => fs.existsSync(c));
  if (found === undefined) throw new Error(`${dep} (a dependency of ${fromPackage}) is not installed in the workspace`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.symlinkSync(fs.realpathSync(found), target, 'dir');
}

interface Diagnostic {
  file: string;
  line: number;
  text: string;
}

/** Lines of `file` marked `// error-here`. */
function markedLines(file: string): number[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((l, i) => (l.includes('// error-here') ? [i + 1] : []));
}

describe('the packed packages, installed outside the workspace', () => {
  it('compile typed-event code under a strict tsconfig, and reject a wrong event name, a wrong listener, internals and mixed-up ids', () => {
    const tarballs = path.join(tmp, 'tarballs');
    const project = path.join(tmp, 'project');
    const modules = path.join(project, 'node_modules');
    fs.mkdirSync(tarballs, { recursive: true });
    fs.mkdirSync(modules, { recursive: true });

    const packed = packAll(tarballs);
    for (const name of PACKAGES) {
      const dir = path.join(modules, '@fastport', name);
      unpack(packed.get(name)!, dir);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) {
        expect(range, `${name} depends on ${dep}@${range}`).not.toMatch(/^workspace:/); // as published
        if (!dep.startsWith('@fastport/')) linkDependency(dep, name, modules);
      }
    }
    linkDependency('@types/node', 'session', modules);

    const files = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.ts'));
    for (const f of files) fs.copyFileSync(path.join(FIXTURES, f), path.join(project, f));
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'packed-consumer', private: true }));
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2022', 'esnext.disposable'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          types: ['node'],
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          noImplicitOverride: true,
          skipLibCheck: false,
          noEmit: true,
        },
        files,
      }),
    );

    let output = '';
    try {
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', project, '--pretty', 'false'], { encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      output = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    const diagnostics: Diagnostic[] = [];
    for (const line of output.split('\n')) {
      const m = /^(.+?)\((\d+),\d+\): error (TS\d+: .*)$/.exec(line);
      if (m !== null) diagnostics.push({ file: path.basename(m[1]!), line: Number(m[2]), text: m[3]! });
      else if (line.includes('error TS')) diagnostics.push({ file: '?', line: 0, text: line });
    }

    console.log(`[packed] ${diagnostics.length} expected errors:\n${diagnostics.map((d) => `  ${d.file}:${d.line} ${d.text}`).join('\n')}`);
    // The good file (and the packages' own .d.ts: skipLibCheck is off) compile cleanly.
    expect(diagnostics.filter((d) => !d.file.startsWith('bad-'))).toEqual([]);
    // Every bad file fails exactly where it is marked, and nowhere else.
    const bad = files.filter((f) => f.startsWith('bad-'));
    expect(bad.length).toBeGreaterThanOrEqual(5);
    for (const f of bad) {
      const expected = markedLines(path.join(FIXTURES, f));
      const got = [...new Set(diagnostics.filter((d) => d.file === f).map((d) => d.line))].sort((a, b) => a - b);
      expect({ file: f, lines: got }).toEqual({ file: f, lines: expected });
    }
  }, 180_000);
});
