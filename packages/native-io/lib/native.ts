/**
 * Loader and types of the native addon (src/, built by scripts/build-native.js).
 *
 * The addon is found with node-gyp-build from the package root: a dev build in
 * build/Release (or build/Debug) first, then prebuilds/<platform>-<arch>/.
 * Loading never throws: when the addon is missing or broken, loadNative()
 * returns null and nativeLoadError() says why, so the `node` engine can run.
 * The result is cached for the life of the process.
 */
import * as path from 'node:path';
import { WIRE_VERSION } from './wire';

// ------------------------------------------------------------------ probe types

/** io_uring_params.features bits, by name (IORING_FEAT_*). */
export const URING_FEATURE_NAMES = [
  'singleMmap',
  'nodrop',
  'submitStable',
  'rwCurPos',
  'curPersonality',
  'fastPoll',
  'poll32Bits',
  'sqpollNonfixed',
  'extArg',
  'nativeWorkers',
  'rsrcTags',
  'cqeSkip',
  'linkedFile',
  'regRegRing',
  'recvsendBundle',
  'minTimeout',
  'rwAttr',
  'noIowait',
] as const;
export type UringFeatureName = (typeof URING_FEATURE_NAMES)[number];

/** io_uring opcodes in kernel order (index = IORING_OP_* number). */
export const URING_OP_NAMES = [
  'nop',
  'readv',
  'writev',
  'fsync',
  'readFixed',
  'writeFixed',
  'pollAdd',
  'pollRemove',
  'syncFileRange',
  'sendmsg',
  'recvmsg',
  'timeout',
  'timeoutRemove',
  'accept',
  'asyncCancel',
  'linkTimeout',
  'connect',
  'fallocate',
  'openat',
  'close',
  'filesUpdate',
  'statx',
  'read',
  'write',
  'fadvise',
  'madvise',
  'send',
  'recv',
  'openat2',
  'epollCtl',
  'splice',
  'provideBuffers',
  'removeBuffers',
  'tee',
  'shutdown',
  'renameat',
  'unlinkat',
  'mkdirat',
  'symlinkat',
  'linkat',
  'msgRing',
  'fsetxattr',
  'setxattr',
  'fgetxattr',
  'getxattr',
  'socket',
  'uringCmd',
  'sendZc',
  'sendmsgZc',
  'readMultishot',
  'waitid',
  'futexWait',
  'futexWake',
  'futexWaitv',
  'fixedFdInstall',
  'ftruncate',
  'bind',
  'listen',
  'recvZc',
  'epollWait',
  'readvFixed',
  'writevFixed',
  'pipe',
  'nop128',
  'uringCmd128',
] as const;
export type UringOpName = (typeof URING_OP_NAMES)[number];

/** io_uring_setup() flags, each tried on a throwaway ring. */
export const URING_SETUP_FLAG_NAMES = [
  'singleIssuer',
  'deferTaskrun',
  'coopTaskrun',
  'taskrunFlag',
  'submitAll',
  'cqsize',
  'noSqarray',
] as const;
export type UringSetupFlagName = (typeof URING_SETUP_FLAG_NAMES)[number];

export interface UringProbe {
  /** io_uring_setup() worked. */
  available: boolean;
  /** errno name of the failed io_uring_setup ('EPERM', 'ENOSYS', ...); only when !available. */
  error?: string;
  /** errno number of the failed io_uring_setup; only when !available. */
  errno?: number;
  /** kernel.io_uring_disabled (0 on, 1 restricted, 2 off); null when absent (< 6.6). */
  disabledSysctl: number | null;
  /** Raw io_uring_params.features. */
  featuresMask: number;
  features: Record<UringFeatureName, boolean>;
  /** Last opcode the kernel knows (IORING_REGISTER_PROBE); null when the probe is unsupported. */
  lastOp: number | null;
  ops: Record<UringOpName, boolean>;
  setupFlags: Record<UringSetupFlagName, boolean>;
  /** Provided buffer rings, IORING_REGISTER_PBUF_RING (5.19). */
  bufRing: boolean;
  /** Incremental buffer consumption, IOU_PBUF_RING_INC (6.12). */
  bufRingIncremental: boolean;
  /** Multishot accept (5.19), probed by doing it. */
  multishotAccept: boolean;
  /** Multishot recv into a buffer ring (6.0), probed by doing it. */
  multishotRecv: boolean;
  /** Probe steps that failed for reasons other than "unsupported". Empty normally. */
  notes: string[];
}

export interface EpollProbe {
  available: boolean;
  error?: string;
  errno?: number;
}

/**
 * What the native probe found. Every platform reports the same shape: where a
 * mechanism does not exist (io_uring or epoll off Linux) its section says
 * `available: false` with error 'ENOSYS', and `note` says why.
 */
