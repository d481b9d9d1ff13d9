import yargs from 'yargs';
import { ENGINE_KINDS, type EngineRequest } from '@fastport/native-io';
import { BenchmarkRequest, BenchmarkResponse, PacketId } from '@fastport/protocol';
import { Client, type Session } from '@fastport/session';
import { SampleBuffer, summarize, type LatencySummary } from './stats';

export interface BenchOptions {
  target: string;
  engine: EngineRequest;
  connections: number;
  depth: number;
  size: number;
  duration: number;
  warmup: number;
  framing: 'fastport' | 'large' | 'u32le';
  protocol: 'raw' | 'benchmark';
  json: boolean;
}

export interface BenchResult {
  options: BenchOptions;
  engine: string;
  messages: number;
  msgsPerSec: number;
  mbPerSec: number;
  latency: LatencySummary;
  errors: number;
  mismatches: number;
}

function parseArgs(argv: string[]): BenchOptions {
  const a = yargs(argv)
    .scriptName('fastport-bench')
    .usage('$0 --target host:port [options]\n\nClosed-loop request/response load; every echoed byte is verified.')
    .option('target', { type: 'string', default: '127.0.0.1:9000', describe: 'host:port of a running fastport-server' })
    .option('engine', { choices: ['auto', ...ENGINE_KINDS] as const, default: 'auto' as const, describe: 'client engine' })
    .option('connections', { alias: 'c', type: 'number', default: 10 })
    .option('depth', { alias: 'd', type: 'number', default: 1, describe: 'messages in flight per connection' })
    .option('size', { alias: 's', type: 'number', default: 64, describe: 'payload bytes' })
    .option('duration', { type: 'number', default: 5, describe: 'seconds measured' })
    .option('warmup', { type: 'number', default: 1, describe: 'seconds before measuring' })
    .option('framing', { choices: ['fastport', 'large', 'u32le'] as const, default: 'fastport' as const })
    .option('protocol', {
      choices: ['raw', 'benchmark'] as const,
      default: 'raw' as const,
      describe: 'raw: payload echoed verbatim (server --mode echo); benchmark: BenchmarkRequest 0x1001 → BenchmarkResponse 0x1002 (--mode app)',
    })
    .option('json', { type: 'boolean', default: false })
    .strict()
    .help()
    .parseSync();
  return {
    target: a.target,
    engine: a.engine,
    connections: a.connections,
    depth: a.depth,
    size: a.size,
    duration: a.duration,
    warmup: a.warmup,
    framing: a.framing,
    protocol: a.protocol,
    json: a.json,
  };
}

export async function runBenchmark(opts: BenchOptions): Promise<BenchResult> {
  const [host = '127.0.0.1', portText = '9000'] = opts.target.split(/:(?=[^:]*$)/);
  const port = Number(portText);
  const client = new Client({ engine: opts.engine, framing: opts.framing });
  const samples = new SampleBuffer();
  let measuring = false;
  let stopped = false;
  let messages = 0;
  let bytes = 0;
  let errors = 0;
  let mismatches = 0;
  const payload = new Uint8Array(opts.size);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
  const sentAt = new Map<number, bigint[]>();
  let seq = 0;

  const fire = (session: Session) => {
    const queue = sentAt.get(session.id);
    if (!queue || stopped) return;
    queue.push(process.hrtime.bigint());
    if (opts.protocol === 'raw') session.send(payload, 0x1001);
    else session.send(BenchmarkRequest.encode({ seq: ++seq, clientTimeNs: 0, payload }).finish(), PacketId.BenchmarkRequest);
  };

  client.on('frame', (session: Session, frame) => {
    const queue = sentAt.get(session.id);
    const t0 = queue?.shift();
    if (t0 === undefined) return;
    const now = process.hrtime.bigint();
    let body = frame.payload;
    if (opts.protocol === 'benchmark') {
      if (frame.id !== PacketId.BenchmarkResponse) {
        errors++;
        return;
      }
      body = BenchmarkResponse.decode(frame.payload).payload;
    }
    if (body.byteLength !== payload.byteLength || !Buffer.from(body.buffer, body.byteOffset, body.byteLength).equals(payload)) mismatches++;
    if (measuring) {
      messages++;
      bytes += frame.bytes.byteLength;
      samples.add(Number(now - t0));
    }
    fire(session);
  });
  client.on('close', (_s: Session, info: { reason: string }) => {
    if (!stopped && info.reason !== 'local') errors++;
  });

  const sessions: Session[] = [];
  for (let i = 0; i < opts.connections; i++) {
    const session = await client.connect({ host, port });
    sentAt.set(session.id, []);
    sessions.push(session);
  }
  for (const session of sessions) for (let d = 0; d < opts.depth; d++) fire(session);
  await new Promise((r) => setTimeout(r, opts.warmup * 1000));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, opts.duration * 1000));
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stopped = true;
  const engine = client.engine.info.kind;
  await client.close(500);
  return {
    options: opts,
    engine,
    messages,
    msgsPerSec: messages / elapsed,
    mbPerSec: bytes / elapsed / 1e6,
    latency: summarize(samples.values()),
    errors,
    mismatches,
  };
}

export function formatResult(r: BenchResult): string {
  const l = r.latency;
  const f = (x: number) => x.toFixed(1);
  return [
    `target ${r.options.target}  client engine ${r.engine}  ${r.options.connections} conns × depth ${r.options.depth}  ${r.options.size} B  ${r.options.protocol}/${r.options.framing}`,
    `msgs/s ${Math.round(r.msgsPerSec)}  MB/s ${r.mbPerSec.toFixed(2)}  messages ${r.messages}  errors ${r.errors}  bad ${r.mismatches}`,
    `RTT µs: min ${f(l.minUs)} avg ${f(l.avgUs)} p50 ${f(l.p50Us)} p90 ${f(l.p90Us)} p95 ${f(l.p95Us)} p99 ${f(l.p99Us)} p99.9 ${f(l.p999Us)} max ${f(l.maxUs)} jitter ${f(l.jitterUs)}`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  try {
    const result = await runBenchmark(opts);
    console.log(opts.json ? JSON.stringify(result) : formatResult(result));
    process.exitCode = result.errors > 0 || result.mismatches > 0 ? 1 : 0;
  } catch (err) {
    console.error(`fastport-bench: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
