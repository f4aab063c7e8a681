import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, tokenMatches } from '../../src/web/auth.ts';
import { startViewServer, type ViewServer } from '../../src/web/server.ts';
import {
  buildStore,
  PLANTED,
  PLANTED_LINE,
  SMALL_TRACE_LINES,
  type SyntheticStore,
  XSS,
} from './fixtures.ts';

/** Raw HTTP (fetch cannot set Host, and must not follow redirects here). */
function get(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

let store: SyntheticStore;
let view: ViewServer;
const api = async (path: string) => {
  const r = await get(`${view.url}${path.replace(/^\//, '')}`);
  expect(r.status, `${path}: ${r.body}`).toBe(200);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  return JSON.parse(r.body);
};

beforeAll(async () => {
  store = buildStore({ big: false });
  view = await startViewServer({ db: store.db, port: 0 });
});
afterAll(async () => {
  await view?.close();
  store?.db.close();
  if (store) rmSync(store.home, { recursive: true, force: true });
});

describe('ptb view API', () => {
  it('lists experiments with status counts and trials with live status', async () => {
    const experiments = await api('/api/experiments');
    expect(experiments.map((e: { name: string }) => e.name)).toEqual(['exp-alpha', 'exp-beta']);
    const beta = experiments.find((e: { name: string }) => e.name === 'exp-beta');
    expect(beta.byStatus).toEqual({ completed: 1, failed: 1, pending: 1 });

    const running = await api('/api/trials?status=running');
    expect(running.map((t: { id: string }) => t.id)).toEqual([store.ids.running]);
    const live = running[0].live;
    expect(live.phase).toBe('agent');
    // 10 h budget, agent started 2 h ago.
    expect(live.timeLeftSeconds).toBeGreaterThan(8 * 3600 - 120);
    expect(live.timeLeftSeconds).toBeLessThanOrEqual(8 * 3600);
    expect(live.gpu).toMatchObject({ gpus: 1, utilPercent: 87, memoryUsedMiB: 40960, memoryTotalMiB: 81920 });
    expect(live.score).toEqual({ value: 0.42, source: 'in-run' });

    const alpha = await api('/api/trials?experiment=exp-alpha');
    expect(alpha.map((t: { id: string }) => t.id).sort()).toEqual(
      [store.ids.doneA, store.ids.running].sort(),
    );
    const done = alpha.find((t: { id: string }) => t.id === store.ids.doneA);
    expect(done.live).toMatchObject({
      timeLeftSeconds: null,
      gpu: null,
      score: { value: 0.6, source: 'final' },
    });
  });

  it('gives a trial with phases, audits, metrics, ledger summaries and samples', async () => {
    const d = await api(`/api/trials/${store.ids.doneB}`);
    expect(d.phases.map((p: { phase: string }) => p.phase)).toEqual([
      'prepare',
      'agent',
      'collect',
      'audit',
      'evaluate',
      'finalize',
    ]);
    expect(d.audits.at(-1).combined).toBe('flagged');
    expect(d.audits.at(-1).verdicts[0].evidence[0]).toMatchObject({
      source: 'task/data/train.jsonl:17',
      overlap: 0.97,
    });
    expect(d.metrics).toEqual({ accuracy: 0.3, stderr: 0.02 });
    expect(d.samples.count).toBe(6);

    const r = await api(`/api/trials/${store.ids.running}`);
    expect(r.ledgers.model_calls).toMatchObject({
      exists: true,
      count: 2,
      extra: { calls: 2, inputTokens: 2000, outputTokens: 500 },
    });
    expect(r.ledgers.model_calls.extra.costUsd).toBeCloseTo(0.0675, 6);
    expect(r.ledgers.egress).toMatchObject({ count: 3, extra: { denied: 1 } });
    expect(r.ledgers.manifest_end.exists).toBe(false);
    expect(r.prompt.text).toContain(XSS);
  });

  it('pages and searches the trajectory', async () => {
    const page = await api(`/api/trials/${store.ids.running}/trajectory?offset=200&limit=3`);
    expect(page.total).toBe(SMALL_TRACE_LINES);
    expect(page.lines.map((l: { n: number }) => l.n)).toEqual([200, 201, 202]);
    expect(page.lines[0].ts).toBe('2026-01-01T00:03:20Z');
    expect(JSON.parse(page.lines[0].text)).toMatchObject({ step: 200 });

    const found = await api(`/api/trials/${store.ids.running}/trajectory?q=${PLANTED.toUpperCase()}`);
    expect(found.matches.map((m: { n: number }) => m.n)).toEqual([PLANTED_LINE]);
    expect(found.matches[0].text).toContain(PLANTED);
    // Capped search (200 lines) continues from nextFrom; line 5 (the XSS line) does not match.
    const many = await api(`/api/trials/${store.ids.running}/trajectory?q=thinking`);
    expect(many.matches).toHaveLength(200);
    expect(many.matches.slice(4, 6).map((m: { n: number }) => m.n)).toEqual([4, 6]);
    expect(many.nextFrom).toBe(201);
    const more = await api(`/api/trials/${store.ids.running}/trajectory?q=thinking&offset=${many.nextFrom}`);
    expect(more.matches[0].n).toBe(201);

    const events = await api(`/api/trials/${store.ids.doneA}/trajectory?source=events&offset=1&limit=2`);
    expect(events.total).toBe(4);
    expect(events.events.map((e: { n: number }) => e.n)).toEqual([1, 2]);
    expect(events.events[1].event.tool.name).toBe('Bash');
    const evq = await api(`/api/trials/${store.ids.doneA}/trajectory?source=events&q=${PLANTED}`);
    expect(evq.matches.map((m: { n: number }) => m.n)).toEqual([3]);
  });

  it('pages ledgers, flags lines that are not valid entries', async () => {
    const egress = await api(`/api/trials/${store.ids.running}/ledgers/egress?offset=1&limit=5`);
    expect(egress.total).toBe(3);
    expect(egress.rows[0]).toMatchObject({ n: 1, ok: true, row: { allowed: false, error: XSS } });
    expect(egress.rows[1]).toMatchObject({ n: 2, ok: false, raw: 'this line is not json' });
    const samples = await api(`/api/trials/${store.ids.doneA}/samples?filter=wrong`);
    expect(samples.rows.map((s: { id: string }) => s.id)).toEqual(['gsm8k-2', 'gsm8k-4']);
    const cmp = await api(`/api/compare?a=${store.ids.doneA}&b=${store.ids.doneB}`);
    expect(cmp.diff.counts).toEqual({
      bothRight: 2,
      onlyA: 2,
      onlyB: 1,
      bothWrong: 1,
      missingInA: 0,
      missingInB: 0,
    });
    // The leaderboard is `ptb report`'s (src/report): its table cells, notes and figures.
    const lb = await api('/api/leaderboard');
    expect(lb.ok).toBe(true);
    expect(lb.header).toEqual(expect.arrayContaining(['Agent', 'Avg', 'GSM8K']));
    const gsm8k = lb.header.indexOf('GSM8K');
    const alpha = lb.rows.find((r: { cells: string[] }) => r.cells[1] === 'exp-alpha');
    expect(alpha.cells[gsm8k]).toBe('60.0');
    expect(lb.plots).toHaveLength(4);
    expect(lb.json.rows.map((r: { agent: string }) => r.agent)).toContain('exp-alpha');
  });
});

describe('ptb view security', () => {
  it('sends a same-origin CSP and hardening headers on every response', async () => {
    for (const path of ['', 'trials', 'api/trials', 'static/app.js', 'no-such-page']) {
      const r = await get(`${view.url}${path}`);
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).not.toMatch(/https?:|\*/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['x-frame-options']).toBe('DENY');
    }
  });

  it('escapes agent-controlled text in every page that shows it', async () => {
    const pages = [
      `trials/${store.ids.running}`,
      `trials/${store.ids.running}/trace`,
      `trials/${store.ids.running}/ledgers/egress`,
      `trials/${store.ids.doneB}`,
      `trials/${store.ids.doneB}/samples?filter=right`,
      `trials/${store.ids.doneA}/trace?source=events`,
      `trials/${store.ids.failed}`,
    ];
    for (const p of pages) {
      const r = await get(`${view.url}${p}`);
      expect(r.status, p).toBe(200);
      expect(r.body, p).not.toContain('<script>window.__xss');
      expect(r.body, p).not.toContain('<img src=x');
      expect(r.body, p).toContain('&lt;script&gt;window.__xss=1&lt;/script&gt;');
    }
  });

  it('refuses writes, foreign Host names and path tricks', async () => {
    expect((await get(view.url, {}, 'POST')).status).toBe(405);
    expect((await get(view.url, {}, 'DELETE')).status).toBe(405);
    // DNS rebinding: a page served under another name must not read the dashboard.
    expect((await get(view.url, { Host: 'attacker.example:80' })).status).toBe(421);
    expect((await get(view.url, { Host: `localhost:${view.port}` })).status).toBe(200);
    const bad: [string, number][] = [
      ['trials/..%2F..%2Fetc%2Fpasswd', 400],
      // The URL parser resolves %2e%2e as `..`: this is /api/ledgers/egress, which does not exist.
      ['api/trials/%2e%2e/ledgers/egress', 404],
      ['api/trials/a%2Fb/ledgers/egress', 400],
      ['api/trials/.hidden', 400],
      [`api/trials/${store.ids.running}/ledgers/..%2F..%2Fptb.db`, 400],
      [`api/trials/${store.ids.running}/ledgers/passwd`, 404],
      [`api/trials/${store.ids.running}/ledgers/__proto__`, 404],
      [`trials/${store.ids.running}/ledgers/constructor`, 404],
      ['static/..%2Fserver.ts', 400],
      ['static/server.ts', 404],
      ['api/trials/trial-nope', 404],
      ['api/trials/%00x', 400],
      [`api/trials/${store.ids.running}/trajectory?offset=-1`, 400],
      [`api/trials/${store.ids.running}/trajectory?limit=abc`, 400],
      ['api/trials?status=bogus', 400],
    ];
    for (const [path, status] of bad) {
      const r = await get(`${view.url}${path}`);
      expect(r.status, path).toBe(status);
      expect(r.body).not.toContain('root:');
    }
  });

  it('compares tokens in constant time and knows loopback hosts', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abd', 'abc')).toBe(false);
    expect(tokenMatches('abcd', 'abc')).toBe(false);
    expect(tokenMatches('', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.5', 'example.com', '128.0.0.1'])
      expect(isLoopbackHost(h)).toBe(false);
  });

  it('requires the token when bound beyond loopback, then trades it for an HttpOnly cookie', async () => {
    const open = await startViewServer({ db: store.db, host: '0.0.0.0', port: 0 });
    try {
      expect(open.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(open.url).toBe(`http://127.0.0.1:${open.port}/`);
      const base = open.url;
      expect((await get(base)).status).toBe(401);
      expect((await get(`${base}api/trials`)).status).toBe(401);
      expect((await get(`${base}static/app.js`)).status).toBe(401);
      expect((await get(`${base}?token=wrong`)).status).toBe(401);
      const login = await get(`${base}trials?experiment=exp-alpha&token=${open.token}`);
      expect(login.status).toBe(303);
      expect(login.headers.location).toBe('/trials?experiment=exp-alpha');
      const cookie = String(login.headers['set-cookie']);
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      const pair = cookie.split(';')[0]!;
      const page = await get(`${base}trials?experiment=exp-alpha`, { Cookie: pair });
      expect(page.status).toBe(200);
      expect(page.body).toContain(store.ids.doneA);
      expect((await get(`${base}api/trials`, { Authorization: `Bearer ${open.token}` })).status).toBe(200);
      expect((await get(`${base}api/trials`, { Cookie: 'ptb_view_token=nope' })).status).toBe(401);
      // Any Host name is fine with the token (the dashboard is reached by the machine's name).
      expect((await get(`${base}api/trials`, { Cookie: pair, Host: 'gpu-box.lan:8080' })).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});
