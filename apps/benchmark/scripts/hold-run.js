#!/usr/bin/env node
'use strict';
// The many-connections run: fastport-server with enough workers (a process
// may hold 20,000 files here) and several echo-bench hold-mode processes
// (several 127.0.0.x sources each), every connection sending a heartbeat
// every --interval seconds. Reports connections lost, heartbeat RTT p50/p99,
// server CPU, server memory per connection (RSS and JS heap, all server
// processes) and the sessions gauge scraped from /metrics/sum next to the
// live count of established connections.
//
//   node apps/benchmark/scripts/hold-run.js --connections 100000 --duration 600
//   node apps/benchmark/scripts/hold-run.js --connections 3000 --duration 30 --json /tmp/hold.json
//
// Needs the built workspace (npx -y pnpm@10 build) and the echo-bench kit
// (built into --kit with /work/shared/tools/echo-bench/build.sh, or
// apps/benchmark/scripts/build-kit.sh, when missing).
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const proc = require('../dist/proc.js');

const PER_PROCESS = 15_000; // connections per server worker / per echo-bench: well under 20,000 files

function parseArgs(argv) {
  const o = {
    connections: 100_000,
    duration: 600,
    interval: 5,
    workers: 0,
    clients: 0,
    sources: 8,
    rate: 2000,
    engine: 'auto',
    threads: undefined,
    kit: '/tmp/kit',
    echoBenchSrc: process.env.ECHO_BENCH_SRC || path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'tools', 'echo-bench'),
    json: undefined,
    load: 'auto',
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--connections' || k === '-c') o.connections = Number(v());
    else if (k === '--duration' || k === '-d') o.duration = Number(v());
    else if (k === '--interval') o.interval = Number(v());
    else if (k === '--workers') o.workers = Number(v());
    else if (k === '--clients') o.clients = Number(v());
    else if (k === '--sources') o.sources = Number(v());
    else if (k === '--rate') o.rate = Number(v());
    else if (k === '--engine') o.engine = v();
    else if (k === '--threads') o.threads = Number(v());
    else if (k === '--kit') o.kit = v();
    else if (k === '--echo-bench-src') o.echoBenchSrc = v();
    else if (k === '--json') o.json = v();
    else if (k === '--load') o.load = v();
    else if (k === '--quiet') o.quiet = true;
    else if (k === '--help' || k === '-h') {
      console.log(
        'hold-run.js [--connections N=100000] [--duration S=600] [--interval S=5] [--workers N] [--clients N] [--sources N=8]\n' +
          '            [--rate connects/s per client=2000] [--engine auto|uring|epoll|node] [--threads N] [--kit DIR=/tmp/kit] [--json FILE] [--quiet]\n' +
          '            [--load auto|echo-bench|node]   auto: echo-bench (built into --kit from ../shared/tools/echo-bench when missing), else scripts/hold-client.js',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!['auto', 'echo-bench', 'node'].includes(o.load)) throw new Error(`--load must be auto, echo-bench or node`);
  for (const key of ['connections', 'duration', 'interval', 'sources', 'rate']) {
    if (!Number.isFinite(o[key]) || o[key] <= 0) throw new Error(`--${key} must be positive`);
  }
  if (o.workers <= 0) o.workers = Math.max(1, Math.ceil(o.connections / PER_PROCESS));
  if (o.clients <= 0) o.clients = Math.max(1, Math.ceil(o.connections / PER_PROCESS));
  if (o.connections / o.workers > 19_000) throw new Error(`${o.connections} connections over ${o.workers} workers passes the 20,000 files a process may hold: add --workers`);
  if (o.connections / o.clients > 19_000) throw new Error(`${o.connections} connections over ${o.clients} echo-bench processes passes 20,000 files each: add --clients`);
  // Each source address gives about 28,000 ephemeral ports towards one server port.
  if (o.connections > o.sources * 25_000) throw new Error(`--sources ${o.sources} cannot carry ${o.connections} connections (about 25,000 per 127.0.0.x)`);
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (o, ...a) => {
  if (!o.quiet) console.error(`[hold-run ${new Date().toISOString().slice(11, 19)}]`, ...a);
};

/** The load generator's command: echo-bench from the kit (built when missing), or the node stand-in. */
function loadCommand(o) {
  const bin = path.join(o.kit, 'echo-bench');
  const src = path.join(o.echoBenchSrc, 'echo-bench.c');
  if (o.load !== 'node') {
    if (fs.existsSync(bin)) return { tool: 'echo-bench', cmd: bin, pre: [] };
    if (fs.existsSync(src)) {
      log(o, `building echo-bench into ${o.kit}`);
      fs.mkdirSync(o.kit, { recursive: true });
      execFileSync('gcc', ['-O2', '-Wall', '-pthread', src, '-o', bin], { stdio: 'inherit' });
      return { tool: 'echo-bench', cmd: bin, pre: [] };
    }
    if (o.load === 'echo-bench') throw new Error(`no ${bin} and no sources at ${src} (set --echo-bench-src or ECHO_BENCH_SRC)`);
    log(o, `echo-bench sources not found at ${src}: using scripts/hold-client.js (node:net) as the load`);
  }
  return { tool: 'hold-client.js', cmd: process.execPath, pre: [path.join(__dirname, 'hold-client.js')] };
}

function serverBin() {
  try {
    return path.join(path.dirname(require.resolve('fastport-server/package.json')), 'bin', 'fastport-server');
  } catch {
    return path.resolve(__dirname, '..', '..', 'server', 'bin', 'fastport-server');
  }
}

function httpGet(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('metrics timeout')));
  });
}

