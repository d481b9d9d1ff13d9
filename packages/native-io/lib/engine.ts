import { FastPortError } from './errors';
import { loadNative, nativeLoadError } from './native';
import { registerNativeEngines } from './native-engine';
import { NodeEngine } from './node-engine';
import { resolveRioTable, rioAbsentReason, type RioTableChoice } from './rio-table';
import type { Engine, EngineHandler, EngineKind, EngineOptions, EngineRequest } from './types';

export interface CreateEngineOptions extends EngineOptions {
  handler: EngineHandler;
}

export interface EngineAvailability {
  kind: EngineKind;
  available: boolean;
  /** Why it is (un)available, in words a log line can carry. */
  reason: string;
}

export type EngineFactory = (handler: EngineHandler, options: EngineOptions, requested: EngineRequest, reason: string) => Engine;

const factories = new Map<EngineKind, EngineFactory>();

/** Native engine modules register themselves here; the node engine is always present. */
export function registerEngine(kind: EngineKind, factory: EngineFactory): void {
  factories.set(kind, factory);
}

function platformOrder(): EngineKind[] {
  if (process.platform === 'linux') return ['uring', 'epoll', 'node'];
  if (process.platform === 'win32') return ['rio', 'iocp', 'node'];
  return ['node'];
}

/**
 * Whether `kind` can run here, and why (or why not). For `rio` the answer
 * depends on the RIO table asked for (`options.rioTable`, else
 * FASTPORT_RIO_TABLE): on the system's table it is available only where
 * Windows provides RIO (not under Wine); the emulated table is available
 * wherever the addon is.
 */
export function engineAvailability(kind: EngineKind, options: Pick<EngineOptions, 'rioTable'> = {}): EngineAvailability {
  if (kind === 'node') return { kind, available: true, reason: 'node:net is always available' };
  const wantPlatform = kind === 'uring' || kind === 'epoll' ? 'linux' : 'win32';
  if (process.platform !== wantPlatform) {
    return { kind, available: false, reason: `${kind} runs on ${wantPlatform}, this is ${process.platform}` };
  }
  const native = loadNative();
  if (native === null) {
    return { kind, available: false, reason: `native addon not loaded: ${nativeLoadError()?.message ?? 'unknown'}` };
  }
  if (kind === 'uring') {
    const uring = native.probe().uring;
    if (!uring.available) {
      return { kind, available: false, reason: `io_uring_setup failed: ${uring.error ?? 'unknown error'}` };
    }
  }
  if (!factories.has(kind)) {
    return { kind, available: false, reason: `this build of @fastport/native-io has no ${kind} engine` };
  }
  if (kind === 'rio') {
    let choice: RioTableChoice;
    try {
      choice = resolveRioTable(options.rioTable);
    } catch (err) {
      return { kind, available: false, reason: (err as Error).message };
    }
    const probe = native.probe().rio;
    if (choice.table === 'emulated') {
      const system = probe?.available === true ? 'the system table is present' : rioAbsentReason(probe);
      return { kind, available: true, reason: `rio on the emulated RIO table (${choice.source}; ${system})` };
    }
    if (probe?.available !== true) return { kind, available: false, reason: rioAbsentReason(probe) };
    return { kind, available: true, reason: 'rio available (the system RIO function table)' };
  }
  return { kind, available: true, reason: kind === 'uring' ? 'io_uring available' : `${kind} available` };
}

/** Every engine with its availability on this machine, in auto's order of preference first. */
export function listEngines(): EngineAvailability[] {
  const order = platformOrder();
  const rest = (['uring', 'epoll', 'rio', 'iocp', 'node'] as EngineKind[]).filter((k) => !order.includes(k));
  return [...order, ...rest].map((kind) => engineAvailability(kind));
}

/**
 * Creates the requested engine. `auto` takes the first available engine of the
 * platform's order and records in `engine.info.reason` why each better one was passed over.
 */
export function createEngine(options: CreateEngineOptions): Engine {
  const { handler, ...engineOptions } = options;
  const requested: EngineRequest = options.kind ?? 'auto';
  if (options.rioTable !== undefined) resolveRioTable(options.rioTable); // ERR_INVALID_ARGUMENT for a bad value
  if (requested !== 'auto') {
    const availability = engineAvailability(requested, engineOptions);
    if (!availability.available) {
      throw new FastPortError('ERR_ENGINE_UNAVAILABLE', `engine '${requested}' is unavailable: ${availability.reason}`);
    }
    return instantiate(requested, handler, engineOptions, requested, availability.reason);
  }
  const skipped: string[] = [];
  // auto never runs rio on the emulated table, whatever the option or FASTPORT_RIO_TABLE say.
  const autoOptions: EngineOptions = { ...engineOptions, rioTable: 'system' };
  for (const kind of platformOrder()) {
    const availability = engineAvailability(kind, autoOptions);
    if (!availability.available) {
      skipped.push(`${kind}: ${availability.reason}`);
      continue;
    }
    const reason = skipped.length === 0 ? availability.reason : `${availability.reason}; skipped ${skipped.join('; ')}`;
    try {
      return instantiate(kind, handler, autoOptions, requested, reason);
    } catch (err) {
      // The probe can pass while setup still fails (e.g. a seccomp profile that blocks only
      // io_uring_register): auto moves on to the next engine instead of failing the server.
      // Option errors are the caller's and apply to every engine, so they are not swallowed.
      if (err instanceof FastPortError && err.code === 'ERR_INVALID_ARGUMENT') throw err;
      skipped.push(`${kind}: failed to start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new FastPortError('ERR_ENGINE_UNAVAILABLE', `no engine available: ${skipped.join('; ')}`);
}

function instantiate(kind: EngineKind, handler: EngineHandler, options: EngineOptions, requested: EngineRequest, reason: string): Engine {
  if (kind === 'node') return new NodeEngine(handler, options, requested, reason);
  const factory = factories.get(kind);
  if (!factory) throw new FastPortError('ERR_ENGINE_UNAVAILABLE', `engine '${kind}' is not registered`);
  return factory(handler, options, requested, reason);
}

// The native engines (epoll, uring) this build of the addon has register on import.
registerNativeEngines(registerEngine);
