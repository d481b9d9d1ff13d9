/**
 * io_uring refused by seccomp (as in a container) is reported, not crashed:
 * test/native/seccomp-deny-uring.c is compiled here with `cc`, then runs
 * `node -e <load the addon, print probe()>` with io_uring_setup/enter/register
 * failing with EPERM (and, in a second run, ENOSYS: an old kernel's answer).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../lib/native';
import { findExecutable } from '@fastport/test-utils';
import { PKG_ROOT, PKG_VERSION, describeRun, probeScript, run } from './helpers';

const SOURCE = path.join(__dirname, 'seccomp-deny-uring.c');

interface ChildProbe {
  file: string;
  version: string;
  napi: number;
  probe: ProbeResult;
}

describe.runIf(process.platform === 'linux')('native addon: io_uring refused by seccomp', () => {
  let tmp = '';
  let launcher = '';

  beforeAll(() => {
    const cc = process.env.CC || findExecutable('cc') || findExecutable('gcc') || findExecutable('clang');
    if (!cc) {
      throw new Error('no C compiler (cc/gcc/clang, or $CC) on PATH: cannot build test/native/seccomp-deny-uring.c');
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-seccomp-'));
    launcher = path.join(tmp, 'seccomp-deny-uring');
    const r = run(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', launcher, SOURCE]);
    if (r.status !== 0) throw new Error(`compiling ${SOURCE} with ${cc} failed:\n${describeRun(r)}`);
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  function probeUnderSeccomp(errno?: number): ChildProbe {
    const args = errno === undefined ? [] : ['-e', String(errno)];
    const r = run(launcher, [...args, process.execPath, '-e', probeScript(PKG_ROOT)]);
    expect(r.status, `the probe crashed or failed under seccomp:\n${describeRun(r)}`).toBe(0);
    return JSON.parse(r.stdout) as ChildProbe;
  }

  it('reports io_uring unavailable with EPERM, and everything else still works', () => {
    const out = probeUnderSeccomp();
    expect(out.version).toBe(PKG_VERSION);
    const u = out.probe.uring;
    expect(u.available).toBe(false);
    expect(u.error).toBe('EPERM');
    expect(u.errno).toBe(os.constants.errno.EPERM);
    expect(u.featuresMask).toBe(0);
    expect(u.lastOp).toBeNull();
    expect(Object.values(u.features).every((v) => v === false)).toBe(true);
    expect(Object.values(u.ops).every((v) => v === false)).toBe(true);
    expect(Object.values(u.setupFlags).every((v) => v === false)).toBe(true);
    expect(u.bufRing).toBe(false);
    expect(u.bufRingIncremental).toBe(false);
    expect(u.multishotAccept).toBe(false);
    expect(u.multishotRecv).toBe(false);
    // epoll is untouched by the filter: the epoll engine is the fallback.
    expect(out.probe.epoll).toEqual({ available: true });
    expect(out.probe.platform).toBe('linux');
    expect(out.probe.kernel).toBe(os.release());
  });

  // createEngine({ kind: 'auto' }) in a process where io_uring is refused:
  // it must pick epoll, say why (the EPERM from io_uring_setup), and work; an
  // explicit { kind: 'uring' } must fail with ERR_ENGINE_UNAVAILABLE, not crash.
  function engineScript(): string {
    const dist = path.join(PKG_ROOT, 'dist', 'index.js');
    return `
      const { createEngine } = require(${JSON.stringify(dist)});
      const net = require('node:net');
      const out = {};
      try { createEngine({ kind: 'uring', handler: {} }); out.uring = 'created'; }
      catch (e) { out.uring = { code: e.code, message: e.message }; }
      let echoed = '';
      const engine = createEngine({
        kind: 'auto',
        handler: {
          onAccept() {}, onConnect() {}, onClose() {},
          onData(conn, data) { engine.send(conn, data); },
        },
      });
      out.kind = engine.info.kind;
      out.reason = engine.info.reason;
      engine.listen({ host: '127.0.0.1', port: 0 }).then((l) => {
        const s = net.connect({ host: '127.0.0.1', port: l.port }, () => s.write('hello under seccomp'));
        s.on('data', (d) => {
          echoed += d.toString();
          if (echoed.length >= 19) {
            out.echoed = echoed;
            s.destroy();
            engine.destroy().then(() => { process.stdout.write(JSON.stringify(out) + '\\n'); });
          }
        });
      });
    `;
  }

  it('createEngine auto picks epoll with the EPERM reason, and it echoes; uring alone is refused cleanly', () => {
    expect(fs.existsSync(path.join(PKG_ROOT, 'dist', 'index.js')), 'dist/ missing: run tsc -p tsconfig.json').toBe(true);
    const r = run(launcher, [process.execPath, '-e', engineScript()]);
    expect(r.status, `auto engine selection crashed under seccomp:\n${describeRun(r)}`).toBe(0);
    const out = JSON.parse(r.stdout) as { kind: string; reason: string; echoed: string; uring: { code: string; message: string } | string };
    expect(out.kind).toBe('epoll');
    expect(out.reason).toMatch(/uring: io_uring_setup failed: EPERM/);
    expect(out.echoed).toBe('hello under seccomp');
    expect(out.uring).not.toBe('created');
    expect((out.uring as { code: string }).code).toBe('ERR_ENGINE_UNAVAILABLE');
    expect((out.uring as { message: string }).message).toMatch(/EPERM/);
  });

  it('reports ENOSYS the same way (a kernel without io_uring)', () => {
    const out = probeUnderSeccomp(os.constants.errno.ENOSYS);
    expect(out.probe.uring.available).toBe(false);
    expect(out.probe.uring.error).toBe('ENOSYS');
    expect(out.probe.uring.errno).toBe(os.constants.errno.ENOSYS);
    expect(out.probe.epoll.available).toBe(true);
  });
});
