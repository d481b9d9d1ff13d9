#!/usr/bin/env node
// The engine table of BENCHMARKS.md: echo-bench (the independent C load
// generator) against the C reference servers and against fastport-server's
// engines, one cell at a time, the servers alternated within each round so
// every ratio pairs runs made seconds apart on the same machine state.
// Several trees can be compared in one run (a build of an earlier commit as
// "before"), which is how a change is measured against what it replaced.
//
//   node apps/benchmark/scripts/engine-vs-ref.js [--kit /tmp/kit] [--rounds 3] [--duration 5]
//        [--tree after=. --tree before=/path/to/old/checkout] [--engines uring,epoll]
//        [--cells 50x1,500x1,10x1MiB] [--markdown out.md]
//
// The reference for the `node` engine is not C but the plain node:net framed
// echo a user would write by hand (node-net-echo.js).
//
// Server on CPU 0, echo-bench on CPU 1 (taskset). Prints one JSON line per
// measurement and, at the end, a markdown table of median paired ratios.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { cpuTicks, parseTree, waitPort } = require('./c-kit');

function parseArgs(argv) {
  const o = { kit: '/tmp/kit', rounds: 3, duration: 5, trees: [], engines: ['uring', 'epoll'], cells: ['50x1', '500x1', '10x1MiB'], markdown: null, port: 19700 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--kit') o.kit = v();
    else if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--duration') o.duration = Number(v());
    else if (a === '--tree') o.trees.push(parseTree(v()));
    else if (a === '--engines') o.engines = v().split(',');
    else if (a === '--cells') o.cells = v().split(',');
    else if (a === '--markdown') o.markdown = v();
    else if (a === '--port') o.port = Number(v());
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.trees.length === 0) o.trees.push({ label: 'fastport', dir: path.resolve(__dirname, '../../..') });
  return o;
}

function cellArgs(cell) {
  const m = /^(\d+)x(\d+)(MiB)?$/.exec(cell);
  if (!m) throw new Error(`bad cell ${cell} (want CONNSxDEPTH or CONNSx1MiB)`);
  if (m[3]) return { conns: Number(m[1]), depth: 1, size: Number(m[2]) * 1024 * 1024 };
  return { conns: Number(m[1]), depth: Number(m[2]), size: 64 };
}

function startServer(server, port) {
  const argv =
    server.kind === 'ref'
      ? server.api === 'node'
        ? [process.execPath, path.join(__dirname, 'node-net-echo.js'), String(port)]
        : [path.join(server.kit, 'ref-echo'), server.api, String(port)]
      : [process.execPath, path.join(server.dir, 'apps/server/bin/fastport-server'), '--engine', server.engine, '--mode', 'echo', '--framing', 'u32le', '--port', String(port), '--log-level', 'warn'];
  const child = spawn('taskset', ['-c', '0', ...argv], { stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

async function measure(server, cell, o, port) {
  const child = startServer(server, port);
  try {
    await waitPort(port, 10_000);
    const c = cellArgs(cell);
    const t0 = cpuTicks(child.pid);
    const r = spawnSync('taskset', ['-c', '1', path.join(o.kit, 'echo-bench'), '-p', String(port), '-H', 'u32le', '-d', String(o.duration), '-w', '1', '-c', String(c.conns), '-k', String(c.depth), '-s', String(c.size)], {
      encoding: 'utf8',
      timeout: (o.duration + 30) * 1000,
    });
    const t1 = cpuTicks(child.pid);
    const line = (r.stdout || '').trim().split('\n').pop();
    const res = JSON.parse(line);
    res.server_cpu_ticks = t1 - t0;
    return res;
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/** The reference an engine is compared with. */
const refName = (api) => (api === 'node' ? 'node:net echo' : `ref-echo ${api}`);

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const servers = [];
  for (const api of o.engines) servers.push({ kind: 'ref', api, kit: o.kit, name: refName(api) });
  for (const t of o.trees) for (const e of o.engines) servers.push({ kind: 'fastport', engine: e, dir: t.dir, name: `${t.label} ${e}`, api: e });
  const results = {}; // cell -> server name -> [msgs/s per round]
  let port = o.port;
  for (const cell of o.cells) {
    results[cell] = {};
    for (let round = 0; round < o.rounds; round++) {
      for (const s of servers) {
        const r = await measure(s, cell, o, port++);
        if (r.bad !== 0 || r.errors !== 0) throw new Error(`${s.name} ${cell}: bad ${r.bad} errors ${r.errors}`);
        (results[cell][s.name] ??= []).push(r);
        console.log(JSON.stringify({ cell, round, server: s.name, msgs_per_s: r.msgs_per_s, p99_us: r.p99_us, cpu: r.server_cpu_ticks }));
      }
    }
  }
  const lines = [];
  const cols = servers.filter((s) => s.kind === 'fastport');
  lines.push(`| cell | ${o.engines.map((e) => `${refName(e)} msgs/s`).join(' | ')} | ${cols.map((s) => `${s.name} / ref`).join(' | ')} |`);
  lines.push(`|${'---|'.repeat(1 + o.engines.length + cols.length)}`);
  for (const cell of o.cells) {
    const row = [cell];
    for (const e of o.engines) row.push(Math.round(median(results[cell][refName(e)].map((r) => r.msgs_per_s))).toLocaleString('en-US'));
    for (const s of cols) {
      const ref = results[cell][refName(s.api)];
      const ratios = results[cell][s.name].map((r, i) => r.msgs_per_s / ref[i].msgs_per_s);
      row.push(`**${median(ratios).toFixed(2)}** (${ratios.map((x) => x.toFixed(2)).join(', ')})`);
    }
    lines.push(`| ${row.join(' | ')} |`);
  }
  const table = lines.join('\n');
  console.log(table);
  if (o.markdown) fs.writeFileSync(o.markdown, table + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
