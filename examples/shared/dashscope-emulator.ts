/**
 * An emulator of DashScope's (Alibaba Cloud Model Studio) OpenAI-compatible Chat Completions API, for the
 * Qwen chat example's tests and its `--sandbox` demo. The "model" follows simple scripted rules.
 *
 * Protocol facts it reproduces (docs/reference/peers.md §B1):
 *   - POST /compatible-mode/v1/chat/completions, `Authorization: Bearer <key>` required;
 *   - errors in the compatible-mode body shape `{error:{code,message,param,type}, request_id}`:
 *     401 invalid_api_key, 404 model_not_found, 400 invalid_parameter_error, 429 throttling (injectable), 5xx (injectable);
 *   - a non-streaming call to a Qwen3 model that thinks by default, without `enable_thinking:false`, is refused with
 *     400 "parameter.enable_thinking must be set to false for non-streaming calls";
 *   - streaming: SSE `data: {chunk}` lines, `data: [DONE]` at the end; reasoning in `delta.reasoning_content`;
 *     tool-call deltas where only the first chunk of a call carries `id` and `function.name`, and later chunks carry
 *     `id: ""` and no name (accumulate by `index`); `stream_options.include_usage` adds a last chunk with `choices: []`;
 *   - tool messages must answer a preceding assistant `tool_calls` id; function names must match ^[a-zA-Z0-9_-]{1,64}$.
 *
 * MODELED (not documented precisely): the exact English wording of error messages, and the 429 body for injected faults.
 * Nothing here leaves 127.0.0.1; API keys are compared, never logged or echoed.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, listen, readBody, sendJson, shutdown } from '../../src/sandbox/http.js';

export const SANDBOX_DASHSCOPE_API_KEY = 'sk-sandbox0000dashscope0000key';

export interface EmulatedModel {
  id: string;
  /** Open-source Qwen3 models think by default; non-streaming calls must then send enable_thinking:false. */
  thinkingByDefault?: boolean;
}

export const DEFAULT_MODELS: EmulatedModel[] = [
  { id: 'qwen-plus' },
  { id: 'qwen-plus-latest' },
  { id: 'qwen-max' },
  { id: 'qwen3-max' },
  { id: 'qwen-flash' },
  { id: 'qwen-turbo' },
  { id: 'qwen3-235b-a22b', thinkingByDefault: true },
  { id: 'qwen3-32b', thinkingByDefault: true },
  { id: 'qwen3-30b-a3b', thinkingByDefault: true },
];

export interface WireToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface WireMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content?: string | null | Array<{ type: string; text?: string }>;
  tool_calls?: WireToolCall[];
  tool_call_id?: string;
}

export interface WireTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: { properties?: Record<string, unknown>; required?: string[] } };
}

/** What a scripted rule answers: text, and/or tool calls (arguments as an object; the emulator serializes them). */
export interface ScriptedReply {
  content?: string;
  toolCalls?: Array<{ name: string; arguments: unknown }>;
}

export interface RuleContext {
  messages: WireMessage[];
  tools: WireTool[];
  /** Text of the last user message. */
  lastUser: string;
  /** The last message of the conversation. */
  last: WireMessage;
  /** The tool offered whose name is `name` or ends with `__name` (server-prefixed). */
  tool(name: string): string | undefined;
  /** For a `tool` message: the name of the function it answers. */
  toolNameOf(message: WireMessage): string | undefined;
  /** Tool calls the assistant made since the last user message. */
  callsThisTurn: string[];
}

export type ScriptRule = (ctx: RuleContext) => ScriptedReply | undefined;

export interface FaultSpec {
  status: number;
  code: string;
  message?: string;
  type?: string;
  /** How many requests get it (default 1; Infinity until cleared). */
  times?: number;
  /** Adds a Retry-After header (seconds). */
  retryAfterSeconds?: number;
}

export interface DashScopeRequestLog {
  at: Date;
  path: string;
  status: number;
  /** The parsed request body (never contains the key: that travels in the header). */
  body: Record<string, unknown> | undefined;
  stream: boolean;
  /** What the model answered (for 200s). */
  reply?: ScriptedReply;
}

