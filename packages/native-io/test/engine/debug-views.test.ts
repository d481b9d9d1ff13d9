/**
 * Regression (issue 8, defect 8): a handler that keeps an onData view past
 * its batch reads engine memory that another connection's bytes overwrite
 * later. The debug mode (EngineOptions.debugViews, or FASTPORT_DEBUG_VIEWS=1)
 * detaches every view when the batch ends, so such a view reads as empty
 * (byteLength 0) and its methods throw instead of showing a stranger's bytes.
 * Without it, behaviour is unchanged. Runs against every engine.
 */
import { afterEach, expect, it } from 'vitest';
import { engineAvailability } from '../../lib/engine';
import { type EngineKind } from '../../lib/types';
import { waitFor } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { Side, cleanupAll, rawConnect } from './harness';

interface Kept {
  view: Uint8Array;
  copy: Buffer;
  batchEndsAtCall: number;
}

async function keepViews(kind: EngineKind, options: { debugViews?: boolean }): Promise<{ server: Side; kept: Kept[]; batchEnds: () => number }> {
  const server = new Side(kind, { name: 'server', echo: true, ...options });
  const kept: Kept[] = [];
  server.hooks.onData = (_id, data) => {
    kept.push({ view: data, copy: Buffer.from(data), batchEndsAtCall: server.batchEnds });
  };
  const l = await server.listen();
  const peer = await rawConnect(l.port);
  peer.socket.write('first message');
  await waitFor(() => peer.bytes >= 13, 10_000, 'echo of the first message');
  // Another batch (same connection, other bytes) after the first one ended.
  peer.socket.write('SECOND-MESSAGE-OVERWRITES');
  await waitFor(() => peer.bytes >= 13 + 25, 10_000, 'echo of the second message');
  expect(peer.data().toString()).toBe('first messageSECOND-MESSAGE-OVERWRITES');
  return { server, kept, batchEnds: () => server.batchEnds };
}

describeEngines('debugViews', engineAvailability, (kind) => {
  afterEach(cleanupAll);

  it(`[${kind}] debugViews: true: a view kept past its batch is detached (byteLength 0, methods throw)`, async () => {
    const { server, kept } = await keepViews(kind, { debugViews: true });
    expect(kept.length).toBeGreaterThan(0);
    const first = kept[0] as Kept;
    expect(first.copy.toString()).toBe('first message'); // the view was right during its call
    expect(first.view.byteLength, `a kept view reads as detached (it shows '${Buffer.from(first.view).toString()}')`).toBe(0);
    expect(() => first.view.slice(), 'using a kept view throws').toThrow(TypeError);
    expect(server.engine.info.features['debugViews']).toBe(true);
  });

  it(`[${kind}] FASTPORT_DEBUG_VIEWS=1 turns the mode on too`, async () => {
    const saved = process.env['FASTPORT_DEBUG_VIEWS'];
    process.env['FASTPORT_DEBUG_VIEWS'] = '1';
    let result: Awaited<ReturnType<typeof keepViews>>;
    try {
      result = await keepViews(kind, {});
    } finally {
      if (saved === undefined) delete process.env['FASTPORT_DEBUG_VIEWS'];
      else process.env['FASTPORT_DEBUG_VIEWS'] = saved;
    }
    expect((result.kept[0] as Kept).view.byteLength).toBe(0);
    expect(result.server.engine.info.features['debugViews']).toBe(true);
  });

  it(`[${kind}] debugViews: false (default): views are unchanged views, not detached`, async () => {
    const saved = process.env['FASTPORT_DEBUG_VIEWS'];
    delete process.env['FASTPORT_DEBUG_VIEWS'];
    let result: Awaited<ReturnType<typeof keepViews>>;
    try {
      result = await keepViews(kind, {});
    } finally {
      if (saved !== undefined) process.env['FASTPORT_DEBUG_VIEWS'] = saved;
    }
    expect(result.server.engine.info.features['debugViews'] ?? false).toBe(false);
    const first = result.kept[0] as Kept;
    console.log(`[${kind}] without debugViews a kept view of 'first message' now shows '${Buffer.from(first.view).toString()}'`);
    // Not detached: the view still has its length (what it shows now is the engine's business).
    expect(first.view.byteLength).toBe(first.copy.length);
    expect(() => first.view.slice()).not.toThrow();
  });
});
