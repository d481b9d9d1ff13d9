import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import yargs from 'yargs';
import { ENGINE_KINDS, listEngines, type EngineRequest } from '@fastport/native-io';
import { renderChart } from './chart';
import { installCleanup } from './children';
import { maxFrameFor, maxPayload } from './payload';
import { defaultCpus, hasTaskset, parseCpuList, pinSelf } from './pin';
import { formatReport, toCsv, toJson, toMarkdown, updateMarkdownFile } from './report';
import { runBench, type BenchSettings, type TargetSpec } from './runner';
import { defaultServerBin, parseTarget } from './servers';
import { checkUiHost, runUi } from './ui-server';
import { SERVER_KINDS, type BenchReport, type Framing, type Protocol, type ServerKind, type Workload } from './types';

export { runBench } from './runner';
export type { BenchSettings, TargetSpec } from './runner';
export * from './stats';
export * from './report';
export { renderChart } from './chart';
export type * from './types';

const VERSION = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

export interface CliOutputs {
  /** --ui: serve the dashboard instead of running the benchmark once. */
  ui: { host: string; port: number } | undefined;
  json: string | undefined;
  csv: string | undefined;
  chart: string | undefined;
  markdown: string | undefined;
  label: string;
}

function list(values: (string | number)[] | string | undefined): string[] {
  if (values === undefined) return [];
  const arr = Array.isArray(values) ? values : [values];
  return arr.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);
}

const WORKLOAD_DEFAULTS: Record<Workload, { connections: number; depth: number; size: number; framing: Framing }> = {
  rr: { connections: 50, depth: 1, size: 64, framing: 'fastport' },
  open: { connections: 50, depth: 1, size: 64, framing: 'fastport' },
  bandwidth: { connections: 4, depth: 2, size: 1024 * 1024, framing: 'large' },
  connect: { connections: 8, depth: 1, size: 64, framing: 'fastport' },
  idle: { connections: 10000, depth: 1, size: 64, framing: 'fastport' },
};

