#!/usr/bin/env node
// Draws the client check (one fastport-bench row per client engine and depth, echo-bench beside each)
// as one chart from the results/client-check-*.json files written by benchmarks.sh.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { renderChart } = require('../dist/chart.js');
const dir = path.join(__dirname, '..', 'results');
const parts = [];
for (const engine of ['uring', 'epoll', 'node']) {
  for (const d of ['', '-d8']) {
    const file = path.join(dir, `client-check-${engine}${d}.json`);
    if (!fs.existsSync(file)) continue;
    const report = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const r of report.results) {
      for (const k of Object.keys(r.latency)) if (r.latency[k] === null) r.latency[k] = NaN;
      r.label = `${engine} d${report.settings.depth}`;
      parts.push({ report, r });
    }
  }
}
if (parts.length === 0) throw new Error('no client-check results');
const base = parts[0].report;
const combined = {
  ...base,
  settings: { ...base.settings, depth: '1 and 8', clientEngine: 'uring / epoll / node (client engine under each bar)' },
  results: parts.map((p) => ({ ...p.r, ratioToFirst: undefined })),
};
fs.writeFileSync(path.join(dir, 'client-check.svg'), renderChart(combined));
console.log(`wrote ${path.join(dir, 'client-check.svg')} (${parts.length} rows)`);
