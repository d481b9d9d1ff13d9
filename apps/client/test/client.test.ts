import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Server, type Frame, type Session } from '@fastport/session';
import { EchoRequest, EchoResponse, PacketId, PingRequest, PingResponse, ResultCode, ServerStatusRequest, ServerStatusResponse, SessionListRequest, SessionListResponse, decodeMessage, encodeMessage } from '@fastport/protocol';
import { runChild } from '@fastport/test-utils';

const BIN = path.join(__dirname, '..', 'bin', 'fastport-client');

async function run(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runChild(process.execPath, [BIN, ...args], { input: input ?? '', timeoutMs: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('fastport-client', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await server?.close(200);
    server = undefined;
  });

  async function startServer(): Promise<number> {
    server = new Server({ engine: 'node' });
    server.on('frame', (session: Session, frame: Frame) => {
      if (frame.id === PacketId.PingRequest) {
        const m = decodeMessage(PingRequest, frame.payload);
        session.send(encodeMessage(PingResponse, { clientTimeUs: m.clientTimeUs, serverTimeUs: 1n, seq: m.seq }), PacketId.PingResponse);
      } else if (frame.id === PacketId.EchoRequest) {
        const m = decodeMessage(EchoRequest, frame.payload);
        session.send(encodeMessage(EchoResponse, { data: m.data, seq: m.seq }), PacketId.EchoResponse);
      } else if (frame.id === PacketId.SessionListRequest) {
        const m = decodeMessage(SessionListRequest, frame.payload);
        const ok = m.authToken === 'sekret';
        session.send(
          encodeMessage(SessionListResponse, {
            result: ok ? ResultCode.OK : ResultCode.UNAUTHORIZED,
            total: ok ? 2 : 0,
            offset: m.offset,
            sessions: ok ? [{ id: 7n, worker: 1, remoteAddress: '10.1.2.3', remotePort: 4000, bytesIn: 5n }] : [],
          }),
          PacketId.SessionListResponse,
        );
      } else if (frame.id === PacketId.ServerStatusRequest && decodeMessage(ServerStatusRequest, frame.payload).authToken === 'refuse-me') {
        session.send(encodeMessage(ServerStatusResponse, { result: ResultCode.UNAUTHORIZED }), PacketId.ServerStatusResponse);
      } else if (frame.id === PacketId.ServerStatusRequest) {
        // uint64 counters past 2^53 (a long-running server): printed exactly, never refused.
        session.send(
          encodeMessage(ServerStatusResponse, { engineName: 'node', totalConnections: 2n ** 64n - 1n, uptimeMs: 12n, memoryRssBytes: 1048576n }),
          PacketId.ServerStatusResponse,
        );
      }
    });
    return (await server.listen(0, '127.0.0.1')).port;
  }

  it('pings and echoes from flags, printing replies with RTT', async () => {
    const port = await startServer();
    const r = await run(['--port', String(port), '--ping', '3', '--echo', 'hello world', '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; seq?: number; rttMs?: number; data?: string });
    const pongs = lines.filter((l) => l.kind === 'pong');
    expect(pongs.map((p) => p.seq)).toEqual([1, 2, 3]);
    for (const p of pongs) expect(p.rttMs).toBeGreaterThan(0);
    expect(lines.find((l) => l.kind === 'echo')?.data).toBe('hello world');
  });

  it('prints 64-bit status fields at full range (--status --json)', async () => {
    const port = await startServer();
    const r = await run(['--port', String(port), '--status', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const status = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.kind === 'status');
    expect(status).toMatchObject({ engine: 'node', total: '18446744073709551615', uptimeMs: 12, rssMiB: 1 });
  });

  it('--admin sessions sends the token and prints the page with each session\'s worker; a refusal prints UNAUTHORIZED and exits 1', async () => {
    const port = await startServer();
    const ok = await run(['--port', String(port), '--admin', 'sessions', '--token', 'sekret', '--offset', '1', '--json']);
    expect(ok.code).toBe(0);
    const lines = ok.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.kind === 'sessions')).toMatchObject({ total: 2, offset: 1, shown: 1 });
    expect(lines.find((l) => l.kind === '  session')).toMatchObject({ id: 7, worker: 1, remote: '10.1.2.3:4000', bytesIn: 5 });

    const refused = await run(['--port', String(port), '--admin', 'sessions']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/error what=sessions code=RESULT_CODE_UNAUTHORIZED/);
    const refusedStatus = await run(['--port', String(port), '--admin', 'status', '--token', 'refuse-me']);
    expect(refusedStatus.code).toBe(1);
    expect(refusedStatus.stdout).toMatch(/error what=status code=RESULT_CODE_UNAUTHORIZED/);
  });

  it('reads commands line by line from stdin', async () => {
    const port = await startServer();
    const r = await run(['--port', String(port)], 'ping\necho two words\nquit\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pong seq=1 rttMs=/);
    expect(r.stdout).toMatch(/echo seq=2 rttMs=[\d.]+ data=two words/);
  });

  it('fails with a clear message when nothing listens', async () => {
    const port = await startServer();
    await server?.close(0);
    server = undefined;
    const r = await run(['--port', String(port), '--ping', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot connect to 127\.0\.0\.1:\d+: .*/);
  });
});
