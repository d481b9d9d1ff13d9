/**
 * Which engines the conformance suite runs, from the platform and the
 * environment:
 *
 *   FASTPORT_ENGINES=node,uring   run only these kinds (comma separated)
 *   FASTPORT_ENGINES_STRICT=1     a selected engine that is unavailable fails
 *                                 the run instead of being skipped
 */
import type { EngineKind } from '../../lib/types';

export const PLATFORM_ENGINES: readonly EngineKind[] =
  process.platform === 'linux' ? ['node', 'epoll', 'uring'] : process.platform === 'win32' ? ['node', 'iocp', 'rio'] : ['node'];

const ALL: readonly EngineKind[] = ['node', 'epoll', 'uring', 'iocp', 'rio'];

export interface EngineSelection {
  kind: EngineKind;
  /** Why this kind is not run, when the filter leaves it out. */
  filteredOut?: string;
}

export function selectEngines(env: NodeJS.ProcessEnv = process.env): EngineSelection[] {
  const raw = env['FASTPORT_ENGINES']?.trim();
  if (raw === undefined || raw === '' || raw === 'all') return PLATFORM_ENGINES.map((kind) => ({ kind }));
  const wanted = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = wanted.filter((w) => !(ALL as readonly string[]).includes(w));
  if (unknown.length > 0) {
    throw new Error(`FASTPORT_ENGINES names unknown engine(s) ${unknown.join(', ')}; known: ${ALL.join(', ')}`);
  }
  const kinds = [...PLATFORM_ENGINES, ...(wanted as EngineKind[]).filter((k) => !PLATFORM_ENGINES.includes(k))];
  return kinds.map((kind) =>
    wanted.includes(kind) ? { kind } : { kind, filteredOut: `not selected by FASTPORT_ENGINES=${raw}` },
  );
}

export function strictEngines(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['FASTPORT_ENGINES_STRICT'];
  return v === '1' || v === 'true';
}
