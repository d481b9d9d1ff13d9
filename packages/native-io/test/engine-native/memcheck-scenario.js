'use strict';
// A self-contained workout of the native engine for valgrind / ASan runs
// (vitest under valgrind is too slow): echo with many connections, 1 MiB
// frames, backpressure refusal, half-close, peer RST, abort with queued
// bytes, receive pause/resume (and close while paused), connect failures,
// idle send slabs released after slow readers leave, debugViews (server
// side), ioThreads 0 and 2, destroy() with connections open. Exits 0 when
// every step saw what it expected.
//
//   valgrind --leak-check=full --error-exitcode=1 node test/engine-native/memcheck-scenario.js [epoll|uring]
const net = require('node:net');
const { createEngine, SendStatus } = require('../../dist/index.js');

const kind = process.argv[2] || 'epoll';
const scale = Number(process.env.SCENARIO_SCALE || '1');

function waitFor(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timeout: ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

function engine(ioThreads, extra = {}) {
  const st = { got: new Map(), closes: new Map(), accepted: [], connected: new Set(), ends: 0, drains: 0 };
  const e = createEngine({
    kind,
    ioThreads,
    ...extra,
    handler: {
      onAccept(id) {
        st.accepted.push(id);
      },
      onConnect(id) {
        st.connected.add(id);
      },
      onData(id, data) {
        st.got.set(id, (st.got.get(id) || 0) + data.length);
        if (st.echo) e.send(id, data);
      },
      onEnd() {
        st.ends++;
      },
      onDrain() {
        st.drains++;
      },
      onClose(id, info) {
        st.closes.set(id, info);
      },
    },
  });
  return { e, st };
}

async function scenario(ioThreads) {
  const server = engine(ioThreads, { debugViews: true });
  server.st.echo = true;
  const client = engine(ioThreads);
  const l = await server.e.listen({ host: '127.0.0.1', port: 0 });
  const l6 = await server.e.listen({ host: '::1', port: 0 });

  // many connections echo
  const N = 100 * scale;
  const ids = [];
  for (let i = 0; i < N; i++) ids.push(client.e.connect({ host: i % 2 ? '127.0.0.1' : '::1', port: i % 2 ? l.port : l6.port }));
  await waitFor(() => ids.every((id) => client.st.connected.has(id)), 20000, 'connect');
  const payload = Buffer.alloc(300, 7);
  for (let r = 0; r < 5; r++) for (const id of ids) client.e.send(id, payload);
  await waitFor(() => ids.every((id) => client.st.got.get(id) === 1500), 20000, 'echo');

  // 1 MiB frames
  const big = Buffer.alloc(1024 * 1024 + 5, 3);
  client.e.send(ids[0], big);
  client.e.sendv(ids[0], [big.subarray(0, 1000), big.subarray(1000)]);
  await waitFor(() => client.st.got.get(ids[0]) === 1500 + 2 * big.length, 30000, '1 MiB echo');

  // half-close: client shuts down, server sees onEnd and (allowHalfOpen off) closes after flushing
  client.e.shutdown(ids[1]);
  await waitFor(() => client.st.closes.has(ids[1]), 20000, 'half-close round trip');

  // abort with queued bytes, graceful close, peer RST
  client.e.send(ids[2], big);
  client.e.close(ids[2], 'abort');
  client.e.send(ids[3], big);
  client.e.close(ids[3]);
  const raw = net.connect({ host: '127.0.0.1', port: l.port });
  await new Promise((r) => raw.on('connect', r));
  raw.write(Buffer.alloc(10000, 1));
  await new Promise((r) => setTimeout(r, 50));
  raw.resetAndDestroy();
  await waitFor(() => client.st.closes.has(ids[2]) && client.st.closes.has(ids[3]), 20000, 'closes');

  // connect failures: refused, bad local address, unresolvable name
  const refused = client.e.connect({ host: '127.0.0.1', port: 1 });
  const badLocal = client.e.connect({ host: '127.0.0.1', port: l.port, localAddress: '10.255.255.1' });
  const noName = client.e.connect({ host: 'no-such-host.invalid', port: 80 });
  await waitFor(() => [refused, badLocal, noName].every((id) => client.st.closes.has(id)), 20000, 'connect failures');

  // backpressure refusal against a reader that never reads
  const stall = net.createServer({ pauseOnConnect: true });
  const stalled = [];
  stall.on('connection', (s) => stalled.push(s));
  await new Promise((r) => stall.listen(0, '127.0.0.1', r));
  const bp = engine(ioThreads, { maxPendingBytes: 256 * 1024, highWaterMark: 128 * 1024, lowWaterMark: 32 * 1024 });
  const bid = bp.e.connect({ host: '127.0.0.1', port: stall.address().port });
  await waitFor(() => bp.st.connected.has(bid), 20000, 'bp connect');
  let refusedSeen = false;
  for (let i = 0; i < 400 && !refusedSeen; i++) {
    if (bp.e.send(bid, Buffer.alloc(16 * 1024, 1)) === SendStatus.Refused) refusedSeen = true;
    await new Promise((r) => setImmediate(r));
  }
  if (!refusedSeen) throw new Error('no Refused');
  for (const s of stalled) s.resume();
  await waitFor(() => bp.st.drains > 0, 20000, 'drain');
  for (const s of stalled) s.destroy();
  await bp.e.destroy();

  // read backpressure: a paused connection leaves the echo in the kernel (the
  // server's queue grows), resume takes all of it; pause then abort / close
  // (a small receive buffer, so the kernel holds little of the echo)
  const pid = client.e.connect({ host: '127.0.0.1', port: l.port, receiveBufferSize: 64 * 1024 });
  await waitFor(() => client.st.connected.has(pid), 20000, 'pause connect');
  const gotBefore = 0;
  if (!client.e.pauseReceiving(pid) || !client.e.pauseReceiving(pid)) throw new Error('pauseReceiving refused');
  if (client.e.pauseReceiving(123456789) || client.e.resumeReceiving(0)) throw new Error('pause/resume of a dead id');
  const slice = Buffer.alloc(256 * 1024, 5);
  const streamed = 32 * slice.length;
  for (let i = 0; i < 32; i++) client.e.send(pid, slice);
  await waitFor(() => server.e.stats().pendingBytes > 1024 * 1024, 20000, 'echo stalls behind the paused reader');
  if ((client.st.got.get(pid) || 0) - gotBefore > 1024 * 1024) throw new Error('paused connection kept reading');
  if (!client.e.resumeReceiving(pid)) throw new Error('resumeReceiving refused');
  await waitFor(() => (client.st.got.get(pid) || 0) === gotBefore + streamed, 30000, 'echo after resume');
  for (const i of [5, 6]) {
    client.e.pauseReceiving(ids[i]);
    client.e.send(ids[i], slice);
  }
  await waitFor(() => client.e.pendingBytes(ids[5]) === 0 && client.e.pendingBytes(ids[6]) === 0, 20000, 'sent while paused');
  client.e.close(ids[5], 'abort');
  client.e.close(ids[6]);
  await waitFor(() => client.st.closes.has(ids[5]) && client.st.closes.has(ids[6]), 20000, 'closes while paused');
  client.e.pauseReceiving(ids[7]);
  client.e.resumeReceiving(ids[7]);
  client.e.pauseReceiving(ids[8]); // left paused: destroy() closes it

  // slow readers with big queues leave: their slabs go back to the reserve
  const mem = engine(ioThreads);
  const slow = [];
  const stalledBefore = stalled.length;
  for (let i = 0; i < 4; i++) slow.push(mem.e.connect({ host: '127.0.0.1', port: stall.address().port, sendBufferSize: 65536 }));
  await waitFor(() => slow.every((id) => mem.st.connected.has(id)) && stalled.length === stalledBefore + slow.length, 20000, 'slow readers connect');
  for (const id of slow) mem.e.send(id, Buffer.alloc(4 * 1024 * 1024, 9));
  await waitFor(() => mem.e.stats().sendChunkBytesHeld >= 8 * 1024 * 1024, 20000, 'slow reader queues');
  for (const s of stalled) s.resetAndDestroy();
  await waitFor(() => slow.every((id) => mem.st.closes.has(id)), 20000, 'slow readers closed');
  const reserve = mem.e.info.features.sendSlabReserveBytes * Math.max(1, ioThreads);
  await waitFor(() => mem.e.stats().sendSlabBytes <= reserve, 20000, 'idle slabs released');
  stall.close();
  await mem.e.destroy();

  // destroy with connections open (and bytes queued)
  for (const id of ids.slice(4)) client.e.send(id, big);
  await server.e.destroy();
  await client.e.destroy();
  const total = ids.length + 4;
  if (client.st.closes.size !== total) throw new Error(`client closes ${client.st.closes.size} != ${total}`);
  console.log(`ioThreads ${ioThreads}: ok (${N} connections, server closes ${server.st.closes.size})`);
}

// uring only: a submission queue of 8 entries and 16 receive buffers, 150
// connections flooding 64 KiB each while the server also sends on a timer:
// re-arms of parked connections, full-SQ submits and no-SQE retries all run.
async function floodSmallRing(ioThreads) {
  const knobs = { FASTPORT_URING_SQ_ENTRIES: '8', FASTPORT_URING_BUF_COUNT: '16', FASTPORT_URING_BUF_SIZE: '4096' };
  const saved = {};
  for (const [k, v] of Object.entries(knobs)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  let server;
  try {
    server = engine(ioThreads);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  server.st.echo = true;
  const client = engine(ioThreads);
  const l = await server.e.listen({ host: '127.0.0.1', port: 0 });
  const N = 150;
  const ids = [];
  for (let i = 0; i < N; i++) ids.push(client.e.connect({ host: '127.0.0.1', port: l.port }));
  await waitFor(() => ids.every((id) => client.st.connected.has(id)) && server.st.accepted.length === N, 20000, 'flood connect');
  const chunk = Buffer.alloc(64 * 1024, 5);
  for (const id of ids) client.e.send(id, chunk);
  const ticks = 40;
  const tick = Buffer.alloc(1024, 9);
  await new Promise((resolve) => {
    let n = 0;
    const t = setInterval(() => {
      for (const id of server.st.accepted) server.e.send(id, tick);
      if (++n === ticks) {
        clearInterval(t);
        resolve();
      }
    }, 2);
  });
  const want = chunk.length + ticks * tick.length;
  await waitFor(() => ids.every((id) => client.st.got.get(id) === want), 30000, 'flood echo through a small ring');
  await client.e.destroy();
  await server.e.destroy();
  console.log(`ioThreads ${ioThreads}: small-ring flood ok (${N} connections)`);
}

(async () => {
  await scenario(0);
  await scenario(2);
  // ioThreads 0 only: with ioThreads 1 the server's destroy() after this
  // flood never settles (found here, also before the uring fixes; open).
  if (kind === 'uring') await floodSmallRing(0);
  console.log('scenario passed');
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
