/**
 * The engine matrix as vitest suites. An engine that cannot run here is a
 * skipped test whose name carries the reason (never a silent `continue` or a
 * `return` inside a test); under FASTPORT_ENGINES_STRICT=1 an engine the
 * machine is expected to have fails a test instead, naming the engine and why.
 *
 * Only describe, it and it.skip are used, so the Windows suite's stand-in
 * for vitest (native-io's test/win32/mini-vitest.js) runs these too.
 */
import { describe, it } from 'vitest';
import { engineCase, engineMatrix, type AvailabilityProbe, type EngineCase, type EngineKind, type MatrixOptions } from './engines';

/** Registers what a case that does not run shows: a skipped test with the reason, or a failing one. */
export function describeNotRun(title: string, c: Exclude<EngineCase, { action: 'run' }>): void {
  if (c.action === 'fail') {
    describe(`${title} [${c.kind}]`, () => {
      it(`[${c.kind}] ${title}: ${c.reason}`, () => {
        throw new Error(c.reason);
      });
    });
    return;
  }
  describe(`${title} [${c.kind}] — skipped`, () => {
    it.skip(`[${c.kind}] ${title} (${c.reason})`, () => {});
  });
}

/**
 * `body(kind)` inside `describe(title [kind])` for each engine of the matrix
 * that can run; the others as describeNotRun says.
 */
export function describeEngines(title: string, probe: AvailabilityProbe, body: (kind: EngineKind) => void, options: MatrixOptions = {}): void {
  for (const c of engineMatrix(probe, options)) {
    if (c.action === 'run') describe(`${title} [${c.kind}]`, () => body(c.kind));
    else describeNotRun(title, c);
  }
}

/** describeEngines for one engine (a suite of engine-specific tests). */
export function describeEngine(title: string, probe: AvailabilityProbe, kind: EngineKind, body: () => void, options: Omit<MatrixOptions, 'only'> = {}): void {
  const c = engineCase(probe, kind, options);
  if (c.action === 'run') describe(`${title} [${kind}]`, body);
  else describeNotRun(title, c);
}
