/**
 * The servers under test: fastport-server started per engine, the C
 * reference servers (ref-echo epoll|uring), or an external target.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { PacketId, ResultCode, ServerStatusRequest, ServerStatusResponse } from '@fastport/protocol';
import { requestReply } from './admin-client';
import { framingOption } from './payload';
import { track } from './children';
import { pinPrefix } from './pin';
import { catchesSignal } from './proc';
import type { EngineCounters, Framing } from './types';

const SIGUSR2 = 12;

export interface EngineSnapshot extends EngineCounters {
  heapUsed: number | undefined;
  rss: number | undefined;
}

export interface RunningServer {
  kind: 'fastport-server' | 'ref-echo' | 'external';
  host: string;
  port: number;
  pid: number | undefined;
  /** The engine the server reported (fastport-server), or 'c-uring'/'c-epoll'. */
  engine: string | undefined;
  reason: string | undefined;
  command: string;
  /** Where its admin packets are answered (fastport-server started with an admin port and token), if anywhere known. */
  admin: AdminAccess | undefined;
  /** Resolves with a description when a server this run started exits on its own (undefined: never for external ones). */
  exited: Promise<string> | undefined;
  /** Engine counters and memory now (fastport-server: SIGUSR2 → one log line). */
  snapshot(): Promise<EngineSnapshot | undefined>;
  stop(): Promise<void>;
}

/** Where fastport-server's bin is (the workspace dependency), unless given. */
export function defaultServerBin(): string {
  try {
    const pkg = require.resolve('fastport-server/package.json');
    return path.join(path.dirname(pkg), 'bin', 'fastport-server');
  } catch {
    return path.resolve(__dirname, '..', '..', 'server', 'bin', 'fastport-server');
  }
}

function tail(lines: string[], line: string, max = 40): void {
  lines.push(line);
  if (lines.length > max) lines.shift();
}

function shellQuote(args: string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await waitExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitExit(child, 2000);
  }
}

export interface AdminAccess {
  host: string;
  port: number;
  /** Sent with every admin request (the admin port needs none, the public port does). */
  token: string;
}

export interface FastportServerOptions {
  serverBin: string;
  engine: string;
  framing: Framing;
  maxFrame: number;
  mode: 'echo' | 'app';
  threads: number | undefined;
  cpus: string | undefined;
  exposeGc: boolean;
  extraArgs: string[];
  /** Start it with this admin token and an admin listener on a free loopback port (--admin-port 0). */
  adminToken?: string;
}

interface LogLine {
  msg?: string;
  port?: number;
  adminPort?: number;
  engine?: string;
  reason?: string;
  stats?: { engine?: { events?: number; batches?: number; jsCrossings?: number; connections?: number }; sessions?: number };
  memory?: { heapUsed?: number; rss?: number };
}

export async function startFastportServer(o: FastportServerOptions): Promise<RunningServer> {
  const args = [
    ...pinPrefix(o.cpus),
    process.execPath,
    ...(o.exposeGc ? ['--expose-gc'] : []),
    o.serverBin,
    '--engine',
    o.engine,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--mode',
    o.mode,
    '--framing',
    o.framing,
    ...(o.framing !== 'fastport' ? ['--max-frame', String(o.maxFrame)] : []),
    ...(o.threads !== undefined ? ['--threads', String(o.threads)] : []),
    '--grace',
    '2000',
    '--log-level',
    'info',
    ...(o.adminToken !== undefined ? ['--admin-token', o.adminToken, '--admin-port', '0'] : []),
    ...o.extraArgs,
  ];
  const [cmd, ...rest] = args as [string, ...string[]];
  const child = track(spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const output: string[] = [];
  let snapshotWaiter: ((line: LogLine) => void) | undefined;
  let adminPort: number | undefined;
  const wantAdmin = o.adminToken !== undefined;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    for (const l of chunk.split('\n')) if (l.trim() !== '') tail(output, l);
  });
  const rl = readline.createInterface({ input: child.stdout! });
  let listeningLine: LogLine | undefined;
  const listening = new Promise<LogLine>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fastport-server did not start within 20 s:\n${output.join('\n')}`)), 20_000);
    rl.on('line', (line) => {
      tail(output, line);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      if (typeof parsed.msg === 'string' && parsed.msg.includes('listening on') && typeof parsed.port === 'number') {
        listeningLine = parsed;
      } else if (typeof parsed.adminPort === 'number') {
        adminPort = parsed.adminPort;
      } else if (parsed.msg === 'stats snapshot' && snapshotWaiter) {
        const w = snapshotWaiter;
        snapshotWaiter = undefined;
        w(parsed);
      }
      // with an admin listener asked for, the server is ready once both lines came (the admin line follows)
      if (listeningLine !== undefined && (!wantAdmin || adminPort !== undefined)) {
        clearTimeout(timer);
        resolve(listeningLine);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`fastport-server exited (${signal ?? code}) before listening:\n${output.join('\n')}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  let info: LogLine;
  try {
    info = await listening;
  } catch (err) {
    await stopChild(child, 1000);
    throw err;
  }
  const pid = child.pid;
  return {
    kind: 'fastport-server',
    host: '127.0.0.1',
    port: info.port as number,
    pid,
    engine: info.engine,
    reason: info.reason,
    command: shellQuote(args),
    admin: o.adminToken !== undefined && adminPort !== undefined ? { host: '127.0.0.1', port: adminPort, token: o.adminToken } : undefined,
    exited: exitDescription(child, () => output.slice(-5).join('\n')),
    snapshot: async () => {
      if (pid === undefined || !catchesSignal(pid, SIGUSR2)) return undefined;
      const line = await new Promise<LogLine | undefined>((resolve) => {
        const timer = setTimeout(() => {
          snapshotWaiter = undefined;
          resolve(undefined);
        }, 5000);
        snapshotWaiter = (l) => {
          clearTimeout(timer);
          resolve(l);
        };
        process.kill(pid, 'SIGUSR2');
      });
      const e = line?.stats?.engine;
      if (line === undefined || e === undefined) return undefined;
      return {
        events: e.events ?? 0,
        batches: e.batches ?? 0,
        jsCrossings: e.jsCrossings ?? 0,
        connections: line.stats?.sessions ?? e.connections ?? 0,
        heapUsed: line.memory?.heapUsed,
        rss: line.memory?.rss,
      };
    },
    stop: () => stopChild(child, 5000),
  };
}

