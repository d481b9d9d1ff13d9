/**
 * Regression (issue 8, "never hangs on shutdown"): with I/O threads,
 * destroy() must resolve. It did not: the engine's uv_async handle (the only
 * thing that keeps Node alive for the engine) was referenced only while the
 * loops counted live connections or listeners, and a loop thread counted a
 * listener or connection gone as soon as it closed, before the LCLOSED/CLOSE
 * record saying so had been posted to JS. JS checked the count right after
 * closeListener() (a run_sync on the loop thread: always inside that window)
 * and after every batch, unreferenced the handle, and Node, seeing nothing
 * left to wait for, exited 0 with destroy() still waiting for those records.
 * Any threaded server with a listener hit it; the small-ring flood of
 * memcheck-scenario.js is where it was found.
 *
 * The symptom only shows in a process with no other handle (a vitest worker
 * always has some): each case runs in a child that must print `destroyed`.
 * The parent waits at most CHILD_LIMIT_MS for the child to end; a child that
 * exits without the line (the bug) or never ends fails the case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runChild } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { engineAvailability } from '../../lib/engine';
import { type EngineKind } from '../../lib/types';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const NATIVE: EngineKind[] = ['epoll', 'uring'];
const built = fs.existsSync(DIST);
const CHILD_LIMIT_MS = 20_000;

// The flood of memcheck-scenario.js (floodSmallRing): 150 connections echo
// 64 KiB each while the server also sends on a timer. The uring server runs
// on a tiny ring (8 SQEs, 16 receive buffers) so its closes and completions
// spread over many loop turns, as when the hang was found. A plain node
// child (no TypeScript loader), so it has its own small waitFor.
const CHILD_SRC = `
const { createEngine } = require(process.env.FASTPORT_TEST_DIST);
const kind = process.env.FASTPORT_TEST_KIND;
const ioThreads = Number(process.env.FASTPORT_TEST_THREADS);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
function waitFor(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error('timeout: ' + what));
      setTimeout(tick, 5);
    };
    tick();
  });
}
function engine() {
  const st = { got: new Map(), accepted: [], connected: new Set(), closes: 0 };
  const e = createEngine({ kind, ioThreads, handler: {
    onAccept(id) { st.accepted.push(id); },
    onConnect(id) { st.connected.add(id); },
    onData(id, data) { st.got.set(id, (st.got.get(id) || 0) + data.length); if (st.echo) e.send(id, data); },
    onClose() { st.closes++; },
  } });
  return { e, st };
}
(async () => {
  if (process.env.FASTPORT_TEST_FLOOD === '0') {
    // The smallest case: a listener, no connection.
    const server = engine();
    await server.e.listen({ host: '127.0.0.1', port: 0 });
    await server.e.destroy();
    say({ destroyed: true, closes: server.st.closes });
    return;
  }
  const small = process.env.FASTPORT_TEST_SMALL_RING === '1';
  if (small) Object.assign(process.env, { FASTPORT_URING_SQ_ENTRIES: '8', FASTPORT_URING_BUF_COUNT: '16', FASTPORT_URING_BUF_SIZE: '4096' });
  const server = engine();
  for (const k of ['FASTPORT_URING_SQ_ENTRIES', 'FASTPORT_URING_BUF_COUNT', 'FASTPORT_URING_BUF_SIZE']) delete process.env[k];
  server.st.echo = true;
  const client = engine();
  const l = await server.e.listen({ host: '127.0.0.1', port: 0 });
  const N = 150;
  const ids = [];
  for (let i = 0; i < N; i++) ids.push(client.e.connect({ host: '127.0.0.1', port: l.port }));
  await waitFor(() => ids.every((id) => client.st.connected.has(id)) && server.st.accepted.length === N, 10000, 'connect');
  const chunk = Buffer.alloc(64 * 1024, 5);
  for (const id of ids) client.e.send(id, chunk);
  const ticks = 40;
  const tick = Buffer.alloc(1024, 9);
  await new Promise((resolve) => {
    let n = 0;
    const t = setInterval(() => {
      for (const id of server.st.accepted) server.e.send(id, tick);
      if (++n === ticks) { clearInterval(t); resolve(); }
    }, 2);
  });
  const want = chunk.length + ticks * tick.length;
  await waitFor(() => ids.every((id) => client.st.got.get(id) === want), 10000, 'echo');
  say({ echoed: true });
  // No timer of ours runs from here: only the engines may keep Node alive.
  await client.e.destroy();
  say({ clientDestroyed: true, closes: client.st.closes });
  await server.e.destroy();
  say({ destroyed: true, closes: server.st.closes });
})().catch((err) => { say({ error: String(err && err.stack || err) }); process.exit(1); });
`;

interface ChildMsg {
  echoed?: boolean;
  clientDestroyed?: boolean;
  destroyed?: boolean;
  closes?: number;
  error?: string;
}

describeEngines('native engine: destroy() settles with I/O threads', engineAvailability, (kind) => {
  describe.skipIf(!built)(`[${kind}] destroy() with I/O threads${built ? '' : ' (skipped: dist/ is not built)'}`, () => {
    const cases: { flood: boolean; smallRing: boolean }[] = [{ flood: false, smallRing: false }, { flood: true, smallRing: false }];
    if (kind === 'uring') cases.push({ flood: true, smallRing: true });
    for (const { flood, smallRing } of cases) {
      for (const ioThreads of [1, 2]) {
        const what = flood ? `after a flood${smallRing ? ' through a small ring' : ''}` : 'with only a listener';
        it(`ioThreads ${ioThreads}: the server's destroy() resolves ${what}`, async () => {
          const r = await runChild(process.execPath, ['-e', CHILD_SRC], {
            env: {
              ...process.env,
              FASTPORT_TEST_DIST: DIST,
              FASTPORT_TEST_KIND: kind,
              FASTPORT_TEST_THREADS: String(ioThreads),
              FASTPORT_TEST_SMALL_RING: smallRing ? '1' : '0',
              FASTPORT_TEST_FLOOD: flood ? '1' : '0',
            },
            timeoutMs: CHILD_LIMIT_MS,
          });
          const msgs = r.stdout
            .split('\n')
            .filter((line) => line.startsWith('{'))
            .map((line) => JSON.parse(line) as ChildMsg);
          const failed = msgs.find((m) => m.error !== undefined);
          expect(failed?.error, r.stderr).toBeUndefined();
          const ended = `status ${r.status}, signal ${r.signal}`;
          if (flood) {
            expect(msgs.some((m) => m.echoed === true), `flood did not finish: ${r.stdout}${r.stderr}`).toBe(true);
            expect(msgs.find((m) => m.clientDestroyed === true)?.closes, `client destroy() never settled (${ended})`).toBe(150);
          }
          expect(msgs.find((m) => m.destroyed === true)?.closes, `server destroy() never settled (${ended})`).toBe(flood ? 150 : 0);
          expect(r.status).toBe(0);
        });
      }
    }
  });
}, { only: NATIVE });
