import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { aggregate, type ReportTrial } from '../../src/report/aggregate.ts';
import { importUpstream } from '../../src/report/importUpstream.ts';
import { allPlots, heatmapSvg, leaderboardSvg, progressSvg, timeSvg } from '../../src/report/plots.ts';
import { buildReport, renderReport, writePlots } from '../../src/report/report.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { FIXTURE } from './fixture.ts';
import { xmlProblems } from './xmlWellFormed.ts';

function hasPython(): boolean {
  try {
    execFileSync('python3', ['-c', 'import xml.dom.minidom'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Parse each document with Python's expat (a real XML parser, where one is installed); errors by index. */
function expatErrors(docs: string[]): string[] {
  const script =
    'import json, sys, xml.dom.minidom\n' +
    'errors = []\n' +
    'for i, doc in enumerate(json.load(sys.stdin)):\n' +
    '    try:\n' +
    '        xml.dom.minidom.parseString(doc.encode("utf-8"))\n' +
    '    except Exception as e:\n' +
    '        errors.append(f"{i}: {e}")\n' +
    'print(json.dumps(errors))\n';
  return JSON.parse(
    execFileSync('python3', ['-c', script], { input: JSON.stringify(docs), encoding: 'utf8' }),
  );
}

const HOSTILE = `evil</text><script>alert("x")</script> & 'co' ]]> \u0001`;

function hostileBoard() {
  const t: ReportTrial = {
    id: 'x1',
    experiment: HOSTILE,
    source: 'ptb',
    agent: 'a',
    agentConfig: '',
    hours: 1,
    gpus: 1,
    seed: 0,
    baseModel: 'org/M<&>-Base',
    benchmark: 'gsm8k',
    runNumber: null,
    createdAt: '2026-01-01T00:00:00Z',
    status: 'completed',
    accuracy: 0.25,
    protocol: 'v1.1',
    verdict: 'clean',
    unverifiedPolicy: 'base-score',
    agentSeconds: 1800,
    inputTokens: null,
    outputTokens: null,
    costUsd: 0.5,
  };
  return aggregate([t, { ...t, id: 'x2', experiment: 'b_run1', accuracy: 0.75 }], []);
}

describe('SVG figures and the HTML report', () => {
  const repoWithTree = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-plots-'));
    const repo = new TrialRepo(openDb(join(dir, 'ptb.db')));
    importUpstream(repo, FIXTURE);
    return { repo, dir };
  };

  it('are well-formed XML, also with hostile names, and carry accessible titles', () => {
    const { repo } = repoWithTree();
    const report = buildReport(repo);
    const hostile = hostileBoard();
    const svgs = [
      ...Object.values(allPlots(report.leaderboard, report.series)),
      leaderboardSvg(hostile),
      heatmapSvg(hostile),
      timeSvg(hostile),
      progressSvg(
        [
          {
            row: HOSTILE,
            run: HOSTILE,
            trialId: 'x',
            model: 'm',
            benchmark: 'gsm8k',
            points: [{ hours: 0.5, accuracy: 0.2 }],
          },
        ],
        [HOSTILE],
      ),
    ];
    for (const svg of svgs) {
      expect(xmlProblems(svg)).toEqual([]);
      expect(svg).toMatch(
        /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* role="img" aria-labelledby="(\w+)-title \1-desc"/,
      );
      expect(svg).toMatch(/<title id="\w+-title">[^<]+<\/title>\n<desc id="\w+-desc">[^<]+<\/desc>/);
      expect(svg).not.toContain('<script');
      expect(svg).not.toContain('\u0001');
    }
    expect(leaderboardSvg(hostile)).toContain(
      'evil&lt;/text&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;co&apos;',
    );
    if (hasPython()) expect(expatErrors(svgs)).toEqual([]);
  });

  it('the checker itself rejects broken XML', () => {
    expect(xmlProblems('<svg><g></svg>')).not.toEqual([]);
    expect(xmlProblems('<svg a="1" a="2"/>')).not.toEqual([]);
    expect(xmlProblems('<svg>a & b</svg>')).not.toEqual([]);
    expect(xmlProblems('<svg x=1/>')).not.toEqual([]);
    expect(xmlProblems('<svg/><svg/>')).not.toEqual([]);
    expect(xmlProblems('<svg a="&lt;"><t>&#x41;</t></svg>')).toEqual([]);
  });

  it('draw what the leaderboard says, the same bytes every time', () => {
    const { repo, dir } = repoWithTree();
    const report = buildReport(repo);
    const svg = leaderboardSvg(report.leaderboard);
    expect(svg).toContain('<title>claude_claude-opus-4-6_10h: 26.9 ± 3.2 (2 runs)</title>');
    expect(svg).toContain('<title>codex_gpt-5.2_10h: incomplete (no complete run of 1)</title>');
    expect(svg).toContain('instruct 51.1');
    const heat = heatmapSvg(report.leaderboard);
    expect(heat).toContain('claude_claude-opus-4-6_10h · GSM8K: 47.5 (2 complete run(s))');
    expect(heat).toContain('codex_gpt-5.2_10h · HumanEval: n/a');
    expect(timeSvg(report.leaderboard)).toContain('claude_claude-opus-4-6_10h: 6.0 h ± 1.4 h of 10 h budget');
    const paths = writePlots(report, join(dir, 'plots'));
    expect(paths.map((p) => p.slice(dir.length))).toEqual([
      '/plots/leaderboard.svg',
      '/plots/heatmap.svg',
      '/plots/time.svg',
      '/plots/score_over_time.svg',
    ]);
    expect(readFileSync(paths[0]!, 'utf8')).toBe(svg);
    expect(renderReport(buildReport(repo), 'html')).toBe(renderReport(report, 'html'));
  });

  it('plot in-run evaluations against hours since the agent started', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-inrun-'));
    const repo = new TrialRepo(openDb(join(dir, 'ptb.db')));
    const spec = TrialSpecSchema.parse({
      experiment: 'live',
      agent: 'claude',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      hours: 2,
    });
    const t = repo.create(spec, (id) => join(dir, 'trials', id));
    repo.startPhase(t.id, 'agent');
    repo.update(t.id, { status: 'completed', accuracy: 0.4, audit_verdict: 'clean' });
    const started = Date.parse(repo.phase(t.id, 'agent')!.started_at);
    const at = (h: number) => new Date(started + h * 3_600_000).toISOString();
    const ledger = trialLayout(t.dir).ledgers;
    mkdirSync(ledger.dir, { recursive: true });
    const event = (h: number, accuracy: number | null) =>
      JSON.stringify({
        ts: at(h),
        modelPath: '/x',
        limit: 50,
        maxTokens: null,
        accuracy,
        exitCode: 0,
        durationMs: 10,
      });
    writeFileSync(
      ledger.inRunEvals,
      `${[event(1, 0.3), event(0.5, 0.1), event(1.5, null), '{"truncat'].join('\n')}\n`,
    );
    const report = buildReport(repo);
    expect(report.series).toEqual([
      {
        row: 'live',
        run: 'live',
        trialId: t.id,
        model: 'Qwen3-1.7B-Base',
        benchmark: 'gsm8k',
        points: [
          { hours: 0.5, accuracy: 0.1 },
          { hours: 1, accuracy: 0.3 },
        ],
      },
    ]);
    const svg = progressSvg(report.series, ['live']);
    expect(xmlProblems(svg)).toEqual([]);
    expect(svg).toContain('<polyline points=');
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(svg).toContain('live · Qwen3-1.7B-Base · GSM8K: 30.0% at 1.00 h');
    expect(JSON.parse(renderReport(report, 'json')).in_run[0].points).toHaveLength(2);
  });

  it('the HTML page is self-contained: inline style and SVG, no scripts, nothing fetched', () => {
    const { repo } = repoWithTree();
    const html = renderReport(buildReport(repo), 'html');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|\shref=|url\(|@import/i);
    expect(html.match(/<svg /g)).toHaveLength(4);
    expect(html).toContain('<style>');
    // ids of the four figures do not collide on one page
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(xmlProblems(html.replace('<!DOCTYPE html>', '').replace(/<meta [^>]*>/g, ''))).toEqual([]);
    const hostile = renderReport({ leaderboard: hostileBoard(), series: [] }, 'html');
    expect(hostile).not.toContain('<script>alert');
  });
});
