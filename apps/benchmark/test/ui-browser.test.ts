/**
 * The dashboard in a real browser: Debian's chromium (/usr/bin/chromium, or
 * FASTPORT_CHROMIUM) driven by playwright-core; nothing downloads a browser and
 * a missing one fails by name (scripts/setup-browser.sh installs it). uring vs
 * epoll, 4 connections, depth 1, open loop at 500 msgs/s, a few seconds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineAvailability } from '@fastport/native-io';
import type { SidePoint, UiState } from '../src/ui-api';
import { sideOf, startDashboard, state, waitUntil, type Dashboard } from './ui-helpers';

const CHROMIUM = process.env['FASTPORT_CHROMIUM'] ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', 'test-artifacts');
// uring vs epoll where both run (Linux CI: FASTPORT_ENGINES_STRICT makes a missing one fail elsewhere); else what is here
const avail = (['uring', 'epoll', 'node'] as const).filter((e) => engineAvailability(e).available);
const A = avail.includes('uring') ? 'uring' : (avail[0] ?? 'node');
const B = avail.includes('epoll') ? 'epoll' : (avail[1] ?? 'node');
const SMALL = { connections: 4, depth: 1, rate: 500 };

const LATEST_FIELDS: (keyof SidePoint)[] = ['msgsPerSec', 'mbPerSec', 'p50Us', 'p99Us', 'p999Us', 'connections', 'errors', 'serverCpuPct', 'serverRssBytes', 'eventsPerCrossing', 'clientCpuPct'];

async function fill(page: Page, side: 'A' | 'B', values: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    const el = page.locator(`#side-${side} [name="${name}"]`);
    if (name === 'targetChoice' || name === 'framing') await el.selectOption(value);
    else await el.fill(value);
  }
}

/** What the page shows for a side right now: the marker t, each cell's exact value and text. */
async function shown(page: Page, side: 'A' | 'B'): Promise<{ t: string; cells: Record<string, { raw: string; text: string }> }> {
  // one evaluation: the marker and the cells are read in the same turn of the page's event loop
  return page.$eval(`#latest-${side}`, (table) => {
    const cells: Record<string, { raw: string; text: string }> = {};
    const tds = table.querySelectorAll('td.v');
    for (let i = 0; i < tds.length; i++) {
      const td = tds.item(i);
      cells[td.getAttribute('data-field') ?? ''] = { raw: td.getAttribute('data-raw') ?? '', text: td.textContent ?? '' };
    }
    return { t: table.getAttribute('data-t') ?? '', cells };
  });
}

/** How many points each of a side's charts draws. */
async function chartPoints(page: Page, side: 'A' | 'B'): Promise<number[]> {
  return page.$$eval(`#side-${side} .chart[data-chart]`, (els) => els.map((e) => Number(e.getAttribute('data-points') ?? '0')));
}

/** The page's numbers are those of /api/state's point with the t the page marks. */
async function expectPageMatchesState(page: Page, base: string, side: 'A' | 'B'): Promise<void> {
  const seen = await shown(page, side);
  expect(seen.t).not.toBe('');
  const st: UiState = await state(base);
  const point = sideOf(st, side).points.find((p) => String(p.t) === seen.t);
  expect(point, `point t=${seen.t} of side ${side} in /api/state`).toBeDefined();
  for (const f of LATEST_FIELDS) {
    const v = point![f];
    const cell = seen.cells[f]!;
    expect(cell.raw, `${side}.${f}`).toBe(v === null ? '' : JSON.stringify(v));
    if (v === null) expect(cell.text).toBe('–');
    else {
      const scale = f === 'serverRssBytes' ? 2 ** 20 : 1;
      // the text is the value rounded for reading: within half of its last digit
      const text = Number(cell.text);
      const digits = (cell.text.split('.')[1] ?? '').length;
      expect(Math.abs(text - (v as number) / scale), `${side}.${f}: shown '${cell.text}', state ${v}`).toBeLessThanOrEqual(0.5 * 10 ** -digits + 1e-9);
    }
  }
}

