import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { TASK_CONTEXT_COMMIT, taskContextFiles, taskContextGroup } from '../../src/benchmarks/taskContext.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { dataGroups } from '../../src/eval/dataGroups.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { prepareWorkspace } from '../../src/trial/workspace.ts';

/**
 * The agent's task folder gets the reference's extra files: evaluation_code/ for Arena-Hard and
 * HealthBench, BFCL's helper at the top. They are fetched from the pinned upstream commit (here
 * through a loopback mirror that serves a local git snapshot of the reference, so the pinned
 * sha256 are checked for real) and hashed into the pristine manifest.
 */

const REFERENCE_GIT = process.env.PTB_REFERENCE_GIT ?? '/work/.mirror/aisa-group+PostTrainBench/repo';
const hasReference =
  existsSync(REFERENCE_GIT) &&
  (() => {
    try {
      execFileSync('git', ['--git-dir', REFERENCE_GIT, 'cat-file', '-e', TASK_CONTEXT_COMMIT]);
      return true;
    } catch {
      return false;
    }
  })();

let server: Server;
let mirror: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const m = /^\/raw\.githubusercontent\.com\/aisa-group\/PostTrainBench\/([0-9a-f]{40})\/(.+)$/.exec(
      req.url ?? '',
    );
    try {
      const body = m
        ? execFileSync('git', ['--git-dir', REFERENCE_GIT, 'show', `${m[1]}:${decodeURIComponent(m[2]!)}`], {
            maxBuffer: 1e8,
          })
        : null;
      if (!body) throw new Error('no such file');
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function spec(benchmark: string) {
  return TrialSpecSchema.parse({ agent: 'noop', baseModel: 'Qwen/Qwen3-1.7B-Base', benchmark, hours: 1 });
}

async function prepare(
  benchmark: string,
  offline: boolean,
  cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-ctx-cache-'))),
) {
  const layout = trialLayout(mkdtempSync(join(tmpdir(), 'ptb-ctx-trial-')));
  const lines: string[] = [];
  const s = spec(benchmark);
  const prepared = await prepareWorkspace({
    spec: s,
    benchmark: getBenchmark(s.benchmark),
    layout,
    cache,
    prompt: 'p',
    offline,
    onLine: (l) => lines.push(l),
  });
  return { layout, prepared, lines, cache };
}

describe('the reference task-folder files', () => {
  it('are pinned per benchmark, as ptb data groups', () => {
    expect(taskContextFiles('bfcl').map((f) => f.dest)).toEqual(['bfcl_evaluation_code.py']);
    const arena = taskContextFiles('arenahardwriting').map((f) => f.dest);
    expect(arena).toContain('evaluation_code/data/arena-hard-v2.0/question.jsonl');
    expect(arena).toContain('evaluation_code/data/arena-hard-v2.0/model_answer/Qwen3-1.7B.jsonl');
    expect(arena).toContain('evaluation_code/config/arena-hard-v2.0.yaml');
    expect(taskContextFiles('healthbench').map((f) => f.dest)).toContain(
      'evaluation_code/data/healthbench.jsonl',
    );
    expect(taskContextFiles('gsm8k')).toEqual([]);
    for (const f of taskContextFiles('arenahardwriting')) {
      expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(f.url).toContain(
        `/aisa-group/PostTrainBench/${TASK_CONTEXT_COMMIT}/src/eval/tasks/arenahardwriting/evaluation_code/`,
      );
    }
    expect(Object.keys(dataGroups())).toEqual(
      expect.arrayContaining([
        'arenahardwriting-task-context',
        'healthbench-task-context',
        'bfcl-task-context',
      ]),
    );
  });

  it('offline with a cold cache: the task folder lacks them, and the trial says so', async () => {
    const { layout, prepared, lines } = await prepare('bfcl', true);
    expect(prepared.missingTaskContext).toHaveLength(1);
    expect(lines[0]).toMatch(
      /lacks 1 of the reference's bfcl files \(run `ptb data pull bfcl-task-context`\)/,
    );
    expect(JSON.parse(readFileSync(join(layout.ledgers.dir, 'task_context.json'), 'utf8'))).toMatchObject({
      placed: 0,
    });
  });

  it.skipIf(!hasReference)(
    'are fetched, checked against their sha256, placed as the reference lays them out, and hashed as harness files',
    async () => {
      const previous = process.env.PTB_ASSET_MIRROR;
      process.env.PTB_ASSET_MIRROR = mirror;
      try {
        for (const benchmark of ['bfcl', 'arenahardwriting', 'healthbench'] as const) {
          const { layout, prepared } = await prepare(benchmark, false);
          expect(prepared.missingTaskContext).toEqual([]);
          for (const file of taskContextFiles(benchmark)) {
            expect(existsSync(join(layout.work.task, file.dest)), file.dest).toBe(true);
            expect(prepared.pristineFiles).toContain(file.dest);
          }
        }
        // once cached, an offline trial has them too
        const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-ctx-cache-')));
        await prepare('bfcl', false, cache);
        const offline = await prepare('bfcl', true, cache);
        expect(offline.prepared.missingTaskContext).toEqual([]);
        expect(readFileSync(join(offline.layout.work.task, 'bfcl_evaluation_code.py'), 'utf8')).toMatch(
          /def /,
        );
        expect(taskContextGroup('bfcl')).toBe('bfcl-task-context');
      } finally {
        if (previous === undefined) delete process.env.PTB_ASSET_MIRROR;
        else process.env.PTB_ASSET_MIRROR = previous;
      }
    },
    120_000,
  );
});
