#!/usr/bin/env node
// Builds the live dashboard's page into dist/ui/: ui/app.ts bundled with uPlot (from npm) by esbuild,
// the HTML, the styles and uPlot's stylesheet. Nothing is fetched at run time: the page is served from here.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist', 'ui');
fs.mkdirSync(out, { recursive: true });
esbuild.buildSync({
  entryPoints: [path.join(root, 'ui', 'app.ts')],
  bundle: true,
  format: 'iife',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: path.join(out, 'app.js'),
  logLevel: 'warning',
});
fs.copyFileSync(path.join(root, 'ui', 'index.html'), path.join(out, 'index.html'));
fs.copyFileSync(path.join(root, 'ui', 'style.css'), path.join(out, 'style.css'));
fs.copyFileSync(require.resolve('uplot/dist/uPlot.min.css'), path.join(out, 'uPlot.min.css'));
console.log(`fastport-bench: dashboard page built in ${path.relative(process.cwd(), out) || out}`);
