/**
 * The Qwen chat's DashScope client against the DashScope emulator: streaming, tool-call deltas with empty later ids,
 * retries on 429/5xx, one clear message per error, the enable_thinking rule for non-streaming Qwen3 calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashScopeClient, DashScopeError, sseData, ToolCallAccumulator, type ChatMessage } from '../../examples/qwen-chat/dashscope.js';
import { startDashScopeEmulator, type DashScopeEmulator, type ScriptRule } from '../../examples/shared/dashscope-emulator.js';

const twoCalls: ScriptRule = (ctx) =>
  ctx.lastUser === 'two calls'
    ? {
        content: 'Calling two tools.',
        toolCalls: [
          {
            name: 'dingtalk__write_dingtalk_doc',
            arguments: { document: 'https://alidocs.dingtalk.com/i/nodes/abc123', content: '# 标题\n\n' + 'long text '.repeat(20) },
          },
          { name: 'billing__query_monthly_costs', arguments: { month: '2026-10' } },
        ],
      }
    : undefined;
const echo: ScriptRule = (ctx) => ({ content: `echo: ${ctx.lastUser}` });

const TOOLS = [
  { type: 'function' as const, function: { name: 'dingtalk__write_dingtalk_doc', description: 'w', parameters: { type: 'object', properties: {} } } },
  { type: 'function' as const, function: { name: 'billing__query_monthly_costs', description: 'c', parameters: { type: 'object', properties: {} } } },
];
const user = (content: string): ChatMessage[] => [{ role: 'user', content }];

let emulator: DashScopeEmulator;
beforeAll(async () => {
  emulator = await startDashScopeEmulator({ rules: [twoCalls, echo], chunkSize: 5 });
});
afterAll(async () => {
  await emulator.close();
});

const client = (overrides: Partial<ConstructorParameters<typeof DashScopeClient>[0]> = {}) =>
  new DashScopeClient({ apiKey: emulator.apiKey, baseUrl: emulator.baseUrl, retryBaseDelayMs: 1, ...overrides });

describe('streaming', () => {
  it('assembles tool calls whose later deltas carry id "" and no name, by index', async () => {
    // The emulator really sends the quirk: look at the raw stream first.
    const raw = await fetch(`${emulator.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emulator.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen-plus', messages: user('two calls'), tools: TOOLS, stream: true }),
    });
    const chunks: Array<{ choices: Array<{ delta: { tool_calls?: Array<{ index: number; id: string; function: { name?: string } }> } }> }> = [];
    for await (const data of sseData(raw.body!)) chunks.push(JSON.parse(data));
    const deltas = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    expect(deltas.filter((d) => d.id === '').length).toBeGreaterThan(10);
    expect(deltas.filter((d) => d.id !== '').map((d) => d.index)).toEqual([0, 1]);
    expect(deltas.filter((d) => d.id === '').every((d) => d.function.name === undefined)).toBe(true);

    const text: string[] = [];
    const turn = await client().stream({ messages: user('two calls'), tools: TOOLS }, { onContent: (t) => text.push(t) });
    expect(text.length).toBeGreaterThan(1);
    expect(text.join('')).toBe('Calling two tools.');
    expect(turn.finishReason).toBe('tool_calls');
    expect(turn.toolCalls.map((c) => c.function.name)).toEqual(['dingtalk__write_dingtalk_doc', 'billing__query_monthly_costs']);
    expect(turn.toolCalls.every((c) => c.id.startsWith('call_'))).toBe(true);
    expect(JSON.parse(turn.toolCalls[0]!.function.arguments)).toEqual({
      document: 'https://alidocs.dingtalk.com/i/nodes/abc123',
      content: '# 标题\n\n' + 'long text '.repeat(20),
    });
    expect(JSON.parse(turn.toolCalls[1]!.function.arguments)).toEqual({ month: '2026-10' });
    expect(turn.usage?.total_tokens).toBeGreaterThan(0);
    const sent = emulator.requests.at(-1)!.body!;
    expect(sent).toMatchObject({ stream: true, stream_options: { include_usage: true }, tool_choice: 'auto' });
  });

  it('the accumulator ignores empty ids and null names, and tolerates a re-sent full id', () => {
    const acc = new ToolCallAccumulator();
    acc.add([{ index: 0, id: 'call_a', type: 'function', function: { name: 'srv__tool', arguments: '' } }]);
    acc.add([{ index: 0, id: '', type: 'function', function: { name: null, arguments: '{"x":' } }]);
    acc.add([{ index: 1, id: 'call_b', type: 'function', function: { name: 'srv__other', arguments: '{}' } }]);
    acc.add([{ index: 0, id: 'call_a', function: { arguments: '1}' } }]); // qwen-vl-max re-sends the id
    acc.add([{ index: 0, id: '', function: { name: null, arguments: null } }]); // qwen-plus-latest: both null
    acc.add([{ index: 2, id: '', function: { arguments: 'orphan' } }]); // no name ever: dropped
    expect(acc.result()).toEqual([
      { id: 'call_a', type: 'function', function: { name: 'srv__tool', arguments: '{"x":1}' } },
      { id: 'call_b', type: 'function', function: { name: 'srv__other', arguments: '{}' } },
    ]);
  });

  it('without index, a new non-empty id starts a new call; id "" (or the same id again) continues the current one', () => {
    const acc = new ToolCallAccumulator();
    acc.add([{ id: 'call_a', type: 'function', function: { name: 'srv__tool', arguments: '' } }]);
    acc.add([{ id: '', type: 'function', function: { arguments: '{"x":' } }]);
    acc.add([{ id: 'call_a', function: { arguments: '1}' } }]); // the same id re-sent: still call_a
    acc.add([{ id: 'call_b', type: 'function', function: { name: 'srv__other', arguments: '{' } }]);
    acc.add([{ id: '', function: { name: null, arguments: '}' } }]);
    expect(acc.result()).toEqual([
      { id: 'call_a', type: 'function', function: { name: 'srv__tool', arguments: '{"x":1}' } },
      { id: 'call_b', type: 'function', function: { name: 'srv__other', arguments: '{}' } },
    ]);
  });

  it('parses SSE split anywhere, with CRLF, comments and multi-byte characters across chunks', async () => {
    const text = ': keep-alive\r\ndata: {"a":"你好"}\r\n\r\nevent: x\ndata: {"b":1}\n\ndata: [DONE]\n\ndata: {"after":true}\n\n';
    const bytes = new TextEncoder().encode(text);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
        controller.close();
      },
    });
    const out: string[] = [];
    for await (const d of sseData(stream)) out.push(d);
    expect(out).toEqual(['{"a":"你好"}', '{"b":1}']);
  });

  it('a thinking Qwen3 model streams reasoning_content separately from the answer', async () => {
    const reasoning: string[] = [];
    const turn = await client({ model: 'qwen3-32b' }).stream({ messages: user('hi') }, { onReasoning: (t) => reasoning.push(t) });
    expect(reasoning.join('')).not.toBe('');
    expect(turn.content).toBe('echo: hi');
  });
});

describe('non-streaming Qwen3', () => {
  it('DashScope refuses a non-streaming call without enable_thinking:false; the client sends it', async () => {
    const raw = await fetch(`${emulator.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emulator.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen3-32b', messages: user('hi') }),
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({
      error: { code: 'invalid_parameter_error', message: 'parameter.enable_thinking must be set to false for non-streaming calls' },
    });

    const turn = await client({ model: 'qwen3-32b' }).complete({ messages: user('hi') });
    expect(turn.content).toBe('echo: hi');
    expect(emulator.requests.at(-1)!.body).toMatchObject({ stream: false, enable_thinking: false });
  });
});

describe('retries', () => {
  it('429 twice, then success: retried with backoff, one answer', async () => {
    emulator.injectFault({ status: 429, code: 'Throttling.RateQuota', times: 2 });
    const before = emulator.requests.length;
    const retries: Array<{ status?: number; reason: string }> = [];
    const turn = await client({ onRetry: (r) => retries.push(r) }).stream({ messages: user('after throttling') });
    expect(turn.content).toBe('echo: after throttling');
    expect(emulator.requests.length - before).toBe(3);
    expect(retries.map((r) => r.status)).toEqual([429, 429]);
    expect(retries[0]!.reason).toBe('Throttling.RateQuota');
  });

  it('a transient 503 is retried; a persistent 500 gives one clear message after bounded attempts', async () => {
    emulator.injectFault({ status: 503, code: 'ServiceUnavailable', times: 1 });
    expect((await client().stream({ messages: user('once') })).content).toBe('echo: once');

    emulator.injectFault({ status: 500, code: 'InternalError', times: Infinity });
    try {
      const before = emulator.requests.length;
      const error = await client({ maxRetries: 2 })
        .stream({ messages: user('never') })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DashScopeError);
      expect((error as DashScopeError).message).toMatch(/server error \(InternalError\).*gave up after 3 attempts/);
      expect(emulator.requests.length - before).toBe(3);
    } finally {
      emulator.clearFaults();
    }
  });
});

describe('errors', () => {
  it('a bad API key: one request, one clear message that never contains the key', async () => {
    const badKey = 'sk-this-is-not-a-valid-key-123456';
    const before = emulator.requests.length;
    const error = (await client({ apiKey: badKey })
      .stream({ messages: user('hi') })
      .catch((e: unknown) => e)) as DashScopeError;
    expect(error).toBeInstanceOf(DashScopeError);
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_api_key');
    expect(error.message).toMatch(/^DashScope rejected the API key \(invalid_api_key\)\. Check DASHSCOPE_API_KEY\. Keys are region-specific/);
    expect(error.message).toContain(emulator.baseUrl);
    expect(error.message).not.toContain(badKey);
    expect(emulator.requests.length - before).toBe(1);
    expect(emulator.requests.at(-1)!.status).toBe(401);
  });

  it('no API key at all: a clear message before any request', async () => {
    const before = emulator.requests.length;
    await expect(client({ apiKey: undefined }).stream({ messages: user('hi') })).rejects.toThrow(/DASHSCOPE_API_KEY is not set.*--sandbox/);
    expect(emulator.requests.length).toBe(before);
  });

  it('an unknown model: says which model and what to pick', async () => {
    const error = (await client({ model: 'qwen-nonexistent' })
      .stream({ messages: user('hi') })
      .catch((e: unknown) => e)) as DashScopeError;
    expect(error.status).toBe(404);
    expect(error.message).toMatch(/does not offer the model "qwen-nonexistent".*--model/);
  });

  it('an unreachable endpoint: retried, then a clear network message', async () => {
    const error = (await new DashScopeClient({ apiKey: 'k', baseUrl: 'http://127.0.0.1:9/compatible-mode/v1', maxRetries: 1, retryBaseDelayMs: 1 })
      .stream({ messages: user('hi') })
      .catch((e: unknown) => e)) as DashScopeError;
    expect(error.message).toMatch(/Could not reach DashScope at http:\/\/127\.0\.0\.1:9\/compatible-mode\/v1 .* after 2 attempts/);
  });

  it('the emulator enforces the protocol: tool messages must answer a tool call; function names fit ^[a-zA-Z0-9_-]{1,64}$', async () => {
    const orphan = await client()
      .stream({
        messages: [
          { role: 'user', content: 'x' },
          { role: 'tool', tool_call_id: 'call_nope', content: 'r' },
        ],
      })
      .catch((e: unknown) => e);
    expect((orphan as DashScopeError).message).toMatch(/must be a response to a preceding message with "tool_calls"/);
    const badName = await client()
      .stream({ messages: user('x'), tools: [{ type: 'function', function: { name: 'a'.repeat(65), parameters: {} } }] })
      .catch((e: unknown) => e);
    expect((badName as DashScopeError).status).toBe(400);
  });
});
