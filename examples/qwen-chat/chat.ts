/**
 * The conversation loop: the user's message → Qwen (streamed) → tool calls routed through the hub → tool results
 * (text only) → Qwen again, up to a bounded number of tool rounds per user message.
 *
 * What the model sees: the system prompt, the conversation, tool definitions, and the text content of tool results.
 * Never a token, never an elicitation URL (those go to the human through the consent screen).
 */
import type { AssistantTurn, ChatMessage, DashScopeClient } from './dashscope.js';
import type { ExposedTool, McpHub, ToolOutcome } from './mcp-hub.js';
import { sanitize, style, type Terminal } from './terminal.js';

export const DEFAULT_MAX_TOOL_ROUNDS = 8;

export const SYSTEM_PROMPT =
  'You are a helpful assistant in a terminal chat. You can use tools from several MCP servers; a tool name starts with ' +
  'its server name and two underscores. Pass DingTalk document links exactly as the user gave them. To see what a ' +
  'DingTalk document says, use read_dingtalk_doc. To add to a document, use append_dingtalk_doc. write_dingtalk_doc ' +
  'replaces the whole document with complete Markdown: use it only to rewrite a document, after reading it. If a tool needs the user to approve access, the client shows the user a link; just ' +
  'report what the tool answered. Never ask the user for passwords or tokens. Answer briefly.';

export interface ChatOptions {
  llm: DashScopeClient;
  hub: McpHub;
  terminal: Terminal;
  maxToolRounds?: number;
  systemPrompt?: string;
  /** Use non-streaming calls (sends enable_thinking:false for Qwen models). Default false. */
  noStream?: boolean;
  /** Told what happens as it happens (the web chat draws its cards from this); the terminal output is unchanged. */
  observer?: ChatObserver;
}

/** One tool call the model asked for, as a front end shows it. */
export interface ToolCallInfo {
  /** The model's call id. */
  id: string;
  /** The function name the model used (`<server>__<tool>`). */
  name: string;
  server?: string;
  /** The MCP tool behind it (absent for an unknown name). */
  tool?: ExposedTool['tool'];
  args: Record<string, unknown>;
}

export interface ChatObserver {
  onContent?(delta: string): void;
  onReasoning?(delta: string): void;
  /** Before the call runs (and before any confirmation). */
  onToolCall?(call: ToolCallInfo): void;
  onToolResult?(call: ToolCallInfo, outcome: ToolOutcome & { declined?: boolean }, durationMs: number): void;
  /**
   * Asked before a tool that may destroy data runs ({@link mayDestroy}); false, or a throw, means it does not run and
   * the model is told the user declined. Absent: such tools run without asking. The terminal chat asks with
   * {@link confirmInTerminal}; the web chat asks with a card.
   */
  confirmToolCall?(call: ToolCallInfo, signal?: AbortSignal): Promise<boolean>;
}

/**
 * MCP tool annotations (2025-11-25 schema, ToolAnnotations): `destructiveHint` defaults to true and only means something
 * when `readOnlyHint` is false (its default). So a tool may destroy data unless it says it is read-only or not destructive.
 */
export function mayDestroy(tool: { annotations?: { readOnlyHint?: boolean; destructiveHint?: boolean } }): boolean {
  return tool.annotations?.readOnlyHint !== true && tool.annotations?.destructiveHint !== false;
}

export interface TurnResult {
  answer: string;
  toolCalls: Array<{ name: string; server?: string; isError: boolean; text: string }>;
  /** The tool-round bound was hit. */
  stoppedEarly: boolean;
}

export class ChatSession {
  readonly messages: ChatMessage[];

  constructor(private readonly options: ChatOptions) {
    const instructions = [...options.hub.servers.values()].map((s) => s.client.getInstructions?.()).filter(Boolean);
    this.messages = [
      {
        role: 'system',
        content: [options.systemPrompt ?? SYSTEM_PROMPT, ...instructions.map((i, n) => `Server instructions (${n + 1}): ${i}`)].join('\n\n'),
      },
    ];
  }