/** Resolves when the child exits: how (code or signal) and the last lines it printed. */
function exitDescription(child: ChildProcess, lastLines: () => string): Promise<string> {
  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      const tailText = lastLines().trim();
      resolve(`server process exited (${signal ?? `code ${code}`})${tailText !== '' ? `: ${tailText.slice(-500)}` : ''}`);
    };
    if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode);
    else child.once('exit', done);
  });
}

/** A free TCP port on 127.0.0.1 (for servers that cannot listen on port 0 and say where). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host, port });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function kitBinary(kit: string, name: 'echo-bench' | 'ref-echo'): string {
  const p = path.join(kit, name);
  if (!fs.existsSync(p)) {
    throw new Error(
      `${p} not found: build the C kit with 'bash apps/benchmark/scripts/build-kit.sh ${kit}' (needs liburing-dev) or pass --kit DIR`,
    );
  }
  return p;
}

export async function startRefEcho(kit: string, flavor: 'uring' | 'epoll', cpus: string | undefined, threads: number | undefined): Promise<RunningServer> {
  const bin = kitBinary(kit, 'ref-echo');
  const port = await freePort();
  const args = [...pinPrefix(cpus), bin, flavor, String(port), ...(threads !== undefined && threads > 1 ? ['-t', String(threads)] : [])];
  const [cmd, ...rest] = args as [string, ...string[]];
  const child = track(spawn(cmd, rest, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    stderr = (stderr + c).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`ref-echo exited (${signal ?? code}): ${stderr}`))),
  );
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForPort('127.0.0.1', port, 5000), exited]);
  } catch (err) {
    await stopChild(child, 1000);
    throw err;
  }
  return {
    kind: 'ref-echo',
    host: '127.0.0.1',
    port,
    pid: child.pid,
    engine: `c-${flavor}`,
    reason: `ref-echo ${flavor} (plain C reference server)`,
    command: shellQuote(args),
    admin: undefined,
    exited: exitDescription(child, () => stderr),
    snapshot: () => Promise.resolve(undefined),
    stop: () => stopChild(child, 2000),
  };
}

export function parseTarget(target: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target.trim());
  if (!m) throw new Error(`bad --target '${target}' (want host:port)`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

/**
 * Asks a fastport-server in app mode for its status (ServerStatusRequest 0x2001).
 * Resolves undefined when the target does not answer with a ServerStatusResponse (echo servers).
 */
export async function queryServerStatus(
  host: string,
  port: number,
  framing: Framing,
  maxFrame: number,
  timeoutMs = 1500,
): Promise<ServerStatusResponse | undefined> {
  if (framing === 'u32le') return undefined; // no packet ids
  try {
    // fastport-server answers admin only with its token (or on its --admin-port): FASTPORT_ADMIN_TOKEN carries it here.
    const request = ServerStatusRequest.encode(ServerStatusRequest.fromPartial({ authToken: process.env['FASTPORT_ADMIN_TOKEN'] ?? '' })).finish();
    // The first frame decides: an echo server sends the request back.
    const reply = await requestReply(host, port, { framing: framingOption(framing, maxFrame), request, requestId: PacketId.ServerStatusRequest, accept: () => true, timeoutMs });
    if (reply.id !== PacketId.ServerStatusResponse) return undefined;
    const st = ServerStatusResponse.decode(reply.payload);
    return st.result === ResultCode.OK ? st : undefined;
  } catch {
    return undefined;
  }
}

export function externalServer(host: string, port: number, pid: number | undefined, engine: string | undefined): RunningServer {
  return {
    kind: 'external',
    host,
    port,
    pid,
    engine,
    reason: undefined,
    command: `${host}:${port}`,
    admin: undefined,
    exited: undefined,
    snapshot: () => Promise.resolve(undefined),
    stop: () => Promise.resolve(),
  };
}
