import { describe, expect, it } from 'vitest';
import { FastPortError, createEngine, engineAvailability, loadNative } from '../../lib';
import { resolveRioTable, rioAbsentReason } from '../../lib/rio-table';

const handler = { onAccept() {}, onConnect() {}, onData() {}, onClose() {} };

describe('rioTable: which RIO function table the rio engine asks for', () => {
  it('the option wins over FASTPORT_RIO_TABLE; the default is the system table', () => {
    expect(resolveRioTable(undefined, {})).toEqual({ table: 'system', source: 'default' });
    expect(resolveRioTable(undefined, { FASTPORT_RIO_TABLE: 'emulated' })).toEqual({ table: 'emulated', source: 'FASTPORT_RIO_TABLE=emulated' });
    expect(resolveRioTable('system', { FASTPORT_RIO_TABLE: 'emulated' }).table).toBe('system');
    expect(resolveRioTable('emulated', {}).table).toBe('emulated');
  });

  it('a value that is neither system nor emulated is ERR_INVALID_ARGUMENT, from the option and from the environment', () => {
    for (const bad of [() => resolveRioTable('fake', {}), () => resolveRioTable(undefined, { FASTPORT_RIO_TABLE: 'auto' })]) {
      let err: unknown = null;
      try {
        bad();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FastPortError);
      expect((err as FastPortError).code).toBe('ERR_INVALID_ARGUMENT');
    }
    // createEngine checks the option whatever the engine.
    expect(() => createEngine({ kind: 'node', rioTable: 'fake' as never, handler })).toThrow(/rioTable must be 'system' or 'emulated'/);
  });

  it('the absent-table reason names the WSAIoctl request and Wine', () => {
    expect(rioAbsentReason({ available: false, error: 'EOPNOTSUPP', errno: 95, wsaError: 10045 })).toMatch(
      /RIO function table is absent \(WSAIoctl SIO_GET_MULTIPLE_EXTENSION_FUNCTION_POINTER .* WSAEOPNOTSUPP 10045; Wine has no RIO\)/,
    );
    expect(rioAbsentReason(undefined)).toMatch(/rebuild/);
  });

  it.skipIf(process.platform === 'win32')('off Windows rio is unavailable on either table, and the probe says RIO is absent (ENOSYS)', () => {
    expect(engineAvailability('rio').available).toBe(false);
    expect(engineAvailability('rio', { rioTable: 'emulated' }).available).toBe(false);
    const native = loadNative();
    if (native !== null) expect(native.probe().rio).toEqual({ available: false, error: 'ENOSYS', errno: expect.any(Number), wsaError: 0 });
  });
});
