#!/usr/bin/env node
// The hand-written node:net framed echo the node engine is measured against
// (issue 11: the node engine should be at least as fast as what a user would
// write without FastPort). u32le length prefix (payload length, as
// echo-bench -H u32le sends), partial frames buffered, and the complete frames
// of each read echoed in one write: the version a user who knows that a write
// per frame costs a syscall per frame writes (with --per-frame, one write per
// frame, about ten times slower at depth 16 here).
//
//   node apps/benchmark/scripts/node-net-echo.js PORT
'use strict';
const net = require('node:net');

const port = Number(process.argv[2] || 9000);
const perFrame = process.argv.includes('--per-frame');
const server = net.createServer({ noDelay: true }, (socket) => {
  let pending = null; // bytes of a frame split across reads
  socket.on('data', (chunk) => {
    let buf = chunk;
    if (pending !== null) {
      buf = Buffer.concat([pending, chunk]);
      pending = null;
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const end = pos + 4 + buf.readUInt32LE(pos);
      if (end > buf.length) break;
      if (perFrame) socket.write(buf.subarray(pos, end));
      pos = end;
    }
    if (!perFrame && pos > 0) socket.write(pos === buf.length ? buf : buf.subarray(0, pos));
    if (pos < buf.length) pending = buf.subarray(pos);
  });
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`node:net echo on ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