  async send(text: string, signal?: AbortSignal): Promise<TurnResult> {
    const { hub, terminal } = this.options;
    const maxRounds = this.options.maxToolRounds ?? DEFAULT_MAX_TOOL_ROUNDS;
    this.messages.push({ role: 'user', content: text });
    const result: TurnResult = { answer: '', toolCalls: [], stoppedEarly: false };
    for (let round = 0; ; round++) {
      const tools = round < maxRounds ? hub.toolSpecs() : [];
      const turn = await this.ask(tools, signal);
      this.messages.push({ role: 'assistant', content: turn.content || null, ...(turn.toolCalls.length ? { tool_calls: turn.toolCalls } : {}) });
      if (turn.toolCalls.length === 0 || round >= maxRounds) {
        // Past the bound, calls are answered (the API requires it) but not run.
        for (const call of turn.toolCalls)
          this.messages.push({ role: 'tool', tool_call_id: call.id, content: 'Not run: the tool-call limit for this message was reached.' });
        result.answer = turn.content;
        result.stoppedEarly = round >= maxRounds;
        return result;
      }
      for (const call of turn.toolCalls) {
        let args: Record<string, unknown>;
        try {
          const parsed = JSON.parse(call.function.arguments || '{}') as unknown;
          if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          args = parsed as Record<string, unknown>;
        } catch {
          const textOut = `The arguments for ${call.function.name} were not a JSON object; nothing was called. Send valid JSON arguments.`;
          this.messages.push({ role: 'tool', tool_call_id: call.id, content: textOut });
          result.toolCalls.push({ name: call.function.name, isError: true, text: textOut });
          continue;
        }
        terminal.write(style.accent(terminal, `\n⚙ ${call.function.name}`) + style.dim(terminal, ` ${summarizeArgs(args)}\n`));
        const route = hub.route(call.function.name);
        const info: ToolCallInfo = { id: call.id, name: call.function.name, server: route?.server, tool: route?.tool, args };
        const observer = this.options.observer;
        observer?.onToolCall?.(info);
        if (observer?.confirmToolCall && route && mayDestroy(route.tool)) {
          const approved = await observer.confirmToolCall(info, signal).catch(() => false);
          if (!approved) {
            const textOut = 'The user chose not to run this tool, so nothing was changed. Do not call it again unless the user asks.';
            this.messages.push({ role: 'tool', tool_call_id: call.id, content: `Error: ${textOut}` });
            result.toolCalls.push({ name: call.function.name, server: route.server, isError: true, text: textOut });
            observer.onToolResult?.(info, { text: textOut, isError: true, server: route.server, declined: true }, 0);
            continue;
          }
        }
        const started = Date.now();
        const outcome = await hub.callTool(call.function.name, args, signal);
        observer?.onToolResult?.(info, outcome, Date.now() - started);
        terminal.write((outcome.isError ? style.error(terminal, '  ↳ error: ') : style.dim(terminal, '  ↳ ')) + formatToolResult(outcome.text) + '\n');
        this.messages.push({ role: 'tool', tool_call_id: call.id, content: outcome.isError ? `Error: ${outcome.text}` : outcome.text });
        result.toolCalls.push({ name: call.function.name, server: outcome.server, isError: outcome.isError, text: outcome.text });
      }
      if (round + 1 >= maxRounds) {
        // Offer no tools next time: the model must answer with what it has.
        terminal.write(style.warn(terminal, `  (${maxRounds} tool rounds used for this message: asking Qwen to answer without more tools)\n`));
      }
    }
  }

  private async ask(tools: ReturnType<McpHub['toolSpecs']>, signal?: AbortSignal): Promise<AssistantTurn> {
    const { llm, terminal } = this.options;
    const observer = this.options.observer;
    if (this.options.noStream) {
      const turn = await llm.complete({ messages: this.messages, tools, signal });
      if (turn.content) observer?.onContent?.(turn.content);
      if (turn.content) terminal.write(`${style.bold(terminal, 'qwen ›')} ${sanitize(turn.content)}\n`);
      return turn;
    }
    let started = false;
    let thinking = false;
    const turn = await llm.stream(
      { messages: this.messages, tools, signal },
      {
        onReasoning: (t) => {
          observer?.onReasoning?.(t);
          if (!thinking) terminal.write(style.dim(terminal, '(thinking) '));
          thinking = true;
          terminal.write(style.dim(terminal, sanitize(t)));
        },
        onContent: (t) => {
          observer?.onContent?.(t);
          if (thinking) terminal.write('\n');
          thinking = false;
          if (!started) terminal.write(`${style.bold(terminal, 'qwen ›')} `);
          started = true;
          terminal.write(sanitize(t));
        },
      },
    );
    if (started || thinking) terminal.write('\n');
    return turn;
  }
}

/** Bounds of a tool result shown in the terminal (the model always gets all of it). */
export const RESULT_LINES = 40;
export const RESULT_CHARS = 4000;

/** The whole tool result, sanitized, indented under its first line, cut at the bounds with a note of what is left. */
export function formatToolResult(text: string, maxLines = RESULT_LINES, maxChars = RESULT_CHARS): string {
  const clean = sanitize(text.replace(/\r\n?/g, '\n')).trimEnd();
  const lines = clean.split('\n');
  let shown = lines.slice(0, maxLines).join('\n');
  if (shown.length > maxChars) shown = shown.slice(0, maxChars);
  const rest = clean.length - shown.length;
  const shownLines = shown.split('\n');
  const more =
    rest > 0
      ? `\n    … (${lines.length - shownLines.length > 0 ? `${lines.length - shownLines.length} more lines, ` : ''}${rest} more characters not shown)`
      : '';
  return shownLines.join('\n    ') + more;
}

/** Asks in the terminal before a tool that may destroy data runs; with `autoApprove` (--yes) says it runs without asking. */
export function confirmInTerminal(terminal: Terminal, autoApprove: boolean): (call: ToolCallInfo, signal?: AbortSignal) => Promise<boolean> {
  return async (call, signal) => {
    const what = `  ⚠ ${sanitize(call.name)} may change or delete data (the server marks it destructive).`;
    if (autoApprove) {
      terminal.write(style.warn(terminal, what) + style.dim(terminal, ' --yes: running it without asking.\n'));
      return true;
    }
    terminal.write(style.warn(terminal, what) + '\n');
    const answer = await terminal.ask('  Run it? [y/N] ', signal);
    const yes = answer !== undefined && /^y(es)?$/i.test(answer.trim());
    if (!yes) terminal.write(style.dim(terminal, '  Not run.\n'));
    return yes;
  };
}

function summarizeArgs(args: Record<string, unknown>): string {
  const shown = Object.entries(args).map(([k, v]) => {
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return `${k}=${s.length > 70 ? `${JSON.stringify(s.slice(0, 60))}… (${s.length} chars)` : JSON.stringify(v)}`;
  });
  return sanitize(shown.join(' ') || '{}');
}
