import * as readline from 'node:readline';
import yargs from 'yargs';
import { ENGINE_KINDS, type EngineRequest } from '@fastport/native-io';
import {
  ChatMessage,
  EchoRequest,
  EchoResponse,
  ErrorResponse,
  PingRequest,
  PingResponse,
  ResultCode,
  Router,
  ServerStatusRequest,
  ServerStatusResponse,
  SessionListRequest,
  SessionListResponse,
  resultCodeToJSON,
  send,
} from '@fastport/protocol';
import { Client, type Session } from '@fastport/session';

/** JSON has no bigint: uint64 fields print as numbers when exact, else as decimal strings. */
function jsonBigint(_key: string, value: unknown): unknown {
  if (typeof value !== 'bigint') return value;
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

interface ClientCliOptions {
  host: string;
  port: number;
  engine: EngineRequest;
  ping: number;
  echo: string[];
  chat: string[];
  name: string;
  room: string;
  status: boolean;
  sessions: boolean;
  /** Admin token (fastport-server --admin-token). */
  token: string;
  /** Session list page. */
  offset: number;
  limit: number;
  interval: number;
  timeout: number;
  json: boolean;
}

function parseArgs(argv: string[]): ClientCliOptions {
  const a = yargs(argv)
    .scriptName('fastport-client')
    .usage('$0 [options]\n\nWith no --ping/--echo/--chat/--status/--sessions it reads commands from stdin:\n  ping [count] | echo <text> | chat <text> | status | sessions | quit')
    .option('host', { type: 'string', default: '127.0.0.1' })
    .option('port', { type: 'number', default: 9000 })
    .option('engine', { choices: ['auto', ...ENGINE_KINDS] as const, default: 'auto' as const })
    .option('ping', { type: 'number', default: 0, describe: 'send N pings and print each RTT' })
    .option('echo', { type: 'string', array: true, default: [] as string[], describe: 'send an echo request with this text (repeatable)' })
    .option('chat', { type: 'string', array: true, default: [] as string[], describe: 'send a chat message (repeatable)' })
    .option('name', { type: 'string', default: '', describe: 'chat name (default: the server picks)' })
    .option('room', { type: 'string', default: 'lobby' })
    .option('status', { type: 'boolean', default: false, describe: 'ask for the server status' })
    .option('sessions', { type: 'boolean', default: false, describe: 'ask for the session list' })
    .option('admin', { choices: ['status', 'sessions'] as const, array: true, describe: 'admin request(s): status | sessions (same as --status / --sessions)' })
    .option('token', { type: 'string', describe: 'admin token the server was given (--admin-token; or FASTPORT_ADMIN_TOKEN); not needed on its --admin-port' })
    .option('offset', { type: 'number', default: 0, describe: 'first session of the --sessions page' })
    .option('limit', { type: 'number', default: 100, describe: 'sessions per page (the server caps it at 1000)' })
    .option('interval', { type: 'number', default: 0, describe: 'ms between pings' })
    .option('timeout', { type: 'number', default: 5000, describe: 'ms to wait for each reply' })
    .option('json', { type: 'boolean', default: false, describe: 'print replies as JSON lines' })
    .strict()
    .help()
    .parseSync();
  return {
    host: a.host,
    port: a.port,
    engine: a.engine,
    ping: a.ping,
    echo: a.echo.map(String),
    chat: a.chat.map(String),
    name: a.name,
    room: a.room,
    status: a.status || (a.admin ?? []).includes('status'),
    sessions: a.sessions || (a.admin ?? []).includes('sessions'),
    token: a.token ?? process.env['FASTPORT_ADMIN_TOKEN'] ?? '',
    offset: a.offset,
    limit: a.limit,
    interval: a.interval,
    timeout: a.timeout,
    json: a.json,
  };
}

function refusedHint(code: ResultCode): string {
  return code === ResultCode.UNAUTHORIZED ? 'admin is off on this port, or the token is wrong: pass --token, or use the server\'s --admin-port' : '';
}

/** Matches replies to requests by sequence number and measures round trips. */
class Requests {
  private seq = 0;
  private readonly waiting = new Map<number, { sentAt: bigint; resolve: (rttMs: number) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  next(timeoutMs: number, what: string): { seq: number; done: Promise<number> } {
    const seq = ++this.seq;
    const done = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new Error(`no reply to ${what} #${seq} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(seq, { sentAt: process.hrtime.bigint(), resolve, reject, timer });
    });
    return { seq, done };
  }

  complete(seq: number): number | undefined {
    const w = this.waiting.get(seq);
    if (!w) return undefined;
    this.waiting.delete(seq);
    clearTimeout(w.timer);
    const rtt = Number(process.hrtime.bigint() - w.sentAt) / 1e6;
    w.resolve(rtt);
    return rtt;
  }

  failAll(err: Error): void {
    for (const [, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiting.clear();
  }
}

export async function main(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  const print = (kind: string, fields: Record<string, unknown>) => {
    if (opts.json) console.log(JSON.stringify({ kind, ...fields }, jsonBigint));
    else console.log(`${kind} ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v)}`).join(' ')}`);
  };
  const client = new Client({ engine: opts.engine });
  const requests = new Requests();
  const statusWaiters: ((ok: boolean) => void)[] = [];
  const router = new Router<Session>({ onUnknown: 'ignore' });
  router
    .on(PingResponse, (_s, m) => {
      const rtt = requests.complete(m.seq);
      print('pong', { seq: m.seq, rttMs: rtt ?? NaN });
    })
    .on(EchoResponse, (_s, m) => {
      const rtt = requests.complete(m.seq);
      print('echo', { seq: m.seq, rttMs: rtt ?? NaN, data: Buffer.from(m.data).toString() });
    })
    .on(ChatMessage, (_s, m) => print('chat', { room: m.room, from: m.from, text: m.text }))
    .on(ServerStatusResponse, (_s, m) => {
      if (m.result !== ResultCode.OK) {
        print('error', { what: 'status', code: resultCodeToJSON(m.result), hint: refusedHint(m.result) });
        statusWaiters.shift()?.(false);
        return;
      }
      print('status', {
        engine: m.engineName,
        workers: m.workers,
        connections: m.connections,
        total: m.totalConnections,
        uptimeMs: m.uptimeMs,
        packetsIn: m.packetsIn,
        packetsOut: m.packetsOut,
        bytesIn: m.bytesIn,
        bytesOut: m.bytesOut,
        rssMiB: Number(m.memoryRssBytes) / 1048576,
        cpuPercent: m.cpuPercent,
        adminRefused: m.adminRefused,
        version: m.version,
      });
      statusWaiters.shift()?.(true);
    })
    .on(SessionListResponse, (_s, m) => {
      if (m.result !== ResultCode.OK) {
        print('error', { what: 'sessions', code: resultCodeToJSON(m.result), hint: refusedHint(m.result) });
        statusWaiters.shift()?.(false);
        return;
      }
      print('sessions', { total: m.total, offset: m.offset, shown: m.sessions.length });
      for (const s of m.sessions) {
        print('  session', { id: s.id, worker: s.worker, remote: `${s.remoteAddress}:${s.remotePort}`, bytesIn: s.bytesIn, bytesOut: s.bytesOut, packetsIn: s.packetsIn, packetsOut: s.packetsOut, sendQueueBytes: s.sendQueueBytes });
      }
      statusWaiters.shift()?.(true);
    })
    .on(ErrorResponse, (_s, m) => {
      print('error', { code: resultCodeToJSON(m.code), message: m.message, packetId: `0x${m.packetId.toString(16)}` });
      if (m.code !== ResultCode.OK) statusWaiters.shift()?.(false);
    });
  client.on('frame', (session: Session, frame) => router.dispatch(session, frame.id, frame.payload));

  let session: Session;
  try {
    session = await client.connect({ host: opts.host, port: opts.port });
  } catch (err) {
    console.error(`fastport-client: cannot connect to ${opts.host}:${opts.port}: ${(err as Error).message}`);
    await client.close(0);
    process.exitCode = 1;
    return;
  }
  print('connected', { remote: `${opts.host}:${opts.port}`, engine: client.engine.info.kind });
  session.on('close', (info: { reason: string }) => requests.failAll(new Error(`connection closed (${info.reason})`)));

  const ping = async () => {
    const { seq, done } = requests.next(opts.timeout, 'ping');
    send(session, PingRequest, { clientTimeUs: BigInt(Date.now()) * 1000n, seq });
    return done;
  };
  const echo = async (text: string) => {
    const { seq, done } = requests.next(opts.timeout, 'echo');
    send(session, EchoRequest, { data: Buffer.from(text), seq });
    return done;
  };
  const admin = (what: 'status' | 'sessions') =>
    new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} reply within ${opts.timeout} ms`)), opts.timeout);
      statusWaiters.push((ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
      if (what === 'status') send(session, ServerStatusRequest, { authToken: opts.token });
      else send(session, SessionListRequest, { offset: opts.offset, limit: opts.limit, authToken: opts.token });
    });
  const chat = (text: string) => send(session, ChatMessage, { room: opts.room, from: opts.name, text, timeMs: BigInt(Date.now()) });

  const scripted = opts.ping > 0 || opts.echo.length > 0 || opts.chat.length > 0 || opts.status || opts.sessions;
  let failed = false;
  if (scripted) {
    try {
      const rtts: number[] = [];
      for (let i = 0; i < opts.ping; i++) {
        rtts.push(await ping());
        if (opts.interval > 0 && i + 1 < opts.ping) await new Promise((r) => setTimeout(r, opts.interval));
      }
      if (rtts.length > 1) {
        const sorted = [...rtts].sort((x, y) => x - y);
        print('ping-summary', { count: rtts.length, minMs: sorted[0] ?? NaN, avgMs: rtts.reduce((s, x) => s + x, 0) / rtts.length, maxMs: sorted[sorted.length - 1] ?? NaN });
      }
      for (const text of opts.echo) await echo(text);
      for (const text of opts.chat) chat(text);
      if (opts.status) failed = !(await admin('status')) || failed;
      if (opts.sessions) failed = !(await admin('sessions')) || failed;
    } catch (err) {
      console.error(`fastport-client: ${(err as Error).message}`);
      failed = true;
    }
    await client.close(1000);
    process.exitCode = failed ? 1 : 0;
    return;
  }

  const rl = readline.createInterface({ input: process.stdin, terminal: process.stdin.isTTY === true });
  if (process.stdin.isTTY) console.log('commands: ping [count] | echo <text> | chat <text> | status | sessions | quit');
  for await (const line of rl) {
    const [cmd = '', ...rest] = line.trim().split(/\s+/);
    const arg = line.trim().slice(cmd.length).trim();
    try {
      if (cmd === '') continue;
      else if (cmd === 'ping') for (let i = 0, n = Number(rest[0] ?? 1) || 1; i < n; i++) await ping();
      else if (cmd === 'echo') await echo(arg);
      else if (cmd === 'chat') chat(arg);
      else if (cmd === 'status' || cmd === 'sessions') await admin(cmd);
      else if (cmd === 'quit' || cmd === 'exit') break;
      else console.error(`unknown command '${cmd}' (ping, echo, chat, status, sessions, quit)`);
    } catch (err) {
      console.error(`fastport-client: ${(err as Error).message}`);
      failed = true;
    }
    if (session.state === 'closed') {
      console.error('fastport-client: connection closed by the server');
      failed = true;
      break;
    }
  }
  rl.close();
  await client.close(1000);
  process.exitCode = failed ? 1 : 0;
}
