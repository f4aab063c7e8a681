import YAML from 'yaml';
import type { Score, ToolCall, ToolSpec } from '../../core/schemas.ts';
import { pythonStrip } from '../shared/pythonText.ts';
import { pythonEquals } from './pythonEquality.ts';
import { JsonDecodeError, parsePythonJson } from './pythonJson.ts';
import type { JsonValue } from './pythonLiteral.ts';

/** The expected call, after the reference's JSON round trip. */
export interface BfclTarget {
  function: string;
  arguments: { [name: string]: JsonValue };
}

/**
 * inspect_ai's `parse_tool_call`: how the reference turns the OpenAI `arguments` string of a tool
 * call into the dict it compares.
 *   - `str.strip()` first; text starting with `{` goes through `json.loads`, and a decode error
 *     leaves the arguments EMPTY (`{}`) rather than failing the sample;
 *   - any other text is read as YAML and bound to the tool's first parameter (a YAML error binds
 *     the raw text instead); with no matching tool, or one without parameters, it stays `{}`.
 * YAML here is the `yaml` package in 1.1 mode; PyYAML's safe_load differs on rare scalars
 * (e.g. `1e3` is a string there). vLLM's hermes parser always emits a JSON object, so this
 * branch only matters for a model that writes non-object arguments.
 */
export function parseToolCallArguments(
  functionName: string,
  rawArguments: string,
  tools: readonly ToolSpec[],
): { [name: string]: JsonValue } {
  const text = pythonStrip(rawArguments);
  if (text.startsWith('{')) {
    try {
      return parsePythonJson(text) as { [name: string]: JsonValue };
    } catch (err) {
      if (err instanceof JsonDecodeError) return {};
      throw err;
    }
  }
  const tool = tools.find((t) => t.function.name === functionName && Object.keys(propertiesOf(t)).length > 0);
  if (!tool || functionName.length === 0) return {};
  const firstParameter = Object.keys(propertiesOf(tool))[0]!;
  try {
    return { [firstParameter]: yamlToJson(YAML.parse(text, { version: '1.1' })) };
  } catch {
    return { [firstParameter]: text };
  }
}

function propertiesOf(tool: ToolSpec): Record<string, unknown> {
  const properties = tool.function.parameters.properties;
  return typeof properties === 'object' && properties !== null ? (properties as Record<string, unknown>) : {};
}

// A YAML timestamp becomes a Python datetime, which equals no JSON value; a marker string stands in.
function yamlToJson(value: unknown): JsonValue {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) return `\u0000datetime:${value.toISOString()}`;
  if (Array.isArray(value)) return value.map(yamlToJson);
  if (typeof value === 'object') {
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) out[k] = yamlToJson(v);
    return out;
  }
  if (typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return value;
  return String(value);
}

/** inspect_evals bfcl `tool_call_to_string`-like rendering of a call, for the score's answer. */
export function formatCall(functionName: string, args: { [name: string]: JsonValue }): string {
  const parts = Object.entries(args).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${functionName}(${parts.join(', ')})`;
}

/**
 * inspect_evals `bfcl_scorer`. The reference requires exactly one assistant message (a ptb reply
 * is always one) holding exactly one tool call; then correct iff the called function's name equals
 * the target's exactly and its parsed arguments equal the target's under Python `==` (see
 * pythonEquals: dict order ignored, list order kept, 1 == 1.0 == True). Extra, missing or
 * differently typed arguments fail; there is no partial credit and no BFCL-style string fuzzing.
 */
export function scoreToolCalls(
  toolCalls: readonly ToolCall[],
  target: BfclTarget,
  tools: readonly ToolSpec[],
): Score {
  if (toolCalls.length !== 1) {
    return {
      value: 0,
      answer: null,
      explanation: `expected exactly one tool call, got ${toolCalls.length}`,
      details: { toolCallCount: toolCalls.length },
    };
  }
  const call = toolCalls[0]!;
  const args = parseToolCallArguments(call.function.name, call.function.arguments, tools);
  const functionMatches = call.function.name === target.function;
  const argumentsMatch = pythonEquals(args, target.arguments);
  const correct = functionMatches && argumentsMatch;
  return {
    value: correct ? 1 : 0,
    answer: formatCall(call.function.name, args),
    explanation: correct
      ? 'function and arguments match the ground truth'
      : `${functionMatches ? '' : 'function name differs; '}${argumentsMatch ? '' : 'arguments differ; '}expected ${formatCall(target.function, target.arguments)}`,
    details: { functionMatches, argumentsMatch },
  };
}
