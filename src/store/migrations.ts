/** Append-only list: migration N is MIGRATIONS[N-1]. Never edit one that has shipped. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE eval_runs (
    id TEXT PRIMARY KEY,
    benchmark TEXT NOT NULL,
    model TEXT NOT NULL,
    engine TEXT NOT NULL,
    config_key TEXT NOT NULL,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'failed', 'completed')),
    out_dir TEXT NOT NULL,
    metrics_json TEXT,
    rung INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE INDEX eval_runs_config ON eval_runs (config_key, status);

  CREATE TABLE eval_attempts (
    run_id TEXT NOT NULL REFERENCES eval_runs(id),
    n INTEGER NOT NULL,
    rung INTEGER NOT NULL,
    max_tokens INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'failed', 'completed', 'interrupted')),
    error TEXT,
    log_path TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (run_id, n)
  );

  CREATE TABLE eval_samples (
    run_id TEXT NOT NULL REFERENCES eval_runs(id),
    sample_id TEXT NOT NULL,
    max_tokens INTEGER NOT NULL,
    position INTEGER NOT NULL,
    request_json TEXT NOT NULL,
    reply_text TEXT,
    tool_calls_json TEXT,
    finish_reason TEXT,
    answer TEXT,
    score REAL NOT NULL,
    score_json TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, max_tokens, sample_id)
  );
  `,
];