export function buildParser(argv: string[]) {
  return yargs(argv)
    .scriptName('fastport-bench')
    .usage(
      [
        '$0 [options]',
        '',
        'Benchmarks FastPort servers. Starts fastport-server once per engine (--engine uring,epoll,node),',
        'pinned to --server-cpus, with the load generator pinned to --client-cpus, or measures a running',
        'server (--target host:port). Every echoed byte is verified.',
      ].join('\n'),
    )
    .example('$0 --compare --engine uring,epoll,node', 'all engines, one table with ratios, chart + CSV + JSON in bench-results/')
    .example('$0 --engine node --connections 100 --depth 4 --size 256', 'closed-loop request/response on the node engine')
    .example('$0 --engine node --rate 50000', 'open loop at 50k msgs/s; latency from the intended send time')
    .example('$0 --workload bandwidth --size 4194304', '4 MiB messages (large framing)')
    .example('$0 --workload connect --engine node', 'connections per second')
    .example('$0 --workload idle --connections 15000', 'server RSS and heap per idle connection (the server, too, may open at most 20,000 files here)')
    .example('$0 --engine node,ref-uring --framing u32le --echo-bench', 'against the C reference server, with echo-bench beside')
    .example('$0 --target 127.0.0.1:9000 --server-pid 1234', 'a server already running')
    .example('$0 --ui', 'live A/B dashboard on http://127.0.0.1:8080/ (?autostart=uring,epoll starts a comparison)')
    .group(['target', 'engine', 'server-cpus', 'client-cpus', 'pin', 'server-threads', 'server-pid', 'server-bin', 'server-arg', 'server-mode', 'kit'], 'Target:')
    .option('target', { type: 'string', describe: 'host:port of a server already running (instead of starting one)' })
    .option('engine', {
      alias: 'mode',
      type: 'string',
      array: true,
      describe: `server engine(s) to start in turn, comma-separated: ${SERVER_KINDS.join('|')} (ref-* = C reference servers from --kit). --mode is FastPort's name for it`,
    })
    .option('server-cpus', { type: 'string', describe: 'CPU list for the server (taskset -c); default: first half of the cores' })
    .option('client-cpus', { type: 'string', describe: 'CPU list for the load generator; default: the other cores' })
    .option('pin', { type: 'boolean', default: true, describe: 'pin server and load generator with taskset (--no-pin to leave them free)' })
    .option('server-threads', { type: 'number', describe: "server's native I/O threads (fastport-server --threads; ref-echo -t)" })
    .option('server-pid', { type: 'number', describe: 'with --target: pid of the server, for CPU and RSS from /proc' })
    .option('server-bin', { type: 'string', describe: 'fastport-server script to start (default: the workspace one)' })
    .option('server-arg', { type: 'string', array: true, describe: 'extra argument passed to fastport-server (repeatable)' })
    .option('server-mode', { choices: ['echo', 'app'] as const, describe: 'fastport-server --mode; default: echo for --protocol raw, app for benchmark' })
    .option('kit', { type: 'string', default: process.env['FASTPORT_KIT'] ?? '/tmp/kit', describe: 'directory with echo-bench and ref-echo (scripts/build-kit.sh)' })
    .group(['workload', 'connections', 'depth', 'size', 'duration', 'warmup', 'framing', 'max-frame', 'protocol', 'rate', 'sources', 'close', 'per-process', 'settle', 'wait-quiet', 'retry-noisy', 'repeat'], 'Workload:')
    .option('workload', {
      alias: 'w',
      choices: ['rr', 'open', 'bandwidth', 'connect', 'idle'] as const,
      describe: 'rr: closed-loop request/response; open: fixed --rate; bandwidth: 1 MiB+ messages; connect: connects/s; idle: server memory per idle connection',
    })
    .option('connections', { alias: 'c', type: 'number', describe: 'connections (connect: concurrent connect loops; idle: idle connections). Default 50 (bandwidth 4, connect 8, idle 10000)' })
    .option('depth', { alias: 'd', type: 'number', describe: 'messages in flight per connection (closed loop). Default 1 (bandwidth 2)' })
    .option('size', { alias: 's', type: 'number', describe: 'payload bytes per message. Default 64 (bandwidth 1 MiB)' })
    .option('duration', { alias: 't', type: 'number', default: 5, describe: 'measured seconds per target' })
    .option('warmup', { type: 'number', default: 1, describe: 'seconds of load before measuring' })
    .option('framing', { choices: ['fastport', 'large', 'u32le'] as const, describe: 'frame format (default fastport; bandwidth: large)' })
    .option('max-frame', { type: 'number', describe: 'largest frame for large/u32le (default: 16 MiB, or enough for --size)' })
    .option('protocol', {
      choices: ['raw', 'benchmark'] as const,
      default: 'raw' as const,
      describe: 'raw: payload echoed verbatim (server --mode echo); benchmark: BenchmarkRequest 0x1001 → BenchmarkResponse 0x1002 (--mode app)',
    })
    .option('rate', { type: 'number', describe: 'open loop: total messages per second (implies --workload open)' })
    .option('sources', { type: 'number', describe: 'spread connections over this many source addresses 127.0.0.2… (0: the kernel picks; default 0, idle: 4 or 1 per 5,000 connections)' })
    .option('close', { choices: ['graceful', 'abort'] as const, default: 'graceful' as const, describe: 'connect workload: close with FIN or RST' })
    .option('per-process', { type: 'number', default: 10000, describe: 'idle: connections per client process (a process may open 20,000 files)' })
    .option('settle', { type: 'number', default: 2, describe: 'idle: seconds to wait after connecting before measuring' })
    .option('repeat', { type: 'number', default: 1, describe: 'rounds per target on the same server (each with echo-bench when asked); the median round is reported' })
    .option('retry-noisy', { type: 'number', default: 0, describe: 'measure a target again, up to N times, when other processes used the CPUs during its window' })
    .option('wait-quiet', { type: 'number', default: 0, describe: 'before each target, wait up to N s until other processes leave the CPUs idle (shared machines)' })
    .group(['client-engine', 'client-threads', 'client-io-threads', 'client-layer'], 'Load generator:')
    .option('client-engine', { choices: ['auto', ...ENGINE_KINDS] as const, default: 'auto' as const, describe: 'engine of the load generator (auto: uring → epoll → node)' })
    .option('client-threads', { type: 'number', describe: 'load threads, each with its own engine (default: one per client CPU; 0 = inline on the main thread)' })
    .option('client-layer', {
      choices: ['engine', 'session'] as const,
      default: 'engine' as const,
      describe: 'engine: the load threads frame raw requests on the engine directly (leanest); session: through Client/Session like an application (always for --protocol benchmark)',
    })
    .option('client-io-threads', { type: 'number', describe: "native I/O threads per load thread (default 0 when pinned: inline on the thread's loop)" })
    .group(['compare', 'echo-bench', 'json', 'csv', 'chart', 'markdown', 'label', 'out-dir', 'progress'], 'Output:')
    .option('compare', { type: 'boolean', default: false, describe: 'all engines (default: the available ones) in one table with ratios to the first; writes chart, CSV and JSON to --out-dir' })
    .option('echo-bench', { type: 'boolean', default: false, describe: 'also run the C echo-bench (from --kit) on each target with the same settings and pinning' })
    .option('json', { type: 'string', describe: 'write the JSON report to FILE (no FILE: print it on stdout)' })
    .option('csv', { type: 'string', describe: 'write CSV rows to FILE (no FILE: print on stdout)' })
    .option('chart', { type: 'string', describe: 'write the SVG chart to FILE' })
    .option('markdown', { type: 'string', describe: 'write/update a section of this Markdown file (e.g. BENCHMARKS.md)' })
    .option('label', { type: 'string', describe: 'name of the Markdown section and of default output files' })
    .option('out-dir', { type: 'string', default: 'bench-results', describe: 'where --compare writes its files' })
    .option('progress', { type: 'boolean', default: true, describe: 'live progress bar on a TTY' })
    .group(['ui', 'ui-port', 'ui-host'], 'Live dashboard:')
    .option('ui', { type: 'boolean', default: false, describe: 'serve the live A/B dashboard on 127.0.0.1 (open the printed URL); the page starts and stops the load' })
    .option('ui-port', { type: 'number', default: 8080, describe: 'port of the dashboard (0: any free port)' })
    .option('ui-host', { type: 'string', default: '127.0.0.1', describe: 'only 127.0.0.1 is accepted: the dashboard starts processes and has no authentication' })
    .check((a) => {
      if (a.target !== undefined && a.engine !== undefined) throw new Error('--target and --engine exclude each other');
      return true;
    })
    .strict()
    .help()
    .alias('help', 'h')
    .version(VERSION)
    .wrap(Math.min(120, process.stdout.columns ?? 100));
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

/** Turns parsed flags into settings and output paths. Throws on inconsistent flags. */
export function settingsFromArgs(argv: string[]): { settings: BenchSettings; outputs: CliOutputs } {
  const a = buildParser(argv).parseSync();
  const workload: Workload = a.workload ?? (a.rate !== undefined ? 'open' : 'rr');
  const d = WORKLOAD_DEFAULTS[workload];
  const framing: Framing = a.framing ?? d.framing;
  const size = a.size ?? d.size;
  const maxFrame = a['max-frame'] ?? maxFrameFor(framing, size);
  const protocol: Protocol = a.protocol;
  if (!(size >= 1)) throw new Error('--size must be at least 1');
  if (size > maxPayload(framing, maxFrame) - (protocol === 'benchmark' ? 32 : 0)) {
    throw new Error(`--size ${size} does not fit ${framing} framing (max payload ${maxPayload(framing, maxFrame)}): use --framing large`);
  }
  if (workload === 'open' && !(a.rate !== undefined && a.rate > 0)) throw new Error('--workload open needs --rate N (messages per second)');

  // targets
  let targets: TargetSpec[];
  if (a.target !== undefined) {
    const { host, port } = parseTarget(a.target);
    targets = [{ kind: 'external', host, port, pid: a['server-pid'] }];
  } else {
    let kinds = list(a.engine as string[] | undefined);
    if (kinds.length === 0) {
      kinds = a.compare ? listEngines().filter((e) => e.available && (e.kind === 'uring' || e.kind === 'epoll' || e.kind === 'node' || e.kind === 'iocp' || e.kind === 'rio')).map((e) => e.kind) : ['auto'];
    }
    targets = kinds.map((k) => {
      if (!(SERVER_KINDS as readonly string[]).includes(k)) throw new Error(`unknown engine '${k}' (known: ${SERVER_KINDS.join(', ')})`);
      const kind = k as ServerKind;
      if (kind === 'ref-uring' || kind === 'ref-epoll') return { kind: 'ref', flavor: kind === 'ref-uring' ? 'uring' : 'epoll' };
      return { kind: 'engine', engine: kind as EngineRequest };
    });
  }

  // pinning
  let serverCpus: string | undefined;
  let clientCpus: string | undefined;
  let pinNote: string;
  const defaults = defaultCpus();
  if (!a.pin) pinNote = 'not pinned (--no-pin)';
  else if (!hasTaskset()) pinNote = 'not pinned: taskset not found (util-linux)';
  else if (defaults === undefined && a['server-cpus'] === undefined) pinNote = 'not pinned: one CPU';
  else {
    serverCpus = a['server-cpus'] ?? defaults?.server;
    clientCpus = a['client-cpus'] ?? defaults?.client;
    for (const c of [serverCpus, clientCpus]) if (c !== undefined) parseCpuList(c);
    pinNote = 'taskset';
  }
  const clientCpuCount = clientCpus !== undefined ? parseCpuList(clientCpus).length : Math.max(1, Math.floor(os.cpus().length / 2));
  let clientThreads = a['client-threads'] ?? clientCpuCount;
  if (workload === 'idle') clientThreads = 1;
  if (clientThreads < 0) throw new Error('--client-threads must be >= 0');
  const clientIoThreads = a['client-io-threads'] ?? (clientCpus !== undefined ? 0 : undefined);
  const connections = a.connections ?? d.connections;
  // bind()-before-connect picks a port by scanning the source address's ports, which gets slow
  // (and fails with EADDRINUSE) as one address fills up: idle runs spread over several addresses
  const sources = a.sources ?? (workload === 'idle' ? Math.max(4, Math.ceil(connections / 5000)) : 0);

  const settings: BenchSettings = {
    targets,
    workload,
    connections,
    depth: a.depth ?? d.depth,
    size,
    duration: a.duration,
    warmup: a.warmup,
    framing,
    maxFrame,
    protocol,
    rate: a.rate ?? 0,
    sources,
    closeMode: a.close,
    clientEngine: a['client-engine'],
    clientThreads,
    clientIoThreads,
    clientLayer: a['client-layer'],
    serverCpus,
    clientCpus,
    pinNote,
    serverThreads: a['server-threads'],
    serverBin: a['server-bin'] ?? defaultServerBin(),
    serverArgs: list(a['server-arg'] as string[] | undefined),
    serverMode: a['server-mode'] ?? (protocol === 'benchmark' ? 'app' : 'echo'),
    kit: a.kit,
    echoBench: a['echo-bench'],
    perProcess: Math.min(a['per-process'], 19000),
    settle: a.settle,
    waitQuiet: a['wait-quiet'],
    retryNoisy: Math.max(0, a['retry-noisy']),
    repeat: Math.max(1, Math.floor(a.repeat)),
    progress: a.progress,
    command: ['fastport-bench', ...argv].map((x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x}'`)).join(' '),
    version: VERSION,
  };
  if (settings.connections < 1) throw new Error('--connections must be at least 1');
  if (settings.depth < 1) throw new Error('--depth must be at least 1');
  if (!(settings.duration > 0)) throw new Error('--duration must be > 0');

  const label = a.label ?? `${workload}-${settings.connections}c${workload === 'rr' || workload === 'bandwidth' ? `-d${settings.depth}` : ''}-${size}B`;
  const base = path.join(a['out-dir'], `fastport-bench-${label}-${stamp()}`);
  const uiPort = a['ui-port'];
  if (a.ui && !(Number.isInteger(uiPort) && uiPort >= 0 && uiPort <= 65535)) throw new Error(`--ui-port must be 0..65535 (got ${uiPort})`);
  if (a.ui) checkUiHost(a['ui-host']);
  const outputs: CliOutputs = {
    ui: a.ui ? { host: a['ui-host'], port: uiPort } : undefined,
    json: a.json ?? (a.compare ? `${base}.json` : undefined),
    csv: a.csv ?? (a.compare ? `${base}.csv` : undefined),
    chart: a.chart ?? (a.compare ? `${base}.svg` : undefined),
    markdown: a.markdown,
    label,
  };
  if (outputs.json === '' && outputs.csv === '') throw new Error('--json and --csv cannot both print on stdout');
  return { settings, outputs };
}

function writeFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, text);
}

