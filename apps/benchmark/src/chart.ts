/**
 * The chart: one self-contained SVG, two panels side by side — throughput per
 * target (with echo-bench's figure beside it when measured) and latency
 * percentiles per target on a log scale. Idle runs chart RSS and heap per
 * connection instead.
 */
import type { BenchReport, TargetResult } from './types';

const W = 1000;
const H = 520;
const PALETTE: Record<string, string> = {
  uring: '#1f77b4',
  epoll: '#ff7f0e',
  node: '#2ca02c',
  iocp: '#9467bd',
  rio: '#8c564b',
  'ref-uring': '#555555',
  'ref-epoll': '#999999',
};
const EXTRA = ['#d62728', '#17becf', '#bcbd22', '#e377c2', '#7f7f7f'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

function colorOf(label: string, i: number): string {
  return PALETTE[label] ?? PALETTE[label.split(/[\s→]/)[0] ?? ''] ?? EXTRA[i % EXTRA.length] ?? '#333333';
}

function n(v: number): string {
  return Number.isFinite(v) ? (Math.round(v * 10) / 10).toString() : '0';
}

/** Short number: 1.2k, 3.4M. */
export function shortNumber(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  return a >= 10 ? v.toFixed(0) : v.toFixed(1);
}

function shortUs(us: number): string {
  if (us >= 1e6) return `${shortNumber(us / 1e6)} s`;
  if (us >= 1e3) return `${shortNumber(us / 1e3)} ms`;
  return `${shortNumber(us)} µs`;
}

function shortBytes(b: number): string {
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  if (b >= 2 ** 10) return `${(b / 2 ** 10).toFixed(1)} KiB`;
  return `${Math.round(b)} B`;
}

/** A "nice" axis maximum above v (1, 2, 2.5, 5 × 10^k). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Bar {
  group: string;
  color: string;
  value: number;
  label: string;
  opacity?: number;
  dashed?: boolean;
  sub?: string;
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

/** Linear bar panel: groups along x, bars within a group side by side. */
function linearPanel(p: Panel, title: string, groups: string[], bars: Bar[], fmt: (v: number) => string, subs: Map<string, string>): string {
  const out: string[] = [];
  out.push(text(p.x, p.y - 14, title, 'class="panel-title"'));
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const y = p.y + p.h - (p.h * i) / 5;
    out.push(`<line x1="${n(p.x)}" y1="${n(y)}" x2="${n(p.x + p.w)}" y2="${n(y)}" class="grid"/>`);
    out.push(text(p.x - 6, y + 4, fmt(v), 'class="axis" text-anchor="end"'));
  }
  const gw = p.w / Math.max(1, groups.length);
  groups.forEach((g, gi) => {
    const mine = bars.filter((b) => b.group === g);
    const bw = Math.min(60, (gw * 0.7) / Math.max(1, mine.length));
    const x0 = p.x + gi * gw + (gw - bw * mine.length) / 2;
    mine.forEach((b, bi) => {
      const h = max > 0 ? (p.h * Math.max(0, b.value)) / max : 0;
      const x = x0 + bi * bw;
      const y = p.y + p.h - h;
      const style = b.dashed ? ` fill="none" stroke="${b.color}" stroke-width="2" stroke-dasharray="5 3"` : ` fill="${b.color}"`;
      out.push(`<rect x="${n(x + 2)}" y="${n(y)}" width="${n(bw - 4)}" height="${n(h)}"${style}><title>${escapeXml(`${b.label}: ${fmt(b.value)}`)}</title></rect>`);
      out.push(text(x + bw / 2, y - 5, fmt(b.value), `class="${bw < 44 ? 'small-value' : 'value'}" text-anchor="middle"`));
      if (b.sub) out.push(text(x + bw / 2, p.y + p.h + 30, b.sub, 'class="axis" text-anchor="middle"'));
    });
    out.push(text(p.x + gi * gw + gw / 2, p.y + p.h + 16, g, 'class="label" text-anchor="middle"'));
    const sub = subs.get(g);
    if (sub) sub.split('\n').forEach((line, li) => out.push(text(p.x + gi * gw + gw / 2, p.y + p.h + 46 + li * 13, line, 'class="axis" text-anchor="middle"')));
  });
  out.push(`<line x1="${n(p.x)}" y1="${n(p.y + p.h)}" x2="${n(p.x + p.w)}" y2="${n(p.y + p.h)}" class="axisline"/>`);
  return out.join('\n');
}

