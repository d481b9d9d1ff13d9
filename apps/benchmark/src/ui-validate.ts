/**
 * Checks the dashboard's settings before anything starts: an impossible
 * setting is an HTTP 400 with {error:{code,message}} that the page shows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { engineAvailability, type EngineKind } from '@fastport/native-io';
import { maxFrameFor, maxPayload } from './payload';
import { openFileLimit } from './proc';
import type { TargetSpec } from './runner';
import { SERVER_KINDS, type Framing } from './types';
import type { SideSettings } from './ui-api';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const bad = (code: string, message: string) => new ApiError(400, code, message);

export const FRAMINGS: readonly Framing[] = ['fastport', 'large', 'u32le'];
/** Largest payload the dashboard sends on large/u32le framing (the servers' default frame limit). */
export const UI_MAX_SIZE = 16 * 1024 * 1024 - 64;
export const MAX_DEPTH = 1024;
export const MAX_THREADS = 8;
/** Files the process needs besides the load connections (servers' pipes, the HTTP server, node itself). */
const FD_RESERVE = 200;

export const DEFAULT_SIDE_SETTINGS: SideSettings = { target: 'uring', connections: 4, depth: 1, size: 64, rate: 0, framing: 'fastport', threads: 1 };

/** Files this process may open (20,000 on this machine), from /proc/self/limits. */
export function processFileLimit(): number {
  return openFileLimit(process.pid) ?? 1024;
}

/** Connections one side may open, given what the other side holds. */
export function connectionLimit(otherSide = 0): number {
  return Math.max(0, processFileLimit() - FD_RESERVE - otherSide);
}

function integer(body: Record<string, unknown>, key: keyof SideSettings, min: number, max: number, fallback: number): number {
  const v = body[key];
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || !Number.isInteger(n)) throw bad(`bad-${key}`, `${key} must be a whole number (got ${JSON.stringify(v)})`);
  if (n < min) throw bad(`bad-${key}`, `${key} must be at least ${min} (got ${n})`);
  if (n > max) throw bad(`bad-${key}`, `${key} must be at most ${max} (got ${n})`);
  return n;
}

/** Parses host:port; a port outside 1..65535 or an empty host is refused. */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!(port >= 1 && port <= 65535)) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** Where the C reference servers are expected (--kit / FASTPORT_KIT). */
export function kitHasRefEcho(kit: string): boolean {
  return fs.existsSync(path.join(kit, 'ref-echo'));
}

/** The target as the runner knows it, or a 400 that says why not. */
export function targetSpecOf(target: string, kit: string): TargetSpec {
  const t = target.trim();
  if ((SERVER_KINDS as readonly string[]).includes(t)) {
    if (t === 'ref-uring' || t === 'ref-epoll') {
      if (!kitHasRefEcho(kit)) throw bad('kit-missing', `${t} needs the C kit in ${kit}: bash apps/benchmark/scripts/build-kit.sh ${kit}`);
      return { kind: 'ref', flavor: t === 'ref-uring' ? 'uring' : 'epoll' };
    }
    if (t !== 'auto') {
      const a = engineAvailability(t as EngineKind);
      if (!a.available) throw bad('engine-unavailable', `engine ${t} is not available here: ${a.reason}`);
    }
    return { kind: 'engine', engine: t as EngineKind };
  }
  if (t.includes(':')) {
    const hp = parseHostPort(t);
    if (hp === undefined) throw bad('bad-target', `'${target}' is not host:port (port 1-65535)`);
    return { kind: 'external', host: hp.host, port: hp.port, pid: undefined };
  }
  throw bad('unknown-target', `unknown engine '${target}' (known: ${SERVER_KINDS.filter((k) => k !== 'auto').join(', ')}; or host:port)`);
}

/** New settings for a side: `body` over `current`; throws ApiError(400) on anything impossible. */
export function validateSettings(body: unknown, current: SideSettings, kit: string, otherSideConnections: number): SideSettings {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('bad-body', 'settings must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!(k in DEFAULT_SIDE_SETTINGS)) throw bad('unknown-setting', `unknown setting '${k}' (known: ${Object.keys(DEFAULT_SIDE_SETTINGS).join(', ')})`);
  const target = b['target'] === undefined ? current.target : b['target'];
  if (typeof target !== 'string' || target.trim() === '') throw bad('bad-target', 'target must be an engine name or host:port');
  targetSpecOf(target, kit);
  const framing = b['framing'] === undefined ? current.framing : b['framing'];
  if (typeof framing !== 'string' || !(FRAMINGS as readonly string[]).includes(framing)) throw bad('bad-framing', `framing must be one of ${FRAMINGS.join(', ')}`);
  const f = framing as Framing;
  const limit = connectionLimit(otherSideConnections);
  const connections = integer(b, 'connections', 1, Number.MAX_SAFE_INTEGER, current.connections);
  if (connections > limit) {
    throw bad('too-many-connections', `${connections} connections do not fit: this process may open ${processFileLimit()} files${otherSideConnections > 0 ? `, the other side holds ${otherSideConnections}` : ''} (at most ${limit} here)`);
  }
  const depth = integer(b, 'depth', 1, MAX_DEPTH, current.depth);
  const sizeMax = f === 'fastport' ? maxPayload(f, maxFrameFor(f, 1)) : UI_MAX_SIZE;
  const size = integer(b, 'size', 1, Number.MAX_SAFE_INTEGER, current.size);
  if (size > sizeMax) throw bad('size-too-large', `size ${size} is over the ${f} framing's largest payload (${sizeMax} bytes)${f === 'fastport' ? ': use framing large' : ''}`);
  const rate = integer(b, 'rate', 0, 10_000_000, current.rate);
  const threads = integer(b, 'threads', 1, MAX_THREADS, current.threads);
  if (threads > connections) throw bad('bad-threads', `threads (${threads}) cannot be more than connections (${connections})`);
  return { target: target.trim(), connections, depth, size, rate, framing: f, threads };
}
