/**
 * Regression tests for the io_uring defects of issue 8, driven through the
 * mechanics harness (uring_mech.cc: a minimal core over two uring Backends,
 * no Node) built here with FASTPORT_URING_TEST_HOOKS, which compiles in the
 * fault-injection knobs of src/linux/uring/backend.cc:
 *   FASTPORT_URING_FAULT_SQE=N (+ _AFTER=M)  every Nth get_sqe() finds no SQE
 *   FASTPORT_URING_FAULT_CANCEL_EINVAL=1     the first CANCEL_FD cancel "fails" with EINVAL
 * Variants: plain, ASan+UBSan with libstdc++ debug mode (checked iterators),
 * TSan. A variant the toolchain cannot build is skipped, never passed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildUringMech } from './mech-build';
import { findExecutable, runChild } from '@fastport/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAvailability } from '../../lib/engine';
import { describeEngine } from '@fastport/test-utils/vitest';


interface MechResult {
  ok: boolean;
  features: Record<string, string>;
  featureReads: number;
  cappedTurns: number;
}

describeEngine('uring defect regressions', engineAvailability, 'uring', () => {
  describe('uring defect regressions (uring_mech.cc with test hooks)', () => {
    const cxx = process.env.CXX || findExecutable('g++') || findExecutable('c++');
    let tmp = '';
    const bins: Record<string, string> = {};

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastport-uring-defects-'));
      const variants: Record<string, string[]> = {
        plain: ['-O2', '-g'],
        asan: ['-O1', '-g', '-D_GLIBCXX_DEBUG', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'],
        tsan: ['-O1', '-g', '-fsanitize=thread'],
      };
      Object.assign(bins, await buildUringMech(cxx, tmp, variants, ['-pthread', '-DFASTPORT_URING_TEST_HOOKS']));
    }, 240_000);

    afterAll(() => {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function mech(bin: string, args: string[], env: Record<string, string> = {}): Promise<MechResult> {
      const r = await runChild(bin, args, { env: { ...process.env, ...env }, timeoutMs: 120_000 });
      const detail = `${bin} ${args.join(' ')} (env ${JSON.stringify(env)}): status ${r.status} signal ${r.signal}\n${r.stdout}\n${r.stderr.slice(0, 6000)}`;
      expect(r.status, detail).toBe(0);
      const line = r.stdout.trim().split('\n').pop() ?? '';
      return JSON.parse(line) as MechResult;
    }

    it('re-arm with a full SQ (8 entries), 16 buffers, 200 flooding echo connections: no nested re-arm (ASan + checked iterators)', async (ctx) => {
      if (!bins.asan) ctx.skip('the ASan+UBSan variant of uring_mech did not build with this toolchain');
      const env = { FASTPORT_URING_SQ_ENTRIES: '8', FASTPORT_URING_BUF_COUNT: '16', FASTPORT_URING_BUF_SIZE: '4096', MECH_ECHO: '1', ASAN_OPTIONS: 'detect_leaks=1' };
      const out = await mech(bins.asan as string, ['flood', '200', '65536'], env);
      expect(out.features.sqEntries).toBe('8');
      await mech(bins.asan as string, ['flood', '150', '65536'], { ...env, FASTPORT_URING_DISABLE: 'multishotRecv' });
    }, 240_000);

    it('no SQE available (every 5th get_sqe fails): accepts, recvs, sends, cancels and closes are retried, nothing lost', async () => {
      const fault = { FASTPORT_URING_FAULT_SQE: '5' };
      await mech(bins.plain as string, ['close', '100'], { ...fault, FASTPORT_URING_FAULT_SQE_AFTER: '400' });
      await mech(bins.plain as string, ['close', '100'], { ...fault, FASTPORT_URING_FAULT_SQE_AFTER: '400', FASTPORT_URING_DISABLE: 'cancelFd' });
      await mech(bins.plain as string, ['echo', '100', '10', '1000'], {
        ...fault,
        FASTPORT_URING_FAULT_SQE_AFTER: '400',
        FASTPORT_URING_BUF_COUNT: '16',
        FASTPORT_URING_BUF_SIZE: '4096',
      });
      // From the first SQE on: connects, listener arm and wakeups too.
      await mech(bins.plain as string, ['echo', '60', '5', '1000'], { ...fault, FASTPORT_URING_FAULT_SQE: '3' });
    }, 240_000);

    it('no SQE available under ASan: the retry queue leaks nothing and touches no freed connection', async (ctx) => {
      if (!bins.asan) ctx.skip('the ASan+UBSan variant of uring_mech did not build with this toolchain');
      await mech(bins.asan as string, ['close', '80'], { FASTPORT_URING_FAULT_SQE: '4', ASAN_OPTIONS: 'detect_leaks=1' });
    }, 240_000);

    it('inline drive (turns of at most 64 polls), single-shot recv, 8 buffers: parked connections are re-armed when buffers come back', async () => {
      const env = { MECH_INLINE: '1', FASTPORT_URING_BUF_COUNT: '8', FASTPORT_URING_BUF_SIZE: '4096' };
      const single = await mech(bins.plain as string, ['flood', '300', '65536'], { ...env, FASTPORT_URING_DISABLE: 'multishotRecv' });
      expect(single.cappedTurns, 'the scenario must reach the 64-poll cap').toBeGreaterThan(0);
      const multi = await mech(bins.plain as string, ['flood', '300', '65536'], env);
      expect(multi.cappedTurns).toBeGreaterThan(0);
    }, 240_000);

    it('DEFER_TASKRUN rings also set TASKRUN_FLAG (deferred work is flushed when the kernel flags it)', async () => {
      const out = await mech(bins.plain as string, ['echo', '20', '5', '1000']);
      expect(out.features.deferTaskrun).toBe('true');
      expect(out.features.taskrunFlag).toBe('true');
      const coop = await mech(bins.plain as string, ['echo', '20', '5', '1000'], { FASTPORT_URING_DISABLE: 'deferTaskrun' });
      expect(coop.features.coopTaskrun).toBe('true');
      expect(coop.features.taskrunFlag).toBe('true');
    }, 120_000);

    it('features() read from another thread while the loop falls back at run time (cancelFd): no data race (TSan)', async (ctx) => {
      if (!bins.tsan) ctx.skip('the TSan variant of uring_mech did not build with this toolchain');
      const out = await mech(bins.tsan as string, ['close', '60'], {
        MECH_FEATURE_READER: '1',
        FASTPORT_URING_FAULT_CANCEL_EINVAL: '1',
        TSAN_OPTIONS: 'halt_on_error=1 exitcode=66',
      });
      expect(out.featureReads).toBeGreaterThan(0);
      expect(out.features.cancelFd).toBe('false');
    }, 240_000);

    it('try_send_direct sends synchronously when the queue is empty (no copy into chunks)', async () => {
      await mech(bins.plain as string, ['direct', '50']);
    }, 120_000);
  });
});
