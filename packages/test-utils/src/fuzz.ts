/**
 * Seeded fuzzing: a fuzz test runs a fixed number of cases from a fixed
 * seed, so every run checks the same cases and a failure reproduces. The
 * environment may change both to explore (FASTPORT_FUZZ_SEED, FASTPORT_FUZZ_CASES,
 * or per test FASTPORT_FUZZ_SEED_<NAME> / FASTPORT_FUZZ_CASES_<NAME>); a failure
 * names the seed and count to set to see it again.
 */

/** Deterministic PRNG (mulberry32): uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzPlan {
  /** The test's name in environment variables (upper case, A-Z 0-9 _). */
  readonly name: string;
  readonly seed: number;
  readonly cases: number;
  /** How to run exactly this plan again. */
  readonly reproduce: string;
  /** A fresh generator from the plan's seed. */
  random(): () => number;
}

function envNumber(env: NodeJS.ProcessEnv, keys: string[], fallback: number, what: string): number {
  for (const key of keys) {
    const raw = env[key];
    if (raw === undefined || raw.trim() === '') continue;
    const v = Number(raw);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${key}=${raw}: ${what} must be a non-negative integer`);
    return v;
  }
  return fallback;
}

/** The plan of one fuzz test: its defaults unless the environment overrides them. */
export function fuzzPlan(name: string, defaults: { seed: number; cases: number }, env: NodeJS.ProcessEnv = process.env): FuzzPlan {
  const key = name.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
  const seed = envNumber(env, [`FASTPORT_FUZZ_SEED_${key}`, 'FASTPORT_FUZZ_SEED'], defaults.seed, 'a seed');
  const cases = envNumber(env, [`FASTPORT_FUZZ_CASES_${key}`, 'FASTPORT_FUZZ_CASES'], defaults.cases, 'a case count');
  if (cases < 1) throw new Error(`fuzz ${name}: need at least 1 case`);
  const reproduce = `FASTPORT_FUZZ_SEED_${key}=${seed} FASTPORT_FUZZ_CASES_${key}=${cases}`;
  return { name: key, seed, cases, reproduce, random: () => prng(seed) };
}

/**
 * Runs `body` and, if it fails, rethrows with the plan (seed, case count and
 * the variables that reproduce it) and the failing case index in front.
 * `body` reports the case it is on through `at(i)`.
 */
export async function runFuzz(plan: FuzzPlan, body: (at: (caseIndex: number) => void) => void | Promise<void>): Promise<void> {
  let current = -1;
  try {
    await body((i) => {
      current = i;
    });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `fuzz ${plan.name}: seed ${plan.seed}, ${plan.cases} cases, failed at case ${current} (reproduce: ${plan.reproduce})\n${e.message}`;
    throw e;
  }
}
