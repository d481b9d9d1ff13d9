/**
 * "The client is saturated": the load generator measures only as fast as its
 * own CPU lets it. When its process used at least 90% of the cores it may run
 * on (its pinning, Cpus_allowed_list) over a window, a msgs/s figure may be the
 * client's limit rather than the server's, and the CLI and the dashboard say so.
 */
import * as os from 'node:os';
import { allowedCpus, parseCpuList } from './pin';

export const SATURATED_FRACTION = 0.9;

/** Cores this process may run on (after pinning), or every core when that cannot be read. */
export function clientCores(): number {
  const list = allowedCpus();
  if (list !== undefined) {
    try {
      return parseCpuList(list).length;
    } catch {
      // fall through
    }
  }
  return Math.max(1, os.cpus().length);
}

/** cpuPct is in % of one core (all threads of the process); true at >= 90% of `cores` cores. */
export function isClientSaturated(cpuPct: number | undefined, cores: number): boolean | undefined {
  if (cpuPct === undefined || !Number.isFinite(cpuPct) || !(cores > 0)) return undefined;
  return cpuPct >= SATURATED_FRACTION * cores * 100;
}
