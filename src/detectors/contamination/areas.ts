import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

/**
 * Where in the trial a file sits, which decides what a test item found in it means. Reading test
 * questions is allowed (the reference's judge: viewing, evaluation), training on them is not; so a
 * copy in training material flags, and a copy in places an honest run also fills with test items —
 * the trace, logs, the evaluation records, files pip installed unchanged, git history, downloaded
 * model repos and dataset cards, the benchmark's own downloaded test split — is evidence only, until
 * the file-open ledger shows a training process read it.
 */
export type Area =
  | 'training'
  | 'final-model'
  | 'log'
  | 'trace'
  | 'eval-records'
  | 'installed-package'
  | 'package-dir'
  | 'vcs'
  | 'model-download'
  | 'dataset-card'
  | 'dataset-download'
  | 'harness-file';

export interface Placement {
  area: Area;
  /** The Hugging Face repo a downloaded file belongs to. */
  repo?: string;
  /** The file's path inside that repo (snapshot or datasets-cache relative). */
  repoPath?: string;
}

const LOG_FILE = /(^|\/)(logs?\/|[^/]*\.(log|out|err)$)/i;
const PACKAGE_DIR = /(^|\/)(site-packages|dist-packages|node_modules)\//;
const HUB_REPO = /(^|\/)(datasets|models)--([^/]+?)--([^/]+)\/(?:snapshots\/[^/]+\/|blobs\/)?(.*)$/;
/** The datasets library's cache: `<org>___<name>/<config>/<version>/<hash>/<file>`. */
const DATASETS_CACHE = /(^|\/)datasets\/([^/]+?)___([^/]+)\/(.*)$/;
const CARD = /(^|\/)(README|readme)(\.[a-z]+)?$|\.md$/;

/** Placement of a file given its path relative to the trial directory (`task/…`, `work/…`). */
export function placementOf(rel: string, hostPath: string, venvCheck: (path: string) => boolean): Placement {
  const path = rel.split(sep).join('/');
  if (path.startsWith('final_model/')) return { area: 'final-model' };
  if (path.startsWith('work/ptb-home/')) return { area: 'eval-records' };
  const hub = HUB_REPO.exec(path);
  if (hub) {
    const repo = `${hub[3]}/${hub[4]}`;
    if (hub[2] === 'models') return { area: 'model-download', repo, repoPath: hub[5] };
    return { area: CARD.test(hub[5]!) ? 'dataset-card' : 'dataset-download', repo, repoPath: hub[5] };
  }
  const cache = DATASETS_CACHE.exec(path);
  if (cache) return { area: 'dataset-download', repo: `${cache[2]}/${cache[3]}`, repoPath: cache[4] };
  if (/(^|\/)\.git\//.test(path)) return { area: 'vcs' };
  if (PACKAGE_DIR.test(path) || venvCheck(hostPath)) return { area: 'package-dir' };
  if (LOG_FILE.test(path)) return { area: 'log' };
  return { area: 'training' };
}

/** Whether a path lies inside a Python virtual environment (a folder above it holds pyvenv.cfg). */
export function venvChecker(stopAt: readonly string[]): (path: string) => boolean {
  const memo = new Map<string, boolean>();
  const isVenv = (dir: string): boolean => {
    const hit = memo.get(dir);
    if (hit !== undefined) return hit;
    const parent = dirname(dir);
    const answer =
      existsSync(join(dir, 'pyvenv.cfg')) || (!stopAt.includes(dir) && parent !== dir && isVenv(parent));
    memo.set(dir, answer);
    return answer;
  };
  return (path) => isVenv(dirname(path));
}

/**
 * Files pip installed, as its RECORD files list them (path, sha256): a file still matching its
 * record came from the package, not from the agent. Read once per site-packages folder.
 */
export class InstalledFiles {
  private readonly records = new Map<string, Map<string, string>>();

  private recordsOf(root: string): Map<string, string> {
    let map = this.records.get(root);
    if (map) return map;
    map = new Map();
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {}
    for (const name of names) {
      if (!name.endsWith('.dist-info')) continue;
      let text = '';
      try {
        text = readFileSync(join(root, name, 'RECORD'), 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        const m = /^("?)(.+?)\1,sha256=([A-Za-z0-9_-]+),/.exec(line);
        if (m) map.set(m[2]!, m[3]!);
      }
    }
    this.records.set(root, map);
    return map;
  }

  /** Whether the file is a package file exactly as pip installed it. */
  isUnchanged(hostPath: string): boolean {
    const m = /^(.*\/(?:site-packages|dist-packages))\/(.+)$/.exec(hostPath.split(sep).join('/'));
    if (!m) return false;
    const expected = this.recordsOf(m[1]!).get(m[2]!);
    if (!expected) return false;
    try {
      const digest = createHash('sha256').update(readFileSync(hostPath)).digest('base64url');
      return digest === expected;
    } catch {
      return false;
    }
  }
}

/** Host path and trial-relative label of a scanned file. */
export function labelIn(root: string, path: string): string {
  return relative(root, path) || path;
}

/**
 * Files the harness put in the task folder (ledgers/pristine_manifest.json: evaluate.py, templates,
 * the reference's evaluation_code/ with Arena-Hard's questions and HealthBench's rubrics), still
 * byte for byte as placed. The reference gives agents these files to read; a copy an agent made or
 * edited is judged like any other file, and one a training process read still flags.
 */
export class HarnessFiles {
  private readonly sha256 = new Map<string, string>();

  constructor(pristineManifestPath: string | null) {
    if (!pristineManifestPath) return;
    try {
      const entries = JSON.parse(readFileSync(pristineManifestPath, 'utf8')) as Array<{
        path?: unknown;
        sha256?: unknown;
      }>;
      for (const e of entries) {
        if (typeof e.path === 'string' && typeof e.sha256 === 'string')
          this.sha256.set(`task/${e.path}`, e.sha256);
      }
    } catch {
      // no readable manifest: no file counts as the harness's
    }
  }

  /** Whether `rel` (relative to the trial directory) is a harness file with its placed content. */
  isUnchanged(rel: string, hostPath: string): boolean {
    const expected = this.sha256.get(rel.split(sep).join('/'));
    if (!expected) return false;
    try {
      return createHash('sha256').update(readFileSync(hostPath)).digest('hex') === expected;
    } catch {
      return false;
    }
  }
}
