import { afterEach, it, expect } from 'vitest';
import { Side, cleanupAll, closedPort, rawServer, waitFor, pattern, eventually, nextTurn } from './harness';
afterEach(cleanupAll);
it('refused unsent', async () => {
  const c = new Side('node');
  const id = c.connect(await closedPort());
  c.engine.send(id, pattern(100, 1));
  console.log('pending before', c.engine.pendingBytes(id));
  await nextTurn();
  console.log('pending after turn', c.engine.pendingBytes(id));
  const info = await c.waitClosed(id);
  console.log('refused', info);
});
it('abort unsent', async () => {
  const raw = await rawServer({ pauseOnConnect: true });
  const c = new Side('node', { maxPendingBytes: 64 * 1024, highWaterMark: 32 * 1024, lowWaterMark: 16*1024 });
  const id = c.connect(raw.port);
  await c.waitConnected(id);
  for (let r = 0; r < 2000; r++) {
    for (let i = 0; i < 8; i++) if (c.engine.send(id, pattern(16384, i)) === 2) break;
    const d = c.log(id).drains;
    if (!(await eventually(() => c.log(id).drains > d, 100))) break;
  }
  const p = c.engine.pendingBytes(id);
  console.log('pending before abort', p, c.engine.stats().bytesOut);
  c.engine.close(id, 'abort');
  console.log('pending right after abort', c.engine.pendingBytes(id));
  const info = await c.waitClosed(id);
  console.log('abort', info);
  const id2 = c.connect(raw.port);
  await c.waitConnected(id2);
  c.engine.send(id2, pattern(1000, 1));
  c.engine.close(id2, 'abort');
  console.log('abort same tick', await c.waitClosed(id2));
  const id3 = c.connect(raw.port);
  await c.waitConnected(id3);
  c.engine.send(id3, pattern(1000, 1));
  await c.destroy();
  console.log('destroy same tick', c.closeInfo(id3));
});
