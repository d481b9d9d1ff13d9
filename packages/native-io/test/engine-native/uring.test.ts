/**
 * io_uring engine specifics (src/linux/uring/backend.cc, ring.{h,cc}):
 *
 * - the mechanics without Node (uring_mech.cc, a minimal core driving two
 *   backends): echo with a tiny buffer ring, every feature fallback
 *   (FASTPORT_URING_DISABLE), close with operations in flight — also under
 *   ASan/UBSan and valgrind when available;
 * - buffer ring exhaustion through the engine: many connections sending at
 *   once into a ring of a few buffers recover without losing a byte;
 * - 10,000 concurrent connections echoing (clients in two child processes
 *   over 127.0.0.2..5) with a small buffer ring;
 * - close / abort / destroy with recvs and sends in flight: one onClose each;
 * - the degraded engine (every optional feature off) passes an echo.
 *
 * Backend tuning comes from the environment, read when an engine starts:
 * FASTPORT_URING_BUF_COUNT, FASTPORT_URING_BUF_SIZE, FASTPORT_URING_DISABLE.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildUringMech } from './mech-build';
import { findExecutable, runChild, waitFor } from '@fastport/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { engineAvailability } from '../../lib/engine';
import { SendStatus, type ConnectionId } from '../../lib/types';
import { describeEngine } from '@fastport/test-utils/vitest';
import { Side, cleanupAll, firstDifference, pattern } from '../engine/harness';


/** Creates a Side with backend tuning in the environment for the engine's start only. */
function withEnv<T>(env: Record<string, string>, make: () => T): T {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return make();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const ALL_FALLBACKS = 'deferTaskrun,coopTaskrun,singleIssuer,bufRing,multishotRecv,multishotAccept,cancelFd';

describeEngine('uring engine specifics', engineAvailability, 'uring', () => {
  describe('uring mechanics without Node (uring_mech.cc)', () => {
    const cxx = process.env.CXX || findExecutable('g++') || findExecutable('c++');
    let tmp = '';
    const bins: Record<string, string> = {};

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-uring-mech-'));
      const variants: Record<string, string[]> = {
        plain: ['-O2', '-g'],
        asan: ['-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'],
      };
      Object.assign(bins, await buildUringMech(cxx, tmp, variants));
    }, 180_000);

    afterAll(() => {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function mech(bin: string, args: string[], env: Record<string, string> = {}, wrapper: string[] = []) {
      const cmd = wrapper.length > 0 ? (wrapper[0] as string) : bin;
      const argv = wrapper.length > 0 ? [...wrapper.slice(1), bin, ...args] : args;
      const r = await runChild(cmd, argv, { env: { ...process.env, ...env }, timeoutMs: 120_000 });
      const detail = `${cmd} ${argv.join(' ')} (env ${JSON.stringify(env)}): status ${r.status} signal ${r.signal}\n${r.stdout}\n${r.stderr}`;
      expect(r.status, detail).toBe(0);
      const line = r.stdout.trim().split('\n').pop() ?? '';
      return JSON.parse(line) as { ok: boolean; features: Record<string, string>; recvCalls: number };
    }

    const TINY = { FASTPORT_URING_BUF_COUNT: '16', FASTPORT_URING_BUF_SIZE: '4096' };

    it('echo: 500 connections x 20 KB all at once through 16 buffers of 4 KiB, every byte checked', async () => {
      const out = await mech(bins.plain as string, ['echo', '500', '20', '1000'], TINY);
      expect(out.ok).toBe(true);
      expect(out.features.deferTaskrun).toBe('true');
      expect(out.features.bufRing).toBe('true');
      expect(out.features.multishotRecv).toBe('true');
      expect(out.features.multishotAccept).toBe('true');
    });

    const fallbacks: [string, Record<string, string>][] = [
      ['deferTaskrun', { deferTaskrun: 'false', coopTaskrun: 'true' }],
      ['deferTaskrun,coopTaskrun', { deferTaskrun: 'false', coopTaskrun: 'false' }],
      ['singleIssuer', { singleIssuer: 'false', deferTaskrun: 'false' }],
      ['bufRing', { bufRing: 'false', providedBuffersLegacy: 'true' }],
      ['multishotRecv', { multishotRecv: 'false' }],
      ['multishotAccept', { multishotAccept: 'false' }],
      ['cancelFd', { cancelFd: 'false' }],
      [ALL_FALLBACKS, { deferTaskrun: 'false', bufRing: 'false', multishotRecv: 'false', multishotAccept: 'false', cancelFd: 'false' }],
    ];
    for (const [disable, expected] of fallbacks) {
      it(`fallback without ${disable}: echo through a tiny ring and close with ops in flight`, async () => {
        const env = { ...TINY, FASTPORT_URING_DISABLE: disable };
        const echo = await mech(bins.plain as string, ['echo', '300', '10', '1000'], env);
        for (const [k, v] of Object.entries(expected)) expect(echo.features[k], k).toBe(v);
        await mech(bins.plain as string, ['close', '120'], { FASTPORT_URING_DISABLE: disable });
      });
    }

    it('close with recvs and sends in flight under ASan/UBSan: no double free, no leak, on_closed once each', async (ctx) => {
      if (!bins.asan) ctx.skip('the ASan/UBSan variant of uring_mech did not build with this toolchain');
      await mech(bins.asan as string, ['close', '300'], { ASAN_OPTIONS: 'detect_leaks=1' });
      await mech(bins.asan as string, ['close', '120'], { ASAN_OPTIONS: 'detect_leaks=1', FASTPORT_URING_DISABLE: 'cancelFd' });
      await mech(bins.asan as string, ['echo', '200', '10', '1000'], { ...TINY, ASAN_OPTIONS: 'detect_leaks=1' });
    });

    it('close with recvs and sends in flight under valgrind (when installed)', async (ctx) => {
      const vg = findExecutable('valgrind');
      if (!vg) ctx.skip('valgrind is not installed');
      await mech(bins.plain as string, ['close', '100'], {}, [vg as string, '-q', '--error-exitcode=9', '--leak-check=full', '--errors-for-leak-kinds=definite']);
    }, 120_000);
  });

  describe('uring engine', () => {
    afterEach(cleanupAll);

    it('[uring] buffer ring exhaustion: 300 connections send 64 KiB at once into 8 buffers of 4 KiB, nothing lost', async () => {
      const server = withEnv({ FASTPORT_URING_BUF_COUNT: '8', FASTPORT_URING_BUF_SIZE: '4096' }, () => new Side('uring', { name: 'server', echo: true }));
      expect(server.engine.info.features['recvBuffers']).toBe(8);
      const l = await server.listen();
      const N = 300;
      const SIZE = 64 * 1024;
      const socks: net.Socket[] = [];
      const got: Buffer[][] = [];
      const lens: number[] = new Array<number>(N).fill(0);
      await Promise.all(
        Array.from({ length: N }, (_, i) => {
          return new Promise<void>((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port: l.port }, () => resolve());
            s.on('error', reject);
            got[i] = [];
            s.on('data', (d: Buffer) => {
              (got[i] as Buffer[]).push(d);
              lens[i] = (lens[i] as number) + d.length;
            });
            socks.push(s);
          });
        }),
      );
      await server.waitAccepted(N);
      // All at once: every connection's data lands while the ring is dry.
      const msgs = socks.map((_, i) => pattern(SIZE, i));
      socks.forEach((s, i) => s.write(msgs[i] as Buffer));
      await waitFor(() => lens.every((n) => n >= SIZE), 30_000, 'every echo complete');
      for (let i = 0; i < N; i++) {
        const diff = firstDifference(Buffer.concat(got[i] as Buffer[]), msgs[i] as Buffer);
        expect(diff, `connection ${i}`).toBeNull();
      }
      for (const s of socks) s.destroy();
      await waitFor(() => server.engine.stats().connections === 0, 10_000, 'server closed all');
    }, 60_000);

    it('[uring] degraded engine (every optional io_uring feature off) echoes exactly', async () => {
      const server = withEnv(
        { FASTPORT_URING_DISABLE: ALL_FALLBACKS, FASTPORT_URING_BUF_COUNT: '16', FASTPORT_URING_BUF_SIZE: '4096' },
        () => new Side('uring', { name: 'server', echo: true }),
      );
      const f = server.engine.info.features;
      expect(f['deferTaskrun']).toBe(false);
      expect(f['bufRing']).toBe(false);
      expect(f['multishotRecv']).toBe(false);
      expect(f['multishotAccept']).toBe(false);
      const client = new Side('uring', { name: 'client' });
      const l = await server.listen();
      const ids: ConnectionId[] = [];
      for (let i = 0; i < 100; i++) ids.push(client.connect(l.port));
      await waitFor(() => ids.every((id) => client.log(id).connected), 10_000, 'connected');
      const msgs = ids.map((_, i) => pattern(10_000 + i, i));
      ids.forEach((id, i) => expect(client.engine.send(id, msgs[i] as Buffer)).toBe(SendStatus.Queued));
      await waitFor(() => ids.every((id, i) => client.received(id).length >= (msgs[i] as Buffer).length), 20_000, 'echoed');
      ids.forEach((id, i) => expect(firstDifference(client.received(id), msgs[i] as Buffer)).toBeNull());
    }, 60_000);

    it('[uring] close, abort and destroy with recvs and sends in flight: exactly one onClose each', async () => {
      const server = new Side('uring', { name: 'server' });
      const l = await server.listen();
      const N = 150;
      const socks: net.Socket[] = [];
      for (let i = 0; i < N; i++) {
        const s = net.connect({ host: '127.0.0.1', port: l.port });
        s.on('error', () => {});
        s.pause(); // never reads: the server's sends stay in flight
        socks.push(s);
      }
      await server.waitAccepted(N);
      const big = pattern(4 << 20, 1);
      for (const id of server.accepted) server.engine.send(id, big);
      // Clients keep sending so recv completions race with the closes.
      for (const s of socks) s.write(pattern(1000, 2));
      const ids = [...server.accepted];
      ids.forEach((id, i) => {
        if (i % 3 === 0) expect(server.engine.close(id, 'abort')).toBe(true);
        else if (i % 3 === 1) expect(server.engine.close(id, 'graceful')).toBe(true);
      });
      // Graceful ones wait for their peers: let a third of the peers read.
      socks.forEach((s, i) => {
        if (i % 3 === 1) s.resume();
      });
      await waitFor(() => ids.every((id, i) => i % 3 === 2 || server.log(id).closeCount > 0), 20_000, 'aborted and graceful closes');
      await server.destroy(); // the rest: destroyed with everything in flight
      ids.forEach((id) => expect(server.log(id).closeCount).toBe(1));
      for (const s of socks) s.destroy();
    }, 60_000);

    it('[uring] 10,000 concurrent connections echoing through a 64-buffer ring (clients in two child processes)', async () => {
      const N = 10_000;
      const SIZE = 2048;
      const server = withEnv({ FASTPORT_URING_BUF_COUNT: '64', FASTPORT_URING_BUF_SIZE: '4096' }, () => new Side('uring', { name: 'server', echo: true }));
      const l = await server.listen(0, '127.0.0.1', { backlog: 4096 });
      const script = (base: number, n: number, seed: number) => `
        const net = require('node:net');
        const N = ${n}, port = ${l.port}, SIZE = ${SIZE};
        let open = 0, done = 0, bad = 0; const socks = [];
        function msg(i) { const b = Buffer.allocUnsafe(SIZE); for (let k = 0; k < SIZE; k++) b[k] = (i * 7 + k + ${seed}) & 255; return b; }
        function one(i) {
          const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.' + (${base} + (i % 2)) });
          const want = msg(i); const parts = []; let got = 0;
          s.on('connect', () => { if (++open === N) process.stdout.write('READY\\n'); });
          s.on('data', (d) => { parts.push(d); got += d.length;
            if (got >= SIZE) { if (!Buffer.concat(parts).equals(want)) bad++; if (++done === N) process.stdout.write('DONE ' + bad + '\\n'); } });
          s.on('error', (e) => process.stdout.write('ERR ' + e.code + '\\n'));
          s._want = want; socks.push(s);
        }
        let i = 0;
        (function batch() { for (let k = 0; k < 250 && i < N; k++) one(i++); if (i < N) setTimeout(batch, 5); })();
        process.stdin.on('data', (d) => {
          if (d.toString().includes('go')) { for (const s of socks) s.write(s._want); }
          else { for (const s of socks) s.destroy(); process.exit(0); }
        });
      `;
      const kids = [script(2, N / 2, 1), script(4, N / 2, 2)].map((src) => {
        const child = spawn(process.execPath, ['-e', src], { stdio: ['pipe', 'pipe', 'inherit'] });
        const state = { out: '' };
        child.stdout.on('data', (d: Buffer) => (state.out += d.toString()));
        return { child, state };
      });
      try {
        await waitFor(() => kids.every((k) => k.state.out.includes('READY') || k.state.out.includes('ERR')), 60_000, 'all connected');
        for (const k of kids) expect(k.state.out).not.toContain('ERR');
        await server.waitAccepted(N);
        for (const k of kids) k.child.stdin.write('go\n');
        await waitFor(() => kids.every((k) => k.state.out.includes('DONE') || k.state.out.includes('ERR')), 60_000, `${N} echoes`);
        for (const k of kids) expect(k.state.out).toContain('DONE 0');
        expect(server.engine.stats().connections).toBe(N);
        expect(server.engine.stats().bytesIn).toBe(N * SIZE);
      } finally {
        for (const k of kids) {
          k.child.stdin.write('bye\n');
          await new Promise<void>((resolve) => (k.child.exitCode !== null ? resolve() : k.child.on('exit', () => resolve())));
        }
      }
      await waitFor(() => server.engine.stats().connections === 0, 30_000, 'all closed');
    }, 180_000);
  });
});
