/** Reports: the readable table, CSV, JSON and a Markdown section (BENCHMARKS.md). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BenchReport, TargetResult } from './types';

const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '-' : nf0.format(Math.round(n));
}

export function fmtUs(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (n >= 1000) return nf0.format(Math.round(n));
  if (n >= 100) return n.toFixed(0);
  return n.toFixed(1);
}

export function fmtNum(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (a >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (a >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

export function fmtRatio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '-' : `${r.toFixed(2)}×`;
}

function pct(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '-' : `${(r * 100).toFixed(0)}%`;
}

/** Renders rows as an aligned text table; numeric-looking cells are right-aligned. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = (s: string) => /^[-+]?[\d,.]+\s*(×|%|[KMG]iB|B)?$/.test(s) || s === '-';
  const line = (cells: string[]) =>
    cells.map((c, i) => (numeric(c) && i > 0 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function unit(r: TargetResult): string {
  return r.workload === 'connect' ? 'conn/s' : 'msgs/s';
}

/** Throughput table rows (rr, open, bandwidth, connect). */
export function throughputTable(results: TargetResult[]): { header: string[]; rows: string[][] } {
  const u = results[0] ? unit(results[0]) : 'msgs/s';
  const withEcho = results.some((r) => r.echoBench !== undefined);
  const header = ['target', 'engine', u, '×first', 'MB/s', 'srv usr%', 'srv sys%', 'srv RSS', 'ev/cross', 'cli CPU%', 'other CPU%', 'errors', 'bad'];
  if (withEcho) header.push('echo-bench', 'vs echo-bench');
  const rows = results.map((r) => {
    if (r.status !== 'ok') return [r.label, r.status, ...header.slice(2).map(() => '')];
    const s = r.serverMetrics;
    const row = [
      r.label,
      r.server.engine ?? '-',
      fmtInt(r.msgsPerSec),
      fmtRatio(r.ratioToFirst),
      fmtNum(r.mbPerSec, r.mbPerSec >= 100 ? 0 : 2),
      fmtNum(s?.cpuUserPct),
      fmtNum(s?.cpuSysPct),
      fmtBytes(s?.rssBytes),
      fmtNum(s?.engine?.eventsPerCrossing, 2),
      // SAT: the load generator used >= 90% of its cores (saturation.ts), so msgs/s may be the client's limit
      `${fmtNum(r.clientCpuPct)}${r.clientSaturated ? ' SAT' : ''}`,
      fmtNum(r.backgroundCpuPct),
      fmtInt(r.errors),
      fmtInt(r.mismatches),
    ];
    if (withEcho) row.push(r.echoBench ? fmtInt(r.echoBench.msgsPerSec) : '-', r.echoBench ? pct(r.echoBench.ratio) : '-');
    return row;
  });
  return { header, rows };
}

export function latencyTable(results: TargetResult[]): { header: string[]; rows: string[][] } {
  const header = ['target', 'min', 'avg', 'p50', 'p90', 'p95', 'p99', 'p99.9', 'max', 'jitter'];
  const rows = results
    .filter((r) => r.status === 'ok')
    .map((r) => {
      const l = r.latency;
      return [r.label, fmtUs(l.minUs), fmtUs(l.avgUs), fmtUs(l.p50Us), fmtUs(l.p90Us), fmtUs(l.p95Us), fmtUs(l.p99Us), fmtUs(l.p999Us), fmtUs(l.maxUs), fmtUs(l.jitterUs)];
    });
  return { header, rows };
}

export function idleTable(results: TargetResult[]): { header: string[]; rows: string[][] } {
  const header = ['target', 'engine', 'conns', 'connected', 'failed', 'srv conns', 'RSS before', 'RSS after', 'RSS/conn', 'heap/conn', '×first', 'connects/s'];
  const rows = results.map((r) => {
    const i = r.idle;
    if (r.status !== 'ok' || i === undefined) return [r.label, r.status, ...header.slice(2).map(() => '')];
    return [
      r.label,
      r.server.engine ?? '-',
      fmtInt(i.requested),
      fmtInt(i.connected),
      fmtInt(i.failed),
      fmtInt(i.serverConnections),
      fmtBytes(i.rssBeforeBytes),
      fmtBytes(i.rssAfterBytes),
      fmtBytes(i.rssPerConnBytes),
      fmtBytes(i.heapPerConnBytes),
      fmtRatio(r.ratioToFirst),
      fmtInt(i.connectsPerSec),
    ];
  });
  return { header, rows };
}

