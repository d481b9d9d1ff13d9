/**
 * The live dashboard page: two sides (A, B), their settings and buttons, live
 * uPlot charts fed by the server's event stream (/api/events), a B/A ratio
 * strip, the admin view and export links. Bundled with uPlot by
 * scripts/build-ui.js into dist/ui/app.js; no network access beyond the
 * dashboard's own server.
 */
import uPlot from 'uplot';
import type { ApiErrorBody, ClientCpuState, SideId, SidePoint, SideSettings, SideState, TargetChoice, UiEvent, UiState } from '../src/ui-api';

const SIDES: SideId[] = ['A', 'B'];
const COLORS: Record<SideId, string> = { A: '#1f77b4', B: '#ff7f0e' };
const HEARTBEAT_MS = 1000;
/** Points drawn per chart (the server keeps more; the JSON export has them all). */
const CHART_POINTS = 600;

type Field = keyof SidePoint;

/** What the "latest" table shows, and how: the cell's data-raw holds the exact value of the point. */
const LATEST: { field: Exclude<Field, 't'>; label: string; fmt: (v: number) => string }[] = [
  { field: 'msgsPerSec', label: 'msgs/s', fmt: (v) => Math.round(v).toString() },
  { field: 'mbPerSec', label: 'MB/s', fmt: (v) => v.toFixed(2) },
  { field: 'p50Us', label: 'RTT p50 µs', fmt: (v) => v.toFixed(1) },
  { field: 'p99Us', label: 'RTT p99 µs', fmt: (v) => v.toFixed(1) },
  { field: 'p999Us', label: 'RTT p99.9 µs', fmt: (v) => v.toFixed(1) },
  { field: 'connections', label: 'connections', fmt: (v) => v.toString() },
  { field: 'errors', label: 'errors', fmt: (v) => v.toString() },
  { field: 'serverCpuPct', label: 'server CPU %', fmt: (v) => v.toFixed(1) },
  { field: 'serverRssBytes', label: 'server RSS MiB', fmt: (v) => (v / 2 ** 20).toFixed(1) },
  { field: 'eventsPerCrossing', label: 'events / JS crossing', fmt: (v) => v.toFixed(2) },
  { field: 'clientCpuPct', label: 'client CPU % (this side)', fmt: (v) => v.toFixed(1) },
];

interface ChartSpec {
  title: string;
  series: { field: Field; label: string; scale?: number }[];
  log?: boolean;
}

const CHARTS: ChartSpec[] = [
  { title: 'msgs/s', series: [{ field: 'msgsPerSec', label: 'msgs/s' }] },
  { title: 'MB/s', series: [{ field: 'mbPerSec', label: 'MB/s' }] },
  { title: 'RTT µs', log: true, series: [{ field: 'p50Us', label: 'p50' }, { field: 'p99Us', label: 'p99' }, { field: 'p999Us', label: 'p99.9' }] },
  { title: 'connections / errors', series: [{ field: 'connections', label: 'connections' }, { field: 'errors', label: 'errors' }] },
  { title: 'CPU % of a core', series: [{ field: 'serverCpuPct', label: 'server' }, { field: 'clientCpuPct', label: 'client (this side)' }] },
  { title: 'server RSS MiB', series: [{ field: 'serverRssBytes', label: 'RSS MiB', scale: 1 / 2 ** 20 }] },
  { title: 'events per JS crossing', series: [{ field: 'eventsPerCrossing', label: 'ev/cross' }] },
];
const SERIES_SHADES = ['', 'cc', '88'];

interface SideView {
  id: SideId;
  root: HTMLElement;
  form: HTMLFormElement;
  status: HTMLElement;
  reason: HTMLElement;
  error: HTMLElement;
  latest: HTMLTableElement;
  sat: HTMLElement;
  charts: { spec: ChartSpec; plot: uPlot }[];
  points: SidePoint[];
  state: SideState | undefined;
  adminOffset: number;
}

const views = {} as Record<SideId, SideView>;
let ratioPlot: uPlot | undefined;
const ratioData: [number[], (number | null)[], (number | null)[]] = [[], [], []];
let ratioLast = { a: 0, b: 0 };

function $(sel: string, root: ParentNode = document): HTMLElement {
  const el = root.querySelector(sel);
  if (!(el instanceof HTMLElement)) throw new Error(`page element ${sel} missing`);
  return el;
}

