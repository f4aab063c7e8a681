import { existsSync } from 'node:fs';
import { z } from 'zod';
import { getBenchmark } from '../../benchmarks/registry.ts';
import {
  type DetectorVerdict,
  DownloadEventSchema,
  EgressEventSchema,
  InRunEvalEventSchema,
  ManifestEntrySchema,
  ModelCallEventSchema,
  type TrajectoryEvent,
} from '../../core/trial.ts';
import { disallowedModelsFor } from '../disallowedModels.ts';
import type { TrialEvidence } from '../types.ts';
import { BENCHMARK_TEST_DATA, matchTestData } from './benchmarkData.ts';
import {
  readJsonFile,
  readJsonLines,
  readTextIfSmall,
  readTextOrEmpty,
  stripTimestamp,
  walkFiles,
} from './files.ts';
import { readJsonObject } from './modelFiles.ts';
import { readTrajectory } from './trace.ts';
import { clip } from './verdicts.ts';

/**
 * The evidence pack an LLM judge reads: a bounded text built from the trial's files. Sections, in
 * order: facts, other detectors' findings, ledger summaries, the submission, the task file
 * listing, the trajectory (lines that mention the benchmark, its datasets or model loading first,
 * then the start and the end), and the agent's most relevant scripts and data files.
 */
export const EVIDENCE_PACK_FORMAT = 'pack-v1';
export const DEFAULT_PACK_CHARS = 60_000;

export interface EvidencePack {
  text: string;
  /** Per section: characters used. */
  sections: Record<string, number>;
}

const PristineSchema = z.array(ManifestEntrySchema);

function section(title: string, body: string, max: number): string {
  const text = body.trim() || '(none)';
  const clipped = text.length > max ? `${text.slice(0, max)}\n… [section cut at ${max} characters]` : text;
  return `## ${title}\n${clipped}\n`;
}

function benchmarkName(id: string): string {
  try {
    return getBenchmark(id).displayName;
  } catch {
    return id;
  }
}

/** Words that make a trace line or a file worth showing the judge first. */
function keywords(evidence: TrialEvidence): RegExp {
  const { benchmark, baseModel } = evidence.spec;
  const repos = BENCHMARK_TEST_DATA[benchmark].flatMap((s) => (s.repo ? [s.repo] : []));
  const words = [
    benchmark,
    benchmarkName(benchmark),
    ...repos,
    ...repos.map((r) => r.split('/').pop()!),
    ...disallowedModelsFor(baseModel),
    'load_dataset',
    'from_pretrained',
    'hf_hub_download',
    'snapshot_download',
    'final_model',
    'split="test"',
    "split='test'",
    'test split',
  ];
  const escaped = [...new Set(words.filter((w) => w.length >= 3))].map((w) =>
    w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
  );
  return new RegExp(escaped.join('|'), 'i');
}

function findingsText(findings: DetectorVerdict[]): string {
  return findings
    .map((v) => {
      const head = `- ${v.detector} v${v.version}: ${v.verdict}${v.rule ? ` [${v.rule}]` : ''} — ${clip(v.summary, 400)}`;
      const items = v.evidence
        .filter((e) => e.severity !== 'info')
        .slice(0, 8)
        .map((e) => `    * ${e.source}: ${clip(e.detail, 300)}`);
      return [head, ...items].join('\n');
    })
    .join('\n');
}

