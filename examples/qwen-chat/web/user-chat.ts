/**
 * One signed-in person's chat: their own MCP connections (the sign-in server gets their own bearer token), the
 * terminal chat's ChatSession driven through its observer, and the page's answers to consent and confirmation cards.
 *
 * The model sees what it sees in the terminal chat (text only; never a token or a consent link). The page sees the
 * transcript items. Tokens stay in this object (and in the headers of this user's MCP transports).
 */
import type { ElicitResult } from '@modelcontextprotocol/client';
import { ChatSession, mayDestroy, type ChatObserver, type ToolCallInfo } from '../chat.js';
import type { ResolvedServer } from '../config.js';
import { DashScopeError, type DashScopeClient } from '../dashscope.js';
import { McpHub, type ElicitationHost, type ToolOutcome } from '../mcp-hub.js';
import type { Terminal } from '../terminal.js';
import { clip, newId, Transcript, type Item } from './transcript.js';
import { viewLink } from './url-safety.js';

export const WEB_SYSTEM_PROMPT =
  'You are a helpful assistant in a web chat. You can use tools from several MCP servers; a tool name starts with its ' +
  'server name and two underscores. When the user asks to write something into a DingTalk document, use the ' +
  'write_dingtalk_doc tool with the document link exactly as the user gave it and the complete Markdown content: it ' +
  'replaces the whole document. If a tool needs the user to approve access, the page shows the user a consent card; ' +
  'just report what the tool answered. Tools that change data may need the user to confirm first. Never ask the user ' +
  'for passwords or tokens. Answer briefly, in Markdown.';

/** The hub and the chat write progress for a terminal; the page gets its own events instead. */
const silentTerminal: Terminal = { color: false, interactive: false, write() {}, ask: async () => undefined, close() {} };

export class BusyError extends Error {}

export interface UserChatOptions {
  llm: DashScopeClient;
  servers: ResolvedServer[];
  /** How long a consent or confirmation card waits for the person (default 10 min). */
  decisionTimeoutMs?: number;
  maxToolRounds?: number;
  /** MCP revision to prefer: 'auto' negotiates 2026-07-28 when offered, 'legacy' speaks 2025-11-25. */
  era?: 'auto' | 'legacy';
}

type Consent = Extract<Item, { kind: 'consent' }>;
type ToolCard = Extract<Item, { kind: 'tool' }>;

export class UserChat implements ChatObserver, ElicitationHost {
  readonly transcript = new Transcript();
  readonly hub: McpHub;
  private session?: ChatSession;
  private turn?: AbortController;
  private assistant?: Extract<Item, { kind: 'assistant' }>;
  private currentTool?: ToolCard;
  private readonly cards = new Map<string, ToolCard>();
  /** Cards waiting for the person: id → resolver. */
  private readonly decisions = new Map<string, (answer: string) => void>();
  /** `<server>\0<elicitationId>` → the consent card, until the server reports completion. */
  private readonly byElicitation = new Map<string, { card: Consent; done: Promise<void>; resolve: () => void }>();
  private closed = false;
  lastActive = Date.now();

  constructor(private readonly options: UserChatOptions) {
    this.hub = new McpHub({ consent: { terminal: silentTerminal, openBrowser: false }, elicitationHost: this, clientName: 'qwen-web-chat', era: options.era });
  }

  async start(): Promise<void> {
    await this.hub.connectAll(this.options.servers);
    for (const f of this.hub.failures) this.notice('error', `MCP server "${f.server}" is not available: ${f.error}`);
    if (this.hub.servers.size === 0) this.notice('error', 'No MCP server is available: Qwen will answer without tools.');
    this.session = new ChatSession({
      llm: this.options.llm,
      hub: this.hub,
      terminal: silentTerminal,
      observer: this,
      systemPrompt: WEB_SYSTEM_PROMPT,
      maxToolRounds: this.options.maxToolRounds,
    });
  }

  get busy(): boolean {
    return this.transcript.busy;
  }