function showError(el: HTMLElement, message: string | undefined): void {
  el.hidden = message === undefined;
  el.textContent = message ?? '';
}

async function api<T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    // JSON on every POST: the server refuses anything else (see checkOrigin in ui-server.ts)
    headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? {} : JSON.parse(text);
  } catch {
    throw new Error(`${method} ${url}: HTTP ${res.status}`);
  }
  if (!res.ok) {
    const e = (json as Partial<ApiErrorBody>).error;
    throw new Error(e !== undefined ? `${e.message} (${e.code}, HTTP ${res.status})` : `${method} ${url}: HTTP ${res.status}`);
  }
  return json as T;
}

// ------------------------------------------------------------------ settings

function formSettings(v: SideView): Partial<SideSettings> & Record<string, unknown> {
  const f = v.form.elements;
  const val = (name: string) => (f.namedItem(name) as HTMLInputElement | HTMLSelectElement).value;
  const choice = val('targetChoice');
  const num = (name: string) => {
    const t = val(name).trim();
    // an empty or unparsable field goes to the server as text, and is refused there with its name
    return t !== '' && Number.isFinite(Number(t)) ? Number(t) : t;
  };
  return {
    target: choice === 'custom' ? val('custom').trim() : choice,
    connections: num('connections'),
    depth: num('depth'),
    size: num('size'),
    rate: num('rate'),
    framing: val('framing'),
    threads: num('threads'),
  } as Partial<SideSettings> & Record<string, unknown>;
}

function fillForm(v: SideView, s: SideSettings): void {
  const f = v.form.elements;
  const set = (name: string, value: string) => {
    (f.namedItem(name) as HTMLInputElement | HTMLSelectElement).value = value;
  };
  const select = f.namedItem('targetChoice') as HTMLSelectElement;
  const known = [...select.options].some((o) => o.value === s.target);
  set('targetChoice', known ? s.target : 'custom');
  if (!known) set('custom', s.target);
  ($('.custom', v.form) as HTMLElement).hidden = known;
  set('connections', String(s.connections));
  set('depth', String(s.depth));
  set('size', String(s.size));
  set('rate', String(s.rate));
  set('framing', s.framing);
  set('threads', String(s.threads));
}

async function startSide(id: SideId, overrides?: Partial<SideSettings>): Promise<void> {
  const v = views[id];
  showError(v.error, undefined);
  try {
    const body = v.state?.status === 'paused' ? {} : { ...formSettings(v), ...(overrides ?? {}) };
    await api('POST', `/api/side/${id}/start`, body);
  } catch (err) {
    showError(v.error, (err as Error).message);
    throw err;
  }
}

async function sideAction(id: SideId, action: 'pause' | 'stop'): Promise<void> {
  const v = views[id];
  showError(v.error, undefined);
  try {
    await api('POST', `/api/side/${id}/${action}`);
  } catch (err) {
    showError(v.error, (err as Error).message);
  }
}

// ------------------------------------------------------------------ charts

function chartWidth(v: SideView): number {
  // two charts a row in each side's column (one on narrow screens, see style.css)
  const perRow = window.innerWidth > 1100 ? 2 : 1;
  return Math.max(240, Math.floor((v.root.clientWidth - 24) / perRow) - 4);
}