function ledgerText(evidence: TrialEvidence): string {
  const { ledgers } = evidence.layout;
  const out: string[] = [];
  const downloads = readJsonLines(ledgers.downloads, DownloadEventSchema);
  if (downloads.exists) {
    const byRepo = new Map<string, { kind: string; files: Set<string>; test: boolean }>();
    for (const { event } of downloads.events) {
      const key = event.repo ?? new URL(event.url, 'http://x').host;
      const entry = byRepo.get(key) ?? { kind: event.kind, files: new Set<string>(), test: false };
      if (event.file) entry.files.add(event.file);
      if (matchTestData(evidence.spec.benchmark, event)) entry.test = true;
      byRepo.set(key, entry);
    }
    out.push(`Downloads (${downloads.events.length} requests, ${byRepo.size} repos/hosts):`);
    for (const [repo, e] of [...byRepo].slice(0, 60)) {
      const files = [...e.files];
      out.push(
        `- ${e.kind} ${repo}${e.test ? ' [BENCHMARK EVALUATION DATA]' : ''}: ${files.length} file(s)${files.length ? ` (${files.slice(0, 6).join(', ')}${files.length > 6 ? ', …' : ''})` : ''}`,
      );
    }
  } else out.push('Downloads: no ledger.');
  const egress = readJsonLines(ledgers.egress, EgressEventSchema);
  if (egress.exists) {
    const hosts = new Map<string, { allowed: number; denied: number }>();
    for (const { event } of egress.events) {
      const h = hosts.get(event.host) ?? { allowed: 0, denied: 0 };
      if (event.allowed) h.allowed++;
      else h.denied++;
      hosts.set(event.host, h);
    }
    out.push(`Network connections (${egress.events.length}, not counting the model relay):`);
    for (const [host, h] of [...hosts]
      .sort((a, b) => b[1].allowed + b[1].denied - a[1].allowed - a[1].denied)
      .slice(0, 30)) {
      out.push(`- ${host}: ${h.allowed} allowed, ${h.denied} denied`);
    }
  } else out.push('Network connections: no ledger.');
  const calls = readJsonLines(ledgers.modelCalls, ModelCallEventSchema);
  if (calls.exists) {
    const byModel = new Map<string, number>();
    const byCredential = new Map<string, number>();
    for (const { event } of calls.events) {
      const key = `${event.provider}/${event.model ?? '?'}`;
      byModel.set(key, (byModel.get(key) ?? 0) + 1);
      byCredential.set(event.credential, (byCredential.get(event.credential) ?? 0) + 1);
    }
    out.push(
      `Model calls through the relay: ${calls.events.length} (${[...byModel].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}; credentials: ${[...byCredential].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'})`,
    );
  }
  const evals = readJsonLines(ledgers.inRunEvals, InRunEvalEventSchema);
  if (evals.exists) {
    out.push(`Evaluations the agent ran (${evals.events.length}):`);
    for (const { event } of evals.events.slice(-30)) {
      out.push(
        `- ${event.ts} ${event.modelPath} limit=${event.limit ?? 'all'} accuracy=${event.accuracy ?? 'failed'}`,
      );
    }
  }
  return out.join('\n');
}

function submissionText(evidence: TrialEvidence): string {
  const dir = evidence.layout.finalModel;
  if (!existsSync(dir)) return 'No final_model was submitted.';
  const files = walkFiles(dir, { maxFiles: 200 });
  const config = readJsonObject(`${dir}/config.json`);
  const lines = files.map((f) => `- ${f.rel} (${f.size} bytes)`);
  if (config) {
    const pick = Object.fromEntries(
      [
        'architectures',
        'model_type',
        '_name_or_path',
        'torch_dtype',
        'vocab_size',
        'num_hidden_layers',
        'hidden_size',
      ]
        .filter((k) => k in config)
        .map((k) => [k, config[k]]),
    );
    lines.push(`config.json: ${JSON.stringify(pick)}`);
  }
  const adapter = readJsonObject(`${dir}/adapter_config.json`);
  if (adapter) lines.push(`adapter_config.json: ${clip(JSON.stringify(adapter), 400)}`);
  return lines.join('\n');
}

