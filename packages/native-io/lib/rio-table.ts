/**
 * Which RIO function table the `rio` engine runs on (EngineOptions.rioTable,
 * else FASTPORT_RIO_TABLE, else 'system'). The emulated table exists for
 * tests where Windows' RIO is absent (Wine); `auto` never uses it.
 */
import { FastPortError } from './errors';
import type { RioProbe } from './native';
import type { RioTable } from './types';

export interface RioTableChoice {
  table: RioTable;
  /** Where the choice came from, in words a reason can carry. */
  source: string;
}

const TABLES: readonly RioTable[] = ['system', 'emulated'];

/** Throws ERR_INVALID_ARGUMENT for a value that is neither 'system' nor 'emulated'. */
export function resolveRioTable(option: unknown, env: NodeJS.ProcessEnv = process.env): RioTableChoice {
  if (option !== undefined) {
    if (!(TABLES as readonly unknown[]).includes(option)) {
      throw new FastPortError('ERR_INVALID_ARGUMENT', `rioTable must be 'system' or 'emulated', got ${String(option)}`);
    }
    return { table: option as RioTable, source: `rioTable: '${String(option)}'` };
  }
  const raw = env['FASTPORT_RIO_TABLE']?.trim();
  if (raw === undefined || raw === '') return { table: 'system', source: 'default' };
  if (!(TABLES as readonly string[]).includes(raw)) {
    throw new FastPortError('ERR_INVALID_ARGUMENT', `FASTPORT_RIO_TABLE must be 'system' or 'emulated', got '${raw}'`);
  }
  return { table: raw as RioTable, source: `FASTPORT_RIO_TABLE=${raw}` };
}

/** Why the system's RIO table cannot be used, from the addon's probe. */
export function rioAbsentReason(probe: RioProbe | undefined): string {
  if (probe === undefined) return 'this build of the addon does not probe for RIO (rebuild it)';
  if (probe.error === 'EOPNOTSUPP') {
    return (
      'the RIO function table is absent (WSAIoctl SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER with ' +
      `WSAID_MULTIPLE_RIO answered WSAEOPNOTSUPP${probe.wsaError ? ` ${probe.wsaError}` : ''}; Wine has no RIO)`
    );
  }
  return `the RIO function table could not be fetched: ${probe.error ?? 'unknown error'} (Winsock error ${probe.wsaError ?? 0})`;
}
