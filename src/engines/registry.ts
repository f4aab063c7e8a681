import { UserError } from '../core/errors.ts';
import { splitShellWords } from '../runtime/pythonEnv.ts';
import { createHfEngine } from './hf.ts';
import { openaiEngineFor } from './openai.ts';
import type { Engine, EngineIsolation } from './types.ts';
import { createVllmEngine } from './vllm.ts';

export type EngineChoice =
  | { id: 'hf' }
  | { id: 'vllm' }
  | { id: 'openai'; baseUrl?: string; apiKey?: string; servedModel?: string };

export interface EngineEnvironment {
  /** PTB_HOME: where the managed Python venv for the hf engine lives. */
  venvHome: string;
  env: NodeJS.ProcessEnv;
  /** Where a local engine's server runs (default: on the host). */
  isolation?: EngineIsolation;
}

/** The engine for a choice; one entry per engine kind. */
export function engineFor(choice: EngineChoice, where: EngineEnvironment): Engine {
  switch (choice.id) {
    case 'hf':
      // PTB_HF_SERVER_ARGS passes extra flags to python/ptb_hf_server.py (e.g. `--decode-loop ptb`).
      return createHfEngine({
        home: where.venvHome,
        env: where.env,
        extraArgs: splitShellWords(where.env.PTB_HF_SERVER_ARGS ?? ''),
        isolation: where.isolation,
      });
    case 'vllm':
      return createVllmEngine({ env: where.env, isolation: where.isolation });
    case 'openai': {
      const baseUrl = choice.baseUrl ?? where.env.PTB_OPENAI_BASE_URL;
      if (!baseUrl) {
        throw new UserError(
          '--engine openai needs an endpoint',
          'Pass --base-url http://host:port/v1 or set PTB_OPENAI_BASE_URL.',
        );
      }
      return openaiEngineFor({
        baseUrl,
        apiKey: choice.apiKey ?? where.env.PTB_OPENAI_API_KEY ?? where.env.OPENAI_API_KEY ?? '',
        model: choice.servedModel,
      });
    }
    default:
      throw new UserError(`unknown engine ${(choice as { id: string }).id}`, 'Use vllm, hf or openai.');
  }
}
