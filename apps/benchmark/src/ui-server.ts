/**
 * `fastport-bench --ui`: the live dashboard's HTTP server, on 127.0.0.1 only.
 * Serves the page (dist/ui/, built by scripts/build-ui.js), a JSON API and an
 * SSE stream of points. Load runs only while a page is connected: when the
 * last event stream closes and no heartbeat came for HEARTBEAT_TIMEOUT_MS,
 * both sides stop (closing the tab stops the load within seconds).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { engineAvailability, listEngines } from '@fastport/native-io';
import { AdminError, adminSessions, adminStatus } from './admin-client';
import { renderChart } from './chart';
import { killAll } from './children';
import { LiveSide } from './live';
import { allowedCpus } from './pin';
import { toCsv, toJson } from './report';
import { applyRatios, type BenchSettings } from './runner';
import { clientCores, isClientSaturated } from './saturation';
import type { BenchReport } from './types';
import { SIDE_IDS, type ApiErrorBody, type ClientCpuState, type SideId, type SidePoint, type TargetChoice, type UiEvent, type UiState } from './ui-api';
import { ApiError, DEFAULT_SIDE_SETTINGS, kitHasRefEcho, validateSettings } from './ui-validate';
import { machineInfo } from './proc';

export const UI_HOST = '127.0.0.1';
export const HEARTBEAT_TIMEOUT_MS = 5000;
const WATCHDOG_MS = 500;
const MAX_BODY = 64 * 1024;

export interface UiServerOptions {
  port: number;
  /** The command line's settings (server binary, pinning, kit, client engine); each side overrides the workload. */
  base: BenchSettings;
  /** Where the page's files are (default: dist/ui next to this file). */
  assetDir?: string;
  log?: (line: string) => void;
}

