/**
 * `ptb demo`'s own namespace. Its trials, its tiny base model and that model's baselines are a
 * walk-through, not results: reports, the dashboard and exports leave them out unless asked
 * (`--include-demo`). Everything the demo stores carries the marker: its experiment is `ptb-demo`
 * and its base model's id starts with `ptb-demo/`. Stores written by older versions (experiment
 * `demo`, same base model id, baseline source `ptb demo`) are recognised by the model id too.
 */

export const DEMO_EXPERIMENT = 'ptb-demo';
export const DEMO_MODEL_PREFIX = 'ptb-demo/';
/** The display id of the demo's base model (a tiny Qwen3-architecture model built locally). */
export const DEMO_BASE_MODEL = `${DEMO_MODEL_PREFIX}tiny-qwen3-base`;
export const DEMO_BASELINE_SOURCE = 'ptb demo';

export function isDemoModel(model: string): boolean {
  return model.startsWith(DEMO_MODEL_PREFIX);
}

export function isDemoTrial(trial: { experiment: string; base_model: string }): boolean {
  return trial.experiment === DEMO_EXPERIMENT || isDemoModel(trial.base_model);
}

export function isDemoBaseline(baseline: { model: string; source: string }): boolean {
  return isDemoModel(baseline.model) || baseline.source === DEMO_BASELINE_SOURCE;
}