function makeChart(v: SideView, spec: ChartSpec, host: HTMLElement): uPlot {
  const series: uPlot.Series[] = [{}];
  spec.series.forEach((s, i) => series.push({ label: s.label, stroke: `${COLORS[v.id]}${SERIES_SHADES[i] ?? ''}`, width: 1.5, spanGaps: false }));
  const opts: uPlot.Options = {
    title: spec.title,
    width: chartWidth(v),
    height: 130,
    series,
    scales: { x: { time: true }, y: spec.log ? { distr: 3 } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    // room for labels like 100,000 on the y axis
    axes: [{}, { size: 64 }],
    legend: { show: spec.series.length > 1 },
    cursor: { drag: { x: false, y: false } },
  };
  return new uPlot(opts, [[], ...spec.series.map(() => [])] as uPlot.AlignedData, host);
}

function chartData(points: SidePoint[], spec: ChartSpec): uPlot.AlignedData {
  const recent = points.slice(-CHART_POINTS);
  const xs = recent.map((p) => p.t / 1000);
  const ys = spec.series.map((s) =>
    recent.map((p) => {
      const value = p[s.field];
      if (value === null) return null;
      const scaled = value * (s.scale ?? 1);
      return spec.log && !(scaled > 0) ? null : scaled;
    }),
  );
  return [xs, ...ys] as uPlot.AlignedData;
}

function redraw(v: SideView): void {
  for (const c of v.charts) {
    const data = chartData(v.points, c.spec);
    c.plot.setData(data);
    // how many points this chart draws (the browser test reads it)
    c.plot.root.parentElement?.setAttribute('data-points', String(data[0].length));
  }
}

function renderLatest(v: SideView): void {
  const p = v.points[v.points.length - 1];
  // the test reads this marker: the values below are those of the point with this t
  v.latest.dataset['t'] = p !== undefined ? String(p.t) : '';
  for (const row of LATEST) {
    const cell = $(`td.v[data-field="${row.field}"]`, v.latest);
    const value = p !== undefined ? p[row.field] : null;
    cell.dataset['raw'] = value === null ? '' : JSON.stringify(value);
    cell.textContent = value === null ? '–' : row.fmt(value);
  }
}

function renderRatio(): void {
  const a = views.A.points[views.A.points.length - 1];
  const b = views.B.points[views.B.points.length - 1];
  const rows: [string, Field][] = [
    ['msgs/s', 'msgsPerSec'],
    ['MB/s', 'mbPerSec'],
    ['RTT p99', 'p99Us'],
    ['server CPU', 'serverCpuPct'],
    ['server RSS', 'serverRssBytes'],
  ];
  const body = $('#ratio-values');
  body.replaceChildren(
    ...rows.map(([label, field]) => {
      const tr = document.createElement('tr');
      const av = a?.[field] ?? null;
      const bv = b?.[field] ?? null;
      const r = av !== null && bv !== null && av > 0 ? bv / av : null;
      tr.innerHTML = `<td>${label}</td><td class="v" data-field="${field}">${r === null ? '–' : `${r.toFixed(2)}×`}</td>`;
      return tr;
    }),
  );
  // one ratio point per pair of new A and B points (they arrive about together, once a second)
  if (a !== undefined && b !== undefined && ratioPlot !== undefined && a.t !== ratioLast.a && b.t !== ratioLast.b) {
    ratioLast = { a: a.t, b: b.t };
    ratioData[0].push(Math.max(a.t, b.t) / 1000);
    ratioData[1].push(a.msgsPerSec > 0 ? b.msgsPerSec / a.msgsPerSec : null);
    ratioData[2].push(a.p99Us !== null && b.p99Us !== null && a.p99Us > 0 ? b.p99Us / a.p99Us : null);
    for (const arr of ratioData) if (arr.length > CHART_POINTS) arr.shift();
    ratioPlot.setData(ratioData as unknown as uPlot.AlignedData);
  }
}

function renderSide(v: SideView): void {
  const s = v.state;
  if (s === undefined) return;
  v.status.textContent = s.status;
  v.status.className = `status ${s.status}`;
  v.root.dataset['status'] = s.status;
  const server = s.server !== undefined ? `${s.server.kind}${s.server.engine !== undefined ? ` (${s.server.engine})` : ''} at ${s.server.address ?? '?'}` : '';
  v.reason.hidden = s.reason === undefined && server === '';
  v.reason.textContent = [s.reason, server].filter((x) => x !== undefined && x !== '').join(' — ');
  v.reason.style.color = s.status === 'failed' ? '' : '#555';
  v.sat.hidden = !s.clientSaturated;
  ($('.pause', v.root) as HTMLButtonElement).disabled = s.status !== 'running';
  ($('.stop', v.root) as HTMLButtonElement).disabled = s.status !== 'running' && s.status !== 'paused';
  ($('.start', v.root) as HTMLButtonElement).textContent = s.status === 'paused' ? 'Resume' : 'Start';
}

function renderClient(c: ClientCpuState): void {
  $('#client-cpu').textContent = c.cpuPct === null ? '–' : `${c.cpuPct.toFixed(0)}%`;
  $('#client-cores').textContent = `${c.cores}${c.cpuList !== undefined ? ` (cpu ${c.cpuList})` : ''}`;
  $('#client-saturated').hidden = !c.saturated;
}

// ------------------------------------------------------------------ admin

async function openAdmin(v: SideView, offset: number): Promise<void> {
  const panel = $('.admin', v.root);
  showError(v.error, undefined);
  try {
    const [status, page] = await Promise.all([
      api<Record<string, unknown>>('GET', `/api/side/${v.id}/admin/status`),
      api<{ total: number; offset: number; sessions: { id: number; remote: string; bytesIn: number; bytesOut: number; packetsIn: number; packetsOut: number; sendQueueBytes: number }[] }>(
        'GET',
        `/api/side/${v.id}/admin/sessions?offset=${offset}&limit=20`,
      ),
    ]);
    v.adminOffset = page.offset;
    $('.admin-status', panel).textContent = Object.entries(status).map(([k, val]) => `${k}: ${String(val)}`).join('\n');
    $('.admin-page', panel).textContent = `sessions ${page.total === 0 ? 0 : page.offset + 1}–${page.offset + page.sessions.length} of ${page.total}`;
    ($('.admin-prev', panel) as HTMLButtonElement).disabled = page.offset === 0;
    ($('.admin-next', panel) as HTMLButtonElement).disabled = page.offset + page.sessions.length >= page.total;
    $('tbody', $('.admin-sessions', panel)).replaceChildren(
      ...page.sessions.map((s) => {
        const tr = document.createElement('tr');
        for (const cell of [s.id, s.remote, s.bytesIn, s.bytesOut, s.packetsIn, s.packetsOut, s.sendQueueBytes]) {
          const td = document.createElement('td');
          td.textContent = String(cell);
          tr.append(td);
        }
        return tr;
      }),
    );
    panel.hidden = false;
  } catch (err) {
    showError(v.error, (err as Error).message);
  }
}

// ------------------------------------------------------------------ setup

function buildSide(id: SideId, targets: TargetChoice[]): SideView {
  const tpl = document.getElementById('side-template') as HTMLTemplateElement;
  const root = (tpl.content.firstElementChild as HTMLElement).cloneNode(true) as HTMLElement;
  root.id = `side-${id}`;
  root.dataset['side'] = id;
  $('#sides').append(root);
  $('.side-name', root).textContent = id;
  const form = root.querySelector('form') as HTMLFormElement;
  const select = form.elements.namedItem('targetChoice') as HTMLSelectElement;
  for (const t of targets) {
    const o = document.createElement('option');
    o.value = t.value;
    o.textContent = t.available ? t.label : `${t.label} (unavailable)`;
    o.disabled = !t.available;
    o.title = t.reason;
    select.append(o);
  }
  const custom = document.createElement('option');
  custom.value = 'custom';
  custom.textContent = 'host:port…';
  select.append(custom);
  select.addEventListener('change', () => {
    ($('.custom', form) as HTMLElement).hidden = select.value !== 'custom';
  });
  const latest = $('table.latest', root) as HTMLTableElement;
  latest.id = `latest-${id}`;
  $('tbody', latest).replaceChildren(
    ...LATEST.map((row) => {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td>${row.label}</td><td class="v" data-field="${row.field}">–</td>`;
      return tr;
    }),
  );
  const error = $('.error', root);
  error.id = `error-${id}`;
  const status = $('.status', root);
  status.id = `status-${id}`;
  const v: SideView = { id, root, form, status, reason: $('.reason', root), error, latest, sat: $('.side-sat', root), charts: [], points: [], state: undefined, adminOffset: 0 };
  const chartsHost = $('.charts', root);
  for (const spec of CHARTS) {
    const host = document.createElement('div');
    host.className = 'chart';
    host.dataset['chart'] = spec.title;
    chartsHost.append(host);
    v.charts.push({ spec, plot: makeChart(v, spec, host) });
  }
  $('.start', root).addEventListener('click', () => void startSide(id).catch(() => undefined));
  $('.pause', root).addEventListener('click', () => void sideAction(id, 'pause'));
  $('.stop', root).addEventListener('click', () => void sideAction(id, 'stop'));
  $('.admin-open', root).addEventListener('click', () => void openAdmin(v, 0));
  $('.admin-close', root).addEventListener('click', () => {
    $('.admin', root).hidden = true;
  });
  $('.admin-prev', root).addEventListener('click', () => void openAdmin(v, Math.max(0, v.adminOffset - 20)));
  $('.admin-next', root).addEventListener('click', () => void openAdmin(v, v.adminOffset + 20));
  root.id = `side-${id}`;
  root.querySelector('button.start')?.setAttribute('id', `start-${id}`);
  root.querySelector('button.pause')?.setAttribute('id', `pause-${id}`);
  root.querySelector('button.stop')?.setAttribute('id', `stop-${id}`);
  root.querySelector('button.admin-open')?.setAttribute('id', `admin-${id}`);
  return v;
}

function applyState(state: UiState): void {
  for (const s of state.sides) {
    const v = views[s.id];
    const firstTime = v.state === undefined;
    v.state = s;
    v.points = s.points;
    if (firstTime) fillForm(v, s.settings);
    renderSide(v);
    renderLatest(v);
    redraw(v);
  }
  renderClient(state.client);
  renderRatio();
}

function onEvent(ev: UiEvent): void {
  if (ev.type === 'state') applyState(ev.state);
  else if (ev.type === 'side') {
    const v = views[ev.side.id];
    const restarted = v.state !== undefined && v.state.startedAt !== ev.side.startedAt;
    v.state = { ...ev.side, points: v.points };
    if (restarted) {
      v.points = [];
      redraw(v);
      renderLatest(v);
    }
    renderSide(v);
  } else if (ev.type === 'point') {
    const v = views[ev.side];
    v.points.push(ev.point);
    if (v.points.length > 3600) v.points.shift();
    if (v.state !== undefined) v.state.clientSaturated = ev.client.saturated;
    renderLatest(v);
    redraw(v);
    renderSide(v);
    renderClient(ev.client);
    renderRatio();
  }
}

function connectEvents(): void {
  const es = new EventSource('/api/events');
  for (const type of ['state', 'side', 'point'] as const) {
    es.addEventListener(type, (e) => onEvent(JSON.parse((e as MessageEvent<string>).data) as UiEvent));
  }
  es.addEventListener('open', () => showError($('#error-global'), undefined));
  es.addEventListener('error', () => showError($('#error-global'), 'lost the connection to fastport-bench (retrying)…'));
}

/** ?autostart=A,B[&connections=N&depth=N&size=N&rate=N&framing=F]: the page itself starts the comparison. */
async function autostart(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const spec = q.get('autostart');
  if (spec === null) return;
  const targets = spec.split(',').map((x) => x.trim()).filter(Boolean);
  if (targets.length !== 2) {
    showError($('#error-global'), `?autostart wants two targets, A,B (got '${spec}')`);
    return;
  }
  const common: Record<string, unknown> = {};
  for (const k of ['connections', 'depth', 'size', 'rate', 'threads']) {
    const val = q.get(k);
    if (val !== null) common[k] = Number(val);
  }
  const framing = q.get('framing');
  if (framing !== null) common['framing'] = framing;
  await Promise.all(
    SIDES.map(async (id, i) => {
      const settings = { ...formSettings(views[id]), ...common, target: targets[i] } as Partial<SideSettings>;
      try {
        const st = await api<SideState>('POST', `/api/side/${id}/settings`, settings);
        fillForm(views[id], st.settings);
        await startSide(id);
      } catch (err) {
        showError(views[id].error, (err as Error).message);
      }
    }),
  );
}

async function main(): Promise<void> {
  const targets = await api<TargetChoice[]>('GET', '/api/targets');
  for (const id of SIDES) views[id] = buildSide(id, targets);
  ratioPlot = new uPlot(
    {
      title: 'B / A over time',
      width: Math.max(300, $('#ratio').clientWidth - 24),
      height: 120,
      series: [{}, { label: 'msgs/s B/A', stroke: '#444', width: 1.5 }, { label: 'p99 B/A', stroke: '#aaa', width: 1.5 }],
      scales: { x: { time: true } },
    },
    ratioData as unknown as uPlot.AlignedData,
    $('#ratio-chart'),
  );
  applyState(await api<UiState>('GET', '/api/state'));
  connectEvents();
  setInterval(() => void fetch('/api/heartbeat', { method: 'POST', headers: { 'content-type': 'application/json' } }).catch(() => undefined), HEARTBEAT_MS);
  window.addEventListener('resize', () => {
    for (const id of SIDES) for (const c of views[id].charts) c.plot.setSize({ width: chartWidth(views[id]), height: 130 });
  });
  document.body.dataset['ready'] = '1';
  await autostart();
}

main().catch((err: unknown) => showError($('#error-global'), `the page could not start: ${(err as Error).message}`));
