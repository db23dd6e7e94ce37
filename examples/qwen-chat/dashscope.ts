/**
 * A small client for DashScope's OpenAI-compatible Chat Completions API (Alibaba Cloud Model Studio).
 *
 * - Streaming: SSE `data:` lines until `data: [DONE]`; text and `reasoning_content` deltas are handed out as they come.
 * - Tool calls are accumulated by `index`. DashScope sends `id: ""` (and no name) in the later chunks of a call, so
 *   empty strings count as absent (`||`, never `??`).
 * - Non-streaming calls send `enable_thinking: false` to Qwen models: hybrid-thinking Qwen3 models refuse a
 *   non-streaming call otherwise (400 "parameter.enable_thinking must be set to false for non-streaming calls").
 * - 429 and 5xx (and network failures before a response) are retried with exponential backoff and jitter, honouring
 *   Retry-After; a transient TPM throttle is phrased like OpenAI's "insufficient_quota" but clears within a minute.
 * - Errors become one clear message ({@link DashScopeError}); the API key never appears in one.
 */

export const DEFAULT_BASE_URL = 'https://dashscope.aliyuncs.com/compatible-mode/v1';
export const DEFAULT_MODEL = 'qwen-plus';

export const REGION_BASE_URLS: Record<string, string> = {
  beijing: 'https://dashscope.aliyuncs.com/compatible-mode/v1',
  singapore: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1',
  virginia: 'https://dashscope-us.aliyuncs.com/compatible-mode/v1',
  hongkong: 'https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1',
};

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ToolSpec {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export interface AssistantTurn {
  content: string;
  reasoning: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface StreamHandlers {
  onContent?(text: string): void;
  onReasoning?(text: string): void;
}

export interface DashScopeOptions {
  apiKey: string | undefined;
  baseUrl?: string;
  model?: string;
  /** Retries after the first attempt for 429/5xx/network errors (default 4). */
  maxRetries?: number;
  /** First backoff delay; doubles each retry, with jitter (default 1000 ms). */
  retryBaseDelayMs?: number;
  /** Timeout of one HTTP attempt, including the whole stream (default 180 s). */
  timeoutMs?: number;
  /** Ask hybrid models to think (streaming only). Default: the model's own default. */
  enableThinking?: boolean;
  /** Told about each retry (for a status line). */
  onRetry?(info: { attempt: number; delayMs: number; status?: number; reason: string }): void;
  fetch?: typeof fetch;
}

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  signal?: AbortSignal;
}

/** One clear, actionable message for a failed DashScope call. */
export class DashScopeError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'DashScopeError';
  }
}

/**
 * Accumulates streamed tool-call deltas by index. Empty `id`/`name` in later chunks count as absent. A delta without
 * `index` continues the call the previous delta belonged to, unless it carries a non-empty `id` different from that
 * call's: then it starts a new call.
 */
export class ToolCallAccumulator {
  private readonly calls = new Map<number, { id: string; name: string; arguments: string }>();
  private current?: number;

  add(deltas: unknown): void {
    if (!Array.isArray(deltas)) return;
    for (const raw of deltas) {
      const d = (raw ?? {}) as { index?: number; id?: string | null; function?: { name?: string | null; arguments?: string | null } | null };
      let index: number;
      if (typeof d.index === 'number') index = d.index;
      else if (this.current !== undefined && !(d.id && d.id !== this.calls.get(this.current)?.id)) index = this.current;
      else index = this.calls.size ? Math.max(...this.calls.keys()) + 1 : 0;
      this.current = index;
      const call = this.calls.get(index) ?? { id: '', name: '', arguments: '' };
      call.id = call.id || d.id || '';
      call.name = call.name || d.function?.name || '';
      call.arguments += d.function?.arguments || '';
      this.calls.set(index, call);
    }
  }