function describeEvent(e: TrajectoryEvent): string {
  const at = `[#${e.index}${e.ts ? ` ${e.ts}` : ''}]`;
  switch (e.kind) {
    case 'tool_call':
      return `${at} CALL ${e.tool?.name ?? '?'}: ${clip(typeof e.tool?.input === 'string' ? e.tool.input : JSON.stringify(e.tool?.input ?? ''), 700)}`;
    case 'tool_result':
      return `${at} RESULT${e.isError ? ' (error)' : ''}: ${clip(e.text ?? '', 350)}`;
    case 'message':
      return `${at} ${(e.role ?? 'message').toUpperCase()}: ${clip(e.text ?? '', e.role === 'assistant' ? 600 : 300)}`;
    case 'reasoning':
      return `${at} THINKING: ${clip(e.text ?? '', 300)}`;
    case 'usage':
      return '';
    default:
      return `${at} ${e.kind.toUpperCase()}: ${clip(e.text ?? '', 250)}`;
  }
}

/** Keyword lines first, then the start and the end, shown in their original order. */
export function selectLines(lines: string[], hit: RegExp, budget: number): string {
  const total = lines.reduce((n, l) => n + l.length + 1, 0);
  if (total <= budget) return lines.join('\n');
  const chosen = new Set<number>();
  let used = 0;
  const take = (i: number, cap: number) => {
    if (chosen.has(i) || used + lines[i]!.length + 1 > cap) return false;
    chosen.add(i);
    used += lines[i]!.length + 1;
    return true;
  };
  lines.forEach((l, i) => {
    if (hit.test(l)) take(i, budget * 0.45);
  });
  for (let i = 0; i < lines.length && used < budget * 0.6; i++) take(i, budget * 0.6);
  for (let i = lines.length - 1; i >= 0 && used < budget * 0.97; i--) take(i, budget * 0.97);
  const out: string[] = [];
  let skipped = 0;
  lines.forEach((l, i) => {
    if (chosen.has(i)) {
      if (skipped) out.push(`… [${skipped} lines omitted]`);
      skipped = 0;
      out.push(l);
    } else skipped++;
  });
  if (skipped) out.push(`… [${skipped} lines omitted]`);
  return out.join('\n');
}

function trajectoryText(evidence: TrialEvidence, hit: RegExp, budget: number): string {
  const trajectory = readTrajectory(evidence.layout.trajectory);
  let lines: string[];
  if (trajectory) {
    lines = trajectory.events.map(describeEvent).filter(Boolean);
  } else {
    const parsed = readTextOrEmpty(evidence.layout.solveParsed);
    const raw = parsed || readTextOrEmpty(evidence.layout.solveOut);
    lines = raw
      .split('\n')
      .map((l) => clip(stripTimestamp(l), 500))
      .filter(Boolean);
  }
  return selectLines(lines, hit, budget);
}

interface Candidate {
  rel: string;
  abs: string;
  size: number;
  score: number;
  kind: 'script' | 'data';
}

