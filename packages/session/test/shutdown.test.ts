import { afterEach, expect, it, vi } from 'vitest';
import type { EngineKind } from '@fastport/native-io';
import {
  Client,
  ReconnectingClient,
  Server,
  type Frame,
  type GoAway,
  type LostMessages,
  type Session,
  type SessionCloseInfo,
  type ShutdownReport,
} from '../src';
import { connectRaw, waitFor, waitForOnTurns } from '@fastport/test-utils';
import { forEachEngine, numbered, numberOf } from './helpers';

forEachEngine('graceful shutdown', (kind: EngineKind) => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  it(`[${kind}] stopping the server under load: every acknowledged message reached its peer, every session flushed`, async () => {
    const RC = 4;
    const PLAIN = 2;
    const server = new Server({ engine: kind, memoryBudget: false, resume: { ackDelayMs: 5 } });
    const { port } = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(200));

    // Server side: per session, what arrived from the client, and a stream of numbered messages to it.
    const received = new Map<Session, number[]>();
    const serverSessions: Session[] = [];
    let stopping = false;
    server.on('session', (s: Session) => {
      serverSessions.push(s);
      received.set(s, []);
      let next = 1;
      const pump = () => {
        if (stopping || s.state !== 'open') return;
        for (let i = 0; i < 20 && s.state === 'open'; i++) {
          const r = s.trySend(numbered(next, 32, 5), 0x8002);
          if (r === 'closed') return;
          next++;
        }
        if (next <= 100_000) setImmediate(pump);
      };
      setImmediate(pump);
    });
    server.on('frame', (s: Session, f: Frame) => {
      received.get(s)?.push(numberOf(f.payload));
      if (!s.resumable) s.send(f.payload, f.id); // plain clients get echoes
    });

    // Resumable clients stream numbered messages; plain clients stream and count echoes.
    interface Peer {
      rc: ReconnectingClient;
      got: number[];
      lost: LostMessages[];
      goaway: GoAway[];
      closed: boolean;
    }
    const peers: Peer[] = [];
    for (let i = 0; i < RC; i++) {
      const rc = new ReconnectingClient({ engine: kind, host: '127.0.0.1', port, memoryBudget: false, reconnect: false, resume: { ackDelayMs: 5 } });
      cleanups.push(() => rc.close(200));
      const peer: Peer = { rc, got: [], lost: [], goaway: [], closed: false };
      rc.on('frame', (_s: Session, f: Frame) => peer.got.push(numberOf(f.payload)));
      rc.on('lost', (_s: Session, l: LostMessages) => peer.lost.push(l));
      rc.on('goaway', (_s: Session, g: GoAway) => peer.goaway.push(g));
      rc.on('close', () => {
        peer.closed = true;
      });
      rc.on('give-up', () => {});
      peers.push(peer);
      const session = await rc.start();
      let next = 1;
      const pump = () => {
        if (session.state !== 'open') return;
        for (let k = 0; k < 20; k++) rc.send(numbered(next++, 32, 6), 0x8001);
        if (next <= 100_000) setImmediate(pump);
      };
      setImmediate(pump);
    }
    const plain: { session: Session; echoes: number; sent: number }[] = [];
    for (let i = 0; i < PLAIN; i++) {
      const c = new Client({ engine: kind, memoryBudget: false });
      cleanups.push(() => c.close(200));
      const session = await c.connect({ host: '127.0.0.1', port });
      const p = { session, echoes: 0, sent: 0 };
      c.on('frame', () => p.echoes++);
      plain.push(p);
      const pump = () => {
        if (session.state !== 'open') return;
        for (let k = 0; k < 20; k++) if (session.trySend(numbered(p.sent + 1, 32, 7), 0x8001) !== 'closed') p.sent++;
        if (p.sent < 100_000) setImmediate(pump);
      };
      setImmediate(pump);
    }

    await waitFor(() => serverSessions.length === RC + PLAIN, 'all sessions');
    await waitFor(
      () => peers.every((p) => p.got.length >= 300) && [...received.values()].every((r) => r.length >= 300),
      'load in both directions',
    );
    const report: ShutdownReport = await server.shutdown({ deadlineMs: 10_000 });
    stopping = true;
    await waitFor(() => peers.every((p) => p.closed), 'clients closed');

    expect(report.sessions.length).toBe(RC + PLAIN);
    expect(report.timedOut).toBe(0);
    expect(report.failed).toBe(0);
    expect(report.flushed).toBe(RC + PLAIN);
    expect(report.sessions.filter((s) => s.goaway).length).toBe(RC);
    for (const s of report.sessions) expect(s.bytesLeft).toBe(0);

    const lines: string[] = [];
    for (const peer of peers) {
      const clientSession = peer.rc.session!;
      const serverSession = serverSessions.find((s) => s.token === clientSession.token)!;
      const fromClient = received.get(serverSession)!;
      const clientAcked = clientSession.resumeState()!.acked; // client messages the server acknowledged
      const serverAcked = serverSession.resumeState()!.acked; // server messages the client acknowledged
      // Everything acknowledged arrived, in order, exactly once (and nothing arrived that was not sent).
      expect(fromClient.slice(0, clientAcked)).toEqual(Array.from({ length: clientAcked }, (_, i) => i + 1));
      expect(peer.got.slice(0, serverAcked)).toEqual(Array.from({ length: serverAcked }, (_, i) => i + 1));
      expect(fromClient).toEqual(Array.from({ length: fromClient.length }, (_, i) => i + 1));
      expect(peer.got).toEqual(Array.from({ length: peer.got.length }, (_, i) => i + 1));
      // The final ack exchange covers everything: nothing left unacknowledged either way.
      expect(clientAcked).toBe(fromClient.length);
      expect(serverAcked).toBe(peer.got.length);
      expect(peer.lost).toEqual([]);
      expect(peer.goaway[0]).toMatchObject({ reason: 'shutdown', reconnect: true, resume: false });
      lines.push(`client→server ${fromClient.length} (acked ${clientAcked}), server→client ${peer.got.length} (acked ${serverAcked})`);
    }
    for (const p of plain) expect(p.session.state).toBe('closed');
    console.log(
      `[${kind}] shutdown under load: ${report.flushed} flushed, ${report.timedOut} timed out in ${report.durationMs} ms; ` +
        `resumable sessions: ${lines.join('; ')}; lost 0`,
    );
  }, 60_000);

  it(`[${kind}] a peer that never reads is reset at the deadline (timed-out, bytes left), a reading one is flushed`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false, maxPendingBytes: 64 * 1024 * 1024 });
    const { port } = await server.listen(0, '127.0.0.1');
    const stuck = await connectRaw(port);
    stuck.socket.pause();
    const reader = await connectRaw(port);
    const stuckPort = stuck.socket.localPort;
    const readerPort = reader.socket.localPort;
    await waitFor(() => server.sessions.size === 2, 'sessions');
    const [a, b] = [...server.sessions] as [Session, Session];
    const payload = Buffer.alloc(60_000, 1);
    // 3 MiB to the reader; 40 MiB to the one that never reads: far more than loopback's kernel buffers hold.
    const stuckSession = [a, b].find((s) => s.remote.port === stuckPort)!;
    const readerSession = stuckSession === a ? b : a;
    for (let i = 0; i < 50; i++) readerSession.send(payload, 1);
    for (let i = 0; i < 700; i++) stuckSession.send(payload, 1);
    const sent = 50 * (60_000 + 4);
    const order: string[] = [];
    server.on('shutdown', (phase: string) => order.push(phase));
    // The deadline is a setTimeout: faked, it passes only once the reader has everything, however slow the machine.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let shutdown: Promise<ShutdownReport>;
    try {
      shutdown = server.shutdown({ deadlineMs: 400 });
      await waitForOnTurns(() => order.includes('draining') && reader.bytes === sent, 'the reader flushed before the deadline');
      expect(order).toEqual(['stopped-accepting', 'draining']);
      vi.advanceTimersByTime(400);
    } finally {
      vi.useRealTimers();
    }
    const report = await shutdown;
    expect(order).toEqual(['stopped-accepting', 'draining', 'forcing', 'closed']);
    const byRemote = new Map(report.sessions.map((s) => [s.remote, s]));
    const stuckOutcome = byRemote.get(`127.0.0.1:${stuckPort}`);
    const readerOutcome = byRemote.get(`127.0.0.1:${readerPort}`);
    expect(stuckOutcome).toMatchObject({ outcome: 'timed-out', reason: 'shutdown-timeout', goaway: false });
    expect(stuckOutcome!.bytesLeft).toBeGreaterThan(0);
    expect(readerOutcome).toMatchObject({ outcome: 'flushed', bytesLeft: 0, reason: 'shutdown' });
    await reader.closed;
    expect(reader.bytes).toBe(sent);
    expect(report).toMatchObject({ flushed: 1, timedOut: 1, failed: 0 });
    console.log(`[${kind}] shutdown deadline: non-reader reset with ${stuckOutcome!.bytesLeft} bytes left; reader flushed ${reader.bytes} bytes`);
  });

  it(`[${kind}] close(graceMs) keeps its result shape; a second shutdown returns the same report`, async () => {
    const server = new Server({ engine: kind, memoryBudget: false });
    const { port } = await server.listen(0, '127.0.0.1');
    const peer = await connectRaw(port);
    await waitFor(() => server.sessions.size === 1, 'session');
    const p1 = server.shutdown({ deadlineMs: 1000 });
    const p2 = server.shutdown();
    expect(p1).toBe(p2);
    const r = await p1;
    expect(r.flushed).toBe(1);
    await peer.closed;
    const closes: SessionCloseInfo[] = [];
    server.on('close', (_s: Session, i: SessionCloseInfo) => closes.push(i));
    expect(await server.close(100)).toEqual({ flushed: 1, aborted: 0 });
  });
});
