import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { Client, type GoAway, type SessionCloseInfo } from '@fastport/session';

function waitFor(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

it('SIGTERM stops fastport-server in layers: GOAWAY to session peers, flush, per-session outcomes, exit 0', async () => {
  const main = path.join(__dirname, '..', 'src', 'main.ts');
  const child = spawn(
    process.execPath,
    ['-r', path.join(__dirname, 'fixtures', 'ts-register.js'), '-e', `require(${JSON.stringify(main)}).main(process.argv.slice(1))`, '--', '--engine', 'node', '--host', '127.0.0.1', '--port', '0', '--mode', 'echo', '--grace', '5000'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(() => lines.some((l) => typeof l['port'] === 'number'), `listening line (stderr: ${stderr})`);
    const port = lines.find((l) => typeof l['port'] === 'number')!['port'] as number;

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
    const raw = net.connect({ host: '127.0.0.1', port });
    raw.on('error', () => {});
    let rawBytes = 0;
    raw.on('data', (d) => (rawBytes += d.length));
    const rawClosed = new Promise<void>((r) => raw.on('close', () => r()));
    await new Promise<void>((r) => raw.once('connect', () => r()));
    raw.write(Buffer.from([0, 8, 0, 1, 1, 2, 3, 4])); // one fastport frame, echoed
    await waitFor(() => rawBytes === 8, 'raw echo');

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await rawClosed;
    await waitFor(() => events.some((e) => e.startsWith('close')), 'client closed');
    expect(events[0]).toBe('goaway:shutdown:true');
    const stopped = lines.find((l) => l['msg'] === 'stopped') as { flushed: number; timedOut: number; failed: number; sessions: { goaway: boolean; outcome: string; bytesLeft: number }[] };
    expect(stopped).toBeDefined();
    expect(stopped).toMatchObject({ flushed: 2, timedOut: 0, failed: 0 });
    expect(stopped.sessions.map((s) => s.goaway).sort()).toEqual([false, true]);
    for (const s of stopped.sessions) expect(s).toMatchObject({ outcome: 'flushed', bytesLeft: 0 });
    await client.close(100);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}, 30_000);
