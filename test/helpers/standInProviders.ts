import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Stand-ins for the model providers' HTTP APIs, for driving the real agent CLIs in tests: the Anthropic
 * Messages API, the OpenAI Responses and Chat Completions APIs, and the Gemini API. Each plays a
 * scripted session: while the conversation holds fewer tool results than there are scripted commands,
 * it answers with a call of the CLI's own shell tool running the next command; then it answers with the
 * final message. The turn is read from the conversation the CLI sends, so retries and the CLIs' side
 * requests (titles, summaries, next-speaker checks) do not move the script along.
 *
 * Requests are checked, not assumed: the credential must be the expected (real) key, the body must be
 * the API's shape, and every tool result must answer a tool call the stand-in made. Problems are
 * recorded and answered with 400, so a test sees them.
 */

export type StandInApi = 'anthropic' | 'openai' | 'gemini';

export interface SessionScript {
  /** Shell commands, one per turn, in order. */
  commands: string[];
  /** The last assistant message. */
  finalMessage: string;
}

export interface StandInUsage {
  inputTokens: number;
  outputTokens: number;
  /** Reported as cached input (Anthropic cache reads, OpenAI cached_tokens, Gemini cachedContent). */
  cachedTokens: number;
}

export interface RecordedRequest {
  api: StandInApi;
  method: string;
  path: string;
  /** Which credential the request carried (the value itself). */
  credential: string | null;
  /** Where it carried it. */
  credentialSource: 'x-api-key' | 'x-goog-api-key' | 'authorization' | 'query' | null;
  body: unknown;
  /** `main`: part of the scripted session (it offers the shell tool); `side`: anything else. */
  role: 'main' | 'side' | 'other';
  /** Tool results present in the conversation (main requests). */
  toolResults: string[];
  /** What the stand-in answered: the command it asked for, or `final`, or `side`. */
  answer: string;
  usage: StandInUsage | null;
  stream: boolean;
}

export interface StandInProvider {
  api: StandInApi;
  url: string;
  requests: RecordedRequest[];
  problems: string[];
  /** Sum of the usage the stand-in reported. */
  reportedUsage(): StandInUsage;
  close(): Promise<void>;
}

export interface StandInProviderOptions {
  /** The credential the stand-in accepts (what the relay swaps in). */
  expectedKey: string;
  script: SessionScript;
  /** Model names the stand-in accepts; any when omitted. */
  models?: string[];
  /** Tool names played as the scripted tool (default: the agent CLIs' shell tools). */
  toolNames?: string[];
  /** Answer to a request that offers no scripted tool (default "OK"), e.g. a judge's single call. */
  sideMessage?: string;
}

type Json = Record<string, unknown>;

const SHELL_TOOL_NAMES = ['Bash', 'bash', 'shell', 'shell_command', 'exec_command', 'run_shell_command'];

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A request that fails a check: answered 400 with the message, recorded in `problems`. */
class Malformed extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Malformed(message);
}

/** Arguments for a shell tool from its JSON schema: `command` as a string or as an argv array. */
function shellArguments(schema: unknown, command: string): Json {
  const properties = isObject(schema) && isObject(schema.properties) ? schema.properties : {};
  const key = 'command' in properties ? 'command' : 'cmd' in properties ? 'cmd' : 'command';
  const prop = isObject(properties[key]) ? properties[key] : {};
  const type = String(prop.type ?? 'string').toLowerCase();
  const args: Json = { [key]: type === 'array' ? ['bash', '-lc', command] : command };
  if ('description' in properties) args.description = 'Scripted step of the stand-in session';
  return args;
}

/** A value that satisfies a JSON schema (for the CLIs' structured side requests). */
function fillSchema(schema: unknown): unknown {
  if (!isObject(schema)) return 'ok';
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const type = String(schema.type ?? 'object').toLowerCase();
  if (type === 'object') {
    const out: Json = {};
    const properties = isObject(schema.properties) ? schema.properties : {};
    for (const [name, prop] of Object.entries(properties)) out[name] = fillSchema(prop);
    // Known side checks: let the session end (Gemini's next-speaker check).
    if ('next_speaker' in out) out.next_speaker = 'user';
    return out;
  }
  if (type === 'array') return [];
  if (type === 'boolean') return false;
  if (type === 'number' || type === 'integer') return 0;
  return 'ok';
}

