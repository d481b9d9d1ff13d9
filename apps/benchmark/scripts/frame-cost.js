#!/usr/bin/env node
// The per-frame cost of fastport-server's echo, in two figures that do not
// depend on how busy the machine is: JS heap bytes allocated per echoed
// message (V8's own count, --trace-gc-nvp "allocated=") and server CPU time
// per message. Throughput on a shared 2-core VM swings by ±20% from run to
// run; these two move only when the code does, so each optimisation of the
// per-frame path can be judged on its own (BENCHMARKS.md, issue 11).
//
//   node apps/benchmark/scripts/frame-cost.js [--kit /tmp/kit] [--engines uring,epoll,node]
//        [--cells 50x16,50x1] [--duration 5] [--tree label=dir ...]
//
// The allocation count misses what was allocated between the last GC and each
// end of the measured window, so it is exact to within one young-generation
// fill (a few MiB) over millions of messages: a few bytes per message.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const { cpuTicks, parseTree, waitPort } = require('./c-kit');

function parseArgs(argv) {
  const o = { kit: '/tmp/kit', duration: 5, trees: [], engines: ['uring', 'epoll', 'node'], cells: ['50x16', '50x1'], port: 19800 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--kit') o.kit = v();
    else if (a === '--duration') o.duration = Number(v());
    else if (a === '--tree') o.trees.push(parseTree(v()));
    else if (a === '--engines') o.engines = v().split(',');
    else if (a === '--cells') o.cells = v().split(',');
    else if (a === '--port') o.port = Number(v());
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.trees.length === 0) o.trees.push({ label: 'fastport', dir: path.resolve(__dirname, '../../..') });
  return o;
}

function cellArgs(cell) {
  const m = /^(\d+)x(\d+)$/.exec(cell);
  if (!m) throw new Error(`bad cell ${cell} (want CONNSxDEPTH)`);
  return { conns: Number(m[1]), depth: Number(m[2]) };
}

const TICK_US = 1e6 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

function echoBench(o, port, cell, secs) {
  const c = cellArgs(cell);
  const r = spawnSync('taskset', ['-c', '1', path.join(o.kit, 'echo-bench'), '-p', String(port), '-H', 'u32le', '-d', String(secs), '-w', '0', '-c', String(c.conns), '-k', String(c.depth), '-s', '64'], {
    encoding: 'utf8',
    timeout: (secs + 30) * 1000,
  });
  const res = JSON.parse((r.stdout || '').trim().split('\n').pop());
  if (res.bad !== 0 || res.errors !== 0) throw new Error(`echo-bench ${cell}: bad ${res.bad} errors ${res.errors}`);
  return res;
}

const settle = () => new Promise((r) => setTimeout(r, 300));

async function measure(tree, engine, cell, o, port) {
  const argv =
    tree === null
      ? [path.join(__dirname, 'node-net-echo.js'), String(port)]
      : [path.join(tree.dir, 'apps/server/bin/fastport-server'), '--engine', engine, '--mode', 'echo', '--framing', 'u32le', '--port', String(port), '--log-level', 'warn'];
  const child = spawn('taskset', ['-c', '0', process.execPath, '--trace-gc-nvp', ...argv], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let allocated = 0;
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const m = / allocated=(\d+)/.exec(line);
      if (m) allocated += Number(m[1]);
    }
  });
  try {
    await waitPort(port, 10_000);
    echoBench(o, port, cell, 1); // warm up: JIT, pools, rings
    await settle();
    const a0 = allocated;
    const t0 = cpuTicks(child.pid);
    const res = echoBench(o, port, cell, o.duration);
    const t1 = cpuTicks(child.pid);
    await settle();
    return { msgs: res.msgs, msgsPerS: res.msgs_per_s, bytesPerMsg: (allocated - a0) / res.msgs, cpuUsPerMsg: ((t1 - t0) * TICK_US) / res.msgs };
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const rows = [];
  let port = o.port;
  for (const cell of o.cells) {
    for (const engine of o.engines) {
      // The node engine's yardstick: the plain node:net echo a user would write.
      const trees = engine === 'node' ? [...o.trees, null] : o.trees;
      for (const tree of trees) {
        const r = await measure(tree, engine, cell, o, port++);
        const row = { cell, engine: tree === null ? 'node:net echo' : engine, tree: tree === null ? '-' : tree.label, ...r };
        rows.push(row);
        console.log(JSON.stringify(row));
      }
    }
  }
  console.log('| cell | engine | tree | heap bytes / msg | server CPU µs / msg | msgs/s (noisy) |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.cell} | ${r.engine} | ${r.tree} | ${r.bytesPerMsg.toFixed(1)} | ${r.cpuUsPerMsg.toFixed(2)} | ${Math.round(r.msgsPerS).toLocaleString('en-US')} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