export interface DashScopeEmulatorOptions {
  port?: number;
  apiKeys?: string[];
  models?: EmulatedModel[];
  /** Tried in order; the first that answers wins. Default: {@link DEFAULT_RULES}. */
  rules?: ScriptRule[];
  /** Characters per streamed content/argument delta (default 16). */
  chunkSize?: number;
}

export interface DashScopeEmulator {
  url: string;
  /** `<url>/compatible-mode/v1`: what a client uses as its base URL. */
  baseUrl: string;
  apiKey: string;
  requests: DashScopeRequestLog[];
  injectFault(fault: FaultSpec): void;
  clearFaults(): void;
  close(): Promise<void>;
}

const DOC_LINK = /https?:\/\/alidocs\.dingtalk\.(?:com|io)\/i\/nodes\/[A-Za-z0-9_-]+(?:\?[^\s)"'>]*)?/;
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** "Add … to this doc": an addition, not a rewrite. */
const ADDITION = /\b(add|append)\b|追加|添加|加到|加入/i;
/** "What does this doc say": a read. */
const QUESTION = /\bwhat does\b|\bwhat's in\b|\bread\b|\bsays?\b|summari[sz]e|内容|讲了什么|写了什么/i;

/** The tool that puts text into a document: append for additions when it is offered, else the overwrite. */
function writerFor(ctx: RuleContext): string | undefined {
  return (ADDITION.test(ctx.lastUser) ? ctx.tool('append_dingtalk_doc') : undefined) ?? ctx.tool('write_dingtalk_doc');
}

export function textOf(content: WireMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? '').join('');
  return '';
}

/** `call <tool> <json>`: call exactly that tool (prefixed or not) with those arguments. For tests and curious users. */
export const explicitCallRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'user') return undefined;
  const m = /^\s*call\s+([A-Za-z0-9_-]+)\s*(\{[\s\S]*\})?\s*$/i.exec(ctx.lastUser);
  if (!m) return undefined;
  const name = ctx.tool(m[1]!);
  if (!name) return { content: `I have no tool called ${m[1]}. Tools I was given: ${ctx.tools.map((t) => t.function.name).join(', ') || 'none'}.` };
  let args: unknown = {};
  try {
    args = m[2] ? JSON.parse(m[2]) : {};
  } catch {
    return { content: 'Those arguments are not valid JSON.' };
  }
  return { toolCalls: [{ name, arguments: args }] };
};

/** After a data tool (not the writer) answered and the user gave a DingTalk link: write the data there. */
export const writeDataRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'tool') return undefined;
  const writer = writerFor(ctx);
  const link = DOC_LINK.exec(ctx.lastUser)?.[0];
  const answered = ctx.toolNameOf(ctx.last);
  if (!writer || !link || !answered || /dingtalk/.test(answered) || ctx.callsThisTurn.includes(writer)) return undefined;
  const data = textOf(ctx.last.content).trim();
  const heading = writer.endsWith('append_dingtalk_doc') ? '##' : '#';
  const content = `${heading} ${/cost|费用|bill|账单/i.test(ctx.lastUser) ? 'ECS costs, last month' : 'Notes'}\n\n${data}\n\n_Written by Qwen through agent-identity-dingtalk-mcp._\n`;
  return { toolCalls: [{ name: writer, arguments: { document: link, content } }] };
};