function describe(report: BenchReport): string {
  const s = report.settings;
  const w = String(s['workload']);
  const parts = [`workload ${w}`];
  if (w === 'idle') parts.push(`${String(s['connections'])} idle connections`);
  else {
    parts.push(`${String(s['connections'])} conns`);
    if (w !== 'connect') parts.push(`depth ${String(s['depth'])}`);
    parts.push(`${String(s['size'])} B`, `${String(s['protocol'])}/${String(s['framing'])}`);
    if (w === 'open') parts.push(`rate ${String(s['rate'])}/s`);
    parts.push(`${String(s['duration'])} s (+${String(s['warmup'])} s warmup)`);
  }
  parts.push(`client ${String(s['clientEngine'])} × ${String(s['clientThreads'])} thread(s)`);
  return parts.join(', ');
}

/** The readable end-of-run report. */
export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  out.push(`fastport-bench ${report.version} — ${describe(report)}`);
  out.push(`pinning: server cpus ${report.pinning.server ?? 'any'}, client cpus ${report.pinning.client ?? 'any'} (${report.pinning.note})`);
  out.push('');
  const idle = report.results.filter((r) => r.workload === 'idle');
  const rest = report.results.filter((r) => r.workload !== 'idle');
  if (idle.length > 0) {
    const t = idleTable(idle);
    out.push(textTable(t.header, t.rows));
  }
  if (rest.length > 0) {
    const t = throughputTable(rest);
    out.push(textTable(t.header, t.rows));
    const l = latencyTable(rest);
    if (l.rows.length > 0) {
      out.push('');
      out.push(rest[0]?.workload === 'connect' ? 'connect + first echo, µs' : rest[0]?.workload === 'open' ? 'latency from intended send time, µs' : 'RTT, µs');
      out.push(textTable(l.header, l.rows));
    }
  }
  const notes = report.results.filter((r) => r.note).map((r) => `${r.label}${r.status === 'ok' ? '' : ` (${r.status})`}: ${r.note}`);
  if (notes.length > 0) out.push('', ...notes);
  return out.join('\n');
}

// ------------------------------------------------------------------ CSV

/** CSV columns, in order; one row per target. */
export const CSV_COLUMNS = [
  'date',
  'label',
  'target',
  'server_kind',
  'server_engine',
  'workload',
  'status',
  'protocol',
  'framing',
  'connections',
  'depth',
  'size',
  'rate',
  'duration_s',
  'client_engine',
  'client_threads',
  'messages',
  'msgs_per_s',
  'ratio_to_first',
  'mb_per_s',
  'sent_per_s',
  'rtt_min_us',
  'rtt_avg_us',
  'rtt_p50_us',
  'rtt_p90_us',
  'rtt_p95_us',
  'rtt_p99_us',
  'rtt_p999_us',
  'rtt_max_us',
  'jitter_us',
  'errors',
  'mismatches',
  'unanswered',
  'verified_bytes',
  'server_cpu_user_pct',
  'server_cpu_sys_pct',
  'server_rss_bytes',
  'engine_events',
  'engine_batches',
  'engine_js_crossings',
  'events_per_crossing',
  'client_cpu_pct',
  'client_cpus',
  'client_saturated',
  'background_cpu_pct',
  'echo_bench_msgs_per_s',
  'echo_bench_p99_us',
  'vs_echo_bench',
  'echo_bench_background_cpu_pct',
  'idle_connected',
  'idle_rss_per_conn_bytes',
  'idle_heap_per_conn_bytes',
  'note',
] as const;

