import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The typed event API is a compile-time contract: this compiles a fixture whose
// `// @ts-expect-error` lines (a misspelled event name, a wrong listener signature...)
// must each meet a type error. If the typing regresses to `any`, tsc reports
// "Unused '@ts-expect-error' directive" and this test fails.
describe('typed events', () => {
  it('infer listener parameters and reject wrong event names and listener signatures', () => {
    const tsc = require.resolve('typescript/bin/tsc');
    const project = join(__dirname, 'fixtures', 'types', 'tsconfig.json');
    let output = '';
    let code = 0;
    try {
      execFileSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string };
      code = e.status ?? 1;
      output = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    }
    expect(output).toBe('');
    expect(code).toBe(0);
  }, 120_000);
});