  /** Start a turn; resolves when it ends. Throws BusyError while another turn runs. */
  async send(text: string): Promise<void> {
    if (!this.session || this.closed) throw new Error('This chat has ended; sign in again.');
    if (this.transcript.busy) throw new BusyError('Qwen is still answering your previous message.');
    this.lastActive = Date.now();
    this.transcript.setBusy(true);
    this.transcript.add({ kind: 'user', id: newId('u'), text });
    const turn = (this.turn = new AbortController());
    try {
      const result = await this.session.send(text, turn.signal);
      if (result.stoppedEarly) this.notice('info', 'Qwen used the maximum number of tool calls for this message and had to answer with what it had.');
    } catch (e) {
      if (turn.signal.aborted) this.notice('info', 'Stopped.');
      else this.notice('error', e instanceof DashScopeError ? e.message : `Something went wrong: ${e instanceof Error ? e.message : String(e)}`);
      // Keep the history valid for the next message: drop the unanswered user message.
      if (this.session.messages.at(-1)?.role === 'user') this.session.messages.pop();
    } finally {
      this.endTurn();
    }
  }

  /** Stop the running turn: waiting cards are cancelled, the running tool call is aborted. */
  cancel(): boolean {
    if (!this.turn || this.turn.signal.aborted) return false;
    this.turn.abort();
    for (const resolve of this.decisions.values()) resolve('cancel');
    return true;
  }

  /** The page's answer to a consent card ('accept' | 'decline') or a confirmation card ('run' | 'skip'). */
  decide(id: string, answer: 'accept' | 'decline' | 'run' | 'skip'): boolean {
    const resolve = this.decisions.get(id);
    if (!resolve) return false;
    const card = this.transcript.get(id);
    if (!card || (card.kind === 'consent') !== (answer === 'accept' || answer === 'decline')) return false;
    this.lastActive = Date.now();
    resolve(answer);
    return true;
  }