function csvCell(v: unknown): string {
  if (v === undefined || v === null || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(report: BenchReport, r: TargetResult): Record<(typeof CSV_COLUMNS)[number], unknown> {
  const s = report.settings;
  const m = r.serverMetrics;
  return {
    date: report.date,
    label: r.label,
    target: r.target,
    server_kind: r.server.kind,
    server_engine: r.server.engine,
    workload: r.workload,
    status: r.status,
    protocol: s['protocol'],
    framing: s['framing'],
    connections: s['connections'],
    depth: s['depth'],
    size: s['size'],
    rate: r.targetRate,
    duration_s: r.elapsedSec,
    client_engine: r.clientEngine,
    client_threads: r.clientThreads,
    messages: r.messages,
    msgs_per_s: r.msgsPerSec,
    ratio_to_first: r.ratioToFirst,
    mb_per_s: r.mbPerSec,
    sent_per_s: r.sentPerSec,
    rtt_min_us: r.latency.minUs,
    rtt_avg_us: r.latency.avgUs,
    rtt_p50_us: r.latency.p50Us,
    rtt_p90_us: r.latency.p90Us,
    rtt_p95_us: r.latency.p95Us,
    rtt_p99_us: r.latency.p99Us,
    rtt_p999_us: r.latency.p999Us,
    rtt_max_us: r.latency.maxUs,
    jitter_us: r.latency.jitterUs,
    errors: r.errors,
    mismatches: r.mismatches,
    unanswered: r.unanswered,
    verified_bytes: r.verifiedBytes,
    server_cpu_user_pct: m?.cpuUserPct,
    server_cpu_sys_pct: m?.cpuSysPct,
    server_rss_bytes: m?.rssBytes,
    engine_events: m?.engine?.events,
    engine_batches: m?.engine?.batches,
    engine_js_crossings: m?.engine?.jsCrossings,
    events_per_crossing: m?.engine?.eventsPerCrossing,
    client_cpu_pct: r.clientCpuPct,
    client_cpus: r.clientCpus,
    client_saturated: r.clientSaturated,
    background_cpu_pct: r.backgroundCpuPct,
    echo_bench_msgs_per_s: r.echoBench?.msgsPerSec,
    echo_bench_p99_us: r.echoBench?.p99Us,
    vs_echo_bench: r.echoBench?.ratio,
    echo_bench_background_cpu_pct: r.echoBench?.backgroundCpuPct,
    idle_connected: r.idle?.connected,
    idle_rss_per_conn_bytes: r.idle?.rssPerConnBytes,
    idle_heap_per_conn_bytes: r.idle?.heapPerConnBytes,
    note: r.note,
  };
}

export function toCsv(report: BenchReport): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of report.results) {
    const row = csvRow(report, r);
    lines.push(CSV_COLUMNS.map((c) => csvCell(row[c])).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** Parses CSV written by toCsv (quoted cells, doubled quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else if (ch !== '\r') cell += ch;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

// ------------------------------------------------------------------ JSON

export function toJson(report: BenchReport): string {
  return `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

// ------------------------------------------------------------------ Markdown

function mdTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** A Markdown section for BENCHMARKS.md: machine, date, command, tables, chart. */
export function toMarkdown(report: BenchReport, chartPath: string | undefined, markdownFile: string | undefined): string {
  const m = report.machine;
  const out: string[] = [];
  out.push(`- date: ${report.date}`);
  out.push(`- machine: ${m.cpuModel}, ${m.cpus} cores, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}`);
  out.push(`- pinning: server cpus ${report.pinning.server ?? 'any'}, client cpus ${report.pinning.client ?? 'any'} (${report.pinning.note})`);
  out.push(`- settings: ${describe(report)}`);
  out.push('', '```sh', report.command, '```', '');
  const idle = report.results.filter((r) => r.workload === 'idle');
  const rest = report.results.filter((r) => r.workload !== 'idle');
  if (idle.length > 0) {
    const t = idleTable(idle);
    out.push(mdTable(t.header, t.rows), '');
  }
  if (rest.length > 0) {
    const t = throughputTable(rest);
    out.push(mdTable(t.header, t.rows), '');
    const l = latencyTable(rest);
    if (l.rows.length > 0) out.push(`Latency (µs):`, '', mdTable(l.header, l.rows), '');
  }
  const notes = report.results.filter((r) => r.note).map((r) => `- ${r.label}${r.status === 'ok' ? '' : ` (${r.status})`}: ${r.note}`);
  if (notes.length > 0) out.push('Notes:', '', ...notes, '');
  if (chartPath !== undefined) {
    const rel = markdownFile ? path.relative(path.dirname(path.resolve(markdownFile)), path.resolve(chartPath)) : chartPath;
    out.push(`![chart](${rel.split(path.sep).join('/')})`, '');
  }
  return out.join('\n');
}

/**
 * Writes `section` into `file` between `<!-- fastport-bench:NAME:begin -->` and
 * `<!-- fastport-bench:NAME:end -->`, replacing an earlier section of that name
 * or appending a new one (with a `### NAME` heading) at the end.
 */
export function updateMarkdownFile(file: string, name: string, section: string): void {
  const begin = `<!-- fastport-bench:${name}:begin -->`;
  const end = `<!-- fastport-bench:${name}:end -->`;
  const block = `${begin}\n${section.trimEnd()}\n${end}`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const a = old.indexOf(begin);
  const b = old.indexOf(end);
  let text: string;
  if (a >= 0 && b > a) text = old.slice(0, a) + block + old.slice(b + end.length);
  else text = `${old.trimEnd()}${old ? '\n\n' : ''}### ${name}\n\n${block}\n`;
  fs.writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
}
