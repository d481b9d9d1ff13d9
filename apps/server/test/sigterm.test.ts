import * as path from 'node:path';
import { expect, it } from 'vitest';
import { Client, type GoAway, type SessionCloseInfo } from '@fastport/session';
import { JsonChild, TS_REGISTER, connectRaw, waitFor } from '@fastport/test-utils';

it('SIGTERM stops fastport-server in layers: GOAWAY to session peers, flush, per-session outcomes, exit 0', async () => {
  const main = path.join(__dirname, '..', 'src', 'main.ts');
  // Its log lines (pino JSON) are the child's messages.
  const server = new JsonChild(process.execPath, [
    '-r',
    TS_REGISTER,
    '-e',
    `require(${JSON.stringify(main)}).main(process.argv.slice(1))`,
    '--',
    ...['--engine', 'node', '--host', '127.0.0.1', '--port', '0', '--mode', 'echo', '--grace', '5000'],
  ]);
  const lines = server.messages;
  try {
    const port = (await server.waitMessage((l) => typeof l['port'] === 'number', 'the listening line', 15_000))['port'] as number;

    // A session-protocol peer (heartbeats) and a plain raw peer.
    const client = new Client({ engine: 'node', heartbeat: { intervalMs: 50 }, memoryBudget: false });
    const session = await client.connect({ host: '127.0.0.1', port });
    let echoes = 0;
    client.on('frame', () => echoes++);
    const events: string[] = [];
    session.on('goaway', (g: GoAway) => events.push(`goaway:${g.reason}:${g.reconnect}`));
    session.on('close', (info: SessionCloseInfo) => events.push(`close:${info.reason}`));
    for (let i = 0; i < 10; i++) session.send(Buffer.from(`m${i}`), 0x8001);
    await waitFor(() => echoes === 10 && (session.heartbeatStats()?.pongs ?? 0) > 0, 'echoes and a pong');
    const raw = await connectRaw(port);
    raw.send(Buffer.from([0, 8, 0, 1, 1, 2, 3, 4])); // one fastport frame, echoed
    await raw.readUntil(8, 'raw echo');

    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    await raw.closed;
    await waitFor(() => events.some((e) => e.startsWith('close')), 'client closed');
    expect(events[0]).toBe('goaway:shutdown:true');
    const stopped = lines.find((l) => l['msg'] === 'stopped') as { flushed: number; timedOut: number; failed: number; sessions: { goaway: boolean; outcome: string; bytesLeft: number }[] };
    expect(stopped).toBeDefined();
    expect(stopped).toMatchObject({ flushed: 2, timedOut: 0, failed: 0 });
    expect(stopped.sessions.map((s) => s.goaway).sort()).toEqual([false, true]);
    for (const s of stopped.sessions) expect(s).toMatchObject({ outcome: 'flushed', bytesLeft: 0 });
    await client.close(100);
  } finally {
    if (server.running) server.child.kill('SIGKILL');
  }
}, 30_000);
