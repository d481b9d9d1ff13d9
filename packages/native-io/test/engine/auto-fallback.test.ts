import { describe, expect, it } from 'vitest';
import { describeEngine } from '@fastport/test-utils/vitest';
import { FastPortError, createEngine, engineAvailability, registerEngine } from '../../lib';
import { loadNative } from '../../lib/native';

// This file replaces the uring factory for its own module registry only (vitest isolates files).
describeEngine('auto falls back when an engine passes the probe but fails to start', engineAvailability, 'uring', () => {
  it('uring factory throwing → auto picks the next engine and says why', async () => {
    registerEngine('uring', () => {
      throw new FastPortError('EPERM', 'io_uring_register refused');
    });
    const engine = createEngine({
      kind: 'auto',
      handler: { onAccept() {}, onConnect() {}, onData() {}, onClose() {} },
    });
    try {
      expect(engine.info.kind).not.toBe('uring');
      expect(engine.info.reason).toMatch(/uring: failed to start: io_uring_register refused/);
    } finally {
      await engine.destroy();
    }
    expect(() =>
      createEngine({ kind: 'uring', handler: { onAccept() {}, onConnect() {}, onData() {}, onClose() {} } }),
    ).toThrow(/io_uring_register refused/);
  });
});

// Where io_uring_setup itself fails (qemu-user: ENOSYS; seccomp or the sysctl: EPERM), auto must
// land on epoll and name the probe's errno. FASTPORT_EXPECT_URING_ERROR (set by test-arm64.sh to
// ENOSYS) makes this test mandatory: it then fails, instead of skipping, where io_uring works.
const expectedUringError = process.env['FASTPORT_EXPECT_URING_ERROR'];
const uringUp = engineAvailability('uring').available;
const runNoUring =
  process.platform === 'linux' && (!uringUp || (expectedUringError !== undefined && expectedUringError !== ''));

describe('auto when io_uring_setup fails', () => {
  it.runIf(runNoUring)(
    `auto picks epoll and gives io_uring_setup's errno as the reason${runNoUring ? '' : ' (io_uring works here, or not Linux)'}`,
    async () => {
      const native = loadNative();
      expect(native).not.toBeNull();
      const uring = native!.probe().uring;
      expect(uring.available).toBe(false);
      if (expectedUringError) expect(uring.error).toBe(expectedUringError);
      expect(engineAvailability('epoll').available).toBe(true);
      const handler = { onAccept() {}, onConnect() {}, onData() {}, onClose() {} };
      const engine = createEngine({ kind: 'auto', handler });
      try {
        expect(engine.info.kind).toBe('epoll');
        expect(engine.info.requested).toBe('auto');
        expect(engine.info.reason).toBe(`epoll available; skipped uring: io_uring_setup failed: ${uring.error}`);
      } finally {
        await engine.destroy();
      }
      // Asked for by name, uring is refused with the same reason, never half-created.
      expect(() => createEngine({ kind: 'uring', handler })).toThrow(
        `engine 'uring' is unavailable: io_uring_setup failed: ${uring.error}`,
      );
    },
  );
});
