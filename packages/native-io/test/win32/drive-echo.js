'use strict';
// Linux-side driver for `iocp_echo.exe serve` under Wine (scripts/test-win32.sh):
// <conns> connections to 127.0.0.1:<port>, each writes <rounds> messages
// (one of them 1 MiB), checks every echoed byte, then half-closes and waits
// for the server's FIN. Bounded by a deadline; prints one summary line and
// exits 1 on any mismatch, error or timeout.
const net = require('node:net');
const crypto = require('node:crypto');

const [port, conns, rounds, seconds] = process.argv.slice(2).map(Number);
const deadline = setTimeout(() => finish('timeout'), seconds * 1000);
let done = 0;
let bytes = 0;
let failures = 0;

function finish(why) {
  clearTimeout(deadline);
  console.log(`driver: conns=${conns} rounds=${rounds} done=${done} bytes=${bytes} failures=${failures} end=${why}`);
  process.exit(why === 'ok' && failures === 0 && done === conns ? 0 : 1);
}

function one(id) {
  const sock = net.connect(port, '127.0.0.1');
  let round = 0;
  let expect = null;
  let got = 0;
  const next = () => {
    const size = id === 0 && round === 1 ? 1 << 20 : 1 + ((id * 7919 + round * 104729) % 100000);
    expect = crypto.randomBytes(size);
    got = 0;
    sock.write(expect);
  };
  sock.on('connect', next);
  sock.on('data', (chunk) => {
    if (got + chunk.length > expect.length || !chunk.equals(expect.subarray(got, got + chunk.length))) {
      failures++;
      sock.destroy();
      return;
    }
    got += chunk.length;
    bytes += chunk.length;
    if (got === expect.length) {
      round++;
      if (round < rounds) next();
      else sock.end();
    }
  });
  sock.on('end', () => {
    if (round === rounds) done++;
    else failures++;
  });
  sock.on('error', () => failures++);
  sock.on('close', () => {
    if (done + failures >= conns) finish('ok');
  });
}

for (let i = 0; i < conns; i++) one(i);
