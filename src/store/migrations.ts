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
  `
  CREATE TABLE experiments (
    name TEXT PRIMARY KEY,
    config_json TEXT,
    created_at TEXT NOT NULL
  );

  CREATE TABLE trials (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL REFERENCES experiments(name),
    agent TEXT NOT NULL,
    agent_config TEXT NOT NULL,
    base_model TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    hours REAL NOT NULL,
    gpus INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    sandbox TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    dir TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'ptb' CHECK (source IN ('ptb', 'import')),
    external_id TEXT,
    run_number INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'interrupted', 'completed', 'failed')),
    phase TEXT,
    agent_outcome TEXT,
    agent_seconds REAL,
    accuracy REAL,
    final_score REAL,
    substituted INTEGER,
    audit_verdict TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
  );
  CREATE INDEX trials_cell ON trials (experiment, base_model, benchmark);
  CREATE UNIQUE INDEX trials_external ON trials (experiment, external_id) WHERE external_id IS NOT NULL;

  CREATE TABLE trial_phases (
    trial_id TEXT NOT NULL REFERENCES trials(id),
    phase TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'completed', 'failed')),
    result_json TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (trial_id, phase)
  );

  CREATE TABLE audits (
    id TEXT PRIMARY KEY,
    trial_id TEXT NOT NULL REFERENCES trials(id),
    combined TEXT NOT NULL CHECK (combined IN ('clean', 'flagged', 'unverified', 'not_audited')),
    policy TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX audits_trial ON audits (trial_id, created_at);

  CREATE TABLE verdicts (
    audit_id TEXT NOT NULL REFERENCES audits(id),
    detector TEXT NOT NULL,
    version TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('clean', 'flagged', 'unverified')),
    rule TEXT,
    summary TEXT NOT NULL,
    evidence_json TEXT NOT NULL,
    PRIMARY KEY (audit_id, detector)
  );

  CREATE TABLE baselines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('base', 'instruct', 'other')),
    accuracy REAL,
    source TEXT NOT NULL,
    eval_run_id TEXT,
    created_at TEXT NOT NULL
  );
  CREATE INDEX baselines_cell ON baselines (model, benchmark, created_at);
  `,
  `
  -- The trial directory is the record (journal.jsonl); these rows index it. trial_journals says how
  -- far each journal has been read, so re-indexing reads only what was appended since.
  CREATE TABLE trial_journals (
    trial_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    offset INTEGER NOT NULL
  );

  -- Each start of a trial's harness: where, under which job, after how many scheduler requeues.
  CREATE TABLE trial_runs (
    trial_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    executor TEXT NOT NULL,
    host TEXT NOT NULL,
    job TEXT,
    restart_count INTEGER,
    gpus_json TEXT NOT NULL,
    started_at TEXT NOT NULL,
    PRIMARY KEY (trial_id, n)
  );

  -- Phase attempts thrown away and redone (a preempted agent restarts from a fresh workspace).
  CREATE TABLE trial_lost_attempts (
    trial_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    phase TEXT NOT NULL,
    reset_from TEXT NOT NULL,
    reason TEXT NOT NULL,
    seconds REAL NOT NULL,
    started_at TEXT NOT NULL,
    lost_at TEXT NOT NULL,
    kept_in TEXT,
    restart_count INTEGER,
    PRIMARY KEY (trial_id, n)
  );
  `,
  `
  -- The evaluation protocol a baseline was scored under (core/protocols.ts); NULL: recorded before
  -- protocols existed. A trial or leaderboard uses baselines of its own protocol (else NULL ones).
  ALTER TABLE baselines ADD COLUMN protocol TEXT;
  `,
];
