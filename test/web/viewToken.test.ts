import { rmSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startViewServer } from '../../src/web/server.ts';
import { launchChromium, record, shown } from './browser.ts';
import { buildStore, type SyntheticStore } from './fixtures.ts';

let store: SyntheticStore;
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
  store = buildStore({ big: false });
});

afterAll(async () => {
  await browser?.close();
  store?.db.close();
  if (store) rmSync(store.home, { recursive: true, force: true });
});

describe('ptb view beyond loopback, in Chromium', () => {
  it('bound to 0.0.0.0 it needs the token; the token link logs the browser in with a cookie', async () => {
    const open = await startViewServer({ db: store.db, host: '0.0.0.0', port: 0 });
    const ctx = await browser.newContext();
    const tokenSeen = record(ctx);
    try {
      const p = await ctx.newPage();
      const denied = await p.goto(open.url);
      expect(denied?.status()).toBe(401);
      expect(await shown(p.locator('main'))).toContain('needs its access token');
      const ok = await p.goto(open.loginUrl);
      expect(ok?.status()).toBe(200);
      expect(p.url()).toBe(open.url); // the token left the address bar
      expect(await shown(p.locator('h1'))).toBe('Experiments');
      const cookies = await ctx.cookies();
      expect(cookies).toEqual([
        expect.objectContaining({ name: 'ptb_view_token', httpOnly: true, sameSite: 'Strict' }),
      ]);
      expect(await p.evaluate(() => document.cookie)).toBe(''); // HttpOnly: scripts cannot read it
      await p.click(`a:text-is("${store.ids.running}")`);
      await p.waitForURL(/\/trials\/trial-running-1$/);
      // The live poll (fetch with the cookie) succeeds.
      await p.waitForFunction(
        () => document.querySelector('[data-live-trial]')?.getAttribute('data-polled'),
        undefined,
        {
          timeout: 15_000,
        },
      );
      const origin = new URL(open.url).origin;
      expect(tokenSeen.requests.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    } finally {
      await ctx.close();
      await open.close();
    }
  });
});