/** Refuses anything but loopback 127.0.0.1: the dashboard starts processes and has no authentication. */
export function checkUiHost(host: string): void {
  if (host !== UI_HOST) throw new Error(`--ui binds ${UI_HOST} only (asked for '${host}'): the dashboard starts servers and load and has no authentication`);
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

export class UiServer {
  readonly sides: Record<SideId, LiveSide>;
  private readonly http: http.Server;
  private readonly streams = new Set<http.ServerResponse>();
  private lastHeartbeat = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly assetDir: string;
  private readonly log: (line: string) => void;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: UiServerOptions) {
    this.assetDir = opts.assetDir ?? path.join(__dirname, 'ui');
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    const events = {
      point: (side: SideId, point: SidePoint) => this.broadcast({ type: 'point', side, point, client: this.clientState() }),
      change: (side: LiveSide) => this.broadcast({ type: 'side', side: side.state(false) }),
    };
    // uring against epoll where both run; otherwise the engines this machine has, in that order
    const here = (['uring', 'epoll', 'node'] as const).filter((k) => engineAvailability(k).available);
    this.sides = {
      A: new LiveSide('A', { ...DEFAULT_SIDE_SETTINGS, target: here[0] ?? 'node' }, opts.base, events),
      B: new LiveSide('B', { ...DEFAULT_SIDE_SETTINGS, target: here[1] ?? here[0] ?? 'node' }, opts.base, events),
    };
    this.http = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => this.sendError(res, err));
    });
  }

  /** Listens on 127.0.0.1:port (0: any free port); resolves with the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, UI_HOST, () => resolve());
    });
    this.watchdog = setInterval(() => this.checkPageAlive(), WATCHDOG_MS);
    return (this.http.address() as { port: number }).port;
  }

  /** Stops both sides (their load and servers), closes the event streams and the listener. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.watchdog !== undefined) clearInterval(this.watchdog);
      await Promise.all(SIDE_IDS.map((id) => this.sides[id].stop('the dashboard is shutting down')));
      for (const s of this.streams) s.end();
      this.streams.clear();
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      // idle keep-alive connections would hold close() open
      this.http.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }

  private anyRunning(): boolean {
    return SIDE_IDS.some((id) => this.sides[id].status === 'running' || this.sides[id].status === 'paused');
  }

  /** No page left (no event stream, no heartbeat for a while): stop the load rather than run unwatched. */
  private checkPageAlive(): void {
    if (!this.anyRunning() || this.streams.size > 0) return;
    if (Date.now() - this.lastHeartbeat < HEARTBEAT_TIMEOUT_MS) return;
    this.log('fastport-bench --ui: no page connected: stopping the load');
    for (const id of SIDE_IDS) void this.sides[id].stop('the page was closed');
  }

  clientState(): ClientCpuState {
    const cores = clientCores();
    const running = SIDE_IDS.map((id) => this.sides[id]).filter((s) => s.status === 'running' || s.status === 'paused');
    // each side samples the whole process over its last seconds: either running side's window will do
    const pct = running.map((s) => s.processCpuPct()).find((v) => v !== null) ?? null;
    return { cores, cpuList: allowedCpus(), cpuPct: pct, saturated: isClientSaturated(pct ?? undefined, cores) === true };
  }

  state(): UiState {
    return { tool: 'fastport-bench', version: this.opts.base.version, now: Date.now(), client: this.clientState(), sides: SIDE_IDS.map((id) => this.sides[id].state()) };
  }

  private broadcast(ev: UiEvent): void {
    const text = `event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`;
    for (const s of this.streams) s.write(text);
  }

  targets(): TargetChoice[] {
    const engines = listEngines().filter((e) => ['uring', 'epoll', 'node', 'iocp', 'rio'].includes(e.kind));
    const out: TargetChoice[] = engines
      .filter((e) => e.available || (e.kind !== 'iocp' && e.kind !== 'rio'))
      .map((e) => ({ value: e.kind, label: e.kind, available: e.available, reason: e.reason }));
    const kit = kitHasRefEcho(this.opts.base.kit);
    for (const r of ['ref-uring', 'ref-epoll']) {
      if (kit) out.push({ value: r, label: `${r} (C reference)`, available: true, reason: `ref-echo from ${this.opts.base.kit}` });
    }
    return out;
  }

  // ------------------------------------------------------------------ HTTP

  private send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
    const text = type === 'application/json' ? JSON.stringify(body) : String(body);
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(text);
  }

  private sendError(res: http.ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    let status = 500;
    let body: ApiErrorBody;
    if (err instanceof ApiError) {
      status = err.status;
      body = { error: { code: err.code, message: err.message } };
    } else if (err instanceof AdminError) {
      status = 502;
      body = { error: { code: err.code, message: err.message } };
    } else body = { error: { code: 'internal', message: (err as Error).message ?? String(err) } };
    this.send(res, status, body);
  }

  private async readJson(req: http.IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > MAX_BODY) throw new ApiError(413, 'body-too-large', `request body over ${MAX_BODY} bytes`);
      chunks.push(c);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ApiError(400, 'bad-json', 'the request body is not JSON');
    }
  }

  private side(id: string | undefined): LiveSide {
    if (id !== 'A' && id !== 'B') throw new ApiError(404, 'unknown-side', `unknown side '${id}' (A or B)`);
    return this.sides[id];
  }

  private other(id: SideId): LiveSide {
    return this.sides[id === 'A' ? 'B' : 'A'];
  }

  /**
   * Another web page open in the same browser may send requests here: a Host other than this
   * address (DNS rebinding) is refused, and a POST must be JSON, which a cross-origin page cannot
   * send without a CORS preflight that this server never answers.
   */
  private checkOrigin(req: http.IncomingMessage): void {
    const port = (this.http.address() as { port: number } | null)?.port;
    const host = req.headers.host ?? '';
    if (host !== `${UI_HOST}:${port}` && host !== `localhost:${port}`) throw new ApiError(403, 'bad-host', `requests must be addressed to ${UI_HOST}:${port} (got Host '${host}')`);
    if (req.method === 'POST' && !/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
      throw new ApiError(415, 'not-json', 'POST requests must have content-type application/json');
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${UI_HOST}`);
    const p = url.pathname;
    const method = req.method ?? 'GET';
    this.checkOrigin(req);
    if (method === 'GET' && (p === '/' || p === '/index.html')) return this.serveAsset(res, 'index.html');
    if (method === 'GET' && p.startsWith('/ui/')) return this.serveAsset(res, p.slice(4));
    if (method === 'GET' && p === '/api/state') return this.send(res, 200, this.state());
    if (method === 'GET' && p === '/api/targets') return this.send(res, 200, this.targets());
    if (method === 'GET' && p === '/api/events') return this.openStream(req, res);
    if (method === 'POST' && p === '/api/heartbeat') {
      this.lastHeartbeat = Date.now();
      return this.send(res, 200, { ok: true });
    }
    if (method === 'GET' && p === '/api/export.json') return this.sendExport(res, 'json');
    if (method === 'GET' && p === '/api/export.csv') return this.sendExport(res, 'csv');
    if (method === 'GET' && p === '/api/export-summary.csv') return this.sendExport(res, 'summary-csv');
    if (method === 'GET' && p === '/api/export.svg') return this.sendExport(res, 'svg');
    const m = /^\/api\/side\/([^/]+)\/([a-z/]+)$/.exec(p);
    if (m) {
      const side = this.side(m[1]);
      const action = m[2];
      if (method === 'POST' && action === 'settings') {
        const body = await this.readJson(req);
        if (side.status === 'running' || side.status === 'paused') throw new ApiError(409, 'side-running', `side ${side.id} is ${side.status}: stop it before changing its settings`);
        side.settings = validateSettings(body, side.settings, this.opts.base.kit, this.other(side.id).heldConnections);
        this.broadcast({ type: 'side', side: side.state(false) });
        return this.send(res, 200, side.state(false));
      }
      if (method === 'POST' && action === 'start') {
        const body = await this.readJson(req);
        if (side.status !== 'paused' && side.status !== 'running') {
          // settings may come with the start; either way they are checked again (the other side may have grown)
          side.settings = validateSettings(body, side.settings, this.opts.base.kit, this.other(side.id).heldConnections);
        }
        this.lastHeartbeat = Date.now();
        void side.start();
        return this.send(res, 202, side.state(false));
      }
      if (method === 'POST' && action === 'pause') {
        side.pause();
        return this.send(res, 200, side.state(false));
      }
      if (method === 'POST' && action === 'stop') {
        await side.stop();
        return this.send(res, 200, side.state(false));
      }
      if (method === 'GET' && action === 'admin/status') {
        const a = this.adminTarget(side);
        return this.send(res, 200, await adminStatus(a.host, a.port, a.token));
      }
      if (method === 'GET' && action === 'admin/sessions') {
        const a = this.adminTarget(side);
        const offset = Number(url.searchParams.get('offset') ?? '0');
        const limit = Number(url.searchParams.get('limit') ?? '20');
        if (!Number.isInteger(offset) || offset < 0) throw new ApiError(400, 'bad-offset', 'offset must be a whole number >= 0');
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ApiError(400, 'bad-limit', 'limit must be 1..1000');
        return this.send(res, 200, await adminSessions(a.host, a.port, a.token, offset, limit));
      }
    }
    throw new ApiError(404, 'not-found', `no ${method} ${p}`);
  }

  /** A side's admin access: the admin port of a server the bench started, else the target's port with FASTPORT_ADMIN_TOKEN. */
  private adminTarget(side: LiveSide): { host: string; port: number; token: string } {
    if (side.admin !== undefined) return side.admin;
    const addr = side.serverAddress;
    if (addr === undefined) throw new ApiError(409, 'no-server', `side ${side.id} has no server running: start it first`);
    const token = process.env['FASTPORT_ADMIN_TOKEN'];
    if (token === undefined || token === '') {
      throw new ApiError(409, 'no-admin-token', `side ${side.id}'s server was not started by the bench: set FASTPORT_ADMIN_TOKEN to its --admin-token`);
    }
    return { host: addr.host, port: addr.port, token };
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write(`retry: 1000\n\n`);
    this.streams.add(res);
    this.lastHeartbeat = Date.now();
    const ev: UiEvent = { type: 'state', state: this.state() };
    res.write(`event: state\ndata: ${JSON.stringify(ev)}\n\n`);
    req.on('close', () => {
      this.streams.delete(res);
      // the tab may reload: the watchdog waits HEARTBEAT_TIMEOUT_MS from this moment
      this.lastHeartbeat = Date.now();
    });
  }

  private serveAsset(res: http.ServerResponse, name: string): void {
    const file = path.resolve(this.assetDir, name);
    if (!file.startsWith(path.resolve(this.assetDir) + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      const hint = name === 'index.html' ? ` (build the page: pnpm --filter fastport-bench build)` : '';
      throw new ApiError(404, 'not-found', `no file ${name}${hint}`);
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  }

  /** The run as the CLI's report: one result row per side that ran. */
  report(): BenchReport {
    const results = SIDE_IDS.map((id) => this.sides[id]).filter((s) => s.status !== 'idle').map((s) => s.summary());
    applyRatios(results);
    const a = this.sides.A.settings;
    return {
      tool: 'fastport-bench',
      version: this.opts.base.version,
      date: new Date().toISOString(),
      command: 'fastport-bench --ui',
      machine: machineInfo(),
      settings: { ui: true, A: { ...this.sides.A.settings }, B: { ...this.sides.B.settings }, connections: a.connections, depth: a.depth, size: a.size, framing: a.framing, protocol: 'raw', loadAverage: os.loadavg() },
      pinning: { server: this.opts.base.serverCpus, client: allowedCpus(), note: this.opts.base.pinNote },
      results,
    };
  }

  private sendExport(res: http.ServerResponse, kind: 'json' | 'csv' | 'summary-csv' | 'svg'): void {
    const report = this.report();
    if (report.results.length === 0) throw new ApiError(409, 'nothing-to-export', 'no side has run yet');
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
    const disposition = (ext: string) => ({ 'content-disposition': `attachment; filename="fastport-bench-ui-${stamp}.${ext}"`, 'cache-control': 'no-store' });
    if (kind === 'json') {
      const series = Object.fromEntries(SIDE_IDS.map((id) => [id, this.sides[id].state()]));
      const text = `${toJson({ ...report, series } as BenchReport).trimEnd()}\n`;
      res.writeHead(200, { 'content-type': 'application/json', ...disposition('json') });
      res.end(text);
    } else if (kind === 'summary-csv') {
      res.writeHead(200, { 'content-type': 'text/csv', ...disposition('summary.csv') });
      res.end(toCsv(report));
    } else if (kind === 'csv') {
      res.writeHead(200, { 'content-type': 'text/csv', ...disposition('csv') });
      res.end(pointsCsv(this.state()));
    } else {
      res.writeHead(200, { 'content-type': 'image/svg+xml', ...disposition('svg') });
      res.end(renderChart(report));
    }
  }
}

export const POINT_COLUMNS: readonly (keyof SidePoint)[] = ['t', 'msgsPerSec', 'mbPerSec', 'p50Us', 'p99Us', 'p999Us', 'connections', 'errors', 'serverCpuPct', 'serverRssBytes', 'eventsPerCrossing', 'clientCpuPct'];

/** Every point of both sides, one row each: side, target, then the point's fields. */
export function pointsCsv(state: UiState): string {
  const rows = [['side', 'target', ...POINT_COLUMNS].join(',')];
  for (const s of state.sides) {
    for (const p of s.points) rows.push([s.id, s.settings.target, ...POINT_COLUMNS.map((k) => (p[k] === null ? '' : String(p[k])))].join(','));
  }
  return `${rows.join('\n')}\n`;
}

/** Runs the dashboard until SIGINT/SIGTERM, then stops load and child servers and exits. */
export async function runUi(opts: UiServerOptions & { host: string }): Promise<void> {
  checkUiHost(opts.host);
  const ui = new UiServer(opts);
  const port = await ui.listen();
  process.stdout.write(`fastport-bench dashboard: http://${UI_HOST}:${port}/  (Ctrl-C stops it, its load and its servers)\n`);
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.once(sig, () => {
      process.stderr.write(`\nfastport-bench --ui: ${sig}: stopping the load and the servers\n`);
      // bounded: whatever has not stopped in 8 s is killed
      const force = setTimeout(() => {
        killAll();
        process.exit(codes[sig]);
      }, 8000);
      force.unref();
      ui.close().finally(() => {
        killAll();
        process.exit(codes[sig]);
      });
    });
  }
  process.once('exit', () => killAll());
}