/** After any tool answered: a short answer quoting its result. */
export const answerRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'tool') return undefined;
  const result = textOf(ctx.last.content).trim();
  const name = ctx.toolNameOf(ctx.last) ?? 'the tool';
  if (name.endsWith('read_dingtalk_doc')) {
    if (/^Error/i.test(result)) return { content: `I could not read the document. The tool said: "${result}"` };
    if (/\/connect\//.test(result)) return { content: `DingTalk needs your approval first. The tool said: "${result}"` };
    return { content: `The document says:\n\n${result}` };
  }
  if (name.endsWith('write_dingtalk_doc') || name.endsWith('append_dingtalk_doc')) {
    if (/^Error/i.test(result)) return { content: `The DingTalk write did not succeed. The tool said: "${result}"` };
    if (/https?:\/\//.test(result)) return { content: `DingTalk needs your approval first. The tool said: "${result}"` };
    return { content: `Done. The DingTalk tool reports: "${result}"` };
  }
  return { content: `${name} answered: "${result}"` };
};

/** A user message with a DingTalk link that asks for costs, while a cost/billing tool is offered: fetch the data first. */
export const fetchCostsRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'user' || !DOC_LINK.test(ctx.lastUser) || !/cost|费用|bill|账单/i.test(ctx.lastUser)) return undefined;
  const costs = ctx.tools.find((t) => /cost|bill/i.test(t.function.name))?.function.name;
  if (!costs) return undefined;
  return { toolCalls: [{ name: costs, arguments: {} }] };
};

/** A question about a linked document, while the reader is offered: read it. */
export const readDocRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'user' || ADDITION.test(ctx.lastUser) || !QUESTION.test(ctx.lastUser)) return undefined;
  const link = DOC_LINK.exec(ctx.lastUser)?.[0];
  const reader = ctx.tool('read_dingtalk_doc');
  if (!link || !reader) return undefined;
  return { toolCalls: [{ name: reader, arguments: { document: link } }] };
};

/** A user message with a DingTalk link: write (or, for an addition, append) a short Markdown note made from the message. */
export const writeNoteRule: ScriptRule = (ctx) => {
  if (ctx.last.role !== 'user') return undefined;
  const link = DOC_LINK.exec(ctx.lastUser)?.[0];
  const writer = writerFor(ctx);
  if (!link || !writer) return undefined;
  const request = ctx.lastUser.replace(link, '').replace(/\s+/g, ' ').trim();
  const content = writer.endsWith('append_dingtalk_doc')
    ? `## Note from the chat\n\n${request || '(no text)'}\n`
    : `# Note from the chat\n\n${request || '(no text)'}\n\n- written by Qwen (sandbox)\n`;
  return { toolCalls: [{ name: writer, arguments: { document: link, content } }] };
};

export const fallbackRule: ScriptRule = () => ({
  content:
    'This is the DashScope sandbox: I follow scripted rules, not a real model. Ask me to write into, add to or read a DingTalk document, ' +
    'e.g. "Add last month\'s ECS costs to https://alidocs.dingtalk.com/i/nodes/SandboxDoc0001TeamNotes" or "What does https://alidocs.dingtalk.com/i/nodes/SandboxDoc0001TeamNotes say?", ' +
    'or "call <tool> {json}".',
});

