#!/usr/bin/env node
'use strict';
// A node:net stand-in for `echo-bench -m hold -H fastport -s 16`, for
// hold-run.js where the C kit's sources are not beside the repository (a
// fresh clone in CI): opens -c connections from 127.0.0.2.. (-S sources),
// paced at -r per second, sends one 20-byte FastPort frame (id 0x1001: send
// time, connection id, sequence) per connection every -i seconds, checks
// each echo byte for byte, and prints echo-bench's JSON line at the end.
// Slower per connection than the C tool, so it is for a few thousand.
const net = require('node:net');

const a = { addr: '127.0.0.1', port: 9000, conns: 100, secs: 10, warm: 2, interval: 5, sources: 1, rate: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i];
  const v = argv[i + 1];
  if (k === '-a') a.addr = v;
  else if (k === '-p') a.port = Number(v);
  else if (k === '-c') a.conns = Number(v);
  else if (k === '-d') a.secs = Number(v);
  else if (k === '-w') a.warm = Number(v);
  else if (k === '-i') a.interval = Number(v);
  else if (k === '-S') a.sources = Number(v);
  else if (k === '-r') a.rate = Number(v);
  else if (k === '-m' || k === '-s' || k === '-H') continue; // always hold, 16, fastport
  else {
    console.error(`hold-client: unknown flag ${k}`);
    process.exit(2);
  }
}

const FRAME = 20;
const st = { connected: 0, connectFail: 0, closed: 0, errors: 0, msgs: 0, bad: 0 };
const rtts = [];
let phase = 0; // 0 warmup, 1 measure, 2 stop
const conns = [];

function open(id) {
  const opts = { host: a.addr, port: a.port };
  if (a.sources > 1) opts.localAddress = `127.0.0.${2 + (id % a.sources)}`;
  const c = { id, sock: net.connect(opts), seq: 0, inSeq: 0, pending: Buffer.alloc(0), up: false, gone: false, sentAt: 0n };
  c.sock.setNoDelay(true);
  c.sock.on('connect', () => {
    c.up = true;
    st.connected++;
    // Spread first beats over the interval, as echo-bench does.
    c.timer = setTimeout(() => beat(c), ((id % 1000) / 1000) * a.interval * 1000);
  });
  c.sock.on('data', (d) => onData(c, d));
  c.sock.on('error', () => {
    if (!c.up) st.connectFail++;
    else if (!c.gone && phase < 2) st.errors++;
    c.gone = true;
  });
  c.sock.on('close', () => {
    if (c.up && !c.gone && phase < 2) st.closed++;
    c.gone = true;
    clearTimeout(c.timer);
  });
  conns.push(c);
}

function beat(c) {
  if (c.gone || phase === 2) return;
  const b = Buffer.alloc(FRAME);
  b.writeUInt16BE(FRAME, 0);
  b.writeUInt16BE(0x1001, 2);
  b.writeBigUInt64LE(process.hrtime.bigint(), 4);
  b.writeUInt32LE(c.id, 12);
  b.writeUInt32LE(c.seq++, 16);
  c.sock.write(b);
  c.timer = setTimeout(() => beat(c), a.interval * 1000);
}

function onData(c, d) {
  c.pending = c.pending.length ? Buffer.concat([c.pending, d]) : d;
  while (c.pending.length >= FRAME) {
    const m = c.pending.subarray(0, FRAME);
    c.pending = c.pending.subarray(FRAME);
    const ok = m.readUInt16BE(0) === FRAME && m.readUInt16BE(2) === 0x1001 && m.readUInt32LE(12) === c.id && m.readUInt32LE(16) === c.inSeq;
    c.inSeq++;
    if (!ok) st.bad++;
    if (phase === 1) {
      st.msgs++;
      rtts.push(Number(process.hrtime.bigint() - m.readBigUInt64LE(4)) / 1000);
    }
  }
}

let opened = 0;
const started = Date.now();
const opener = setInterval(() => {
  const target = a.rate > 0 ? Math.min(a.conns, Math.ceil(((Date.now() - started) / 1000) * a.rate)) : a.conns;
  while (opened < target) open(opened++);
  if (opened >= a.conns) clearInterval(opener);
}, 10);

setTimeout(() => {
  phase = 1;
  const t0 = Date.now();
  setTimeout(() => {
    phase = 2;
    const secs = (Date.now() - t0) / 1000;
    rtts.sort((x, y) => x - y);
    const pct = (p) => (rtts.length ? rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] : 0);
    const out = {
      mode: 'hold',
      tool: 'hold-client.js',
      conns: a.conns,
      connected: st.connected,
      connect_fail: st.connectFail,
      closed: st.closed,
      errors: st.errors,
      size: 16,
      depth: 1,
      secs,
      msgs: st.msgs,
      msgs_per_s: Math.round(st.msgs / secs),
      bad: st.bad,
      p50_us: pct(0.5),
      p90_us: pct(0.9),
      p99_us: pct(0.99),
      max_us: rtts.length ? rtts[rtts.length - 1] : 0,
    };
    for (const c of conns) c.sock.destroy();
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
  }, a.secs * 1000);
}, a.warm * 1000);
