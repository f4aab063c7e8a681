import { UserError } from '../../core/errors.ts';
import type { ChatMessage, Metrics, Sample, ToolSpec } from '../../core/schemas.ts';
import { type AssetPin, huggingFaceDatasetUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import { mean } from '../shared/stats.ts';
import type { Benchmark, PreparedBenchmark, SelectOptions } from '../types.ts';
import { type JsonValue, jsonRoundTrip, parsePythonCall } from './pythonLiteral.ts';
import { type BfclTarget, scoreToolCalls } from './score.ts';
import { applyKeyOrder, arrowKeyOrder, type BfclFunctionSpec, bfclToolSpec, type KeyOrder } from './tools.ts';

export { pythonEquals } from './pythonEquality.ts';
export { JsonDecodeError, parsePythonJson } from './pythonJson.ts';
export {
  JsonRoundTripError,
  type JsonValue,
  jsonRoundTrip,
  LiteralEvalError,
  type PythonCall,
  PythonSyntaxError,
  type PyValue,
  parsePythonCall,
  pythonLiteralEval,
} from './pythonLiteral.ts';
export { type BfclTarget, parseToolCallArguments, scoreToolCalls } from './score.ts';
export { bfclToolSpec, bfclTypeToJsonType, toolParamSchema } from './tools.ts';

const DATASET_REPO = 'gorilla-llm/Berkeley-Function-Calling-Leaderboard';
// The PR branch inspect_evals pins: main does not load as one HF dataset. At this revision the
// README maps config `exec_simple` to this one file, and its split is `train` (data_files
// without a split name). The file is JSON Lines.
const DATASET_REVISION = '1bf8bbc3c0e35d04d00339c223a3fd653aa195ac';
const DATASET_FILE = 'BFCL_v3_exec_simple.jsonl';

const TRAIN: AssetPin = {
  part: 'train',
  description: `BFCL exec_simple (HF ${DATASET_REPO} @ ${DATASET_REVISION.slice(0, 7)}, split train)`,
  url: huggingFaceDatasetUrl(DATASET_REPO, DATASET_REVISION, DATASET_FILE),
  // Not known in advance: this file is a rename of the v3 upload, believed (not verified) to be
  // byte-identical to gorilla's GitHub BFCL_v3_exec_simple.json; recorded on first fetch.
  sha256: null,
  format: 'jsonl',
  fileName: DATASET_FILE,
  shape: { rows: 100, fields: ['id', 'question', 'function', 'ground_truth'] },
};

interface BfclRecord {
  id: string;
  question: Array<Array<{ role: string; content: string }>>;
  function: BfclFunctionSpec[];
  ground_truth: string[];
}

const ROLES = new Set(['system', 'user', 'assistant']);

function schemaError(message: string): UserError {
  return new UserError(
    message,
    'The BFCL file must be exec_simple in the Berkeley-Function-Calling-Leaderboard schema.',
  );
}

function asBfclRecord(raw: Record<string, unknown>, index: number): BfclRecord {
  const where = `BFCL record ${typeof raw.id === 'string' ? raw.id : `#${index}`}`;
  if (typeof raw.id !== 'string') throw schemaError(`${where}: missing string id`);
  // record_to_sample asserts one question turn and one ground-truth call.
  if (!Array.isArray(raw.question) || raw.question.length !== 1 || !Array.isArray(raw.question[0])) {
    throw schemaError(`${where}: expected exactly one question turn`);
  }
  for (const m of raw.question[0] as unknown[]) {
    const msg = m as { role?: unknown; content?: unknown };
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role) || typeof msg.content !== 'string') {
      throw schemaError(`${where}: question messages need a role and string content`);
    }
  }
  if (!Array.isArray(raw.function)) throw schemaError(`${where}: missing function list`);
  if (
    !Array.isArray(raw.ground_truth) ||
    raw.ground_truth.length !== 1 ||
    typeof raw.ground_truth[0] !== 'string'
  ) {
    throw schemaError(`${where}: expected exactly one ground-truth call string`);
  }
  return raw as unknown as BfclRecord;
}