export const DEFAULT_RULES: ScriptRule[] = [explicitCallRule, writeDataRule, answerRule, fetchCostsRule, readDocRule, writeNoteRule, fallbackRule];

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type = 'invalid_request_error',
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export async function startDashScopeEmulator(options: DashScopeEmulatorOptions = {}): Promise<DashScopeEmulator> {
  const apiKeys = new Set(options.apiKeys ?? [SANDBOX_DASHSCOPE_API_KEY]);
  const models = new Map((options.models ?? DEFAULT_MODELS).map((m) => [m.id, m]));
  const rules = options.rules ?? DEFAULT_RULES;
  const chunkSize = Math.max(1, options.chunkSize ?? 16);
  const requests: DashScopeRequestLog[] = [];
  const faults = new FaultQueue<FaultSpec>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const log: DashScopeRequestLog = { at: new Date(), path, status: 0, body: undefined, stream: false };
    requests.push(log);
    const requestId = randomUUID();
    const fail = (e: ApiError, headers: Record<string, string> = {}) => {
      log.status = e.status;
      sendJson(
        res,
        e.status,
        { error: { code: e.code, message: e.message, param: e.param, type: e.type }, id: `chatcmpl-${requestId}`, request_id: requestId },
        headers,
      );
    };
    try {
      if (path !== '/compatible-mode/v1/chat/completions') throw new ApiError(404, 'NotFound', `Not found: ${path}`);
      if (req.method !== 'POST') throw new ApiError(405, 'MethodNotAllowed', 'Use POST.');
      const raw = (await readBody(req, 16 << 20)).toString('utf8');
      const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      if (!auth || !apiKeys.has(auth)) {
        throw new ApiError(
          401,
          'invalid_api_key',
          'Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error',
        );
      }
      const fault = faults.take(() => true);
      if (fault) {
        const headers: Record<string, string> = fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
        return fail(
          new ApiError(
            fault.status,
            fault.code,
            fault.message ?? defaultFaultMessage(fault.status),
            fault.type ?? (fault.status === 429 ? 'limit_requests' : 'internal_error'),
          ),
          headers,
        );
      }
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        throw new ApiError(400, 'invalid_parameter_error', 'The request body is not valid JSON.');
      }
      log.body = body;
      const stream = body.stream === true;
      log.stream = stream;
      const modelId = typeof body.model === 'string' ? body.model : '';
      const model = models.get(modelId);
      if (!modelId) throw new ApiError(400, 'invalid_parameter_error', 'Model not specified.', 'invalid_request_error', 'model');
      if (!model) throw new ApiError(404, 'model_not_found', `The model \`${modelId}\` does not exist or you do not have access to it.`);
      const thinking = typeof body.enable_thinking === 'boolean' ? body.enable_thinking : model.thinkingByDefault === true;
      if (!stream && thinking) throw new ApiError(400, 'invalid_parameter_error', 'parameter.enable_thinking must be set to false for non-streaming calls');
      const messages = validateMessages(body.messages);
      const tools = validateTools(body.tools);

      const reply = runRules(rules, messages, tools);
      log.reply = reply;
      log.status = 200;
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const toolCalls = (reply.toolCalls ?? []).map((c) => ({
        id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
        name: c.name,
        arguments: JSON.stringify(c.arguments ?? {}),
      }));
      const content = reply.content ?? '';
      const usage = {
        prompt_tokens: Math.ceil(raw.length / 4),
        completion_tokens: Math.ceil((content.length + toolCalls.reduce((n, c) => n + c.arguments.length, 0)) / 4) + 1,
      };
      const usageBlock = { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
      const finish = toolCalls.length > 0 ? 'tool_calls' : 'stop';

      if (!stream) {
        sendJson(res, 200, {
          id,
          object: 'chat.completion',
          created,
          model: modelId,
          system_fingerprint: null,
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: toolCalls.length > 0 && !content ? '' : content,
                ...(toolCalls.length
                  ? { tool_calls: toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
                  : {}),
              },
              finish_reason: finish,
              logprobs: null,
            },
          ],
          usage: usageBlock,
        });
        return;
      }

      res.writeHead(200, { 'content-type': 'text/event-stream;charset=UTF-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const send = (delta: Record<string, unknown>, finishReason: string | null = null) =>
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: modelId, system_fingerprint: null, choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }] })}\n\n`,
        );
      send({ role: 'assistant', content: '' });
      if (thinking) for (const piece of chunks('Deciding which tool fits the request.', chunkSize)) send({ content: null, reasoning_content: piece });
      for (const piece of chunks(content, chunkSize)) send({ content: piece });
      toolCalls.forEach((call, index) => {
        // First delta of a call: id and name. Later deltas: id "" and no name, as DashScope sends them.
        send({ content: null, tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] });
        for (const piece of chunks(call.arguments, chunkSize))
          send({ content: null, tool_calls: [{ index, id: '', type: 'function', function: { arguments: piece } }] });
      });
      send({ content: '' }, finish);
      const streamOptions = body.stream_options as { include_usage?: boolean } | undefined;
      if (streamOptions?.include_usage)
        res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: modelId, choices: [], usage: usageBlock })}\n\n`);
      res.write('data: [DONE]\n\n');
      res.end();
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      fail(new ApiError(500, 'InternalError', 'An internal error has occured, please try again later.', 'internal_error'));
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  const url = await listen(server, '127.0.0.1', options.port);
  return {
    url,
    baseUrl: `${url}/compatible-mode/v1`,
    apiKey: [...apiKeys][0] ?? SANDBOX_DASHSCOPE_API_KEY,
    requests,
    injectFault(fault) {
      faults.inject(fault);
    },
    clearFaults() {
      faults.clear();
    },
    close: () => shutdown(server),
  };
}

