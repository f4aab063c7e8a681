import type { ToolSpec } from '../../core/schemas.ts';

/**
 * BFCL function specs → the OpenAI `tools` the reference sends, reproducing two conversions:
 *
 * 1. inspect_evals bfcl `create_tool_info_from_dict` / `create_tool_param` / `get_type`:
 *    BFCL types are mapped (`dict`→`object`, `float`→`number`, `tuple`→`array`, recursively
 *    through `properties` and `items`), an empty `properties` or `items` is dropped, a `None`
 *    property is dropped, and any type outside JSON Schema's seven is an error.
 * 2. inspect_ai's OpenAI-compatible provider: `parameters = ToolParams.model_dump(exclude_none=True)`,
 *    so the top level is `{type: "object", properties, required, additionalProperties: false}` and
 *    every parameter is written in the field order of inspect's JSONSchema model (type, format,
 *    description, default, enum, items, properties, additionalProperties, anyOf, required), with
 *    unset fields left out. Key order matters: the chat template prints the tools as JSON.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const JSON_SCHEMA_TYPES = new Set(['string', 'integer', 'number', 'boolean', 'array', 'object', 'null']);

/** `get_type`: BFCL's Python-flavoured type names to JSON Schema; undefined when unset. */
export function bfclTypeToJsonType(bfclType: Json | undefined): string | undefined {
  if (bfclType === undefined || bfclType === null) return undefined;
  const mapped =
    bfclType === 'dict'
      ? 'object'
      : bfclType === 'float'
        ? 'number'
        : bfclType === 'tuple'
          ? 'array'
          : bfclType;
  if (typeof mapped !== 'string' || !JSON_SCHEMA_TYPES.has(mapped)) {
    throw new Error(`BFCL tool schema: invalid type ${JSON.stringify(bfclType)}`);
  }
  return mapped;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Python truthiness of a dict/list/str/number, as `if param_dict.get(...)` tests it. */
function truthy(v: Json | undefined): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return true;
}

/** `create_tool_param` followed by `model_dump(exclude_none=True)` for one parameter. */
export function toolParamSchema(param: JsonObject): JsonObject {
  const out: JsonObject = {};
  const type = bfclTypeToJsonType(param.type);
  if (type !== undefined) out.type = type;
  // `format` and `anyOf` are never set by the BFCL conversion.
  if (param.description !== undefined && param.description !== null) {
    if (typeof param.description !== 'string')
      throw new Error('BFCL tool schema: description must be a string');
    out.description = param.description;
  }
  if (param.default !== undefined && param.default !== null) out.default = param.default;
  if (param.enum !== undefined && param.enum !== null) out.enum = param.enum;
  if (truthy(param.items)) {
    if (!isObject(param.items)) throw new Error('BFCL tool schema: items must be an object');
    out.items = toolParamSchema(param.items);
  }
  if (truthy(param.properties)) out.properties = propertiesSchema(param.properties);
  if (param.additionalProperties !== undefined && param.additionalProperties !== null) {
    out.additionalProperties = isObject(param.additionalProperties)
      ? toolParamSchema(param.additionalProperties)
      : param.additionalProperties;
  }
  if (param.required !== undefined && param.required !== null) out.required = param.required;
  return out;
}

function propertiesSchema(properties: Json | undefined): JsonObject {
  if (!isObject(properties)) throw new Error('BFCL tool schema: properties must be an object');
  const out: JsonObject = {};
  for (const [name, value] of Object.entries(properties)) {
    if (value === null) continue;
    if (!isObject(value)) throw new Error(`BFCL tool schema: property ${name} must be an object`);
    out[name] = toolParamSchema(value);
  }
  return out;
}

/** One BFCL function spec (`record.function[i]`): name, description, parameters. */
export interface BfclFunctionSpec {
  name: string;
  description: string;
  parameters: JsonObject;
}

/** `create_tool_info_from_dict` + `openai_chat_tool_param`: the OpenAI tool for one spec. */
export function bfclToolSpec(fn: BfclFunctionSpec): ToolSpec {
  if (typeof fn.name !== 'string' || typeof fn.description !== 'string') {
    throw new Error('BFCL tool schema: a function needs a string name and description');
  }
  if (!isObject(fn.parameters)) throw new Error(`BFCL tool schema: ${fn.name} has no parameters object`);
  // The reference asserts the parameters have (non-empty) properties and none named additionalProperties.
  if (!truthy(fn.parameters.properties))
    throw new Error(`BFCL tool schema: ${fn.name} has no parameter properties`);
  const properties = propertiesSchema(fn.parameters.properties);
  if ('additionalProperties' in properties) {
    throw new Error(`BFCL tool schema: ${fn.name} has a parameter named additionalProperties`);
  }
  const required = truthy(fn.parameters.required) ? fn.parameters.required : [];
  return {
    type: 'function',
    function: {
      name: fn.name,
      description: fn.description,
      parameters: { type: 'object', properties, required, additionalProperties: false },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Arrow key order

/**
 * The reference reads the dataset through Hugging Face `datasets`, which stores the JSON Lines
 * file as Arrow: every object becomes a struct whose fields are the union of the keys seen at
 * that place across the whole file, in order of first appearance, and a key a record lacks comes
 * back as None. inspect_evals then drops the None properties, so what changes is the ORDER of a
 * function's `properties`: it follows the file-wide first appearance, not the record. (In
 * BFCL_v3_exec_simple this reorders the parameters of 8 of the 100 tools.) Inferred from how
 * pyarrow's JSON reader builds structs; the file is one read block (88 kB), so no block merging.
 */
export interface KeyOrder {
  keys: string[];
  children: Map<string, KeyOrder>;
}

function emptyOrder(): KeyOrder {
  return { keys: [], children: new Map() };
}

const LIST_ITEM = '[]';

/** Collect the file-wide first-appearance key order of every struct reachable from `values`. */
export function arrowKeyOrder(values: readonly unknown[]): KeyOrder {
  const root = emptyOrder();
  for (const value of values) collectKeys(root, value as Json);
  return root;
}

function collectKeys(order: KeyOrder, value: Json): void {
  if (Array.isArray(value)) {
    // All elements of an Arrow list share one element type.
    let child = order.children.get(LIST_ITEM);
    if (!child) {
      child = emptyOrder();
      order.children.set(LIST_ITEM, child);
    }
    for (const item of value) collectKeys(child, item);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (!order.keys.includes(key)) order.keys.push(key);
    let childOrder = order.children.get(key);
    if (!childOrder) {
      childOrder = emptyOrder();
      order.children.set(key, childOrder);
    }
    collectKeys(childOrder, child);
  }
}

/** Rebuild `value` with every object's keys in the Arrow struct order collected by arrowKeyOrder. */
export function applyKeyOrder<T>(value: T, order: KeyOrder | undefined): T {
  if (order === undefined) return value;
  const v = value as unknown as Json;
  if (Array.isArray(v))
    return v.map((item) => applyKeyOrder(item, order.children.get(LIST_ITEM))) as unknown as T;
  if (!isObject(v)) return value;
  const rank = (key: string): number => {
    const i = order.keys.indexOf(key);
    return i === -1 ? Number.MAX_SAFE_INTEGER : i;
  };
  const keys = Object.keys(v).sort((a, b) => rank(a) - rank(b));
  const out: JsonObject = {};
  for (const key of keys) out[key] = applyKeyOrder(v[key] as Json, order.children.get(key));
  return out as unknown as T;
}