/** Writes the requested outputs; returns what was written (for the closing lines). */
export function writeOutputs(report: BenchReport, outputs: CliOutputs): string[] {
  const written: string[] = [];
  if (outputs.chart !== undefined) {
    writeFile(outputs.chart, renderChart(report));
    written.push(`chart ${outputs.chart}`);
  }
  if (outputs.csv !== undefined && outputs.csv !== '') {
    writeFile(outputs.csv, toCsv(report));
    written.push(`csv ${outputs.csv}`);
  }
  if (outputs.json !== undefined && outputs.json !== '') {
    writeFile(outputs.json, toJson(report));
    written.push(`json ${outputs.json}`);
  }
  if (outputs.markdown !== undefined) {
    updateMarkdownFile(outputs.markdown, outputs.label, toMarkdown(report, outputs.chart, outputs.markdown));
    written.push(`markdown ${outputs.markdown} (section ${outputs.label})`);
  }
  return written;
}

/** The dashboard pins itself like a CLI run does (servers on --server-cpus, this process on --client-cpus). */
function pinnedForUi(s: BenchSettings): BenchSettings {
  if (s.clientCpus === undefined) return s;
  try {
    pinSelf(s.clientCpus);
    return { ...s, pinNote: `${s.pinNote}; load generator pinned itself with taskset -a -p` };
  } catch (err) {
    return { ...s, clientCpus: undefined, pinNote: `${s.pinNote}; pinning the load generator failed: ${(err as Error).message}` };
  }
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--list-engines') {
    for (const e of listEngines()) console.log(`${e.kind.padEnd(6)} ${e.available ? 'available  ' : 'unavailable'} ${e.reason}`);
    return;
  }
  let parsed: { settings: BenchSettings; outputs: CliOutputs };
  try {
    parsed = settingsFromArgs(argv);
  } catch (err) {
    console.error(`fastport-bench: ${(err as Error).message}`);
    process.exitCode = 2;
    return;
  }
  const { settings, outputs } = parsed;
  if (outputs.ui !== undefined) {
    try {
      await runUi({ host: outputs.ui.host, port: outputs.ui.port, base: pinnedForUi(settings) });
    } catch (err) {
      console.error(`fastport-bench: ${(err as Error).message}`);
      process.exitCode = 1;
    }
    return;
  }
  installCleanup();
  try {
    const report = await runBench(settings);
    const text = formatReport(report);
    const toStdout = outputs.json === '' ? toJson(report) : outputs.csv === '' ? toCsv(report) : undefined;
    if (toStdout !== undefined) {
      process.stderr.write(`${text}\n`);
      process.stdout.write(toStdout);
    } else console.log(text);
    const written = writeOutputs(report, outputs);
    if (written.length > 0) (toStdout !== undefined ? console.error : console.log)(`\nwrote ${written.join(', ')}`);
    const bad = report.results.some((r) => r.status === 'failed' || r.errors > 0 || r.mismatches > 0);
    process.exitCode = bad ? 1 : 0;
  } catch (err) {
    console.error(`fastport-bench: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}
