import { getEventListeners } from 'node:events';
import * as net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { Client, ReconnectingClient, Server, type Session } from '../src';
import { waitFor, connectRaw, closedPort } from '@fastport/test-utils';
import { forEachEngine } from './helpers';

/** Node's AbortError shape: name, code, and the signal's reason as the cause. */
function expectAbortError(err: unknown, reason: unknown): void {
  expect(err).toBeInstanceOf(Error);
  expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  expect((err as Error).cause).toBe(reason);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

forEachEngine('AbortSignal and Symbol.asyncDispose', (kind) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function listening(options: ConstructorParameters<typeof Server>[0] = {}) {
    const server = new Server({ engine: kind, memoryBudget: false, ...options });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));
    return { server, port };
  }

  function client(): Client {
    const c = new Client({ engine: kind, memoryBudget: false });
    cleanups.push(() => c.close(200));
    return c;
  }

  it(`[${kind}] connect: an already-aborted signal rejects at once and connects nothing`, async () => {
    const { server, port } = await listening();
    const c = client();
    const reason = new Error('not now');
    const err = await rejection(c.connect(port, '127.0.0.1', { signal: AbortSignal.abort(reason) }));
    expectAbortError(err, reason);
    expect(c.stats().sessionsTotal).toBe(0);
    expect(server.stats().sessionsTotal).toBe(0);
  });

  it(`[${kind}] connect: aborting a pending connect rejects with AbortError, closes the attempt, and leaves no listener on the signal`, async () => {
    const { server, port } = await listening();
    const c = client();
    const ac = new AbortController();
    const pending = c.connect({ host: '127.0.0.1', port, signal: ac.signal });
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    ac.abort('changed my mind');
    expectAbortError(await rejection(pending), 'changed my mind');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    // Whatever reached the server is closed, and the client holds nothing.
    await waitFor(() => server.sessions.size === 0 && c.stats().engine.connections === 0, 'the aborted attempt gone on both sides');
    expect(c.sessions.size).toBe(0);
  });

  it(`[${kind}] connect: a signal that never fires is released once connected`, async () => {
    const { port } = await listening();
    const c = client();
    const ac = new AbortController();
    const session = await c.connect(port, '127.0.0.1', { signal: ac.signal });
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    ac.abort(); // too late to matter
    expect(session.state).toBe('open');
  });

  it(`[${kind}] listen: an already-aborted signal rejects at once; aborting a pending listen rejects and listens on nothing`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false });
    cleanups.push(() => server.close(200));
    const reason = new Error('stop');
    expectAbortError(await rejection(server.listen(0, '127.0.0.1', { signal: AbortSignal.abort(reason) })), reason);
    expect(server.address).toBeUndefined();

    const port = await closedPort();
    const ac = new AbortController();
    const pending = server.listen(port, '127.0.0.1', { signal: ac.signal });
    ac.abort(reason);
    expectAbortError(await rejection(pending), reason);
    expect(server.address).toBeUndefined();
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(await portRefuses(port)).toBe(true); // the listener the engine opened is closed again

    // The same port is free for the same server: nothing was left listening on it.
    const ac2 = new AbortController();
    const info = await server.listen(port, '127.0.0.1', { signal: ac2.signal });
    expect(info.port).toBe(port);
    expect(getEventListeners(ac2.signal, 'abort')).toHaveLength(0);
    expect(await portRefuses(port)).toBe(false);
  });

  it(`[${kind}] shutdown: an already-aborted signal rejects at once and does not stop the server`, async () => {
    const { server, port } = await listening();
    const reason = new Error('no');
    expectAbortError(await rejection(server.shutdown({ signal: AbortSignal.abort(reason) })), reason);
    expect(server.isStopping).toBe(false);
    expect(await portRefuses(port)).toBe(false);
  });

  it(`[${kind}] shutdown: aborting a shutdown that waits for a never-reading peer forces the rest at once, then rejects with AbortError`, async () => {
    const { server, port } = await listening({ maxPendingBytes: 8 * 1024 * 1024 });
    const peer = await connectRaw(port);
    cleanups.push(async () => void peer.socket.destroy());
    peer.socket.pause(); // never reads: its queue can only go at the deadline
    await waitFor(() => server.sessions.size === 1, 'session');
    const session = [...server.sessions][0] as Session;
    const chunk = Buffer.alloc(60_000, 1);
    for (let i = 0; i < 100; i++) session.send(chunk, 1); // ~6 MB: more than the kernel buffers take
    const phases: string[] = [];
    server.on('shutdown', (phase) => phases.push(phase));
    let closed = false;
    server.on('closed', () => (closed = true));
    const ac = new AbortController();
    const stopping = server.shutdown({ deadlineMs: 10 * 60_000, signal: ac.signal }); // a deadline no test waits for
    await waitFor(() => phases.includes('draining'), 'draining');
    ac.abort('operator said now');
    expectAbortError(await rejection(stopping), 'operator said now');
    expect(phases).toEqual(['stopped-accepting', 'draining', 'forcing', 'closed']);
    expect(closed).toBe(true);
    expect(session.state).toBe('closed');
    expect(session.closeInfo?.reason).toBe('shutdown-timeout');
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it(`[${kind}] await using: a Server shuts down and a Client closes at the end of the block`, async () => {
    let port = 0;
    let serverClosed = false;
    let session: Session | undefined;
    {
      await using server = new Server({ engine: kind, memoryBudget: false });
      server.on('closed', () => (serverClosed = true));
      port = (await server.listen(0, '127.0.0.1')).port;
      await using c = new Client({ engine: kind, memoryBudget: false });
      session = await c.connect(port, '127.0.0.1');
      expect(session.state).toBe('open');
    }
    expect(session?.state).toBe('closed');
    expect(serverClosed).toBe(true);
    expect(await portRefuses(port)).toBe(true);
  });

  it(`[${kind}] await using: a ReconnectingClient closes for good (no reconnect) at the end of the block`, async () => {
    const { server, port } = await listening({ resume: true });
    let closedWith: string | undefined;
    let session: Session | undefined;
    {
      await using rc = new ReconnectingClient({ engine: kind, host: '127.0.0.1', port, memoryBudget: false });
      rc.on('close', (_s, reason) => (closedWith = reason));
      session = await rc.start();
    }
    expect(closedWith).toBe('client-close');
    expect(session?.state).toBe('closed');
    await waitFor(() => server.sessions.size === 0, 'the server side ended too');
  });
});
