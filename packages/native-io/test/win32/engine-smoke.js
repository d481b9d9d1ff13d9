'use strict';
// Runs in Windows node.exe under Wine (scripts/test-win32.sh): the iocp
// engine end to end through the public API (createEngine from the staged
// dist/), for ioThreads 0 and 1: a listener, N clients of the same engine,
// a few echo rounds each with one 1 MiB message, graceful close, destroy.
// Also: auto on win32, and kind 'rio'. Writes its findings as JSON to argv[3]
// (node.exe's stdout under Wine is not reliable).
const fs = require('node:fs');
const path = require('node:path');

const [stageRoot, outFile] = process.argv.slice(2);
const { createEngine, engineAvailability } = require(path.join(stageRoot, 'dist', 'index.js'));

const result = { steps: [] };
const deadline = (ms, what) => new Promise((_, rej) => setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref());

async function echoRun(ioThreads, clients, rounds, options = { kind: 'iocp' }) {
  const got = new Map(); // client id -> bytes received
  const want = new Map();
  let accepted = 0;
  let closed = 0;
  let closeErrors = [];
  let resolveDone;
  const done = new Promise((r) => (resolveDone = r));
  const engine = createEngine({
    ...options,
    ioThreads,
    handler: {
      onAccept() {
        accepted++;
      },
      onConnect(id) {
        const msgs = [];
        for (let r = 0; r < rounds; r++) {
          const size = r === rounds - 1 ? 1 << 20 : 1 + ((id * 7919 + r * 104729) % 9000);
          const b = Buffer.alloc(size);
          for (let i = 0; i < size; i++) b[i] = (i * 31 + id + r) & 0xff;
          msgs.push(b);
        }
        want.set(id, Buffer.concat(msgs));
        got.set(id, []);
        for (const m of msgs) engine.send(id, m);
      },
      onData(id, data) {
        if (want.has(id)) {
          const parts = got.get(id);
          parts.push(Buffer.from(data));
          const n = parts.reduce((a, p) => a + p.length, 0);
          if (n >= want.get(id).length) engine.close(id);
        } else {
          engine.send(id, data); // server side: echo
        }
      },
      onEnd(id) {
        engine.close(id);
      },
      onClose(id, info) {
        if (info.reason === 'error') closeErrors.push(info.code);
        closed++;
        if (closed === clients * 2) resolveDone();
      },
    },
  });
  const l = await engine.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 0; i < clients; i++) engine.connect({ host: '127.0.0.1', port: l.port });
  await Promise.race([done, deadline(60000, `ioThreads ${ioThreads}: all ${clients * 2} closes`)]);
  let bad = 0;
  let bytes = 0;
  for (const [id, w] of want) {
    const g = Buffer.concat(got.get(id));
    bytes += g.length;
    if (!g.equals(w)) bad++;
  }
  const info = engine.info;
  await engine.destroy();
  return { ioThreads, kind: info.kind, rioTable: info.features.rioTable, clients, accepted, closed, bad, bytes, closeErrors };
}

