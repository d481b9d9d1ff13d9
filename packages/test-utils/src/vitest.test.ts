import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runChild } from './child';

const VITEST = path.join(path.dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
const CONFIG = path.join(__dirname, '..', 'fixtures', 'vitest.config.ts');

function runFixture(env: NodeJS.ProcessEnv) {
  const clean = { ...process.env };
  delete clean['FASTPORT_ENGINES'];
  delete clean['FASTPORT_ENGINES_STRICT'];
  delete clean['FORCE_COLOR'];
  return runChild(process.execPath, [VITEST, 'run', '--config', CONFIG, '--reporter', 'verbose'], { env: { ...clean, NO_COLOR: '1', ...env }, timeoutMs: 60_000 });
}

describe('describeEngines in a real vitest run (uring unavailable)', () => {
  it('without FASTPORT_ENGINES_STRICT: uring is a skipped test with the reason in its name; the run passes', async () => {
    const r = await runFixture({});
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
    expect(out).toContain('[uring] fixture (engine uring unavailable: io_uring_setup failed: EPERM (fixture))');
    expect(out).toMatch(/2 passed \| 1 skipped/);
  }, 90_000);

  it('with FASTPORT_ENGINES_STRICT=1: the run fails, naming the engine and the reason', async () => {
    const r = await runFixture({ FASTPORT_ENGINES_STRICT: '1' });
    const out = r.stdout + r.stderr;
    expect(r.status, out).not.toBe(0);
    expect(out).toContain('engine uring is expected on linux and FASTPORT_ENGINES_STRICT is set, but it is unavailable: io_uring_setup failed: EPERM (fixture)');
    expect(out).toMatch(/1 failed \| 2 passed/);
  }, 90_000);
});