/**
 * The sample target: `parse_target(ground_truth[0])` then `json.loads(json.dumps(...))`.
 * Arguments that are valid Python but not literals are left out, as the reference does.
 */
export function bfclTarget(groundTruth: string): BfclTarget & { skippedArguments?: string[] } {
  const call = parsePythonCall(groundTruth);
  const args: { [name: string]: JsonValue } = {};
  // json.dumps writes a None key (from `**mapping`) as "null".
  for (const [name, value] of call.arguments) args[name ?? 'null'] = jsonRoundTrip(value);
  const target: BfclTarget & { skippedArguments?: string[] } = { function: call.function, arguments: args };
  if (call.skipped.length > 0) target.skippedArguments = call.skipped.map((s) => s.name);
  return target;
}

/** The user turn(s) of the single question, as chat messages. */
export function bfclMessages(record: Record<string, unknown>): ChatMessage[] {
  const turn = (record.question as Array<Array<{ role: string; content: string }>>)[0]!;
  return turn.map((m) => ({ role: m.role as ChatMessage['role'], content: m.content }));
}

/** Tools for the given function specs, in the key order the reference's Arrow round trip gives. */
export function bfclTools(functions: readonly BfclFunctionSpec[], order?: KeyOrder): ToolSpec[] {
  return applyKeyOrder([...functions], order).map(bfclToolSpec);
}

function firstN(samples: Sample[], opts: SelectOptions): Sample[] {
  if (opts.limit === null || opts.limit === -1) return samples;
  return samples.slice(0, Math.max(0, opts.limit));
}

async function prepare(ctx: Parameters<Benchmark['prepare']>[0]): Promise<PreparedBenchmark> {
  const { path } = await ctx.asset('train');
  const records = (await readRecords(path)).map(asBfclRecord);
  const order = arrowKeyOrder(records.map((r) => r.function));
  const toolsById = new Map<string, ToolSpec[]>();
  const samples: Sample[] = records.map((record) => {
    toolsById.set(record.id, bfclTools(record.function, order));
    return {
      id: record.id,
      record: record as unknown as Record<string, unknown>,
      target: bfclTarget(record.ground_truth[0]!),
    };
  });
  return {
    samples,
    request(sample) {
      const tools = toolsById.get(sample.id) ?? bfclTools((sample.record as unknown as BfclRecord).function);
      return { messages: bfclMessages(sample.record), tools, toolChoice: 'auto' };
    },
    async score(sample, reply, ctx) {
      const target =
        (sample.target as BfclTarget | undefined) ??
        bfclTarget((sample.record as unknown as BfclRecord).ground_truth[0]!);
      // The reference matches against the tools it sent (state.tools) when reading non-JSON arguments.
      const tools = ctx.request.tools ?? toolsById.get(sample.id) ?? [];
      return scoreToolCalls(reply.toolCalls, target, tools);
    },
  };
}

/** Berkeley Function Calling Leaderboard, exec_simple, as inspect_evals `bfcl` scores it (spec §3.6). */
export const bfclBenchmark: Benchmark = {
  id: 'bfcl',
  displayName: 'Berkeley Function Calling Leaderboard (BFCL)',
  sampleId: 'the record\'s "id" ("exec_simple_0" … "exec_simple_99")',
  weight: 0.0746078457817324,
  defaults: {
    maxTokensLadder: [16000, 12000, 8000],
    agentLimit: null,
    referenceConcurrency: 6,
    concurrency: 64,
    gpuMemoryUtilization: 0.8,
    maxTokensFlag: '--max-tokens',
  },
  assets: [TRAIN],
  needsGrader: false,
  usesTools: true,
  prepare,
  select: firstN,
  // The reference's scorer declares only accuracy(): no stderr in metrics.json.
  aggregate(scored): Metrics {
    return { accuracy: mean(scored.map(({ score }) => score.value)) };
  },
};
