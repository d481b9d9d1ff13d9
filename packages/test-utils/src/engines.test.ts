import { describe, expect, it } from 'vitest';
import { engineCase, engineMatrix, selectEngines, type Availability, type EngineKind } from './engines';

const probe =
  (down: Partial<Record<EngineKind, string>>) =>
  (kind: EngineKind): Availability =>
    down[kind] === undefined ? { available: true } : { available: false, reason: down[kind] };

describe('engine matrix', () => {
  it('runs the platform engines; an unavailable one is skipped with its reason', () => {
    const m = engineMatrix(probe({ uring: 'io_uring_setup: EPERM' }), { env: {}, platform: 'linux' });
    expect(m).toEqual([
      { kind: 'node', action: 'run' },
      { kind: 'epoll', action: 'run' },
      { kind: 'uring', action: 'skip', reason: 'engine uring unavailable: io_uring_setup: EPERM' },
    ]);
  });

  it('FASTPORT_ENGINES_STRICT=1: an expected engine that is unavailable fails, naming it and why', () => {
    const m = engineMatrix(probe({ uring: 'io_uring_setup: EPERM' }), { env: { FASTPORT_ENGINES_STRICT: '1' }, platform: 'linux' });
    expect(m[2]).toMatchObject({ kind: 'uring', action: 'fail' });
    expect((m[2] as { reason: string }).reason).toMatch(/uring.*expected on linux.*FASTPORT_ENGINES_STRICT.*io_uring_setup: EPERM/);
  });

  it('strict: rio is not expected on win32 (skipped), iocp is (fails); a kind named in FASTPORT_ENGINES is expected', () => {
    const down = probe({ rio: 'no RIO table', iocp: 'no addon' });
    const m = engineMatrix(down, { env: { FASTPORT_ENGINES_STRICT: '1' }, platform: 'win32' });
    expect(m.map((c) => [c.kind, c.action])).toEqual([
      ['node', 'run'],
      ['iocp', 'fail'],
      ['rio', 'skip'],
    ]);
    const named = engineMatrix(down, { env: { FASTPORT_ENGINES_STRICT: '1', FASTPORT_ENGINES: 'rio' }, platform: 'win32' });
    expect(named.find((c) => c.kind === 'rio')?.action).toBe('fail');
    expect(named.find((c) => c.kind === 'iocp')).toMatchObject({ action: 'skip', reason: 'not selected by FASTPORT_ENGINES=rio' });
  });

  it('FASTPORT_ENGINES filters and adds kinds; unknown names throw; only narrows', () => {
    expect(selectEngines({ FASTPORT_ENGINES: 'node' }, 'linux').map((s) => [s.kind, s.filteredOut === undefined])).toEqual([
      ['node', true],
      ['epoll', false],
      ['uring', false],
    ]);
    expect(() => selectEngines({ FASTPORT_ENGINES: 'nodes' }, 'linux')).toThrow(/unknown engine\(s\) nodes/);
    expect(engineMatrix(probe({}), { env: {}, platform: 'linux', only: ['uring', 'epoll'] }).map((c) => c.kind)).toEqual(['epoll', 'uring']);
    expect(engineCase(probe({}), 'iocp', { env: {}, platform: 'linux' })).toMatchObject({ action: 'skip' });
  });

  it('a probe that throws is an unavailable engine with the error as its reason', () => {
    const m = engineMatrix(
      () => {
        throw new Error('addon missing');
      },
      { env: {}, platform: 'darwin' },
    );
    expect(m).toEqual([{ kind: 'node', action: 'skip', reason: 'engine node unavailable: the availability probe threw: addon missing' }]);
  });
});
