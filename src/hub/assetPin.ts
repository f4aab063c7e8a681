/** One pinned upstream file a benchmark needs (data split, baseline answers, grader prompt, template). */
export interface AssetPin {
  /** Name of the part inside its benchmark: `test`, `train`, `baseline`, `judge-prompt`, ... */
  part: string;
  description: string;
  /** Immutable URL: a Hugging Face `resolve/<revision>` or a GitHub raw URL at a commit. */
  url: string;
  /** Expected sha256 of the file. null: not known in advance; recorded on first fetch and verified after. */
  sha256: string | null;
  format: RecordFormat;
  /** Gated on Hugging Face: the fetch needs HF_TOKEN. */
  gated?: boolean;
  /** File name inside the cache folder of the benchmark. */
  fileName: string;
  /** Record files: the rows and fields of the pinned file, which `ptb data import` checks a local copy against. */
  shape?: { rows: number | null; fields: readonly string[] };
  /** Text files: what the benchmark reads from it (a prompt constant's name), checked the same way. */
  contains?: readonly string[];
  /** Needed only to build prompts (templates, few-shot sources): scoring recorded replies works without it. */
  promptOnly?: boolean;
}

export type RecordFormat = 'jsonl' | 'json' | 'parquet' | 'csv' | 'text';

export function huggingFaceDatasetUrl(repo: string, revision: string, file: string): string {
  return `https://huggingface.co/datasets/${repo}/resolve/${revision}/${file}`;
}

export function githubRawUrl(repo: string, commit: string, path: string): string {
  return `https://raw.githubusercontent.com/${repo}/${commit}/${path}`;
}
