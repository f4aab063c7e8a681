/**
 * The `ptb` command line. Startup cost matters (`ptb --help` and `ptb benchmarks` must stay within
 * 3× `node -e 0`, see bench/cliStartup.ts), so commands load what they use lazily:
 *
 * - A command file (`cli/<command>.ts`, one `registerX` line below) declares its options and help
 *   with static imports of light modules only: `commander`, node builtins, `core/errors.ts`,
 *   `core/paths.ts`, `core/vocabulary.ts` (choice lists), other command files, and types
 *   (`import type` costs nothing).
 * - Everything else (store, benchmarks, engines, trial flows, zod schemas…) is imported inside the
 *   action: `const { evaluate } = await import('../eval/evaluate.ts');`. In the prebuilt bundle
 *   each such import is its own chunk, loaded only by the command that runs it.
 * - `ctx.db()`, `ctx.cache` and `ctx.evalRepo()` stay synchronous: their modules are loaded by the
 *   preAction hook below, before any action runs (never for `--help` or `--version`).
 * test/architecture/cliStartup.test.ts walks the static imports from this file and fails when a
 * heavy module becomes reachable.
 */
import { Command, CommanderError } from 'commander';
import { isUserError } from '../core/errors.ts';
import { registerAgents } from './agents.ts';
import { registerAudit } from './audit.ts';
import { registerBaseline } from './baseline.ts';
import { registerBenchmarks } from './benchmarks.ts';
import { type CliContext, createContext, loadContextModules } from './context.ts';
import { registerData } from './data.ts';
import { registerDemo } from './demo.ts';
import { registerEval } from './eval.ts';
import { registerEvals } from './evals.ts';
import { registerExport } from './export.ts';
import { registerImage } from './image.ts';
import { registerImport } from './import.ts';
import { registerProvenance } from './provenance.ts';
import { registerReport } from './report.ts';
import { registerRun } from './run.ts';
import { registerScan } from './scan.ts';
import { registerScore } from './score.ts';
import { registerSelftest } from './selftest.ts';
import { registerTrial } from './trial.ts';
import { registerView } from './view.ts';

/** One line per command file; adding a command is adding a file and a line here. */
const COMMANDS: ReadonlyArray<(program: Command, ctx: CliContext) => void> = [
  registerDemo,
  registerTrial,
  registerRun,
  registerAudit,
  registerProvenance,
  registerScan,
  registerEval,
  registerScore,
  registerEvals,
  registerData,
  registerBenchmarks,
  registerAgents,
  registerImage,
  registerReport,
  registerImport,
  registerExport,
  registerBaseline,
  registerView,
  registerSelftest,
];

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('ptb')
    .description('PostTrainBench: evaluate models, run post-training agents, audit and rank them')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });
  program.addHelpText(
    'after',
    '\nEnvironment: PTB_HOME (default ~/.ptb), HF_TOKEN (gated data), PTB_GRADER_BASE_URL / PTB_GRADER_API_KEY /\n' +
      'PTB_GRADER_MODEL (LLM grader), PTB_PYTHON (use this interpreter instead of the managed venv), PTB_OFFLINE=1,\n' +
      'PTB_VLLM_BIN (vllm executable), PTB_HF_SERVER_ARGS (extra flags for the hf engine server).',
  );
  program.hook('preAction', () => loadContextModules());
  for (const register of COMMANDS) register(program, ctx);
  return program;
}

/** Run the CLI; returns the exit code (commands never call process.exit). */
export async function main(argv: string[], ctx: CliContext = createContext()): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0
        ? 0
        : 2;
    }
    if (isUserError(err)) {
      ctx.stderr.write(`\nptb: ${err.message}\n`);
      if (err.hint) ctx.stderr.write(`  → ${err.hint}\n`);
      return 1;
    }
    ctx.stderr.write(
      `\nptb: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 1;
  } finally {
    ctx.close();
  }
}
