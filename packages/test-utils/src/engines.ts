/**
 * The engine test matrix: which engines a test file runs, and what happens
 * to one that cannot run here.
 *
 *   FASTPORT_ENGINES=node,uring   run only these kinds (comma separated; 'all' or unset: the platform's)
 *   FASTPORT_ENGINES_STRICT=1     an engine this machine is expected to have (on Linux: node, epoll,
 *                                 uring; on Windows: node, iocp), or one named in FASTPORT_ENGINES,
 *                                 that is unavailable FAILS the run with its name and reason.
 *                                 Without it, it is skipped, with the reason in the test name.
 *
 * The availability probe is passed in (native-io's `engineAvailability`), so
 * this package does not depend on the packages it tests.
 */

export type EngineKind = 'node' | 'epoll' | 'uring' | 'iocp' | 'rio';

export const ALL_ENGINES: readonly EngineKind[] = ['node', 'epoll', 'uring', 'iocp', 'rio'];

export interface Availability {
  available: boolean;
  reason?: string;
}

export type AvailabilityProbe = (kind: EngineKind) => Availability;

/** The engines the test matrix runs on a platform by default. */
export function platformEngines(platform: NodeJS.Platform = process.platform): readonly EngineKind[] {
  if (platform === 'linux') return ['node', 'epoll', 'uring'];
  if (platform === 'win32') return ['node', 'iocp', 'rio'];
  return ['node'];
}

/**
 * The engines a machine of this platform must have for a strict run. Windows
 * does not expect `rio` yet: its backend is not written, and Wine has no RIO.
 */
export function expectedEngines(platform: NodeJS.Platform = process.platform): readonly EngineKind[] {
  if (platform === 'linux') return ['node', 'epoll', 'uring'];
  if (platform === 'win32') return ['node', 'iocp'];
  return ['node'];
}

export function strictEngines(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['FASTPORT_ENGINES_STRICT'];
  return v === '1' || v === 'true';
}

export interface EngineSelection {
  kind: EngineKind;
  /** Why this kind is not run, when FASTPORT_ENGINES leaves it out. */
  filteredOut?: string;
  /** FASTPORT_ENGINES names this kind explicitly. */
  named: boolean;
}

/** The platform's engines plus any FASTPORT_ENGINES adds, each marked selected or filtered out. */
export function selectEngines(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): EngineSelection[] {
  const base = platformEngines(platform);
  const raw = env['FASTPORT_ENGINES']?.trim();
  if (raw === undefined || raw === '' || raw === 'all') return base.map((kind) => ({ kind, named: false }));
  const wanted = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = wanted.filter((w) => !(ALL_ENGINES as readonly string[]).includes(w));
  if (unknown.length > 0) {
    throw new Error(`FASTPORT_ENGINES names unknown engine(s) ${unknown.join(', ')}; known: ${ALL_ENGINES.join(', ')}`);
  }
  const kinds = [...base, ...(wanted as EngineKind[]).filter((k) => !base.includes(k))];
  return kinds.map((kind) =>
    wanted.includes(kind) ? { kind, named: true } : { kind, named: false, filteredOut: `not selected by FASTPORT_ENGINES=${raw}` },
  );
}

/** What a test file does with one engine. */
export type EngineCase =
  | { kind: EngineKind; action: 'run' }
  /** Shown as a skipped test; `reason` goes into its name. */
  | { kind: EngineKind; action: 'skip'; reason: string }
  /** Strict mode: the engine is expected here but unavailable; a test fails with `reason`. */
  | { kind: EngineKind; action: 'fail'; reason: string };

export interface MatrixOptions {
  /** Only these kinds (e.g. the native engines, or just 'uring'), in the matrix's order. */
  only?: readonly EngineKind[];
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
}

function probeSafely(probe: AvailabilityProbe, kind: EngineKind): Availability {
  try {
    return probe(kind);
  } catch (err) {
    return { available: false, reason: `the availability probe threw: ${(err as Error).message}` };
  }
}

/** One case per engine of the matrix (after FASTPORT_ENGINES and `only`). */
export function engineMatrix(probe: AvailabilityProbe, options: MatrixOptions = {}): EngineCase[] {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const strict = strictEngines(env);
  const expected = expectedEngines(platform);
  let selection = selectEngines(env, platform);
  if (options.only !== undefined) {
    const only = options.only;
    selection = selection.filter((s) => only.includes(s.kind));
  }
  return selection.map((s): EngineCase => {
    if (s.filteredOut !== undefined) return { kind: s.kind, action: 'skip', reason: s.filteredOut };
    const a = probeSafely(probe, s.kind);
    if (a.available) return { kind: s.kind, action: 'run' };
    const why = a.reason ?? 'no reason given';
    if (strict && (s.named || expected.includes(s.kind))) {
      return {
        kind: s.kind,
        action: 'fail',
        reason: `engine ${s.kind} is ${s.named ? 'named in FASTPORT_ENGINES' : `expected on ${platform}`} and FASTPORT_ENGINES_STRICT is set, but it is unavailable: ${why}`,
      };
    }
    return { kind: s.kind, action: 'skip', reason: `engine ${s.kind} unavailable: ${why}` };
  });
}

/** The case of one engine (it need not be in the platform's list: then it is skipped as not run here). */
export function engineCase(probe: AvailabilityProbe, kind: EngineKind, options: Omit<MatrixOptions, 'only'> = {}): EngineCase {
  const found = engineMatrix(probe, { ...options, only: [kind] })[0];
  return found ?? { kind, action: 'skip', reason: `engine ${kind} is not in the test matrix of ${options.platform ?? process.platform}` };
}