// 1,000 node:net clients connect and reset at once; the server must end
// every accepted one, report no listener error, hold nothing afterwards and
// still serve a sentinel client.
async function floodRun(ioThreads, n, options = { kind: 'iocp' }) {
  const net = require('node:net');
  let accepted = 0;
  let closed = 0;
  const listenerErrors = [];
  const engine = createEngine({
    ...options,
    ioThreads,
    handler: {
      onAccept() {
        accepted++;
      },
      onConnect() {},
      onData(id, data) {
        engine.send(id, data);
      },
      onEnd(id) {
        engine.close(id);
      },
      onClose() {
        closed++;
      },
      onListenerError(_l, err) {
        listenerErrors.push(err.code);
      },
    },
  });
  const l = await engine.listen({ host: '127.0.0.1', port: 0, backlog: 2048 });
  let settled = 0;
  await Promise.race([
    new Promise((resolve) => {
      for (let i = 0; i < n; i++) {
        const s = net.connect(l.port, '127.0.0.1');
        const done = () => {
          if (++settled === n) resolve();
        };
        s.once('connect', () => {
          s.resetAndDestroy();
          done();
        });
        s.once('error', () => {
          s.destroy();
          done();
        });
      }
    }),
    deadline(60000, `${n} connects`),
  ]);
  const waitUntil = async (pred, ms, what) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out: ${what} (accepted ${accepted}, closed ${closed})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  // Every reset either never became an accept or ends as a close.
  await waitUntil(() => closed === accepted && engine.stats().connections === 0, 30000, 'flood closes');
  const sentinel = await new Promise((resolve, reject) => {
    const s = net.connect(l.port, '127.0.0.1', () => s.write('sentinel'));
    let got = '';
    s.on('data', (d) => {
      got += d;
      if (got.length >= 8) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  await waitUntil(() => engine.stats().connections === 0, 10000, 'sentinel close');
  const kind = engine.info.kind;
  await engine.destroy();
  return { ioThreads, kind, n, accepted, closed, listenerErrors, sentinel };
}

// RIO_CORRUPT_CQ: the emulated table reports a corrupt completion queue
// after a few dequeues (FASTPORT_RIO_EMULATED_CORRUPT_AFTER, read when the
// queue is made). Every connection must end with EIO, and destroy() resolve.
async function corruptRun() {
  process.env.FASTPORT_RIO_EMULATED_CORRUPT_AFTER = '3';
  const codes = [];
  let closed = 0;
  const engine = createEngine({
    kind: 'rio',
    rioTable: 'emulated',
    ioThreads: 0,
    handler: {
      onAccept() {},
      onConnect(id) {
        for (let i = 0; i < 50; i++) engine.send(id, Buffer.alloc(100, i));
      },
      onData(id, data) {
        engine.send(id, data);
      },
      onClose(_id, info) {
        codes.push(info.code || info.reason);
        closed++;
      },
    },
  });
  delete process.env.FASTPORT_RIO_EMULATED_CORRUPT_AFTER;
  const l = await engine.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 0; i < 2; i++) engine.connect({ host: '127.0.0.1', port: l.port });
  const end = Date.now() + 20000;
  while (closed < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await Promise.race([engine.destroy(), deadline(20000, 'destroy after RIO_CORRUPT_CQ')]);
  return { closed, codes };
}

(async () => {
  try {
    const emulated = { kind: 'rio', rioTable: 'emulated' };
    for (const t of [0, 1]) result.steps.push(await echoRun(t, 20, 4));
    for (const t of [0, 1]) result.steps.push(await echoRun(t, 20, 4, emulated));
    result.flood = [];
    for (const t of [0, 1]) result.flood.push(await floodRun(t, 1000));
    for (const t of [0, 1]) result.flood.push(await floodRun(t, 1000, emulated));
    result.corrupt = await corruptRun();
    // engineAvailability tells the truth about rio: unavailable on the
    // system table here, available on the emulated one.
    result.availability = {
      rio: engineAvailability('rio'),
      rioEmulated: engineAvailability('rio', { rioTable: 'emulated' }),
    };
    const auto = createEngine({ handler: { onAccept() {}, onConnect() {}, onData() {}, onClose() {} } });
    result.auto = { kind: auto.info.kind, reason: auto.info.reason };
    await auto.destroy();
    // auto never takes the emulated table, even when the environment asks for it.
    process.env.FASTPORT_RIO_TABLE = 'emulated';
    const auto2 = createEngine({ handler: { onAccept() {}, onConnect() {}, onData() {}, onClose() {} } });
    result.autoWithEmulatedEnv = { kind: auto2.info.kind, reason: auto2.info.reason };
    await auto2.destroy();
    delete process.env.FASTPORT_RIO_TABLE;
    try {
      const rio = createEngine({ kind: 'rio', handler: { onAccept() {}, onConnect() {}, onData() {}, onClose() {} } });
      result.rio = { created: true, kind: rio.info.kind, features: rio.info.features };
      await rio.destroy();
    } catch (e) {
      result.rio = { created: false, code: e.code, message: e.message };
    }
  } catch (e) {
    result.error = String(e && e.stack ? e.stack : e);
  }
  fs.writeFileSync(outFile, JSON.stringify(result, null, 2));
  process.exit(0);
})();