export interface RioProbe {
  available: boolean;
  /** errno name when unavailable ('ENOSYS' off Windows, 'EOPNOTSUPP' without RIO). */
  error?: string;
  errno?: number;
  /** The Winsock error of the table request (0 when none was made). */
  wsaError?: number;
}

export interface ProbeResult {
  /** process.platform spelling of the OS the addon was built for ('unknown' if none). */
  platform: NodeJS.Platform | 'unknown';
  /** uname release on Linux, e.g. '6.18.44-fc-v669'; '' where not probed. */
  kernel: string;
  uring: UringProbe;
  epoll: EpollProbe;
  /**
   * Windows Registered I/O: the RIO function table could be fetched (WSAIoctl
   * SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER). Elsewhere unavailable with
   * ENOSYS; under Wine EOPNOTSUPP (wsaError 10045). Absent from older addons.
   */
  rio?: RioProbe;
  /** Set on platforms whose native probe is not built yet (Windows until IOCP/RIO land, macOS, BSDs). */
  note?: string;
}

// ------------------------------------------------------------------ binding

/** The addon's exports. */
export interface NativeBinding {
  /** What the kernel offers (io_uring, epoll), probed now (synchronous, well under 1 ms). */
  probe(): ProbeResult;
  /** The addon's version (package.json version it was built from). */
  version(): string;
  /** N-API version the addon was built against. */
  readonly NAPI_VERSION: number;
  /** The JS <-> native wire this build speaks (wire/wire.json); must equal lib/wire.ts's WIRE_VERSION. */
  readonly WIRE_VERSION: string;
  /** The native engine class (Linux builds; see lib/native-engine.ts). */
  readonly NativeEngine?: import('./native-engine').NativeEngineConstructor;
  /** Event backends this build has ('epoll', and 'uring' when linux/uring/backend.cc is built). */
  readonly backends?: readonly string[];
}

interface NodeGypBuild {
  (dir: string): unknown;
  path(dir: string): string;
}

type LoadState =
  | { kind: 'unloaded' }
  | { kind: 'loaded'; binding: NativeBinding; file: string }
  | { kind: 'failed'; error: Error };

let state: LoadState = { kind: 'unloaded' };

/** The package root: this file is lib/native.ts in development, dist/native.js when built. */
export function nativePackageRoot(): string {
  return path.join(__dirname, '..');
}

function isBinding(value: unknown): value is NativeBinding {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.probe === 'function' && typeof v.version === 'function' && typeof v.NAPI_VERSION === 'number';
}

/**
 * The addon and this JS must read event records and commands the same way
 * (wire/wire.json): a stale build or a prebuild of another version would
 * misread every batch, so it is refused with a message that says what to do.
 */
export function wireMismatch(binding: { WIRE_VERSION?: unknown }, file: string): Error | null {
  if (binding.WIRE_VERSION === WIRE_VERSION) return null;
  const got = typeof binding.WIRE_VERSION === 'string' ? binding.WIRE_VERSION : 'none';
  return new Error(
    `native addon ${file} speaks wire version ${got}, this JavaScript expects ${WIRE_VERSION}: ` +
      'rebuild it (`node scripts/build-native.js --force` in @fastport/native-io) or install matching versions',
  );
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function load(): LoadState {
  if (process.env.FASTPORT_NATIVE_DISABLE === '1') {
    return { kind: 'failed', error: new Error('native addon disabled by FASTPORT_NATIVE_DISABLE=1') };
  }
  const root = nativePackageRoot();
  let file: string;
  try {
    const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
    file = nodeGypBuild.path(root);
  } catch (err) {
    const e = asError(err);
    return {
      kind: 'failed',
      error: new Error(`native addon not found (build it with \`node scripts/build-native.js\`): ${e.message.trim()}`, {
        cause: e,
      }),
    };
  }
  try {
    const mod: unknown = require(file);
    if (!isBinding(mod)) {
      return { kind: 'failed', error: new Error(`native addon ${file} does not export probe/version/NAPI_VERSION`) };
    }
    const mismatch = wireMismatch(mod, file);
    if (mismatch !== null) return { kind: 'failed', error: mismatch };
    return { kind: 'loaded', binding: mod, file };
  } catch (err) {
    const e = asError(err);
    return { kind: 'failed', error: new Error(`native addon ${file} failed to load: ${e.message}`, { cause: e }) };
  }
}

/** The addon, or null when it is missing or does not load (see nativeLoadError()). Never throws. */
export function loadNative(): NativeBinding | null {
  if (state.kind === 'unloaded') state = load();
  return state.kind === 'loaded' ? state.binding : null;
}

/** Why loadNative() returns null; null when the addon loads. Tries the load if not done yet. */
export function nativeLoadError(): Error | null {
  loadNative();
  return state.kind === 'failed' ? state.error : null;
}

/** The .node file that was loaded, or null. Tries the load if not done yet. */
export function nativeAddonPath(): string | null {
  loadNative();
  return state.kind === 'loaded' ? state.file : null;
}
