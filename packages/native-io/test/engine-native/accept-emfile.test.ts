/**
 * Regression (issue 8, defect 2): a server out of file descriptors must not
 * spin. With EMFILE the listening socket stays readable (the connections wait
 * in the backlog), so a level-triggered loop that just "retries on the next
 * turn" burns a whole core. The engine must back off, and accept again once
 * descriptors are free.
 *
 * The server runs in a child under `prlimit --nofile=256` (loading dist/, as
 * the other child-process tests do), accepts and keeps every connection, and
 * echoes. The parent opens more connections than the child has fds, measures
 * the child's CPU time (/proc/<pid>/stat, every thread) over a fixed window
 * and asserts it is far from busy (a spinning loop burns ~100% of the window;
 * the threshold is 30% so a loaded machine cannot make a correct engine
 * fail). Then the child closes 100 connections, and every waiting connection
 * plus a fresh one must be accepted and served.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { JsonChild, findExecutable, pollValue, waitFor } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { engineAvailability } from '../../lib/engine';
import { type EngineKind } from '../../lib/types';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const NATIVE: EngineKind[] = ['epoll', 'uring'];
const hasPrlimit = findExecutable('prlimit') !== null;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const FD_LIMIT = 256;
const CLIENTS = 300;
const WINDOW_MS = 2000;
const MAX_BUSY = 0.3;

// The server: accepts and keeps everything, echoes, answers commands on stdin.
const SERVER_SRC = `
const { createEngine } = require(process.env.FASTPORT_TEST_DIST);
const kind = process.env.FASTPORT_TEST_KIND;
const ioThreads = Number(process.env.FASTPORT_TEST_THREADS);
const conns = new Set();
let accepted = 0, listenerErrors = 0, lastError = '';
const engine = createEngine({
  kind, ioThreads,
  handler: {
    onAccept(id) { conns.add(id); accepted++; },
    onConnect() {},
    onData(id, data) { engine.send(id, data); },
    onClose(id) { conns.delete(id); },
    onListenerError(_l, err) { listenerErrors++; lastError = err.code; },
  },
});
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
engine.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }).then((l) => say({ port: l.port, kind: engine.info.kind }));
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const cmd = buf.slice(0, nl); buf = buf.slice(nl + 1);
    if (cmd === 'stats') say({ accepted, open: conns.size, listenerErrors, lastError });
    else if (cmd.startsWith('free ')) {
      let n = Number(cmd.slice(5));
      for (const id of conns) { if (n-- <= 0) break; engine.close(id, 'abort'); }
      say({ freed: true });
    } else if (cmd === 'exit') engine.destroy().then(() => process.exit(0));
  }
});
`;

interface ServerMsg {
  port?: number;
  kind?: string;
  accepted?: number;
  open?: number;
  listenerErrors?: number;
  lastError?: string;
  freed?: boolean;
}

class ChildServer {
  private readonly proc: JsonChild;

  constructor(kind: EngineKind, ioThreads: number) {
    this.proc = new JsonChild('prlimit', [`--nofile=${FD_LIMIT}`, process.execPath, '-e', SERVER_SRC], {
      stderr: 'inherit',
      env: { ...process.env, FASTPORT_TEST_DIST: DIST, FASTPORT_TEST_KIND: kind, FASTPORT_TEST_THREADS: String(ioThreads) },
    });
  }

  /** Sends a command (none if empty) and waits for the first later answer that has `key`. */
  ask(cmd: string, key: keyof ServerMsg): Promise<ServerMsg> {
    return this.proc.ask<ServerMsg>(cmd, key, 10_000);
  }

  /** CPU seconds (user + system, all threads) of the node process under prlimit (prlimit execs it: same pid). */
  cpuSeconds(): number {
    const stat = fs.readFileSync(`/proc/${this.proc.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  }

  stop(): Promise<void> {
    return this.proc.stop('exit', 5000);
  }
}

function openClient(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// A missing dependency fails by name: the test must never pass by not running.
describe('out of file descriptors: what the test needs', () => {
  it('prlimit (util-linux) is installed', () => expect(hasPrlimit, 'prlimit is missing: install util-linux').toBe(true));
  it('the package is built (dist/)', () => expect(fs.existsSync(DIST), `${DIST} is missing: run the build first`).toBe(true));
});

// Without prlimit or dist/ the cases are skipped (the checks above fail by name).
const missing = !hasPrlimit ? 'prlimit is missing' : !fs.existsSync(DIST) ? 'dist/ is not built' : '';

describeEngines('native engine: out of file descriptors', engineAvailability, (kind) => {
  for (const ioThreads of [0, 1]) {
    it.skipIf(missing !== '')(`[${kind}] ioThreads ${ioThreads}: EMFILE backs off instead of spinning, and accepting resumes when fds free up${missing ? ` (skipped: ${missing})` : ''}`, async () => {
      const server = new ChildServer(kind, ioThreads);
      const clients: net.Socket[] = [];
      try {
        const { port } = await server.ask('', 'port');
        for (let i = 0; i < CLIENTS; i++) clients.push(await openClient(port as number));
        for (const s of clients) s.on('error', () => {});
        // The kernel completed every handshake; the server takes what its fds allow.
        const st = await pollValue(
          () => server.ask('stats', 'accepted'),
          (m) => (m.listenerErrors ?? 0) > 0 && (m.accepted ?? 0) > 0,
          { timeoutMs: 10_000 },
        );
        expect(st.listenerErrors, 'the server reports EMFILE').toBeGreaterThan(0);
        expect(st.lastError).toMatch(/^E(MFILE|NFILE)$/);
        const before = st;

        const cpu0 = server.cpuSeconds();
        const t0 = process.hrtime.bigint();
        await new Promise((r) => setTimeout(r, WINDOW_MS));
        const cpu1 = server.cpuSeconds();
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        const busy = (cpu1 - cpu0) / wall;
        const during = await server.ask('stats', 'accepted');
        console.log(
          `[${kind} ioThreads ${ioThreads}] out of fds: accepted ${before.accepted}/${CLIENTS}, CPU ${(busy * 100).toFixed(1)}% of ${wall.toFixed(2)} s, ` +
            `listener errors reported in the window: ${(during.listenerErrors ?? 0) - (before.listenerErrors ?? 0)}`,
        );
        expect(busy, 'CPU share of the server while out of fds').toBeLessThan(MAX_BUSY);

        // Free 100 fds: every waiting connection and a fresh one get in.
        await server.ask('free 100', 'freed');
        const fresh = await openClient(port as number);
        clients.push(fresh);
        let echoed = '';
        fresh.on('data', (d: Buffer) => (echoed += d.toString()));
        fresh.write('ping');
        await waitFor(() => echoed === 'ping', 10_000, 'echo on a connection made after fds were freed');
        const after = await pollValue(() => server.ask('stats', 'accepted'), (m) => m.accepted === CLIENTS + 1, { timeoutMs: 20_000 });
        expect(after.accepted, 'every waiting connection was accepted').toBe(CLIENTS + 1);
      } finally {
        for (const s of clients) s.destroy();
        await server.stop();
      }
    }, 60_000);
  }
}, { only: NATIVE });
