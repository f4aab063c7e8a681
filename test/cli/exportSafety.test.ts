import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

/** Issue 13 "Nothing lost, ever": ptb export never deletes or overwrites files it did not write. */
const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');
const RUN = join('claude_claude-opus-4-6_10h_run2', 'gsm8k_Qwen_Qwen3-1.7B-Base_10');

/** Every file under dir with its sha256. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

function copyOfFixture(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'ptb-tree-')), 'results');
  cpSync(FIXTURE, dir, { recursive: true });
  writeFileSync(join(dir, RUN, 'final_model', 'model.safetensors'), 'weights the user cares about');
  return dir;
}

describe('ptb export into an existing results tree', () => {
  it("refuses, writing nothing, where another run's files are in the way", async () => {
    const home = tempHome();
    await runCli(['import', copyOfFixture()], { PTB_HOME: home }); // the store's trials live elsewhere
    const tree = copyOfFixture();
    const before = snapshot(tree);
    const run = await runCli(['export', tree, '--experiments', 'claude_claude-opus-4-6_10h_run2'], {
      PTB_HOME: home,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `refusing to export into ${tree}: it would overwrite or mix with files ptb did not write (nothing was written)`,
    );
    expect(run.stderr).toContain(`${join(tree, RUN)}: holds another run's files (final_model)`);
    expect(run.stderr).toContain('→ export into a new or empty directory');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(snapshot(tree)).toEqual(before);
  });

  it('exported onto the tree it was imported from, adds its sidecars and changes no existing file', async () => {
    const home = tempHome();
    const tree = copyOfFixture();
    await runCli(['import', tree], { PTB_HOME: home });
    const before = snapshot(tree);
    const run = await runCli(['export', tree, '--json'], { PTB_HOME: home });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const after = snapshot(tree);
    for (const [file, hash] of Object.entries(before)) expect(after[file], file).toBe(hash);
    const added = Object.keys(after).filter((f) => !(f in before));
    expect(added.length).toBeGreaterThan(0);
    expect(added.every((f) => /(ptb_trial|ptb_baseline|ptb_export)\.json$/.test(f))).toBe(true);
    // And again: nothing changes, nothing is refused.
    const again = await runCli(['export', tree], { PTB_HOME: home });
    expect(again.code).toBe(0);
    expect(snapshot(tree)).toEqual(after);
  });

  it('re-exports into its own output, but keeps a file edited by hand since', async () => {
    const home = tempHome();
    await runCli(['import', FIXTURE], { PTB_HOME: home });
    const out = join(mkdtempSync(join(tmpdir(), 'ptb-export-')), 'out');
    expect((await runCli(['export', out], { PTB_HOME: home })).code).toBe(0);
    expect((await runCli(['export', out], { PTB_HOME: home })).code).toBe(0);
    writeFileSync(join(out, RUN, 'solve_out.txt'), 'my notes');
    const run = await runCli(['export', out], { PTB_HOME: home });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${join(out, RUN, 'solve_out.txt')}: changed since ptb export wrote it`);
    expect(readFileSync(join(out, RUN, 'solve_out.txt'), 'utf8')).toBe('my notes');
  });

  it('says a file is not a directory', async () => {
    const home = tempHome();
    await runCli(['import', FIXTURE], { PTB_HOME: home });
    const file = join(mkdtempSync(join(tmpdir(), 'ptb-export-')), 'results.txt');
    writeFileSync(file, 'keep me');
    for (const target of [file, join(file, 'sub')]) {
      const run = await runCli(['export', target], { PTB_HOME: home });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/is a file/);
      expect(run.stderr).toContain('→ ptb export writes a results tree');
    }
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});