  /** The finished calls in index order; calls without a name are dropped, missing ids are synthesized. */
  result(): ToolCall[] {
    return [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .filter(([, c]) => c.name)
      .map(([index, c]) => ({
        id: c.id || `call_${index}_${Math.random().toString(36).slice(2, 10)}`,
        type: 'function' as const,
        function: { name: c.name, arguments: c.arguments || '{}' },
      }));
  }
}

/** The `data:` payloads of an SSE byte stream, one per event, ending at `[DONE]` or the end of the stream. */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(buffer[newline] === '\r' ? newline + 2 : newline + 1);
        if (line === '') {
          if (data.length) {
            const payload = data.join('\n');
            data = [];
            if (payload.trim() === '[DONE]') return;
            yield payload;
          }
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        } // comments (":"), event:, id:, retry: are ignored
      }
      if (done) {
        if (buffer.startsWith('data:')) data.push(buffer.slice(5).replace(/^ /, ''));
        if (data.length && data.join('\n').trim() !== '[DONE]') yield data.join('\n');
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

export class DashScopeClient {
  readonly baseUrl: string;
  readonly model: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: DashScopeOptions) {
    this.baseUrl = (options.baseUrl || DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.model = options.model || DEFAULT_MODEL;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** A streaming call: text as it arrives, the assembled tool calls at the end. */
  async stream(request: ChatRequest, handlers: StreamHandlers = {}): Promise<AssistantTurn> {
    const body: Record<string, unknown> = {
      model: this.model,
      messages: request.messages,
      stream: true,
      stream_options: { include_usage: true },
      ...(request.tools?.length ? { tools: request.tools, tool_choice: 'auto', parallel_tool_calls: true } : {}),
      ...(this.options.enableThinking !== undefined ? { enable_thinking: this.options.enableThinking } : {}),
    };
    const response = await this.post(body, request.signal);
    const turn: AssistantTurn = { content: '', reasoning: '', toolCalls: [], finishReason: null };
    const accumulator = new ToolCallAccumulator();
    if (!response.body) throw new DashScopeError('DashScope answered with an empty stream.');
    for await (const payload of sseData(response.body)) {
      let chunk: {
        choices?: Array<{ delta?: { content?: string | null; reasoning_content?: string | null; tool_calls?: unknown }; finish_reason?: string | null }>;
        usage?: AssistantTurn['usage'];
        error?: { code?: string; message?: string };
      };
      try {
        chunk = JSON.parse(payload);
      } catch {
        continue; // not JSON: nothing we can use
      }
      if (chunk.error) throw apiError(response.status, chunk.error, response.headers.get('x-request-id') ?? undefined, this);
      if (chunk.usage) turn.usage = chunk.usage;
      for (const choice of chunk.choices ?? []) {
        const delta = choice.delta ?? {};
        if (delta.reasoning_content) {
          turn.reasoning += delta.reasoning_content;
          handlers.onReasoning?.(delta.reasoning_content);
        }
        if (delta.content) {
          turn.content += delta.content;
          handlers.onContent?.(delta.content);
        }
        if (delta.tool_calls) accumulator.add(delta.tool_calls);
        if (choice.finish_reason) turn.finishReason = choice.finish_reason;
      }
    }
    turn.toolCalls = accumulator.result();
    return turn;
  }

  /** A non-streaming call (enable_thinking:false for Qwen models, as DashScope requires). */
  async complete(request: ChatRequest): Promise<AssistantTurn> {
    const body: Record<string, unknown> = {
      model: this.model,
      messages: request.messages,
      stream: false,
      ...(request.tools?.length ? { tools: request.tools, tool_choice: 'auto' } : {}),
      ...(/^(qwen|qwq)/i.test(this.model) ? { enable_thinking: false } : {}),
    };
    const response = await this.post(body, request.signal);
    const json = (await response.json()) as {
      choices?: Array<{ message?: { content?: string | null; reasoning_content?: string; tool_calls?: ToolCall[] }; finish_reason?: string }>;
      usage?: AssistantTurn['usage'];
    };
    const message = json.choices?.[0]?.message ?? {};
    return {
      content: message.content ?? '',
      reasoning: message.reasoning_content ?? '',
      toolCalls: (message.tool_calls ?? []).map((c) => ({
        id: c.id,
        type: 'function',
        function: { name: c.function.name, arguments: c.function.arguments || '{}' },
      })),
      finishReason: json.choices?.[0]?.finish_reason ?? null,
      usage: json.usage,
    };
  }

  /** POST with retries on 429, 5xx and network errors; returns a 2xx response or throws one clear error. */
  private async post(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
    if (!this.options.apiKey) {
      throw new DashScopeError(
        'DASHSCOPE_API_KEY is not set. Create an API key in the Model Studio (百炼) console for the region of your base URL ' +
          `(${this.baseUrl}) and export DASHSCOPE_API_KEY=sk-..., or run with --sandbox to try everything without a key.`,
      );
    }
    const maxRetries = this.options.maxRetries ?? 4;
    const baseDelay = this.options.retryBaseDelayMs ?? 1000;
    const url = `${this.baseUrl}/chat/completions`;
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 180_000);
      let response: Response;
      try {
        response = await this.fetchImpl(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: body.stream ? 'text/event-stream' : 'application/json',
            authorization: `Bearer ${this.options.apiKey}`,
          },
          body: JSON.stringify(body),
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (e) {
        if (signal?.aborted) throw e;
        const reason = timeout.aborted ? 'timed out' : e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
        if (attempt < maxRetries) {
          await this.backoff(attempt, baseDelay, undefined, undefined, `network error: ${reason}`);
          continue;
        }
        throw new DashScopeError(`Could not reach DashScope at ${this.baseUrl} (${reason}) after ${attempt + 1} attempts. Check the network and the base URL.`);
      }
      if (response.ok) return response;
      const text = await response.text().catch(() => '');
      const parsed = parseErrorBody(text);
      const retryable = response.status === 429 || response.status >= 500;
      if (retryable && attempt < maxRetries) {
        await this.backoff(attempt, baseDelay, response.status, response.headers.get('retry-after'), parsed.code ?? `HTTP ${response.status}`);
        continue;
      }
      const error = apiError(response.status, parsed, parsed.requestId ?? response.headers.get('x-request-id') ?? undefined, this);
      if (retryable) error.message = `${error.message} (gave up after ${attempt + 1} attempts)`;
      throw error;
    }
  }

  private async backoff(attempt: number, baseDelay: number, status: number | undefined, retryAfter: string | null | undefined, reason: string): Promise<void> {
    const exponential = Math.min(baseDelay * 2 ** attempt, 20_000);
    const jittered = exponential / 2 + Math.random() * (exponential / 2);
    const hinted = retryAfter && /^\d+(\.\d+)?$/.test(retryAfter) ? Math.min(Number(retryAfter) * 1000, 30_000) : 0;
    const delayMs = Math.round(Math.max(jittered, hinted));
    this.options.onRetry?.({ attempt: attempt + 1, delayMs, status, reason });
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

function parseErrorBody(text: string): { code?: string; message?: string; requestId?: string } {
  try {
    const json = JSON.parse(text) as { error?: { code?: string; message?: string; type?: string }; code?: string; message?: string; request_id?: string };
    // Compatible mode: {error:{code,message,type}, request_id}; native DashScope: {code, message, request_id}.
    return { code: json.error?.code || json.error?.type || json.code, message: json.error?.message || json.message, requestId: json.request_id };
  } catch {
    return { message: text.slice(0, 200) || undefined };
  }
}

function apiError(status: number, error: { code?: string; message?: string }, requestId: string | undefined, client: DashScopeClient): DashScopeError {
  const code = error.code ?? '';
  const detail = error.message ? `: ${error.message.trim()}` : '';
  const ref = requestId ? ` [request_id ${requestId}]` : '';
  let message: string;
  if (status === 401 || /invalid_api_key|InvalidApiKey/i.test(code)) {
    message =
      `DashScope rejected the API key (${code || 'HTTP 401'}). Check DASHSCOPE_API_KEY. Keys are region-specific: a Beijing key ` +
      `does not work on dashscope-intl (Singapore) and vice versa, and a workspace-scoped key needs its workspace endpoint. Base URL: ${client.baseUrl}`;
  } else if (status === 404 || /model_not_found|ModelNotFound/i.test(code)) {
    message = `DashScope does not offer the model "${client.model}" at ${client.baseUrl}${detail}. Pick a tool-capable model available in that region with --model (e.g. qwen-plus or qwen3-max).`;
  } else if (status === 403 || /AccessDenied|Arrearage/i.test(code)) {
    message = `DashScope denied access (${code || 'HTTP 403'})${detail}. The account may be overdue ("Arrearage") or the key may not be allowed to use "${client.model}".`;
  } else if (status === 429) {
    message = `DashScope is rate-limiting this key (${code || 'HTTP 429'})${detail}. Wait a minute and try again, or use a model with a higher quota.`;
  } else if (status >= 500) {
    message = `DashScope had a server error (${code || `HTTP ${status}`})${detail}.`;
  } else {
    message = `DashScope refused the request (${code || `HTTP ${status}`})${detail}.`;
  }
  return new DashScopeError(message + ref, status, code || undefined, requestId);
}