/** Log-scale bar panel (latencies span decades). */
function logPanel(p: Panel, title: string, groups: string[], bars: Bar[], fmt: (v: number) => string): string {
  const out: string[] = [];
  out.push(text(p.x, p.y - 14, title, 'class="panel-title"'));
  const vals = bars.map((b) => b.value).filter((v) => v > 0 && Number.isFinite(v));
  if (vals.length === 0) {
    out.push(text(p.x + p.w / 2, p.y + p.h / 2, 'no latency samples', 'class="label" text-anchor="middle"'));
    return out.join('\n');
  }
  const lo = 10 ** Math.floor(Math.log10(Math.min(...vals)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...vals) * 1.0001));
  const span = Math.max(1, Math.log10(hi) - Math.log10(lo));
  const yOf = (v: number) => p.y + p.h - (p.h * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / span;
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const y = yOf(d);
    out.push(`<line x1="${n(p.x)}" y1="${n(y)}" x2="${n(p.x + p.w)}" y2="${n(y)}" class="grid"/>`);
    out.push(text(p.x - 6, y + 4, fmt(d), 'class="axis" text-anchor="end"'));
  }
  const gw = p.w / Math.max(1, groups.length);
  groups.forEach((g, gi) => {
    const mine = bars.filter((b) => b.group === g);
    const bw = Math.min(40, (gw * 0.8) / Math.max(1, mine.length));
    const x0 = p.x + gi * gw + (gw - bw * mine.length) / 2;
    mine.forEach((b, bi) => {
      const y = yOf(b.value);
      const x = x0 + bi * bw;
      const opacity = b.opacity !== undefined ? ` fill-opacity="${b.opacity}"` : '';
      out.push(`<rect x="${n(x + 1)}" y="${n(y)}" width="${n(bw - 2)}" height="${n(p.y + p.h - y)}" fill="${b.color}"${opacity}><title>${escapeXml(`${g} ${b.label}: ${fmt(b.value)}`)}</title></rect>`);
      out.push(text(x + bw / 2, y - 4, fmt(b.value), 'class="small" text-anchor="middle"'));
    });
    out.push(text(p.x + gi * gw + gw / 2, p.y + p.h + 16, g, 'class="label" text-anchor="middle"'));
  });
  out.push(`<line x1="${n(p.x)}" y1="${n(p.y + p.h)}" x2="${n(p.x + p.w)}" y2="${n(p.y + p.h)}" class="axisline"/>`);
  return out.join('\n');
}

const PCTS: { key: 'p50Us' | 'p90Us' | 'p99Us' | 'p999Us'; name: string; opacity: number }[] = [
  { key: 'p50Us', name: 'p50', opacity: 1 },
  { key: 'p90Us', name: 'p90', opacity: 0.75 },
  { key: 'p99Us', name: 'p99', opacity: 0.5 },
  { key: 'p999Us', name: 'p99.9', opacity: 0.3 },
];

