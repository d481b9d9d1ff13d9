import { XMLValidator } from 'fast-xml-parser';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { escapeXml, niceMax, renderChart } from '../src/chart';
import { CSV_COLUMNS, formatReport, parseCsv, textTable, toCsv, toJson, toMarkdown, updateMarkdownFile } from '../src/report';
import { applyRatios, medianOf } from '../src/runner';
import { emptySummary } from '../src/stats';
import { report, result } from './fixtures';

function compareReport() {
  const results = [
    result('uring', 150_000, { echoBench: { command: 'echo-bench …', msgsPerSec: 160_000, mbPerSec: 10, p50Us: 200, p90Us: 300, p99Us: 500, p999Us: 900, maxUs: 2000, bad: 0, errors: 0, ratio: 150 / 160, backgroundCpuPct: 1 } }),
    result('epoll', 110_000),
    result('node', 74_000, { note: 'a note, with "quotes"\nand a newline' }),
    { ...result('iocp', 0), status: 'skipped' as const, note: 'iocp runs on win32, this is linux', latency: emptySummary(), serverMetrics: undefined },
  ];
  applyRatios(results);
  return report(results);
}

describe('ratios', () => {
  it('are relative to the first successful row', () => {
    const r = compareReport();
    expect(r.results.map((x) => x.ratioToFirst)).toEqual([1, 110 / 150, 74 / 150, undefined]);
  });
});

describe('--repeat', () => {
  it('reports the median round, echo-bench median and the ratio of medians', () => {
    const eb = (m: number) => ({ command: '', msgsPerSec: m, mbPerSec: 1, p50Us: 1, p90Us: 1, p99Us: 1, p999Us: 1, maxUs: 1, bad: 0, errors: 0, ratio: 0, backgroundCpuPct: 0 });
    const runs = [
      result('epoll', 150_000, { echoBench: eb(200_000), errors: 1 }),
      result('epoll', 180_000, { echoBench: eb(190_000) }),
      result('epoll', 170_000, { echoBench: eb(160_000) }),
    ];
    const m = medianOf(runs);
    expect(m.msgsPerSec).toBe(170_000);
    expect(m.echoBench?.msgsPerSec).toBe(190_000);
    expect(m.echoBench?.ratio).toBeCloseTo(170 / 190, 9);
    expect(m.errors).toBe(1);
    expect(m.note).toMatch(/median of 3; rounds \(msgs\/s\): 150000, 180000, 170000/);
  });
  it('a failed round fails the target', () => {
    const bad = { ...result('epoll', 0), status: 'failed' as const, note: 'boom' };
    expect(medianOf([result('epoll', 1), bad]).status).toBe('failed');
  });
});

describe('CSV', () => {
  it('has the documented header and one row per target, each as wide as the header', () => {
    const rows = parseCsv(toCsv(compareReport()));
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(1 + 4);
    for (const row of rows) expect(row).toHaveLength(CSV_COLUMNS.length);
  });
  it('carries numbers unformatted and quotes what needs it', () => {
    const rows = parseCsv(toCsv(compareReport()));
    const header = rows[0]!;
    const col = (row: string[], name: string) => row[header.indexOf(name)];
    const uring = rows[1]!;
    expect(col(uring, 'label')).toBe('uring');
    expect(Number(col(uring, 'msgs_per_s'))).toBe(150_000);
    expect(Number(col(uring, 'rtt_p99_us'))).toBe(1500);
    expect(Number(col(uring, 'vs_echo_bench'))).toBeCloseTo(0.9375, 3);
    expect(Number(col(uring, 'events_per_crossing'))).toBe(10);
    expect(col(rows[3]!, 'note')).toBe('a note, with "quotes"\nand a newline');
    expect(col(rows[4]!, 'status')).toBe('skipped');
    expect(col(rows[4]!, 'rtt_p50_us')).toBe('');
  });
});

