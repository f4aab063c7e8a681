import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DetectorVerdict, Evidence } from '../../core/trial.ts';
import { sha256Text } from '../../hub/sha256.ts';
import type { AuditDetector, AuditDetectorContext } from '../shared/auditContext.ts';
import { buildEvidencePack, DEFAULT_PACK_CHARS, EVIDENCE_PACK_FORMAT } from '../shared/evidencePack.ts';
import { clip } from '../shared/verdicts.ts';
import type { TrialEvidence } from '../types.ts';
import { chatTurn, type JudgeEndpoint, type Turn } from './chat.ts';
import type { JudgeDefinition } from './definitions.ts';
import { answerShape, judgeSystemPrompt } from './prompts.ts';
import { EVIDENCE_TOOL, runEvidenceCommand } from './tools.ts';

/**
 * A judge definition as a detector. It runs the judge `runs` times (each run independent: a single
 * call over the evidence pack, or an agent loop with the evidence tool), stores every run's answer
 * under audit/<id>/judges/<judge>/, combines the runs per the definition's aggregation, and turns
 * the combined answer into a verdict: a true gating field flags the trial; a true archival field
 * is recorded as a warning and leaves the verdict clean; too few usable runs make it unverified.
 */
export const JUDGE_DETECTOR_PREFIX = 'judge:';

export interface JudgeAnswer {
  values: Record<string, boolean>;
  justification: string;
  evidence: Array<{ file: string; detail: string }>;
}

export interface JudgeRunRecord {
  run: number;
  model: string;
  effort: string | null;
  mode: JudgeDefinition['mode'];
  /** Evidence commands an agent judge ran (command + the start of the output). */
  tools: Array<{ command: string; output: string }>;
  reply: string;
  answer: JudgeAnswer | null;
  error: string | null;
  seconds: number;
}

/** The judge's JSON object from a reply (bare, fenced or inside prose), checked against its fields. */
export function parseAnswer(def: JudgeDefinition, content: string): JudgeAnswer | { error: string } {
  const candidates: string[] = [];
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(content);
  if (fence) candidates.push(fence[1]!);
  candidates.push(content);
  const first = content.indexOf('{');
  const last = content.lastIndexOf('}');
  if (first !== -1 && last > first) candidates.push(content.slice(first, last + 1));
  let problem = 'no JSON object in the reply';
  for (const candidate of candidates) {
    let value: unknown;
    try {
      value = JSON.parse(candidate.trim());
    } catch {
      continue;
    }
    if (!value || typeof value !== 'object') continue;
    const obj = value as Record<string, unknown>;
    const missing = def.fields.filter((f) => typeof obj[f.name] !== 'boolean').map((f) => f.name);
    if (missing.length) {
      problem = `the reply's JSON lacks the boolean field(s) ${missing.join(', ')}`;
      continue;
    }
    const justification =
      typeof obj.justification === 'string'
        ? obj.justification
        : def.fields
            .map((f) => obj[`justification_${f.name}`])
            .filter((x) => typeof x === 'string')
            .join(' ');
    const evidence = Array.isArray(obj.evidence)
      ? obj.evidence
          .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
          .map((e) => ({ file: String(e.file ?? ''), detail: String(e.detail ?? '') }))
      : [];
    return {
      values: Object.fromEntries(def.fields.map((f) => [f.name, obj[f.name] as boolean])),
      justification: justification || '(no justification given)',
      evidence,
    };
  }
  return { error: problem };
}

/** Combine usable runs: per-field majority (a tie counts as true), any, or all. */
export function aggregateRuns(
  def: JudgeDefinition,
  answers: readonly JudgeAnswer[],
): Record<string, boolean> {
  return Object.fromEntries(
    def.fields.map((f) => {
      const trues = answers.filter((a) => a.values[f.name]).length;
      const value =
        def.aggregation === 'any'
          ? trues > 0
          : def.aggregation === 'all'
            ? trues === answers.length
            : trues * 2 >= answers.length;
      return [f.name, value];
    }),
  );
}

