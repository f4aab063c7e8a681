import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errorMessage } from '../core/errors.ts';
import { DownloadEventSchema, type TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import { forbiddenModelsFor, readUserForbiddenModels } from '../detectors/forbiddenModels.ts';
import { readJsonLines } from '../detectors/shared/files.ts';
import type { ReferenceModel } from '../detectors/types.ts';
import { fetchModelSnapshot, findSnapshot } from '../hub/modelSnapshot.ts';

/**
 * Every trial's disallowed references, resolved before the audit runs: ptb's list for the base
 * (forbiddenModels.ts), the user's additions (PTB_HOME/forbidden-models.json), those the trial
 * names, and every model of the base's architecture the agent downloaded (the download ledger).
 * Each is read from, in order: its weights in the snapshot cache (fetched once by the harness,
 * outside the sandbox, at the pinned commit), its stored signature, or a fresh fetch. One that is
 * none of these carries a `problem`, and the provenance verdict is then unverified, never clean.
 */

export interface ReferenceCaches {
  /** Fetched model snapshots. */
  models: string;
  /** Signatures (one file per reference × base). */
  signatures: string;
  /** User additions to the forbidden list. */
  userList: string | null;
}

export function referenceCaches(homeRoot: string): ReferenceCaches {
  return {
    models: join(homeRoot, 'cache', 'models'),
    signatures: join(homeRoot, 'cache', 'provenance-signatures'),
    userList: join(homeRoot, 'forbidden-models.json'),
  };
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '--');

/** Where the signature of `repo@revision` against `baseModel` lives. */
export function signatureFile(
  caches: ReferenceCaches,
  repo: string,
  revision: string,
  baseModel: string,
): string {
  return join(caches.signatures, `${safe(repo)}@${revision}__${safe(baseModel)}.safetensors`);
}

/** The newest signature of a repo (any revision) against a base, when the revision is not pinned. */
function findSignature(
  caches: ReferenceCaches,
  repo: string,
  revision: string | null,
  baseModel: string,
): string | null {
  if (revision && /^[0-9a-f]{40}$/.test(revision)) {
    const f = signatureFile(caches, repo, revision, baseModel);
    return existsSync(f) ? f : null;
  }
  if (!existsSync(caches.signatures)) return null;
  const prefix = `${safe(repo)}@`;
  const suffix = `__${safe(baseModel)}.safetensors`;
  const hits = readdirSync(caches.signatures)
    .filter((f) => f.startsWith(prefix) && f.endsWith(suffix))
    .map((f) => join(caches.signatures, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return hits[0] ?? null;
}

/** Shape fields that must agree for a model's weights to be comparable with the base's. */
const SHAPE_KEYS = ['model_type', 'hidden_size', 'num_hidden_layers', 'intermediate_size', 'vocab_size'];

function readConfig(dir: string | null): Record<string, unknown> | null {
  if (!dir) return null;
  try {
    return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** Why `config` cannot hold weights comparable with the base's (null: it can). */
export function architectureMismatch(
  base: Record<string, unknown> | null,
  config: Record<string, unknown>,
): string | null {
  if (!base) return null;
  const inner = (c: Record<string, unknown>) => (c.text_config as Record<string, unknown> | undefined) ?? c;
  const a = inner(base);
  const b = inner(config);
  const diff = SHAPE_KEYS.filter((k) => a[k] !== undefined && b[k] !== undefined && a[k] !== b[k]);
  return diff.length > 0
    ? `another architecture than the base (${diff.map((k) => `${k} ${JSON.stringify(b[k])} vs ${JSON.stringify(a[k])}`).join(', ')})`
    : null;
}

/** Models of the base's architecture the agent downloaded (weights, not only a config or tokenizer). */
export function downloadedModels(layout: TrialLayout, baseModel: string): string[] {
  const ledger = readJsonLines(layout.ledgers.downloads, DownloadEventSchema);
  if (!ledger.exists) return [];
  const repos = new Set<string>();
  for (const { event } of ledger.events) {
    if (event.kind !== 'model' || !event.repo || event.status >= 400) continue;
    if (event.repo.toLowerCase() === baseModel.toLowerCase()) continue;
    if (/\.(safetensors|bin)$/.test(event.file ?? '')) repos.add(event.repo);
  }
  return [...repos];
}

export interface ResolveOptions {
  spec: TrialSpec;
  layout: TrialLayout | null;
  baseModelPath: string | null;
  homeRoot: string;
  env: NodeJS.ProcessEnv;
  /** No fetch from the public Hub (a configured mirror, PTB_HF_UPSTREAM, is still used). */
  offline: boolean;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export async function resolveReferences(o: ResolveOptions): Promise<ReferenceModel[]> {
  const caches = referenceCaches(o.homeRoot);
  const say = o.onLine ?? (() => {});
  const out: ReferenceModel[] = [];
  let user: ReturnType<typeof readUserForbiddenModels> = {};
  try {
    user = readUserForbiddenModels(caches.userList);
  } catch (err) {
    out.push({
      label: caches.userList!,
      repo: null,
      revision: null,
      relation: 'fine-tune',
      source: 'user-list',
      weights: null,
      signature: null,
      signatureTarget: null,
      problem: errorMessage(err),
      required: true,
    });
  }
  const listed = forbiddenModelsFor(o.spec.baseModel, { user, extra: o.spec.forbiddenModels });
  const downloaded = o.layout
    ? downloadedModels(o.layout, o.spec.baseModel).filter(
        (r) => !listed.some((m) => m.repo.toLowerCase() === r.toLowerCase()),
      )
    : [];
  const endpoint =
    o.env.PTB_HF_UPSTREAM ?? (o.offline ? null : (o.env.HF_ENDPOINT ?? 'https://huggingface.co'));
  const baseConfig = readConfig(o.baseModelPath);
  const candidates = [
    ...listed.map((m) => ({ ...m, source: 'forbidden-list' as const, required: true })),
    ...downloaded.map((repo) => ({
      repo,
      revision: undefined,
      relation: 'fine-tune' as const,
      note: 'downloaded by the agent',
      source: 'downloaded' as const,
      required: false,
    })),
  ];
  for (const m of candidates) {
    const revision = m.revision ?? null;
    const ref: ReferenceModel = {
      label: revision ? `${m.repo}@${revision.slice(0, 12)}` : m.repo,
      repo: m.repo,
      revision,
      relation: m.relation,
      source: m.source,
      weights: null,
      signature: null,
      signatureTarget: null,
      problem: null,
      required: m.required,
    };
    let snap = findSnapshot(caches.models, m.repo, revision);
    let sig = findSignature(caches, m.repo, revision, o.spec.baseModel);
    if (!snap && !sig && endpoint) {
      try {
        const got = await fetchModelSnapshot({
          repo: m.repo,
          revision,
          endpoint,
          token: o.env.HF_TOKEN,
          cacheDir: caches.models,
          vetConfig: (config) => architectureMismatch(baseConfig, config),
          onProgress: say,
          signal: o.signal,
        });
        snap = got;
      } catch (err) {
        if (o.signal?.aborted) throw err;
        ref.problem = `could not fetch ${m.repo}${revision ? `@${revision}` : ''} from ${endpoint}: ${errorMessage(err)}`;
      }
    } else if (!snap && !sig) {
      ref.problem = `no local weights or signature of ${m.repo}, and fetching from the Hub is off (offline)`;
    }
    if (snap) {
      const mismatch = architectureMismatch(baseConfig, readConfig(snap.dir) ?? {});
      if (mismatch) {
        ref.problem = `${m.repo}: ${mismatch}`;
      } else {
        ref.weights = snap.dir;
        ref.revision = snap.manifest.revision;
        ref.label = `${m.repo}@${snap.manifest.revision.slice(0, 12)}`;
        ref.signatureTarget = signatureFile(caches, m.repo, snap.manifest.revision, o.spec.baseModel);
        if (existsSync(ref.signatureTarget)) sig = ref.signatureTarget;
        ref.problem = null;
      }
    }
    if (sig) {
      ref.signature = sig;
      ref.problem = null;
    }
    // A model the agent merely downloaded that is not comparable is no reference: say so, do not block.
    if (!m.required && ref.problem && /another architecture/.test(ref.problem)) continue;
    out.push(ref);
  }
  for (const path of o.spec.referenceModels) {
    out.push({
      label: path,
      repo: null,
      revision: null,
      relation: 'fine-tune',
      source: 'trial-path',
      weights: existsSync(path) ? resolve(path) : null,
      signature: null,
      signatureTarget: null,
      problem: existsSync(path) ? null : `reference weights ${path} do not exist`,
      required: true,
    });
  }
  return out;
}