function tokensOf(body: unknown): number {
  return Math.max(1, Math.ceil(JSON.stringify(body ?? '').length / 4));
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(textOf).join('\n');
  if (isObject(value)) {
    if (typeof value.text === 'string') return value.text;
    if ('output' in value) return textOf(value.output);
    if ('content' in value) return textOf(value.content);
    return JSON.stringify(value);
  }
  return value === undefined || value === null ? '' : String(value);
}

interface Turn {
  role: RecordedRequest['role'];
  toolResults: string[];
  /** The shell tool's name and schema, when offered. */
  shellTool: { name: string; schema: unknown } | null;
}

interface Reply {
  answer: string;
  usage: StandInUsage;
}

function sse(
  res: ServerResponse,
  events: Array<{ event?: string; data: unknown }>,
  separator = '\n\n',
): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const { event, data } of events) {
    res.write(
      `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}${separator}`,
    );
  }
  res.end();
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startStandInProvider(
  api: StandInApi,
  options: StandInProviderOptions,
): Promise<StandInProvider> {
  const requests: RecordedRequest[] = [];
  const problems: string[] = [];
  let counter = 0;
  const nextId = (prefix: string) => `${prefix}_${(++counter).toString().padStart(4, '0')}`;
  /** Ids of the tool calls the stand-in made; every tool result must answer one. */
  const issuedCalls = new Set<string>();

  const step = (turn: Turn): { command: string | null } => {
    const index = turn.toolResults.length;
    return { command: index < options.script.commands.length ? options.script.commands[index]! : null };
  };
  const usageFor = (body: unknown, turnIndex: number): StandInUsage => ({
    inputTokens: tokensOf(body),
    outputTokens: 10 + turnIndex,
    cachedTokens: turnIndex > 0 ? 7 : 0,
  });
  const checkModel = (model: unknown) => {
    check(typeof model === 'string' && model.length > 0, 'request names no model');
    if (options.models) check(options.models.includes(model), `unexpected model ${model}`);
  };
  const checkToolResultIds = (ids: string[]) => {
    for (const id of ids) check(issuedCalls.has(id), `tool result for a call the stand-in never made: ${id}`);
  };

  // ---- Anthropic Messages ----
  const anthropicTurn = (body: Json): Turn => {
    checkModel(body.model);
    check(typeof body.max_tokens === 'number', 'max_tokens missing');
    const messages = asArray(body.messages);
    check(messages.length > 0, 'messages empty');
    const toolResults: string[] = [];
    const resultIds: string[] = [];
    for (const message of messages) {
      check(
        isObject(message) && (message.role === 'user' || message.role === 'assistant'),
        'bad message role',
      );
      check(typeof message.content === 'string' || Array.isArray(message.content), 'bad message content');
      for (const block of asArray(message.content)) {
        check(isObject(block) && typeof block.type === 'string', 'content block without type');
        if (block.type === 'tool_result') {
          resultIds.push(String(block.tool_use_id));
          toolResults.push(textOf(block.content));
        }
      }
    }
    const tools = asArray(body.tools).filter(isObject);
    const shell = tools.find((tool) => (options.toolNames ?? ['Bash']).includes(String(tool.name)));
    if (shell) checkToolResultIds(resultIds);
    return {
      role: shell ? 'main' : 'side',
      toolResults,
      shellTool: shell ? { name: String(shell.name), schema: shell.input_schema } : null,
    };
  };

  const anthropicReply = (res: ServerResponse, body: Json, turn: Turn): Reply => {
    const { command } = turn.role === 'main' ? step(turn) : { command: null };
    const usage = usageFor(body, turn.toolResults.length);
    const model = String(body.model);
    const id = nextId('msg');
    const blocks: Json[] = [];
    if (command && turn.shellTool) {
      const toolId = nextId('toolu');
      issuedCalls.add(toolId);
      blocks.push({ type: 'text', text: `Running step ${turn.toolResults.length + 1}.` });
      blocks.push({
        type: 'tool_use',
        id: toolId,
        name: turn.shellTool.name,
        input: shellArguments(turn.shellTool.schema, command),
      });
    } else {
      blocks.push({
        type: 'text',
        text: turn.role === 'main' ? options.script.finalMessage : (options.sideMessage ?? 'OK'),
      });
    }
    const stopReason = command && turn.shellTool ? 'tool_use' : 'end_turn';
    const usageBlock = {
      input_tokens: usage.inputTokens,
      output_tokens: usage.outputTokens,
      cache_read_input_tokens: usage.cachedTokens,
      cache_creation_input_tokens: 0,
    };
    if (body.stream === true) {
      const events: Array<{ event: string; data: unknown }> = [
        {
          event: 'message_start',
          data: {
            type: 'message_start',
            message: {
              id,
              type: 'message',
              role: 'assistant',
              model,
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { ...usageBlock, output_tokens: 1 },
            },
          },
        },
      ];
      blocks.forEach((block, index) => {
        if (block.type === 'text') {
          events.push({
            event: 'content_block_start',
            data: { type: 'content_block_start', index, content_block: { type: 'text', text: '' } },
          });
          events.push({
            event: 'content_block_delta',
            data: { type: 'content_block_delta', index, delta: { type: 'text_delta', text: block.text } },
          });
        } else {
          events.push({
            event: 'content_block_start',
            data: {
              type: 'content_block_start',
              index,
              content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
            },
          });
          events.push({
            event: 'content_block_delta',
            data: {
              type: 'content_block_delta',
              index,
              delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
            },
          });
        }
        events.push({ event: 'content_block_stop', data: { type: 'content_block_stop', index } });
      });
      events.push({
        event: 'message_delta',
        data: {
          type: 'message_delta',
          delta: { stop_reason: stopReason, stop_sequence: null },
          usage: { output_tokens: usage.outputTokens },
        },
      });
      events.push({ event: 'message_stop', data: { type: 'message_stop' } });
      sse(res, events);
    } else {
      json(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: blocks,
        stop_reason: stopReason,
        stop_sequence: null,
        usage: usageBlock,
      });
    }
    return { answer: command ?? (turn.role === 'main' ? 'final' : 'side'), usage };
  };

  // ---- OpenAI Responses ----
  const responsesTurn = (body: Json): Turn => {
    checkModel(body.model);
    const input = asArray(body.input);
    check(input.length > 0, 'input empty');
    const toolResults: string[] = [];
    const resultIds: string[] = [];
    for (const item of input) {
      check(isObject(item), 'input item is not an object');
      if (item.type === 'function_call_output' || item.type === 'custom_tool_call_output') {
        resultIds.push(String(item.call_id));
        toolResults.push(textOf(item.output));
      }
    }
    const tools = asArray(body.tools).filter(isObject);
    const shell = tools.find(
      (tool) =>
        tool.type === 'function' && (options.toolNames ?? SHELL_TOOL_NAMES).includes(String(tool.name)),
    );
    if (shell) checkToolResultIds(resultIds);
    return {
      role: shell ? 'main' : 'side',
      toolResults,
      shellTool: shell ? { name: String(shell.name), schema: shell.parameters } : null,
    };
  };

  const responsesReply = (res: ServerResponse, body: Json, turn: Turn): Reply => {
    const { command } = turn.role === 'main' ? step(turn) : { command: null };
    const usage = usageFor(body, turn.toolResults.length);
    const responseId = nextId('resp');
    const model = String(body.model);
    const items: Json[] = [];
    if (command && turn.shellTool) {
      const callId = nextId('call');
      issuedCalls.add(callId);
      items.push({
        type: 'function_call',
        id: nextId('fc'),
        call_id: callId,
        name: turn.shellTool.name,
        arguments: JSON.stringify(shellArguments(turn.shellTool.schema, command)),
        status: 'completed',
      });
    } else {
      const text = turn.role === 'main' ? options.script.finalMessage : (options.sideMessage ?? 'OK');
      items.push({
        type: 'message',
        id: nextId('msg'),
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text, annotations: [] }],
      });
    }
    const usageBlock = {
      input_tokens: usage.inputTokens + usage.cachedTokens,
      input_tokens_details: { cached_tokens: usage.cachedTokens },
      output_tokens: usage.outputTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.inputTokens + usage.cachedTokens + usage.outputTokens,
    };
    const response = (status: string, output: Json[], withUsage: boolean) => ({
      id: responseId,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      status,
      model,
      output,
      usage: withUsage ? usageBlock : null,
    });
    if (body.stream === true) {
      const events: Array<{ event: string; data: Json }> = [];
      let sequence = 0;
      const push = (type: string, data: Json) =>
        events.push({ event: type, data: { type, sequence_number: sequence++, ...data } });
      push('response.created', { response: response('in_progress', [], false) });
      items.forEach((item, outputIndex) => {
        if (item.type === 'message') {
          push('response.output_item.added', {
            output_index: outputIndex,
            item: { ...item, status: 'in_progress', content: [] },
          });
          const text = String((asArray(item.content)[0] as Json).text);
          push('response.content_part.added', {
            item_id: item.id,
            output_index: outputIndex,
            content_index: 0,
            part: { type: 'output_text', text: '', annotations: [] },
          });
          push('response.output_text.delta', {
            item_id: item.id,
            output_index: outputIndex,
            content_index: 0,
            delta: text,
          });
          push('response.output_text.done', {
            item_id: item.id,
            output_index: outputIndex,
            content_index: 0,
            text,
          });
          push('response.content_part.done', {
            item_id: item.id,
            output_index: outputIndex,
            content_index: 0,
            part: { type: 'output_text', text, annotations: [] },
          });
        } else {
          push('response.output_item.added', {
            output_index: outputIndex,
            item: { ...item, arguments: '', status: 'in_progress' },
          });
          push('response.function_call_arguments.delta', {
            item_id: item.id,
            output_index: outputIndex,
            delta: item.arguments,
          });
          push('response.function_call_arguments.done', {
            item_id: item.id,
            output_index: outputIndex,
            arguments: item.arguments,
          });
        }
        push('response.output_item.done', { output_index: outputIndex, item });
      });
      push('response.completed', { response: response('completed', items, true) });
      sse(res, events);
    } else {
      json(res, 200, response('completed', items, true));
    }
    return { answer: command ?? (turn.role === 'main' ? 'final' : 'side'), usage };
  };

  // ---- OpenAI Chat Completions ----
  const chatTurn = (body: Json): Turn => {
    checkModel(body.model);
    const messages = asArray(body.messages);
    check(messages.length > 0, 'messages empty');
    const toolResults: string[] = [];
    const resultIds: string[] = [];
    for (const message of messages) {
      check(isObject(message) && typeof message.role === 'string', 'message without role');
      if (message.role === 'tool') {
        resultIds.push(String(message.tool_call_id));
        toolResults.push(textOf(message.content));
      }
    }
    const tools = asArray(body.tools).filter(isObject);
    const shell = tools.find(
      (tool) =>
        isObject(tool.function) &&
        (options.toolNames ?? SHELL_TOOL_NAMES).includes(String(tool.function.name)),
    );
    if (shell) checkToolResultIds(resultIds);
    const fn = shell && isObject(shell.function) ? shell.function : null;
    return {
      role: shell ? 'main' : 'side',
      toolResults,
      shellTool: fn ? { name: String(fn.name), schema: fn.parameters } : null,
    };
  };

  const chatReply = (res: ServerResponse, body: Json, turn: Turn): Reply => {
    const { command } = turn.role === 'main' ? step(turn) : { command: null };
    const usage = usageFor(body, turn.toolResults.length);
    const id = nextId('chatcmpl');
    const model = String(body.model);
    const created = Math.floor(Date.now() / 1000);
    const usageBlock = {
      prompt_tokens: usage.inputTokens + usage.cachedTokens,
      completion_tokens: usage.outputTokens,
      total_tokens: usage.inputTokens + usage.cachedTokens + usage.outputTokens,
      prompt_tokens_details: { cached_tokens: usage.cachedTokens },
    };
    let message: Json;
    if (command && turn.shellTool) {
      const callId = nextId('call');
      issuedCalls.add(callId);
      message = {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: callId,
            type: 'function',
            function: {
              name: turn.shellTool.name,
              arguments: JSON.stringify(shellArguments(turn.shellTool.schema, command)),
            },
          },
        ],
      };
    } else {
      message = {
        role: 'assistant',
        content: turn.role === 'main' ? options.script.finalMessage : (options.sideMessage ?? 'OK'),
      };
    }
    const finishReason = message.tool_calls ? 'tool_calls' : 'stop';
    if (body.stream === true) {
      const chunk = (delta: Json, finish: string | null): { data: unknown } => ({
        data: {
          id,
          object: 'chat.completion.chunk',
          created,
          model,
          choices: [{ index: 0, delta, finish_reason: finish }],
        },
      });
      const events = [chunk({ role: 'assistant', content: '' }, null)];
      if (message.tool_calls) {
        const call = asArray(message.tool_calls)[0] as Json;
        events.push(chunk({ tool_calls: [{ index: 0, ...call }] }, null));
      } else events.push(chunk({ content: message.content }, null));
      events.push(chunk({}, finishReason));
      events.push({
        data: { id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageBlock },
      });
      events.push({ data: '[DONE]' });
      sse(res, events);
    } else {
      json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message, finish_reason: finishReason }],
        usage: usageBlock,
      });
    }
    return { answer: command ?? (turn.role === 'main' ? 'final' : 'side'), usage };
  };

  // ---- Gemini ----
  const geminiTurn = (body: Json): Turn => {
    const contents = asArray(body.contents);
    check(contents.length > 0, 'contents empty');
    const toolResults: string[] = [];
    for (const content of contents) {
      check(isObject(content), 'content is not an object');
      check(
        content.role === undefined || content.role === 'user' || content.role === 'model',
        `bad role ${String(content.role)}`,
      );
      for (const part of asArray(content.parts)) {
        if (isObject(part) && isObject(part.functionResponse))
          toolResults.push(textOf(part.functionResponse.response));
      }
    }
    const declarations = asArray(body.tools).flatMap((tool) =>
      isObject(tool) ? asArray(tool.functionDeclarations) : [],
    );
    const shell = declarations.filter(isObject).find((decl) => SHELL_TOOL_NAMES.includes(String(decl.name)));
    return {
      role: shell ? 'main' : 'side',
      toolResults,
      shellTool: shell
        ? { name: String(shell.name), schema: shell.parametersJsonSchema ?? shell.parameters }
        : null,
    };
  };

  const geminiReply = (
    res: ServerResponse,
    body: Json,
    turn: Turn,
    model: string,
    stream: boolean,
  ): Reply => {
    const { command } = turn.role === 'main' ? step(turn) : { command: null };
    const usage = usageFor(body, turn.toolResults.length);
    let parts: Json[];
    if (command && turn.shellTool) {
      parts = [
        { functionCall: { name: turn.shellTool.name, args: shellArguments(turn.shellTool.schema, command) } },
      ];
    } else if (turn.role === 'main') {
      parts = [{ text: options.script.finalMessage }];
    } else {
      const config = isObject(body.generationConfig) ? body.generationConfig : {};
      const schema = config.responseJsonSchema ?? config.responseSchema;
      parts = [{ text: schema ? JSON.stringify(fillSchema(schema)) : 'OK' }];
    }
    const usageMetadata = {
      promptTokenCount: usage.inputTokens + usage.cachedTokens,
      candidatesTokenCount: usage.outputTokens,
      cachedContentTokenCount: usage.cachedTokens,
      totalTokenCount: usage.inputTokens + usage.cachedTokens + usage.outputTokens,
    };
    const payload = {
      candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }],
      usageMetadata,
      modelVersion: model,
      responseId: nextId('gem'),
    };
    if (stream) sse(res, [{ data: payload }], '\r\n\r\n');
    else json(res, 200, payload);
    return { answer: command ?? (turn.role === 'main' ? 'final' : 'side'), usage };
  };

  const credentialOf = (
    req: IncomingMessage,
    url: URL,
  ): Pick<RecordedRequest, 'credential' | 'credentialSource'> => {
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const bearer = /^Bearer\s+(.*)$/i.exec(header('authorization') ?? '');
    const found: Array<[RecordedRequest['credentialSource'], string | null | undefined]> = [
      ['x-api-key', header('x-api-key')],
      ['x-goog-api-key', header('x-goog-api-key')],
      ['authorization', bearer?.[1]],
      ['query', url.searchParams.get('key')],
    ];
    const [source, value] = found.find(([, v]) => v) ?? [null, null];
    return { credential: value ?? null, credentialSource: source };
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const path = url.pathname;
    const { credential, credentialSource } = credentialOf(req, url);
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const recorded: RecordedRequest = {
      api,
      method: req.method ?? 'GET',
      path,
      credential,
      credentialSource,
      body,
      role: 'other',
      toolResults: [],
      answer: '',
      usage: null,
      stream: false,
    };
    requests.push(recorded);
    try {
      check(credential === options.expectedKey, `${path}: wrong credential`);
      // Model listings (Codex and OpenCode ask for them at start).
      if (req.method === 'GET' && /\/models\/?$/.test(path)) {
        recorded.answer = 'models';
        const ids = options.models ?? ['stand-in-model'];
        if (api === 'gemini') json(res, 200, { models: ids.map((id) => ({ name: `models/${id}` })) });
        else
          json(res, 200, {
            object: 'list',
            data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'stand-in' })),
          });
        return;
      }
      check(req.method === 'POST', `${path}: unexpected method ${req.method}`);
      check(isObject(body), `${path}: body is not a JSON object`);
      let reply: Reply | null = null;
      let turn: Turn | null = null;
      if (api === 'anthropic' && path.endsWith('/v1/messages/count_tokens')) {
        recorded.answer = 'count_tokens';
        json(res, 200, { input_tokens: tokensOf(body) });
        return;
      }
      if (api === 'anthropic' && path.endsWith('/v1/messages')) {
        check(req.headers['anthropic-version'], 'anthropic-version header missing');
        turn = anthropicTurn(body);
        recorded.stream = body.stream === true;
        reply = anthropicReply(res, body, turn);
      } else if (api === 'openai' && path.endsWith('/responses')) {
        turn = responsesTurn(body);
        recorded.stream = body.stream === true;
        reply = responsesReply(res, body, turn);
      } else if (api === 'openai' && path.endsWith('/chat/completions')) {
        turn = chatTurn(body);
        recorded.stream = body.stream === true;
        reply = chatReply(res, body, turn);
      } else if (api === 'gemini') {
        const match = /\/models\/([^/:]+):(generateContent|streamGenerateContent|countTokens)$/.exec(path);
        check(match, `${path}: not a Gemini model method`);
        const [, model, method] = match;
        if (options.models) check(options.models.includes(model!), `unexpected model ${model}`);
        if (method === 'countTokens') {
          recorded.answer = 'count_tokens';
          json(res, 200, { totalTokens: tokensOf(body) });
          return;
        }
        turn = geminiTurn(body);
        recorded.stream = method === 'streamGenerateContent';
        reply = geminiReply(res, body, turn, model!, recorded.stream);
      } else {
        throw new Malformed(`${path}: no such ${api} endpoint`);
      }
      recorded.role = turn.role;
      recorded.toolResults = turn.toolResults;
      recorded.answer = reply.answer;
      recorded.usage = reply.usage;
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      problems.push(err.message);
      recorded.answer = `rejected: ${err.message}`;
      json(res, 400, { error: { type: 'invalid_request_error', message: `stand-in: ${err.message}` } });
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        problems.push(`stand-in crashed: ${(err as Error).message}`);
        if (!res.headersSent) json(res, 500, { error: { message: 'stand-in crashed' } });
        else res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    api,
    url: `http://127.0.0.1:${port}`,
    requests,
    problems,
    reportedUsage: () => {
      const total: StandInUsage = { inputTokens: 0, outputTokens: 0, cachedTokens: 0 };
      for (const request of requests) {
        if (!request.usage) continue;
        total.inputTokens += request.usage.inputTokens;
        total.outputTokens += request.usage.outputTokens;
        total.cachedTokens += request.usage.cachedTokens;
      }
      return total;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
