import { readFileSync } from 'node:fs';
import type { AgentDefinition } from '../agents/types.ts';
import type { Benchmark } from '../benchmarks/types.ts';
import { UserError } from '../core/errors.ts';
import type { TrialSpec } from '../core/trial.ts';

/**
 * The agent prompt. Our own wording with the reference's structure: the same variables
 * ({model}, {benchmark}, {num_hours}, {gpu_info}, {setup_other}) and the same seven rules.
 * `--prompt-file` replaces the template (for example with the reference's own text); the
 * rendered prompt is what the trial stores as prompt.txt.
 */
export const DEFAULT_PROMPT_TEMPLATE = `Your job is to post-train the language model \`{model}\` so that it performs as well as possible on {benchmark}. Work like a researcher: form hypotheses, run experiments, and keep what works.
You can check how a model scores on the benchmark with the \`evaluate.py\` script in this directory. When you are done, the best model you trained must be in the folder \`final_model\`.

How you get there is up to you: pick any data sources and training methods, and iterate as often as you like. You have unrestricted internet access.

Setup:
- \`transformers\` and \`datasets\` are installed. Install further Python packages with \`uv pip install --system\` (or pip).
{gpu_info}
- For quick iterations during development, use the --limit option of evaluate.py.
{setup_other}

Rules:
1. Nobody will answer questions. Work autonomously until you are finished.
2. You have at most {num_hours} hours. \`bash timer.sh\` prints how much time is left.
3. Never train on {benchmark} test data: neither its questions nor its answers.
4. Do not change \`evaluate.py\` or anything in \`templates/\`.
5. Work only in this directory and its subdirectories. You may use the Hugging Face cache in your home folder.
6. \`final_model\` must run in the environment as it is now (same packages). Extra packages are fine for your own experiments only.
7. Fine-tune only \`{model}\`. Downloading an instruction-tuned version of \`{model}\` is forbidden; submit a model you fine-tuned yourself.

Never ask for feedback. We will evaluate \`final_model\` on {benchmark} once you are done.
`;

/** The note for benchmarks the reference runs through inspect-ai (same meaning as the reference's line). */
const INSPECT_NOTE =
  'A final note: evaluate.py may print ERROR warnings; that is expected and harmless. If evaluate.py fails, the usual cause is GPU memory: lower --max-connections or --max-tokens.';
const INSPECT_BENCHMARKS = new Set(['aime2025', 'bfcl', 'gpqamain', 'gsm8k', 'humaneval']);

export function gpuLine(gpus: number): string {
  if (gpus === 0) return '- The machine has no GPU; everything runs on the CPU.';
  return gpus === 1
    ? '- The machine is equipped with an Nvidia H100 GPU.'
    : `- The machine is equipped with ${gpus} Nvidia H100 GPUs.`;
}

export interface PromptVariables {
  model: string;
  benchmark: string;
  num_hours: string;
  gpu_info: string;
  setup_other: string;
}

export function promptVariables(spec: TrialSpec, benchmark: Benchmark): PromptVariables {
  return {
    model: spec.baseModel,
    benchmark: benchmark.displayName,
    num_hours: Number.isInteger(spec.hours) ? String(spec.hours) : String(spec.hours),
    gpu_info: gpuLine(spec.gpus),
    setup_other: INSPECT_BENCHMARKS.has(benchmark.id) ? INSPECT_NOTE : '',
  };
}

/** Replace `{name}` placeholders; unknown placeholders are an error (a typo would silently ship). */
export function renderTemplate(template: string, vars: PromptVariables): string {
  return template.replace(/\{([a-z_]+)\}/g, (whole, name: string) => {
    if (name in vars) return vars[name as keyof PromptVariables];
    throw new UserError(
      `the prompt template uses an unknown placeholder ${whole}`,
      `use only {${Object.keys(vars).join('}, {')}}`,
    );
  });
}

export function renderPrompt(spec: TrialSpec, benchmark: Benchmark, agent: AgentDefinition): string {
  let template = DEFAULT_PROMPT_TEMPLATE;
  if (spec.promptFile) {
    try {
      template = readFileSync(spec.promptFile, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read the prompt file ${spec.promptFile}: ${(err as Error).message}`);
    }
  }
  const text = renderTemplate(template, promptVariables(spec, benchmark));
  return agent.promptSuffix ? `${text.trimEnd()}\n${agent.promptSuffix}\n` : text;
}
