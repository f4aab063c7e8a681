/**
 * Dashboard views over results, in real headless Chromium with screenshots: the leaderboard's
 * experiment filter, the demo's trials kept out unless asked, evaluations (`ptb eval` runs, baselines,
 * trials' final evaluations) with their samples, the resource monitor as charts with units, and trial
 * ids that never wrap.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_BASE_MODEL, DEMO_EXPERIMENT } from '../../src/core/demoNamespace.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { startViewServer, type ViewServer } from '../../src/web/server.ts';
import { launchChromium, pngStats, record, shown } from './browser.ts';
import { buildStore, type SyntheticStore, XSS } from './fixtures.ts';

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
  writeFileSync(join(shotDir, `results-${name}.png`), png);
}

const WIDE_ID = 'trial-20261206-185301-3ac5bd-with-a-long-suffix';
const MINUTE = 60_000;

function jsonl(path: string, rows: unknown[]): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}

/** The synthetic store, plus: the demo's trials (new and old naming), a 2-GPU trial with 40 minutes of
 * monitor samples, and evaluation runs with samples (a `ptb eval`, the demo's baseline). */
function extend(s: SyntheticStore): { evalRun: string; demoEvalRun: string } {
  const layout = homeLayout(s.home);
  const dirOf = (id: string) => join(layout.trials, id);
  const done = (id: string, experiment: string, baseModel: string, score: number, gpus = 1) => {
    const spec = TrialSpecSchema.parse({
      experiment,
      agent: 'sft',
      baseModel,
      benchmark: 'gsm8k',
      hours: 1,
      gpus,
    });
    s.repo.create(spec, dirOf, { id });
    mkdirSync(trialLayout(dirOf(id)).root, { recursive: true });
    s.repo.update(id, {
      status: 'completed',
      accuracy: score,
      final_score: score,
      substituted: false,
      audit_verdict: 'clean',
      agent_seconds: 2400,
      finished_at: new Date().toISOString(),
    });
  };
  done('trial-demo-current', DEMO_EXPERIMENT, DEMO_BASE_MODEL, 0.1);
  done('trial-demo-older', 'demo', DEMO_BASE_MODEL, 0.05);
  s.repo.addBaseline({
    model: DEMO_BASE_MODEL,
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy: 0,
    source: 'ptb demo',
  });
  done(WIDE_ID, 'exp-gamma', 'Qwen/Qwen3-1.7B-Base', 0.45, 2);
  const t0 = Date.UTC(2026, 0, 1, 12, 0, 0);
  jsonl(
    trialLayout(dirOf(WIDE_ID)).ledgers.monitor,
    Array.from({ length: 41 }, (_, i) => ({
      ts: new Date(t0 + i * MINUTE).toISOString(),
      cpuPercent: i === 20 ? null : 150 + 10 * Math.sin(i / 4),
      memoryBytes: (2 + i / 10) * 1024 ** 3,
      diskBytes: (5 + i / 4) * 1024 ** 3,
      gpus: [0, 1].map((index) => ({
        index,
        utilPercent: i < 3 ? 0 : 60 + 30 * index,
        memoryUsedMiB: 20_000 + 500 * i + 10_000 * index,
        memoryTotalMiB: 81_559,
        temperatureC: 60,
        powerW: 400,
      })),
    })),
  );

  const evals = new EvalRepo(s.db);
  const run = (id: string, model: string, outDir: string, scores: number[]) => {
    evals.createRun({
      id,
      benchmark: 'gsm8k',
      model,
      engine: 'hf',
      configKey: id,
      config: { model },
      outDir,
    });
    jsonl(
      join(outDir, 'samples.jsonl'),
      scores.map((score, i) => ({
        id: `${i}`,
        score,
        answer: String(10 + i),
        response: `Reasoning for item ${i}. ANSWER: ${10 + i} ${i === 1 ? XSS : ''}`,
        finish_reason: 'stop',
      })),
    );
    const accuracy = scores.reduce((a, b) => a + b, 0) / scores.length;
    evals.setStatus(id, 'completed', { metrics: { accuracy, stderr: 0.1 } });
    return id;
  };
  const evalRun = run(
    'eval-gsm8k-20260101-120000-aaaaaa',
    '/models/my-checkpoint',
    join(layout.evals, 'a'),
    [1, 0, 1, 1, 0],
  );
  const demoEvalRun = run(
    'eval-gsm8k-20260101-120500-dddddd',
    join(layout.models, 'demo-qwen3-base'),
    join(layout.evals, 'd'),
    [0, 0],
  );
  s.db.prepare('UPDATE baselines SET eval_run_id = ? WHERE model = ?').run(demoEvalRun, DEMO_BASE_MODEL);
  return { evalRun, demoEvalRun };
}