describe('JSON', () => {
  it('round-trips with the report shape', () => {
    const r = compareReport();
    const j = JSON.parse(toJson(r)) as Record<string, unknown>;
    expect(Object.keys(j).sort()).toEqual(['command', 'date', 'machine', 'pinning', 'results', 'settings', 'tool', 'version']);
    expect(j['tool']).toBe('fastport-bench');
    const results = j['results'] as Record<string, unknown>[];
    expect(results).toHaveLength(4);
    const first = results[0]!;
    for (const k of ['label', 'server', 'workload', 'status', 'msgsPerSec', 'mbPerSec', 'latency', 'errors', 'mismatches', 'serverMetrics', 'echoBench', 'ratioToFirst']) {
      expect(first).toHaveProperty(k);
    }
    expect(Object.keys(first['latency'] as object).sort()).toEqual(['avgUs', 'count', 'jitterUs', 'maxUs', 'minUs', 'p50Us', 'p90Us', 'p95Us', 'p999Us', 'p99Us']);
    // NaN (skipped rows) becomes null, never invalid JSON
    expect((results[3]!['latency'] as Record<string, unknown>)['p50Us']).toBeNull();
  });
});

describe('text and markdown', () => {
  it('the table lists every target with its ratio', () => {
    const text = formatReport(compareReport());
    expect(text).toMatch(/uring\s+uring\s+150,000\s+1\.00×/);
    expect(text).toMatch(/node\s+node\s+74,000\s+0\.49×/);
    expect(text).toContain('skipped');
    expect(text).toContain('94%'); // vs echo-bench
    expect(text).toContain('p99.9');
  });
  it('aligns columns', () => {
    const t = textTable(['a', 'bb'], [['x', '1'], ['yyy', '22']]).split('\n');
    expect(new Set(t.map((l) => l.length)).size).toBeLessThanOrEqual(2);
  });
  it('updates a marked section in place and appends new ones', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fpb-')), 'B.md');
    fs.writeFileSync(file, '# Benchmarks\n\nintro\n');
    updateMarkdownFile(file, 'rr', 'first');
    updateMarkdownFile(file, 'idle', 'other');
    updateMarkdownFile(file, 'rr', 'second');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('intro');
    expect(text).toContain('second');
    expect(text).not.toContain('first');
    expect(text.indexOf('fastport-bench:rr:begin')).toBeLessThan(text.indexOf('fastport-bench:idle:begin'));
    expect(text.match(/### rr/g)).toHaveLength(1);
  });
  it('markdown links the chart relative to the file', () => {
    const md = toMarkdown(compareReport(), '/repo/apps/benchmark/results/x.svg', '/repo/BENCHMARKS.md');
    expect(md).toContain('![chart](apps/benchmark/results/x.svg)');
    expect(md).toContain('| uring |');
  });
});

describe('SVG chart', () => {
  it('is well-formed XML with one throughput bar (plus echo-bench) per target', () => {
    const svg = renderChart(compareReport());
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    for (const label of ['uring', 'epoll', 'node']) expect(svg).toContain(`>${label}</text>`);
    expect(svg).not.toContain('>iocp</text>'); // skipped rows are not charted
    expect(svg).toContain('echo-bench');
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });
  it('escapes labels and stays well-formed for idle, empty and odd reports', () => {
    const odd = result('a<b>&"c\'', 1000);
    expect(XMLValidator.validate(renderChart(report([odd])))).toBe(true);
    expect(XMLValidator.validate(renderChart(report([])))).toBe(true);
    const idle = result('node', 0, {
      workload: 'idle',
      idle: {
        requested: 1000, connected: 1000, failed: 0, processes: 1, sources: ['127.0.0.2'], connectSeconds: 1, connectsPerSec: 1000,
        serverConnections: 1000, rssBeforeBytes: 50e6, rssAfterBytes: 53e6, heapBeforeBytes: 5e6, heapAfterBytes: 6e6, rssPerConnBytes: 3000, heapPerConnBytes: 1000,
      },
    });
    const svg = renderChart(report([idle], { workload: 'idle', connections: 1000 }));
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg).toContain('per idle connection');
    expect(escapeXml('<&>')).toBe('&lt;&amp;&gt;');
  });
  it('picks readable axis maxima', () => {
    expect(niceMax(73_000)).toBe(100_000);
    expect(niceMax(151_000)).toBe(200_000);
    expect(niceMax(0)).toBe(1);
  });
});
