/**
 * Regression: an ABORT close must not hand the connection's send-queue chunks
 * back to the pool while a send referencing them may still be in flight
 * (io_uring SEND/SENDMSG). Otherwise another connection reuses the chunk and
 * its bytes can go out on the aborted socket (cross-connection leak).
 *
 * Every connection sends only one byte value (its tag); the raw peer checks
 * that every byte it receives on a socket equals that socket's first byte.
 */
import * as net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { WAIT_MS, nextTurn, waitFor } from '@fastport/test-utils';
import { describeEngines } from '@fastport/test-utils/vitest';
import { engineAvailability } from '../../lib/engine';
import { type ConnectionId, type EngineKind } from '../../lib/types';
import { Side, cleanupAll } from '../engine/harness';

const NATIVE: EngineKind[] = ['epoll', 'uring'];

describeEngines('native engine: abort with sends in flight', engineAvailability, (kind) => {
  afterEach(cleanupAll);

  // The second variant turns off uring setup flags: it exists only for uring.
  const variants = kind === 'uring' ? ['', 'deferTaskrun,coopTaskrun'] : [''];
  for (const disable of variants) it(`[${kind}] aborted connections' queue chunks never carry another connection's bytes${disable ? ` (uring without ${disable})` : ''}`, async () => {
    const savedDisable = process.env.FASTPORT_URING_DISABLE;
    if (disable !== '') process.env.FASTPORT_URING_DISABLE = disable;
    const foreign: string[] = [];
    let total = 0;
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => {
      sockets.push(s);
      let tag = -1;
      s.on('data', (d: Buffer) => {
        total += d.length;
        if (tag < 0) tag = d[0] as number;
        for (let i = 0; i < d.length; i++) {
          if (d[i] !== tag) {
            if (foreign.length < 10) foreign.push(`tag ${tag} got byte ${d[i]}`);
            break;
          }
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const client = new Side(kind, { name: 'client', maxPendingBytes: 64 << 20 });
      if (savedDisable === undefined) delete process.env.FASTPORT_URING_DISABLE;
      else process.env.FASTPORT_URING_DISABLE = savedDisable;
      const K = 8; // long-lived connections, tags 201..
      const others: ConnectionId[] = [];
      for (let i = 0; i < K; i++) others.push(client.connect(port));
      await waitFor(() => others.every((id) => client.log(id).connected), WAIT_MS, 'others connected');
      const big = 8 * 1024 * 1024;
      let tagNext = 1;
      for (let round = 0; round < 6; round++) {
        const V = 16;
        const victims: ConnectionId[] = [];
        for (let i = 0; i < V; i++) victims.push(client.connect(port));
        await waitFor(() => victims.every((id) => client.log(id).connected), WAIT_MS, 'victims connected');
        for (const id of victims) {
          client.engine.send(id, Buffer.alloc(big, tagNext));
          tagNext = tagNext >= 200 ? 1 : tagNext + 1;
        }
        await nextTurn();
        for (const id of victims) client.engine.close(id, 'abort');
        // Same turn: the others take chunks from the pool right away.
        for (let i = 0; i < K; i++) client.engine.send(others[i] as ConnectionId, Buffer.alloc(256 * 1024, 201 + i));
        for (const id of victims) await client.waitClosed(id);
        await nextTurn();
      }
      await waitFor(() => others.every((id) => client.engine.pendingBytes(id) === 0), WAIT_MS, 'others flushed');
      expect(total).toBeGreaterThan(0);
      expect(foreign).toEqual([]);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
}, { only: NATIVE });