export function judgeDetectorVersion(def: JudgeDefinition, model: string): string {
  const hash = sha256Text(
    [JSON.stringify({ ...def, model }), judgeSystemPrompt.toString(), EVIDENCE_PACK_FORMAT].join('\u0000'),
  ).slice(0, 12);
  return `${def.id}:${model}:${def.runs}x:${hash}`;
}

async function singleCall(
  def: JudgeDefinition,
  endpoint: JudgeEndpoint,
  model: string,
  evidence: TrialEvidence,
  ctx: AuditDetectorContext,
): Promise<{ reply: string; tools: JudgeRunRecord['tools'] }> {
  const pack = buildEvidencePack(evidence, ctx.findings ?? [], DEFAULT_PACK_CHARS);
  const reply = await chatTurn(
    endpoint,
    {
      model,
      effort: def.effort,
      system: judgeSystemPrompt(def, evidence),
      turns: [
        {
          role: 'user',
          text: `Evidence pack:\n\n${pack.text}\n\nAnswer with the JSON object only: ${answerShape(def)}`,
        },
      ],
      tools: [],
    },
    ctx.signal,
  );
  return { reply: reply.text, tools: [] };
}

async function agentLoop(
  def: JudgeDefinition,
  endpoint: JudgeEndpoint,
  model: string,
  evidence: TrialEvidence,
  ctx: AuditDetectorContext,
): Promise<{ reply: string; tools: JudgeRunRecord['tools'] }> {
  const system = judgeSystemPrompt(def, evidence);
  const turns: Turn[] = [
    { role: 'user', text: 'Audit the run now: investigate with the evidence tool, then answer.' },
  ];
  const tools: JudgeRunRecord['tools'] = [];
  const toolCtx = { evidence, findings: ctx.findings ?? [], home: ctx.home, signal: ctx.signal };
  for (let turn = 0; turn < def.maxTurns; turn++) {
    const reply = await chatTurn(
      endpoint,
      { model, effort: def.effort, system, turns, tools: [EVIDENCE_TOOL] },
      ctx.signal,
    );
    if (reply.calls.length === 0) return { reply: reply.text, tools };
    turns.push({ role: 'assistant', text: reply.text, calls: reply.calls });
    const results: Array<{ id: string; text: string }> = [];
    for (const call of reply.calls) {
      const command = String(call.arguments.command ?? call.arguments.cmd ?? '');
      const output =
        call.name === EVIDENCE_TOOL.name
          ? await runEvidenceCommand(toolCtx, command)
          : `unknown tool ${call.name}: the only tool is "${EVIDENCE_TOOL.name}"`;
      tools.push({ command, output: clip(output, 400) });
      results.push({ id: call.id, text: output });
    }
    turns.push({ role: 'tool', results });
  }
  // Out of turns: ask for the answer without tools.
  turns.push({
    role: 'user',
    text: `You are out of tool turns. Answer now with the JSON object only: ${answerShape(def)}`,
  });
  const last = await chatTurn(endpoint, { model, effort: def.effort, system, turns, tools: [] }, ctx.signal);
  return { reply: last.text, tools };
}