let runs: { evalRun: string; demoEvalRun: string };

beforeAll(async () => {
  browser = await launchChromium();
  store = buildStore({ big: false });
  runs = extend(store);
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

const experimentsShown = () =>
  page
    .locator('table.runs tbody tr td:nth-child(3)')
    .evaluateAll((tds) => [...new Set(tds.map((td) => td.textContent?.trim() ?? ''))].sort());

describe('dashboard results views in Chromium', () => {
  it('leaderboard: filter by experiment; the demo only when asked', async () => {
    await page.goto(`${view.url}leaderboard`);
    expect(await experimentsShown()).toEqual(['exp-alpha', 'exp-beta', 'exp-gamma']);
    // A 2-GPU run carries the reference's suffix.
    expect(await shown(page.locator('table.runs'))).toContain('exp-gamma_2gpu');
    // The demo's experiments are not offered, and the page says they are hidden.
    const choices = await page
      .locator('form.lb-filter input[name=experiment]')
      .evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    expect(choices.sort()).toEqual(['exp-alpha', 'exp-beta', 'exp-gamma']);
    expect(await shown(page.locator('form.lb-filter'))).toContain('include ptb demo (2 experiments hidden)');
    await shot('leaderboard-all');

    await page.check('form.lb-filter input[value="exp-beta"]');
    await page.check('form.lb-filter input[value="exp-gamma"]');
    await page.click('form.lb-filter button');
    await page.waitForURL(/experiment=exp-beta&experiment=exp-gamma/);
    expect(await experimentsShown()).toEqual(['exp-beta', 'exp-gamma']);
    expect(await shown(page.locator('table.leaderboard'))).not.toContain('exp-alpha');
    expect(await shown(page.locator('form.lb-filter legend'))).toBe('Experiments (2 chosen)');
    await shot('leaderboard-filtered');

    await page.goto(`${view.url}leaderboard`);
    await page.check('form.lb-filter input[name=demo]');
    await page.click('form.lb-filter button');
    await page.waitForURL(/demo=1/);
    expect(await experimentsShown()).toEqual(['demo', 'exp-alpha', 'exp-beta', 'exp-gamma', 'ptb-demo']);
    // The JSON API takes the same filter.
    const api = (await (
      await page.request.get(`${view.url}api/leaderboard?experiment=exp-alpha`)
    ).json()) as { ok: boolean; runs: { experiment: string }[] };
    expect([...new Set(api.runs.map((r) => r.experiment))]).toEqual(['exp-alpha']);
  });

  it('home and trial list leave the demo out, and show it on request', async () => {
    await page.goto(view.url);
    const names = () =>
      page
        .locator('table.experiments tr[data-experiment]')
        .evaluateAll((trs) => trs.map((t) => t.dataset.experiment));
    expect((await names()).sort()).toEqual(['exp-alpha', 'exp-beta', 'exp-gamma']);
    expect(await shown(page.locator('.demo-note'))).toContain(
      '2 trial(s) of ptb demo are left out of results',
    );
    await page.click('.demo-note a');
    await page.waitForURL(/\?demo=1$/);
    expect((await names()).sort()).toEqual(['demo', 'exp-alpha', 'exp-beta', 'exp-gamma', 'ptb-demo']);
    await page.goto(`${view.url}trials`);
    expect(await page.locator('table.trials tr[data-trial="trial-demo-current"]').count()).toBe(0);
    await page.goto(`${view.url}trials?experiment=${DEMO_EXPERIMENT}`);
    expect(await page.locator('table.trials tr[data-trial="trial-demo-current"]').count()).toBe(1);
  });

  it('trial ids stay on one line in a narrow trial list', async () => {
    await page.setViewportSize({ width: 900, height: 900 });
    await page.goto(`${view.url}trials`);
    const link = page.locator(`table.trials a.trial-id:text-is("${WIDE_ID}")`);
    const lines = await link.evaluate((a) => a.getClientRects().length);
    expect(lines).toBe(1);
    const box = (await link.boundingBox())!;
    const lineHeight = await link.evaluate((a) => Number.parseFloat(getComputedStyle(a).lineHeight) || 20);
    expect(box.height).toBeLessThanOrEqual(lineHeight * 1.5);
    await shot('trials-narrow');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('evaluations are listed, each with its samples (filter and search), the demo only when asked', async () => {
    await page.goto(view.url);
    await page.click('header nav a:text-is("Evaluations")');
    await page.waitForURL(/\/evals$/);
    const ids = () =>
      page
        .locator('table.evals tr[data-eval]')
        .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-eval')));
    expect(await ids()).toEqual([runs.evalRun]);
    const row = page.locator(`tr[data-eval="${runs.evalRun}"]`);
    expect(await shown(row)).toMatch(/gsm8k\s+\/models\/my-checkpoint\s+hf\s+completed\s+60\.0%\s+5/);
    expect(await shown(page.locator('.demo-note'))).toContain('1 evaluation(s) of ptb demo are left out');
    await shot('evals');
    await page.click(`a.eval-id:text-is("${runs.evalRun}")`);
    await page.waitForURL(new RegExp(`/evals/${runs.evalRun}$`));
    expect(await page.locator('table.samples tr[data-sample]').count()).toBe(5);
    expect(await shown(page.locator('#samples p.dim'))).toContain('5 of 5 samples · mean score 60.0%');
    // The sample text is data: the payload shows as text and never runs.
    await page.locator('tr[data-sample="1"] summary').click();
    expect(await shown(page.locator('tr[data-sample="1"] pre'))).toContain(XSS);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await shot('eval-samples');
    await page.selectOption('#samples select[name=filter]', 'wrong');
    await page.click('#samples form button');
    await page.waitForURL(/filter=wrong/);
    expect(
      await page
        .locator('table.samples tr[data-sample]')
        .evaluateAll((trs) => trs.map((t) => t.dataset.sample)),
    ).toEqual(['1', '4']);

    await page.goto(`${view.url}evals?demo=1`);
    expect((await ids()).sort()).toEqual([runs.evalRun, runs.demoEvalRun].sort());
    expect(await shown(page.locator(`tr[data-eval="${runs.demoEvalRun}"]`))).toContain('demo');
    const samples = (await (
      await page.request.get(`${view.url}api/evals/${runs.evalRun}/samples?filter=right`)
    ).json()) as { matched: number; rows: { id: string }[] };
    expect(samples.rows.map((r) => r.id)).toEqual(['0', '2', '3']);
    expect((await page.request.get(`${view.url}evals/eval-nope`)).status()).toBe(404);
  });

  it('the monitor ledger as charts with units: GPU utilisation and memory per GPU, CPU, memory, disk', async () => {
    await page.goto(`${view.url}trials/${WIDE_ID}`);
    const figures = page.locator('.monitor-charts figure.plot');
    expect(await figures.locator('figcaption').allInnerTexts()).toEqual([
      'GPU utilisation (%)',
      'GPU memory used (GiB)',
      'CPU (% of one core)',
      'Memory (GiB)',
      'Disk (workspace) (GiB)',
    ]);
    const gpuUtil = page.locator('figure[data-chart="gpu_util"] svg');
    // One line per GPU, a legend naming both, the time axis in minutes up to the 40 sampled.
    expect(await gpuUtil.locator('polyline').count()).toBe(2);
    expect(await gpuUtil.locator('text').allTextContents()).toEqual(
      expect.arrayContaining([
        'GPU 0',
        'GPU 1',
        'time since the first sample (min)',
        'utilisation (%)',
        '40',
        '100',
      ]),
    );
    // The CPU sample without a value breaks its line into two segments.
    expect(await page.locator('figure[data-chart="cpu"] svg polyline').count()).toBe(2);
    // GPU memory axis reaches the card's 80 GiB.
    expect(await page.locator('figure[data-chart="gpu_memory"] svg text').allTextContents()).toEqual(
      expect.arrayContaining(['memory (GiB)', '80']),
    );
    for (const svg of await figures.locator('svg').all()) {
      expect((await svg.boundingBox())?.width).toBeGreaterThan(300);
    }
    await page.locator('#monitor').scrollIntoViewIfNeeded();
    await shot('monitor-charts');
    // The monitor ledger's own page shows the same charts above its rows.
    await page.goto(`${view.url}trials/${WIDE_ID}/ledgers/monitor`);
    expect(await page.locator('.monitor-charts figure').count()).toBe(5);
    expect(await page.locator('table.ledger tbody tr').count()).toBe(41);
  });

  it('screenshots are real renderings, all different; no foreign requests, no errors', async () => {
    const all = await pngStats(
      browser,
      shots.map((s) => s.png),
    );
    for (const [i, s] of shots.entries()) {
      expect(all[i]!.colors, s.name).toBeGreaterThan(20);
      expect(all[i]!.nonBackground, s.name).toBeGreaterThan(0.03);
    }
    expect(new Set(shots.map((s) => s.png.toString('base64'))).size).toBe(shots.length);
    const origin = new URL(view.url).origin;
    expect(seen.requests.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    expect(seen.errors).toEqual([]);
  });
});
