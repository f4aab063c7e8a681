import { readdirSync, readFileSync } from 'node:fs';
import { isBwrapAvailable } from '../../src/sandbox/bwrap.ts';

/** bwrap can run here. CI installs it, so there a missing bwrap fails instead of skipping. */
export const sandboxAvailable = isBwrapAvailable();
export const requireSandbox =
  process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
export const isRoot = process.getuid?.() === 0;

/**
 * Host pids whose command line contains `needle` (NUL-separated argv joined by spaces), optionally
 * only those whose executable name (`comm`) is `name`.
 */
export function hostProcessesMatching(needle: string, name?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (!cmdline.includes(needle)) continue;
      if (name !== undefined && readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== name) continue;
      pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Poll until no host process matches (descendants may take a moment to be reaped). */
export async function waitUntilGone(needle: string, timeoutMs = 3000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = hostProcessesMatching(needle);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = hostProcessesMatching(needle);
  }
  return left;
}

/** A token unique to this test run, so process scans never match anything else. */
export function uniqueToken(): string {
  return `${process.pid}${Math.floor(Math.random() * 1e6)}`;
}
