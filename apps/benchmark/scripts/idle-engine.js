#!/usr/bin/env node
// What an idle connection costs at the engine level (no session layer): a
// bare engine accepts N connections that send nothing; its RSS and JS heap
// (after a full GC) are read before and after, and the kernel's slab memory
// from /proc/meminfo (both ends of each loopback connection are in it, so
// half of the growth is the server side's).
//
//   node apps/benchmark/scripts/idle-engine.js [--engines uring,epoll,node] [-c 15000] [--per-process 5000]
//
// A process may open at most 20,000 files here, so the clients are several
// processes, each over its own 127.0.0.x source address.
'use strict';
const { fork } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const NATIVE_IO = path.resolve(__dirname, '../../../packages/native-io/dist/index.js');

function slabKiB() {
  const m = /^Slab:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

// ---- roles ---------------------------------------------------------------

async function serverRole(kind) {
  const { createEngine } = require(NATIVE_IO);
  let accepted = 0;
  const engine = createEngine({
    kind,
    handler: {
      onAccept() {
        accepted++;
      },
      onConnect() {},
      onData() {},
      onEnd() {},
      onDrain() {},
      onClose() {
        accepted--;
      },
      onListenerError() {},
    },
  });
  const info = await engine.listen({ host: '0.0.0.0', port: 0, backlog: 4096 });
  const measure = () => {
    global.gc();
    const m = process.memoryUsage();
    return { rss: m.rss, heap: m.heapUsed, external: m.external, accepted };
  };
  process.on('message', async (msg) => {
    if (msg.type === 'measure') process.send({ type: 'measure', ...measure() });
    if (msg.type === 'stop') {
      await engine.destroy();
      process.exit(0);
    }
  });
  process.send({ type: 'ready', port: info.port, engine: engine.info.kind });
}

function clientRole(port, count, source) {
  const sockets = [];
  let open = 0;
  let failed = 0;
  let inFlight = 0;
  let next = 0;
  const pump = () => {
    while (inFlight < 200 && next < count) {
      next++;
      inFlight++;
      const s = net.connect({ host: '127.0.0.1', port, localAddress: source });
      s.once('connect', () => {
        inFlight--;
        open++;
        sockets.push(s);
        done();
        pump();
      });
      s.once('error', () => {
        inFlight--;
        failed++;
        done();
        pump();
      });
    }
  };
  const done = () => {
    if (open + failed === count) process.send({ type: 'connected', open, failed });
  };
  process.on('message', (msg) => {
    if (msg.type === 'stop') {
      for (const s of sockets) s.destroy();
      process.exit(0);
    }
  });
  pump();
}

// ---- driver ----------------------------------------------------------------

function once(child, type) {
  return new Promise((resolve, reject) => {
    const on = (msg) => {
      if (msg.type === type) {
        child.off('message', on);
        resolve(msg);
      }
    };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before '${type}'`)));
  });
}

async function measureEngine(kind, total, perProcess) {
  const server = fork(__filename, ['--role', 'server', kind], { execArgv: ['--expose-gc'] });
  const ready = await once(server, 'ready');
  await new Promise((r) => setTimeout(r, 500));
  server.send({ type: 'measure' });
  const before = await once(server, 'measure');
  const slabBefore = slabKiB();
  const clients = [];
  for (let left = total, i = 0; left > 0; i++) {
    const n = Math.min(perProcess, left);
    left -= n;
    clients.push(fork(__filename, ['--role', 'client', String(ready.port), String(n), `127.0.0.${2 + i}`]));
  }
  const results = await Promise.all(clients.map((c) => once(c, 'connected')));
  const open = results.reduce((a, r) => a + r.open, 0);
  let after;
  for (let i = 0; i < 100; i++) {
    server.send({ type: 'measure' });
    after = await once(server, 'measure');
    if (after.accepted >= open) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 1000)); // let the kernel settle the last accepts
  server.send({ type: 'measure' });
  after = await once(server, 'measure');
  const slabAfter = slabKiB();
  for (const c of clients) c.send({ type: 'stop' });
  server.send({ type: 'stop' });
  await Promise.all([server, ...clients].map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r)))));
  const n = after.accepted;
  return {
    engine: ready.engine,
    connections: n,
    failed: results.reduce((a, r) => a + r.failed, 0),
    rssPerConn: (after.rss - before.rss) / n,
    heapPerConn: (after.heap - before.heap) / n,
    externalPerConn: (after.external - before.external) / n,
    kernelSlabPerConnBothEnds: ((slabAfter - slabBefore) * 1024) / n,
  };
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--role') {
    if (argv[1] === 'server') return serverRole(argv[2]);
    return clientRole(Number(argv[2]), Number(argv[3]), argv[4]);
  }
  let engines = ['uring', 'epoll', 'node'];
  let total = 15000;
  let perProcess = 5000;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--engines') engines = argv[++i].split(',');
    else if (argv[i] === '-c') total = Number(argv[++i]);
    else if (argv[i] === '--per-process') perProcess = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  const kib = (b) => `${(b / 1024).toFixed(2)} KiB`;
  console.log('| engine | connections | RSS / conn | JS heap / conn | external / conn | kernel slab / conn (both ends) |');
  console.log('|---|---|---|---|---|---|');
  for (const e of engines) {
    const r = await measureEngine(e, total, perProcess);
    console.log(`| ${r.engine} | ${r.connections}${r.failed ? ` (${r.failed} failed)` : ''} | ${kib(r.rssPerConn)} | ${kib(r.heapPerConn)} | ${kib(r.externalPerConn)} | ${kib(r.kernelSlabPerConnBothEnds)} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