describe('the dashboard in chromium (playwright-core)', () => {
  let browser: Browser;
  let d: Dashboard;
  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`chromium not found at ${CHROMIUM}: run bash apps/benchmark/scripts/setup-browser.sh (apt-get install chromium) or set FASTPORT_CHROMIUM`);
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
    d = await startDashboard();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await d?.stop();
  });

  it('starts A/B from the page; both charts get points; numbers equal /api/state; a bad setting is refused; closing the page stops the load', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1500 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(d.url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    expect(await page.locator('#side-A').count()).toBe(1);
    expect(await page.locator('#side-B').count()).toBe(1);

    // a bad setting: 400 from the API, its message on the page, nothing starts
    await fill(page, 'A', { targetChoice: A, connections: '0' });
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/side/A/start'));
    await page.click('#start-A');
    expect((await refused).status()).toBe(400);
    await expect.poll(() => page.locator('#error-A').isVisible()).toBe(true);
    expect(await page.locator('#error-A').textContent()).toMatch(/connections must be at least 1/);
    expect(sideOf(await state(d.url), 'A').status).toBe('idle');

    // start both from the page
    await fill(page, 'A', { targetChoice: A, connections: String(SMALL.connections), depth: String(SMALL.depth), rate: String(SMALL.rate) });
    await fill(page, 'B', { targetChoice: B, connections: String(SMALL.connections), depth: String(SMALL.depth), rate: String(SMALL.rate) });
    await page.click('#start-A');
    await page.click('#start-B');
    expect(await page.locator('#error-A').isVisible()).toBe(false);
    await waitUntil('both charts have 3 points', async () => {
      const [a, b] = [await chartPoints(page, 'A'), await chartPoints(page, 'B')];
      return a.length === 7 && b.length === 7 && a.every((n) => n >= 3) && b.every((n) => n >= 3);
    }, 30_000);
    const st = await state(d.url);
    expect(sideOf(st, 'A').settings).toMatchObject({ target: A, ...SMALL });
    expect(sideOf(st, 'B').settings).toMatchObject({ target: B, ...SMALL });
    expect(await page.locator('#status-A').textContent()).toBe('running');
    expect(await page.locator('#status-B').textContent()).toBe('running');

    await expectPageMatchesState(page, d.url, 'A');
    await expectPageMatchesState(page, d.url, 'B');
    const ratio = await page.locator('#ratio-values td[data-field="msgsPerSec"]').textContent();
    expect(ratio).toMatch(/^\d+\.\d\d×$/);

    // the admin view from the page
    await page.click('#admin-A');
    await expect.poll(() => page.locator('#side-A .admin').isVisible()).toBe(true);
    expect(await page.locator('#side-A .admin-page').textContent()).toMatch(/of 4$/);
    expect(await page.locator('#side-A .admin-sessions tbody tr').count()).toBe(4);

    await page.screenshot({ path: path.join(ARTIFACTS, 'ui-ab-run.png'), fullPage: true });
    expect(fs.statSync(path.join(ARTIFACTS, 'ui-ab-run.png')).size).toBeGreaterThan(10_000);
    expect(pageErrors).toEqual([]);

    // closing the tab stops both sides within seconds
    await page.close();
    await waitUntil('both sides stopped after the page closed', async () => (await state(d.url)).sides.every((s) => s.status === 'stopped'), 20_000);
    expect((await state(d.url)).sides.map((s) => s.reason)).toEqual(['the page was closed', 'the page was closed']);
  }, 120_000);

  it('?autostart=A,B makes the page start the comparison itself', async () => {
    const before = await state(d.url);
    expect(before.sides.every((s) => s.status !== 'running')).toBe(true);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    await page.goto(`${d.url}?autostart=${A},${B}&connections=${SMALL.connections}&depth=${SMALL.depth}&rate=${SMALL.rate}`);
    await waitUntil('both sides running with points', async () => {
      const st = await state(d.url);
      return st.sides.every((s) => s.status === 'running' && s.points.length >= 2);
    }, 30_000);
    const st = await state(d.url);
    expect(st.sides.map((s) => s.settings.target)).toEqual([A, B]);
    expect(sideOf(st, 'A').settings.connections).toBe(SMALL.connections);
    await waitUntil('the page shows points for both', async () => (await shown(page, 'A')).t !== '' && (await shown(page, 'B')).t !== '', 10_000);
    await expectPageMatchesState(page, d.url, 'B');
    await page.close();
    await waitUntil('stopped after the page closed', async () => (await state(d.url)).sides.every((s) => s.status === 'stopped'), 20_000);
  }, 90_000);
});
