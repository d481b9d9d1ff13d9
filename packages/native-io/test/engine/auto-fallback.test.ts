import { expect, it } from 'vitest';
import { describeEngine } from '@fastport/test-utils/vitest';
import { FastPortError, createEngine, engineAvailability, registerEngine } from '../../lib';

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