export function renderChart(report: BenchReport): string {
  const ok = report.results.filter((r) => r.status === 'ok');
  const groups = ok.map((r) => r.label);
  const s = report.settings;
  const workload = String(s['workload']);
  const left: Panel = { x: 90, y: 110, w: 380, h: 280 };
  const right: Panel = { x: 590, y: 110, w: 380, h: 280 };
  const body: string[] = [];
  const title =
    workload === 'idle'
      ? `fastport-bench: idle-connection cost (${String(s['connections'])} connections)`
      : `fastport-bench: ${workload === 'connect' ? 'connection rate' : workload === 'open' ? `open loop at ${String(s['rate'])} msgs/s` : workload === 'bandwidth' ? 'large-message bandwidth' : 'request/response'} — ${String(s['connections'])} conns${workload === 'connect' ? '' : ` × depth ${String(s['depth'])}`}, ${String(s['size'])} B, ${String(s['protocol'])}/${String(s['framing'])}`;
  const m = report.machine;
  const subtitle = `${report.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpuModel}, ${m.cpus} cores · ${m.kernel} · Node ${m.node} · server cpus ${report.pinning.server ?? 'any'}, client cpus ${report.pinning.client ?? 'any'} · client ${String(s['clientEngine'])}`;

  if (ok.length === 0) {
    body.push(text(W / 2, H / 2, 'no successful results', 'class="label" text-anchor="middle"'));
  } else if (workload === 'idle') {
    const rss: Bar[] = ok.map((r, i) => ({ group: r.label, color: colorOf(r.label, i), value: r.idle?.rssPerConnBytes ?? 0, label: 'RSS per connection' }));
    const heap: Bar[] = ok.map((r, i) => ({ group: r.label, color: colorOf(r.label, i), value: r.idle?.heapPerConnBytes ?? 0, label: 'heap per connection' }));
    body.push(linearPanel(left, 'Server RSS per idle connection', groups, rss, shortBytes, new Map(ok.map((r) => [r.label, r.ratioToFirst !== undefined ? `${r.ratioToFirst.toFixed(2)}×` : '']))));
    body.push(linearPanel(right, 'Server JS heap per idle connection', groups, heap, shortBytes, new Map()));
  } else {
    const unit = workload === 'connect' ? 'connects/s' : 'msgs/s';
    const thr: Bar[] = [];
    ok.forEach((r, i) => {
      thr.push({ group: r.label, color: colorOf(r.label, i), value: r.msgsPerSec, label: `fastport-bench ${unit}`, ...(r.echoBench ? { sub: 'bench' } : {}) });
      if (r.echoBench) thr.push({ group: r.label, color: colorOf(r.label, i), value: r.echoBench.msgsPerSec, label: `echo-bench ${unit}`, dashed: true, sub: 'C' });
    });
    const subs = new Map(
      ok.map((r) => [
        r.label,
        [
          r.ratioToFirst !== undefined ? `${r.ratioToFirst.toFixed(2)}×` : '',
          `${r.mbPerSec.toFixed(r.mbPerSec >= 100 ? 0 : 1)} MB/s`,
          r.echoBench && Number.isFinite(r.echoBench.ratio) ? `${Math.round(r.echoBench.ratio * 100)}% of C` : '',
        ]
          .filter(Boolean)
          .join('\n'),
      ]),
    );
    body.push(linearPanel(left, `Throughput (${unit}, higher is better)`, groups, thr, shortNumber, subs));
    const lat: Bar[] = [];
    ok.forEach((r, i) => {
      for (const p of PCTS) lat.push({ group: r.label, color: colorOf(r.label, i), value: r.latency[p.key], label: p.name, opacity: p.opacity });
    });
    const latTitle = workload === 'connect' ? 'Connect + first echo (log scale, lower is better)' : workload === 'open' ? 'Latency from intended send (log, lower is better)' : 'RTT percentiles (log scale, lower is better)';
    body.push(logPanel(right, latTitle, groups, lat, shortUs));
    // legends
    const ly = H - 30;
    PCTS.forEach((p, i) => {
      const x = right.x + i * 80;
      body.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="#444" fill-opacity="${p.opacity}"/>`);
      body.push(text(x + 16, ly, p.name, 'class="axis"'));
    });
    if (ok.some((r) => r.echoBench)) {
      body.push(`<rect x="${left.x}" y="${ly - 10}" width="12" height="12" fill="#444"/>`);
      body.push(text(left.x + 16, ly, 'fastport-bench', 'class="axis"'));
      body.push(`<rect x="${left.x + 130}" y="${ly - 10}" width="12" height="12" fill="none" stroke="#444" stroke-dasharray="3 2"/>`);
      body.push(text(left.x + 146, ly, 'echo-bench (C) on the same target', 'class="axis"'));
    }
  }
  const missing = report.results.filter((r) => r.status !== 'ok');
  if (missing.length > 0) {
    body.push(text(20, H - 8, `not charted: ${missing.map((r) => `${r.label} (${r.status})`).join(', ')}`, 'font-size="11" fill="#a00"'));
  }
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
    `<style>.panel-title{font-size:15px;font-weight:600;fill:#222}.axis{font-size:11px;fill:#555}.label{font-size:13px;fill:#222}.value{font-size:12px;fill:#222;font-weight:600}.small{font-size:9px;fill:#333}.small-value{font-size:10px;fill:#222;font-weight:600}.grid{stroke:#e4e4e4;stroke-width:1}.axisline{stroke:#888;stroke-width:1}</style>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(20, 30, title, 'font-size="18" font-weight="700" fill="#111"'),
    text(20, 52, subtitle, 'font-size="11" fill="#666"'),
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}

/** Rows the chart shows, for tests. */
export function chartedResults(report: BenchReport): TargetResult[] {
  return report.results.filter((r) => r.status === 'ok');
}