  async close(reason = 'Signed out.'): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancel();
    this.transcript.emit({ type: 'ended', reason });
    await this.hub.close();
  }

  // ChatObserver

  onContent(delta: string): void {
    this.assistant ??= this.transcript.add({ kind: 'assistant', id: newId('a'), text: '', streaming: true });
    this.transcript.append(this.assistant, delta);
  }

  onToolCall(call: ToolCallInfo): void {
    this.finishAssistant();
    const destructive = call.tool ? mayDestroy(call.tool) : false;
    const card = this.transcript.add({
      kind: 'tool',
      id: newId('t'),
      server: call.server,
      tool: call.tool?.name ?? call.name,
      args: clip(JSON.stringify(call.args, null, 2), 4000),
      destructive,
      state: destructive ? 'confirm' : 'running',
    });
    this.cards.set(call.id, card);
    this.currentTool = card;
  }

  async confirmToolCall(call: ToolCallInfo, signal?: AbortSignal): Promise<boolean> {
    const card = this.cards.get(call.id);
    if (!card) return false;
    if (card.state !== 'confirm') this.transcript.update(card, { state: 'confirm' });
    const answer = await this.waitForDecision(card.id, signal);
    if (answer === 'run') this.transcript.update(card, { state: 'running' });
    return answer === 'run';
  }

  onToolResult(call: ToolCallInfo, outcome: ToolOutcome & { declined?: boolean }, durationMs: number): void {
    const card = this.cards.get(call.id);
    this.cards.delete(call.id);
    if (this.currentTool === card) this.currentTool = undefined;
    if (!card) return;
    this.transcript.update(card, { state: outcome.declined ? 'declined' : outcome.isError ? 'error' : 'done', result: clip(outcome.text), durationMs });
    // 2026-07-28 servers send no completion notification: the call finishing is the news.
    for (const item of this.transcript.all()) {
      if (item.kind === 'consent' && item.toolId === card.id && item.state === 'waiting') {
        this.transcript.update(item, outcome.isError ? { state: 'failed', note: 'The tool did not finish; see its card.' } : { state: 'completed' });
      }
    }
  }

  // ElicitationHost: URL elicitations become consent cards.

  async handle(server: string, params: { url: string; message?: string; elicitationId?: string }): Promise<ElicitResult> {
    const link = viewLink(params.url);
    const serverUrl = this.serverUrl(server);
    const card = this.transcript.add<Consent>({
      kind: 'consent',
      id: newId('c'),
      toolId: this.currentTool?.id,
      server,
      message: params.message ? clip(params.message, 1000) : undefined,
      scheme: link.scheme,
      host: link.host,
      rest: link.rest,
      href: link.href,
      warnings: link.warnings,
      refused: link.refused,
      serverHost: link.ok && serverUrl !== undefined && serverUrl.host === link.host,
      state: link.ok ? 'asking' : 'refused',
    });
    if (!link.ok) return { action: 'decline' };
    const answer = await this.waitForDecision(card.id, this.turn?.signal);
    if (answer !== 'accept') {
      this.transcript.update(card, { state: answer === 'decline' ? 'declined' : 'cancelled' });
      return { action: answer === 'decline' ? 'decline' : 'cancel' };
    }
    this.transcript.update(card, { state: 'waiting' });
    if (params.elicitationId) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.byElicitation.set(`${server}\0${params.elicitationId}`, { card, done, resolve });
    }
    return { action: 'accept' };
  }

  complete(server: string, elicitationId: string): void {
    const key = `${server}\0${elicitationId}`;
    const entry = this.byElicitation.get(key);
    if (!entry) return; // unknown or already completed: ignored (spec MUST)
    this.byElicitation.delete(key);
    if (entry.card.state === 'waiting') this.transcript.update(entry.card, { state: 'completed' });
    entry.resolve();
  }

  async waitFor(server: string, ids: string[], timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const waits = ids.map((id) => this.byElicitation.get(`${server}\0${id}`)?.done ?? Promise.resolve());
    let timer: NodeJS.Timeout | undefined;
    const abort = AbortSignal.any([signal, this.turn?.signal].filter((s): s is AbortSignal => s !== undefined));
    const result = await Promise.race([
      Promise.all(waits).then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      new Promise<boolean>((r) => (abort.aborted ? r(false) : abort.addEventListener('abort', () => r(false), { once: true }))),
    ]);
    clearTimeout(timer);
    return result;
  }

  private waitForDecision(id: string, signal?: AbortSignal): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish('cancel'), this.options.decisionTimeoutMs ?? 10 * 60_000);
      const onAbort = () => finish('cancel');
      const finish = (answer: string) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.decisions.delete(id);
        resolve(answer);
      };
      if (signal?.aborted) return finish('cancel');
      signal?.addEventListener('abort', onAbort, { once: true });
      this.decisions.set(id, finish);
    });
  }

  private serverUrl(server: string): URL | undefined {
    const entry = this.options.servers.find((s) => s.name === server)?.entry;
    try {
      return entry && 'url' in entry ? new URL(entry.url) : undefined;
    } catch {
      return undefined;
    }
  }

  private finishAssistant(): void {
    if (this.assistant) this.transcript.update(this.assistant, { streaming: false });
    this.assistant = undefined;
  }

  private endTurn(): void {
    this.finishAssistant();
    for (const card of this.cards.values()) this.transcript.update(card, { state: 'error', result: card.result ?? 'Stopped before it finished.' });
    this.cards.clear();
    for (const item of this.transcript.all()) {
      if (item.kind === 'consent' && (item.state === 'asking' || item.state === 'waiting')) this.transcript.update(item, { state: 'cancelled' });
    }
    this.currentTool = undefined;
    this.turn = undefined;
    this.transcript.setBusy(false);
  }

  private notice(level: 'info' | 'error', text: string): void {
    this.finishAssistant();
    this.transcript.add({ kind: 'notice', id: newId('n'), level, text: clip(text, 2000) });
  }
}