export function createJudgeDetector(
  def: JudgeDefinition,
  endpoint: JudgeEndpoint,
  opts: { model?: string } = {},
): AuditDetector {
  const model = opts.model?.trim() || def.model;
  const id = `${JUDGE_DETECTOR_PREFIX}${def.id}`;
  const version = judgeDetectorVersion(def, model);
  return {
    id,
    version,
    runsLast: true,
    async inspect(evidence: TrialEvidence, ctx: AuditDetectorContext): Promise<DetectorVerdict> {
      const dir = ctx.auditDir ? join(ctx.auditDir, 'judges', def.id) : null;
      if (dir) mkdirSync(dir, { recursive: true });
      const runOne = async (run: number): Promise<JudgeRunRecord> => {
        const started = Date.now();
        ctx.onProgress?.(`${id}: run ${run}/${def.runs} (${model}, ${def.mode})`);
        let reply = '';
        let tools: JudgeRunRecord['tools'] = [];
        let answer: JudgeAnswer | null = null;
        let error: string | null = null;
        try {
          ({ reply, tools } = await (def.mode === 'agent' ? agentLoop : singleCall)(
            def,
            endpoint,
            model,
            evidence,
            ctx,
          ));
          const parsed = parseAnswer(def, reply);
          if ('error' in parsed) error = parsed.error;
          else answer = parsed;
        } catch (err) {
          if (ctx.signal?.aborted) throw err;
          error = `the judge did not answer: ${clip((err as Error).message, 400)}`;
        }
        const record: JudgeRunRecord = {
          run,
          model,
          effort: def.effort,
          mode: def.mode,
          tools,
          reply,
          answer,
          error,
          seconds: (Date.now() - started) / 1000,
        };
        if (dir) writeFileSync(join(dir, `run-${run}.json`), `${JSON.stringify(record, null, 2)}\n`);
        return record;
      };
      const records = await Promise.all(Array.from({ length: def.runs }, (_, i) => runOne(i + 1)));
      const usable = records.flatMap((r) => (r.answer ? [r.answer] : []));
      const base = { detector: id, version };
      const runLines: Evidence[] = records.map((r) => ({
        source: `judge run ${r.run}`,
        detail: r.answer
          ? `${Object.entries(r.answer.values)
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}: ${clip(r.answer.justification, 400)}`
          : `no usable answer: ${r.error}`,
        severity: 'info',
        rule: 'judge-run',
      }));
      if (usable.length * 2 < def.runs || usable.length === 0) {
        return {
          ...base,
          verdict: 'unverified',
          rule: records.some((r) => r.reply) ? 'judge-malformed' : 'judge-error',
          summary: `${usable.length} of ${def.runs} judge runs gave a usable answer: ${records.find((r) => r.error)?.error ?? ''}`,
          evidence: runLines,
        };
      }
      const combined = aggregateRuns(def, usable);
      const final = {
        judge: def.id,
        model,
        runs: def.runs,
        usable: usable.length,
        aggregation: def.aggregation,
        gates: def.gates,
        values: combined,
        source: def.source,
      };
      if (dir) writeFileSync(join(dir, 'final.json'), `${JSON.stringify(final, null, 2)}\n`);
      if (ctx.auditDir) {
        // The upstream file shape: each field with its justification.
        const upstream: Record<string, unknown> = {};
        const lead = usable[0]!;
        for (const f of def.fields) {
          upstream[f.name] = combined[f.name];
          upstream[`justification_${f.name}`] = (
            usable.find((a) => a.values[f.name] === combined[f.name]) ?? lead
          ).justification;
        }
        writeFileSync(
          join(ctx.auditDir, `judgement_${def.outputId}.json`),
          `${JSON.stringify(upstream, null, 2)}\n`,
        );
      }
      const gating = def.fields.filter((f) => combined[f.name] && def.gates.includes(f.name));
      const archival = def.fields.filter((f) => combined[f.name] && !def.gates.includes(f.name));
      const why = (
        usable.find((a) => def.fields.some((f) => a.values[f.name] && combined[f.name])) ?? usable[0]!
      ).justification;
      const cited: Evidence[] = usable
        .flatMap((a) => a.evidence)
        .slice(0, 20)
        .map((e) => ({ source: e.file || 'judge', detail: e.detail }));
      const tally = `${usable.length}/${def.runs} runs, ${def.aggregation}`;
      if (gating.length > 0) {
        return {
          ...base,
          verdict: 'flagged',
          rule: gating.map((f) => f.rule).join(', '),
          summary: clip(`${gating.map((f) => f.name).join(', ')} (${tally}): ${why}`, 600),
          evidence: [
            ...gating.map((f) => ({
              source: def.label,
              detail: `${f.meaning} (${tally})`,
              severity: 'flag',
              rule: f.rule,
            })),
            ...cited,
            ...runLines,
          ],
        };
      }
      return {
        ...base,
        verdict: 'clean',
        summary: clip(
          archival.length
            ? `recorded, not gating under this protocol: ${archival.map((f) => f.name).join(', ')} (${tally}): ${why}`
            : `no violation found (${tally}): ${why}`,
          600,
        ),
        evidence: [
          ...archival.map((f) => ({
            source: def.label,
            detail: `${f.meaning} (${tally}); archival under this protocol, the score stands`,
            severity: 'warning',
            rule: f.rule,
          })),
          ...runLines,
        ],
      };
    },
  };
}