function metric(text, series) {
  let sum;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const name = line.slice(0, sp);
    if (name === series || name.startsWith(series + '{')) sum = (sum ?? 0) + Number(line.slice(sp + 1));
  }
  return sum;
}

/**
 * Established TCP connections whose local end is 127.0.0.1:port (the server's side), from
 * /proc/net/tcp. The clients' ends are 127.0.0.2 and up (-S), so a client port equal to
 * the server's is not counted.
 */
function establishedOn(port) {
  const local = '0100007F:' + port.toString(16).toUpperCase().padStart(4, '0');
  // A socket can be listed twice when the table changes between two reads of the file: count each pair once.
  const seen = new Set();
  for (const f of ['/proc/net/tcp']) {
    let text;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '01') continue;
      if (cols[1] === local) seen.add(cols[2]);
    }
  }
  return seen.size;
}

function sampleAll(pids) {
  let rss = 0;
  let ticks = 0;
  for (const pid of pids) {
    const s = proc.sampleProcess(pid);
    if (s === undefined) continue;
    rss += s.rssBytes;
    ticks += s.utimeTicks + s.stimeTicks;
  }
  return { at: Date.now(), rss, ticks };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const load = loadCommand(o);
  const args = ['--workers', String(o.workers), '--engine', o.engine, '--mode', 'echo', '--framing', 'fastport', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0'];
  if (o.threads !== undefined) args.push('--threads', String(o.threads));
  log(o, `fastport-server ${args.join(' ')}`);
  const server = spawn(process.execPath, ['--expose-gc', serverBin(), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let buf = '';
  server.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const t = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(t));
      } catch {
        /* not a log line */
      }
    }
  });
  const serverExit = new Promise((r) => server.on('exit', (code, signal) => r({ code, signal })));
  const children = [];
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (server.exitCode === null) server.kill('SIGKILL');
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    const waitLine = async (pred, what, ms = 60_000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const l = lines.find(pred);
        if (l) return l;
        if (server.exitCode !== null) throw new Error(`fastport-server exited before ${what}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };
    const ready = await waitLine((l) => l.supervisor === true, 'the server to listen');
    const port = ready.port;
    const metricsPort = (await waitLine((l) => typeof l.metricsPort === 'number', 'the metrics listener')).metricsPort;
    const workerPids = () => {
      const byWorker = new Map();
      for (const l of lines) if (l.msg === 'worker listening') byWorker.set(l.worker, l.pid);
      return [server.pid, ...byWorker.values()];
    };
    const engine = lines.find((l) => l.msg === 'worker listening')?.engine;
    log(o, `listening on 127.0.0.1:${port} (${o.workers} workers, engine ${engine}), metrics on :${metricsPort}`);
    await sleep(1000);
    // SIGUSR2: every worker runs a full GC (the server runs with --expose-gc, its workers inherit it) and logs
    // a 'stats snapshot' line with process.memoryUsage(); RSS is then read from /proc for every server process.
    const snapshot = async () => {
      const from = lines.length;
      server.kill('SIGUSR2');
      const deadline = Date.now() + 15_000;
      let snaps = [];
      while (Date.now() < deadline) {
        snaps = lines.slice(from).filter((l) => l.msg === 'stats snapshot');
        if (new Set(snaps.map((l) => l.worker)).size >= o.workers) break;
        await sleep(50);
      }
      const heap = snaps.reduce((n, l) => n + (l.memory?.heapUsed ?? 0), 0);
      return { ...sampleAll(workerPids()), heap, snapshots: snaps.length };
    };
    const base = await snapshot();

    // The clients open their connections during echo-bench's warmup (paced by --rate), then hold them for --duration.
    const per = Math.floor(o.connections / o.clients);
    const counts = Array.from({ length: o.clients }, (_, i) => per + (i < o.connections % o.clients ? 1 : 0));
    const warmup = Math.ceil(Math.max(...counts) / o.rate) + 3 + Math.ceil(o.interval);
    const outputs = counts.map(() => '');
    const exits = counts.map((n, i) => {
      const a = ['-a', '127.0.0.1', '-p', String(port), '-c', String(n), '-m', 'hold', '-i', String(o.interval), '-d', String(o.duration), '-w', String(warmup), '-s', '16', '-H', 'fastport', '-S', String(o.sources), '-r', String(o.rate)];
      if (i === 0) log(o, `${o.clients} x ${load.tool} ${a.join(' ')}`);
      const c = spawn(load.cmd, [...load.pre, ...a], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      c.stdout.on('data', (d) => (outputs[i] += d));
      return new Promise((r) => c.on('exit', (code) => r(code)));
    });

    // Steady state: all connected, before the clients stop.
    const startAt = Date.now();
    await sleep((warmup + Math.min(o.interval, o.duration / 4)) * 1000);
    const steadyA = sampleAll(workerPids());
    const gaugeA = metric(await httpGet(metricsPort, '/metrics/sum'), 'fastport_sessions_active');
    const liveA = establishedOn(port);
    const gaugeB = metric(await httpGet(metricsPort, '/metrics/sum'), 'fastport_sessions_active');
    const untilEnd = startAt + (warmup + o.duration) * 1000 - Date.now() - 3000;
    if (untilEnd > 0) await sleep(untilEnd);
    const steadyB = sampleAll(workerPids());
    const mem = await snapshot();
    const gaugeEnd = metric(await httpGet(metricsPort, '/metrics/sum'), 'fastport_sessions_active');
    const liveEnd = establishedOn(port);
    const sumText = await httpGet(metricsPort, '/metrics/sum');
    log(o, 'steady-state samples taken; waiting for the clients to finish');
    const codes = await Promise.all(exits);
    log(o, 'clients finished; stopping the server (SIGTERM)');
    const results = outputs.map((t) => {
      try {
        return JSON.parse(t.trim().split('\n').pop());
      } catch {
        return { error: `no JSON from echo-bench: ${t}` };
      }
    });

    const secs = (steadyB.at - steadyA.at) / 1000;
    const cpuPct = secs > 0 ? ((steadyB.ticks - steadyA.ticks) / proc.clockTicks() / secs) * 100 : NaN;
    const connected = results.reduce((n, r) => n + (r.connected ?? 0), 0);
    const lost = results.reduce((n, r) => n + (r.closed ?? 0) + (r.errors ?? 0), 0);
    const report = {
      at: new Date().toISOString(),
      requested: o.connections,
      workers: o.workers,
      clients: o.clients,
      sources: o.sources,
      engine,
      load: load.tool,
      intervalS: o.interval,
      durationS: o.duration,
      connected,
      connectFailed: results.reduce((n, r) => n + (r.connect_fail ?? 0), 0),
      lost,
      bad: results.reduce((n, r) => n + (r.bad ?? 0), 0),
      heartbeats: results.reduce((n, r) => n + (r.msgs ?? 0), 0),
      rttP50UsPerClient: results.map((r) => r.p50_us),
      rttP99UsPerClient: results.map((r) => r.p99_us),
      rttP50UsMax: Math.max(...results.map((r) => r.p50_us ?? NaN)),
      rttP99UsMax: Math.max(...results.map((r) => r.p99_us ?? NaN)),
      serverCpuPctOfOneCore: Math.round(cpuPct * 10) / 10,
      serverRssBytes: mem.rss,
      serverRssBaseBytes: base.rss,
      rssBytesPerConnection: connected > 0 ? Math.round((mem.rss - base.rss) / connected) : NaN,
      heapUsedBytes: mem.heap,
      heapBaseBytes: base.heap,
      heapBytesPerConnection: connected > 0 ? Math.round((mem.heap - base.heap) / connected) : NaN,
      sessionsGauge: { steady: [gaugeA, gaugeB], live: liveA, end: gaugeEnd, liveEnd },
      gaugeMatchesLive: gaugeA === liveA && gaugeB === liveA,
      serverCloses: metric(sumText, 'fastport_closes_total') ?? 0,
      echoBenchExitCodes: codes,
      echoBench: results,
    };
    server.kill('SIGTERM');
    let stopTimer;
    const exit = await Promise.race([serverExit, new Promise((r) => (stopTimer = setTimeout(() => r({ code: null, signal: 'timeout' }), 60_000)))]);
    clearTimeout(stopTimer);
    log(o, `server exited (${exit.signal ?? exit.code})`);
    report.serverExit = exit;
    const text = JSON.stringify(report, null, 2);
    if (o.json) fs.writeFileSync(o.json, text + '\n');
    console.log(text);
    const ok = connected === o.connections && lost === 0 && report.bad === 0 && report.gaugeMatchesLive && exit.code === 0 && codes.every((c) => c === 0);
    process.exitCode = ok ? 0 : 1;
  } finally {
    cleanup();
  }
}

main().catch((err) => {
  console.error(`[hold-run] ${err.stack || err.message}`);
  process.exit(2);
});