function defaultFaultMessage(status: number): string {
  if (status === 429) return 'Requests rate limit exceeded, please try again later.';
  return 'An internal error has occured, please try again later.';
}

function runRules(rules: ScriptRule[], messages: WireMessage[], tools: WireTool[]): ScriptedReply {
  const lastUserIndex = messages.map((m) => m.role).lastIndexOf('user');
  const callNames = new Map<string, string>();
  for (const m of messages) for (const c of m.tool_calls ?? []) callNames.set(c.id, c.function.name);
  const ctx: RuleContext = {
    messages,
    tools,
    lastUser: lastUserIndex >= 0 ? textOf(messages[lastUserIndex]!.content) : '',
    last: messages[messages.length - 1]!,
    tool: (name) => tools.find((t) => t.function.name === name || t.function.name.endsWith(`__${name}`))?.function.name,
    toolNameOf: (m) => (m.tool_call_id ? callNames.get(m.tool_call_id) : undefined),
    callsThisTurn: messages.slice(lastUserIndex + 1).flatMap((m) => (m.tool_calls ?? []).map((c) => c.function.name)),
  };
  for (const rule of rules) {
    const reply = rule(ctx);
    if (reply) return reply;
  }
  return { content: '' };
}

function validateMessages(value: unknown): WireMessage[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new ApiError(400, 'invalid_parameter_error', 'messages must be a non-empty array.', 'invalid_request_error', 'messages');
  const open = new Set<string>();
  for (const [i, m] of (value as WireMessage[]).entries()) {
    if (!m || !['system', 'user', 'assistant', 'tool'].includes(m.role)) {
      throw new ApiError(400, 'invalid_parameter_error', `messages[${i}].role must be system, user, assistant or tool.`, 'invalid_request_error', 'messages');
    }
    if (m.role === 'assistant') {
      open.clear();
      for (const c of m.tool_calls ?? []) {
        if (!c.id || typeof c.function?.name !== 'string' || typeof c.function.arguments !== 'string') {
          throw new ApiError(
            400,
            'invalid_parameter_error',
            `messages[${i}].tool_calls entries need an id, a function name and arguments as a JSON string.`,
            'invalid_request_error',
            'messages',
          );
        }
        open.add(c.id);
      }
    } else if (m.role === 'tool') {
      if (!m.tool_call_id || !open.has(m.tool_call_id)) {
        throw new ApiError(
          400,
          'invalid_parameter_error',
          `messages[${i}] with role "tool" must be a response to a preceding message with "tool_calls" (tool_call_id ${JSON.stringify(m.tool_call_id ?? null)} is unknown).`,
          'invalid_request_error',
          'messages',
        );
      }
      open.delete(m.tool_call_id);
    } else if (open.size > 0) {
      throw new ApiError(
        400,
        'invalid_parameter_error',
        'An assistant message with "tool_calls" must be followed by tool messages responding to each "tool_call_id".',
        'invalid_request_error',
        'messages',
      );
    }
  }
  return value as WireMessage[];
}

function validateTools(value: unknown): WireTool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ApiError(400, 'invalid_parameter_error', 'tools must be an array.', 'invalid_request_error', 'tools');
  for (const t of value as WireTool[]) {
    if (t?.type !== 'function' || typeof t.function?.name !== 'string' || !FUNCTION_NAME.test(t.function.name)) {
      throw new ApiError(
        400,
        'invalid_parameter_error',
        `Invalid tool name ${JSON.stringify(t?.function?.name)}: it must match ^[a-zA-Z0-9_-]{1,64}$.`,
        'invalid_request_error',
        'tools',
      );
    }
  }
  return value as WireTool[];
}

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  const chars = [...text];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}