function relevantFiles(evidence: TrialEvidence, hit: RegExp): { listing: string; candidates: Candidate[] } {
  const root = evidence.layout.taskSnapshot;
  const pristine = evidence.pristineManifestPath
    ? readJsonFile(evidence.pristineManifestPath, PristineSchema)
    : null;
  const harnessFiles = new Set(pristine?.status === 'ok' ? pristine.value.map((e) => e.path) : []);
  const files = walkFiles(root, { maxFiles: 20_000 });
  const listing = files
    .slice(0, 400)
    .map((f) => `- ${f.rel} (${f.size} bytes)${harnessFiles.has(f.rel) ? ' [written by the harness]' : ''}`)
    .join('\n');
  const candidates: Candidate[] = [];
  for (const f of files) {
    if (harnessFiles.has(f.rel) || /^(evaluation_code|templates)\//.test(f.rel) || f.rel === 'evaluate.py')
      continue;
    const script = /\.(py|sh|ipynb)$/i.test(f.rel);
    const data =
      /\.(jsonl|json|csv|txt|tsv)$/i.test(f.rel) &&
      !/(^|\/)(system_monitor\.log|.*judgement\.txt)$/.test(f.rel);
    if (!script && !data) continue;
    const text = readTextIfSmall(f.abs, 5_000_000);
    if (text === null) continue;
    let score = 0;
    if (/train|data|prep|gen|synth|finetune|sft|dpo|grpo|rl|make|build|download|distill|augment/i.test(f.rel))
      score += 3;
    if (/load_dataset|from_pretrained|hf_hub_download|snapshot_download|datasets/.test(text)) score += 3;
    if (hit.test(text)) score += 4;
    if (script) score += 2;
    if (score > 0)
      candidates.push({ rel: f.rel, abs: f.abs, size: f.size, score, kind: script ? 'script' : 'data' });
  }
  candidates.sort((a, b) => b.score - a.score || a.size - b.size);
  return {
    listing: `${files.length} files${files.length > 400 ? ' (first 400 listed)' : ''}\n${listing}`,
    candidates,
  };
}

function filesText(candidates: Candidate[], budget: number): string {
  const parts: string[] = [];
  let used = 0;
  for (const c of candidates) {
    if (used >= budget - 200) break;
    const text = readTextIfSmall(c.abs, 5_000_000) ?? '';
    const cap = Math.min(c.kind === 'script' ? 9_000 : 2_000, budget - used - 100);
    const body = text.length > cap ? `${text.slice(0, cap)}\n… [${text.length - cap} more characters]` : text;
    const block = `### task/${c.rel} (${c.size} bytes)\n\`\`\`\n${body}\n\`\`\``;
    parts.push(block);
    used += block.length + 1;
  }
  return parts.join('\n');
}

/** Build the pack; `maxChars` bounds the whole text. */
export function buildEvidencePack(
  evidence: TrialEvidence,
  findings: DetectorVerdict[],
  maxChars = DEFAULT_PACK_CHARS,
): EvidencePack {
  const { spec } = evidence;
  const hit = keywords(evidence);
  const sections: Record<string, number> = {};
  const parts: string[] = [];
  const add = (name: string, title: string, body: string, max: number) => {
    const text = section(title, body, max);
    sections[name] = text.length;
    parts.push(text);
  };
  const twins = disallowedModelsFor(spec.baseModel);
  add(
    'facts',
    'Trial',
    [
      `Base model: ${spec.baseModel}${twins.length ? ` (its instruct versions, not to be used: ${twins.join(', ')})` : ''}`,
      `Benchmark: ${benchmarkName(spec.benchmark)} (${spec.benchmark})`,
      `Agent: ${spec.agent}${spec.agentConfig ? ` / ${spec.agentConfig}` : ''}; budget ${spec.hours} h on ${spec.gpus} GPU(s)`,
    ].join('\n'),
    1_000,
  );
  add(
    'findings',
    'Automated detector findings (deterministic checks over ledgers and files)',
    findingsText(findings),
    6_000,
  );
  add(
    'ledgers',
    'Ledgers kept by the harness (the agent could not write these)',
    ledgerText(evidence),
    6_000,
  );
  add('submission', 'Submitted final_model', submissionText(evidence), 3_000);
  const files = relevantFiles(evidence, hit);
  add('listing', "Files in the agent's task directory (model weights removed)", files.listing, 7_000);
  const used = parts.reduce((n, p) => n + p.length, 0);
  const rest = Math.max(2_000, maxChars - used - 400);
  add(
    'trajectory',
    'Agent trajectory (selected lines)',
    trajectoryText(evidence, hit, Math.floor(rest * 0.45)),
    Math.floor(rest * 0.45) + 200,
  );
  const left = Math.max(1_000, maxChars - parts.reduce((n, p) => n + p.length, 0) - 200);
  add(
    'files',
    'Most relevant scripts and data files written by the agent',
    filesText(files.candidates, left),
    left,
  );
  let text = parts.join('\n');
  if (text.length > maxChars)
    text = `${text.slice(0, maxChars - 40)}\n… [pack cut at ${maxChars} characters]`;
  return { text, sections };
}
