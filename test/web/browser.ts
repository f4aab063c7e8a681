import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = process.env.PTB_CHROMIUM ?? '/usr/bin/chromium';

/** Chromium is a test requirement (scripts/setup.sh installs it): missing means fail, never skip. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: run scripts/setup.sh (it installs the Debian package \`chromium\`), or set PTB_CHROMIUM.`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Every request a context makes, and every console error or uncaught error of its pages. */
export function record(context: BrowserContext) {
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  context.on('page', (p) => watch(p, errors));
  return { requests, errors };
}

function watch(page: Page, errors: string[]): void {
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
}

export interface PngStats {
  width: number;
  height: number;
  colors: number;
  /** Share of pixels that differ from the most common colour. */
  nonBackground: number;
}

/** Decode PNGs in a blank page of their own context (canvas) and count their colours. */
export async function pngStats(browser: Browser, pngs: Buffer[]): Promise<PngStats[]> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const out: PngStats[] = [];
    for (const png of pngs) {
      out.push(
        await page.evaluate(async (b64: string) => {
          const img = new Image();
          img.src = `data:image/png;base64,${b64}`;
          await img.decode();
          const canvas = document.createElement('canvas');
          canvas.width = img.width;
          canvas.height = img.height;
          const g = canvas.getContext('2d')!;
          g.drawImage(img, 0, 0);
          const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
          const counts = new Map<number, number>();
          for (let i = 0; i < d.length; i += 4) {
            const k = (d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!;
            counts.set(k, (counts.get(k) ?? 0) + 1);
          }
          const top = Math.max(...counts.values());
          const pixels = d.length / 4;
          return {
            width: canvas.width,
            height: canvas.height,
            colors: counts.size,
            nonBackground: 1 - top / pixels,
          };
        }, png.toString('base64')),
      );
    }
    return out;
  } finally {
    await context.close();
  }
}

/** Text as a reader sees it (rendered, with layout whitespace): deliberately innerText, not textContent. */
export function shown(locator: Locator): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the tests check rendered text
  return locator.innerText();
}
