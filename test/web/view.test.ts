import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startViewServer, type ViewServer } from '../../src/web/server.ts';
import { launchChromium, pngStats, record, shown } from './browser.ts';
import { buildStore, PLANTED, PLANTED_LINE, type SyntheticStore, XSS } from './fixtures.ts';

let store: SyntheticStore;
let view: ViewServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let seen: ReturnType<typeof record>;
const shots: { name: string; png: Buffer }[] = [];
const shotDir = join(tmpdir(), 'ptb-view-screenshots');

async function shot(name: string): Promise<void> {
  const png = await page.screenshot({ fullPage: false });
  shots.push({ name, png });
  mkdirSync(shotDir, { recursive: true });
  writeFileSync(join(shotDir, `${name}.png`), png);
}

/** Hostile text ran if it set window.__xss. */
async function noXss(): Promise<void> {
  expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
}

const text = (selector: string) => shown(page.locator(selector).first());

beforeAll(async () => {
  browser = await launchChromium();
  store = buildStore({ big: false });
  view = await startViewServer({ db: store.db, port: 0 });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  seen = record(context);
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await view?.close();
  store?.db.close();
  if (store) rmSync(store.home, { recursive: true, force: true });
});

describe('ptb view in Chromium', () => {
  it('home lists experiments and running trials; links lead to the filtered trial list', async () => {
    await page.goto(view.url);
    expect(await page.title()).toBe('Experiments · ptb');
    const rows = page.locator('table.experiments tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await shown(page.locator('tr[data-experiment="exp-beta"]'))).toMatch(
      /exp-beta\s+3\s+0\s+1\s+1\s+1\s+0/,
    );
    expect(await page.locator('table.trials tr[data-trial]').count()).toBe(1);
    expect(await text(`tr[data-trial="${store.ids.running}"] [data-f="gpu"]`)).toBe('87% · 40.0/80 GiB');
    await shot('home');

    await page.click('a:text-is("exp-beta")');
    await page.waitForURL(/\/trials\?experiment=exp-beta$/);
    const ids = await page
      .locator('table.trials tr[data-trial]')
      .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-trial')));
    expect(ids.sort()).toEqual([store.ids.doneB, store.ids.failed, store.ids.pending].sort());
    await shot('trials-exp-beta');
    // The filter form navigates too.
    await page.selectOption('select[name=status]', 'failed');
    await page.click('form.filters button');
    await page.waitForURL(/status=failed/);
    expect(await page.locator('table.trials tr[data-trial]').count()).toBe(1);
    await noXss();
  });

  it('trial page: live status, spec, prompt as text, ledgers, and live updates by polling', async () => {
    await page.goto(view.url);
    await page.click(`a:text-is("${store.ids.running}")`);
    await page.waitForURL(new RegExp(`/trials/${store.ids.running}$`));
    const live = page.locator('section.live');
    expect(await shown(live.locator('[data-f=phase]'))).toBe('agent');
    expect(await shown(live.locator('[data-f=timeLeft]'))).toMatch(/^7h 5\dm$|^8h 00m$/);
    expect(await shown(live.locator('[data-f=gpu]'))).toBe('87% · 40.0/80 GiB');
    expect(await shown(live.locator('[data-f=score]'))).toBe('42.0% (in-run)');
    // The prompt carries the XSS payload: it must show as text.
    expect(await shown(page.locator('pre.prompt'))).toContain(XSS);
    expect(await shown(page.locator('#ledgers'))).toMatch(/2000 in \/ 500 out tokens · \$0\.0675/);
    await shot('trial-running');
    await noXss();

    // Live: the harness moves the trial on; the page follows without a reload.
    store.repo.update(store.ids.running, { phase: 'collect' });
    await page.waitForFunction(
      () => document.querySelector('section.live [data-f=phase]')?.textContent === 'collect',
      undefined,
      { timeout: 15_000 },
    );
    store.repo.update(store.ids.running, { phase: 'agent' });

    await page.click('#ledgers a:text-is("Egress")');
    await page.waitForURL(/\/ledgers\/egress$/);
    const table = page.locator('table.ledger');
    expect(await shown(table)).toContain('provider-host-denied');
    expect(await shown(table.locator('tr.bad'))).toContain('this line is not json');
    expect(await shown(table)).toContain(XSS);
    await shot('ledger-egress');
    await page.click('nav.sub a:text-is("Model calls")');
    await page.waitForURL(/\/ledgers\/model_calls$/);
    expect(await page.locator('table.ledger tbody tr').count()).toBe(2);
    expect(await shown(page.locator('table.ledger'))).toContain('claude-opus-4-6');
    await noXss();
  });

  it('trajectory: pages, search finds the planted line, the hit opens on its page', async () => {
    await page.goto(`${view.url}trials/${store.ids.running}`);
    await page.click('a:text-is("Raw trace (solve_out.txt)")');
    await page.waitForURL(/\/trace$/);
    expect(await page.locator('table.trace tr').count()).toBe(200);
    expect(await text('table.trace tr td.ln')).toBe('1');
    await noXss(); // line 6 holds the payload
    expect(await shown(page.locator('#L6 td.tx'))).toContain(XSS);
    await page.click('a[data-page=next]');
    await page.waitForURL(/offset=200/);
    expect(await text('table.trace tr td.ln')).toBe('201');
    await page.click('a[data-page=last]');
    await page.waitForURL(/offset=2800/);
    expect(await shown(page.locator('table.trace tr td.ln').last())).toBe('3000');
    await page.click('a[data-page=first]');
    expect(await text('table.trace tr td.ln')).toBe('1');

    await page.fill('input[name=q]', PLANTED.toLowerCase());
    await page.click('form.search button');
    await page.waitForURL(/q=/);
    expect(await text('.search-summary')).toMatch(/^1 matching line/);
    await shot('trace-search');
    await page.click(`a:text-is("${PLANTED_LINE + 1}")`);
    await page.waitForURL(new RegExp(`offset=1200#L${PLANTED_LINE + 1}$`));
    const target = page.locator(`#L${PLANTED_LINE + 1}`);
    expect(await shown(target)).toContain(PLANTED);
    expect(await target.evaluate((el) => el.matches(':target'))).toBe(true);
    expect(await target.isVisible()).toBe(true);
    await shot('trace-hit');
  });

  it('parsed events, verdicts with evidence, per-sample results', async () => {
    await page.goto(`${view.url}trials/${store.ids.doneA}/trace?source=events`);
    const events = page.locator('ol.events li');
    expect(await events.count()).toBe(4);
    expect(await shown(events.nth(1))).toContain(XSS);
    expect(await shown(events.nth(2))).toContain('Bash');
    expect(await shown(events.nth(2))).toContain('"command": "ls -la"');
    await shot('events');
    await noXss();

    await page.goto(`${view.url}trials/${store.ids.doneB}`);
    const verdicts = page.locator('#verdicts');
    expect(await shown(verdicts)).toContain('Rule: trained on test data');
    expect(await shown(verdicts)).toContain('task/data/train.jsonl:17');
    expect(await shown(verdicts)).toContain(`verbatim test item ${XSS}`);
    expect(await shown(verdicts.locator('.verdict.v-flagged pre'))).toContain('"overlap": 0.97');
    await shot('trial-flagged');
    await noXss();

    await page.click('nav.sub a:text-is("Samples")');
    await page.waitForURL(/\/samples$/);
    expect(await page.locator('table.samples tbody tr').count()).toBe(6);
    await page.selectOption('select[name=filter]', 'wrong');
    await page.click('form.search button');
    await page.waitForURL(/filter=wrong/);
    const wrong = await page
      .locator('table.samples tr[data-sample]')
      .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-sample')));
    expect(wrong).toEqual(['gsm8k-1', 'gsm8k-3', 'gsm8k-4']);
    await shot('samples');
    await noXss();

    await page.goto(`${view.url}trials/${store.ids.failed}`);
    expect(await shown(page.locator('.error'))).toContain(XSS);
    await noXss();
  });

  it('leaderboard with its plot, and the compare view of two trials', async () => {
    await page.goto(view.url);
    await page.click('header nav a:text-is("Leaderboard")');
    await page.waitForURL(/\/leaderboard$/);
    // The table, notes and figures come from src/report (ptb report); here: they render and link.
    const alpha = page.locator('table.leaderboard tbody tr', { hasText: 'exp-alpha' });
    expect(await shown(alpha)).toContain('60.0');
    expect(await shown(page.locator('ul.notes'))).toContain('Weights');
    expect(await page.locator('figure.plot svg').count()).toBe(4);
    for (const svg of await page.locator('figure.plot svg').all()) {
      expect((await svg.boundingBox())?.width).toBeGreaterThan(100);
    }
    await shot('leaderboard');
    await page.locator('table.runs a:text-is("exp-beta")').first().click();
    await page.waitForURL(/\/trials\?experiment=exp-beta$/);
    await page.goto(`${view.url}leaderboard`);

    await page.click('header nav a:text-is("Compare")');
    await page.waitForURL(/\/compare$/);
    await page.selectOption('select[name=a]', store.ids.doneA);
    await page.selectOption('select[name=b]', store.ids.doneB);
    await page.click('form.filters button');
    await page.waitForURL(/compare\?a=.*&b=/);
    const cmp = page.locator('table.compare');
    expect(await cmp.locator('tr.differs th').allInnerTexts()).toEqual(
      expect.arrayContaining(['Experiment', 'Agent', 'Final score', 'Audit', 'Verdicts']),
    );
    expect(await shown(cmp)).toMatch(/Final score\s+60\.0%\s+30\.0%/);
    const counts = await shown(page.locator('table.diff-counts'));
    expect(counts).toMatch(/Only A right\s+2/);
    expect(counts).toMatch(/Only B right\s+1/);
    expect(await page.locator('table.samples-diff tr[data-sample]').count()).toBe(3);
    await shot('compare');
    await page.click('table.samples-diff tr[data-sample="gsm8k-2"] a:text-is("B")');
    await page.waitForURL(new RegExp(`/trials/${store.ids.doneB}/samples\\?q=gsm8k-2$`));
    expect(await page.locator('table.samples tr[data-sample]').count()).toBe(1);
  });

  it('screenshots are real renderings: full size, many colours, not one flat background', async () => {
    expect(shots.length).toBeGreaterThanOrEqual(10);
    const hashes = new Set<string>();
    const all = await pngStats(
      browser,
      shots.map((s) => s.png),
    );
    for (const [i, s] of shots.entries()) {
      const stats = all[i]!;
      expect(stats, s.name).toMatchObject({ width: 1280, height: 900 });
      expect(stats.colors, s.name).toBeGreaterThan(20);
      expect(stats.nonBackground, s.name).toBeGreaterThan(0.03);
      hashes.add(s.png.toString('base64'));
    }
    expect(hashes.size).toBe(shots.length); // every page looked different
  });

  it('the pages asked only their own server, broke no CSP rule and threw nothing', () => {
    const origin = new URL(view.url).origin;
    expect(seen.requests.length).toBeGreaterThan(20);
    expect(seen.requests.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    expect(
      seen.requests.some((u) => u.endsWith('/api/trials?status=running') || u.includes('/api/trials/')),
    ).toBe(true);
    expect(seen.errors).toEqual([]);
  });
});
