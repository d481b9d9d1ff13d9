'use strict';
// What engine-vs-ref.js and frame-cost.js share: waiting for a server's
// port, its CPU time from /proc, and the --tree label=dir option.
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

/** Resolves once 127.0.0.1:port accepts a connection; rejects after `ms`. */
function waitPort(port, ms) {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`port ${port} did not open in ${ms} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** utime + stime of a process, in clock ticks (NaN once it is gone). */
function cpuTicks(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}

/** `--tree label=dir`: a build of another checkout to measure in the same run. */
function parseTree(value) {
  const [label, dir] = value.split('=');
  return { label, dir: path.resolve(dir) };
}

module.exports = { waitPort, cpuTicks, parseTree };
