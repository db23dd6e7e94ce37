/**
 * Many MCP servers behind one tool list: connect each configured server (stdio or Streamable HTTP, with a static
 * header or OAuth), offer every tool to the model as `<server>__<tool>` (within the 64-character function-name limit),
 * route each call back, and report servers that failed without stopping the others.
 *
 * Every client declares `elicitation: { url: {} }` and answers URL elicitations through one consent screen; on
 * 2026-07-28 connections the SDK feeds `input_required` results through the same handler and retries by itself.
 * A thrown -32042 (URLElicitationRequiredError, 2025-11-25) is handled too: consent, then wait for the completion
 * notification (or Enter), then one retry.
 */
import { createHash } from 'node:crypto';
import type { CallToolResult, ElicitResult, Tool } from '@modelcontextprotocol/client';
import { Client, ProtocolError, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { isHttpServer, type HttpServerConfig, type ResolvedServer, type ServerConfig, type StdioServerConfig } from './config.js';
import type { ToolSpec } from './dashscope.js';
import { UrlElicitationHandler, type ConsentOptions } from './elicitation.js';
import { freeLoopbackPort, loginWithBrowser, LoopbackOAuthProvider, TokenFile } from './oauth.js';
import { sanitize, style } from './terminal.js';

export const MAX_FUNCTION_NAME = 64;
const SEPARATOR = '__';

export interface HubOptions {
  consent: ConsentOptions;
  /** 'auto' negotiates 2026-07-28 when the server offers it; 'legacy' speaks 2025-11-25. */
  era?: 'auto' | 'legacy';
  tokenFile?: TokenFile;
  /** Upper bound of one tool call, including a browser authorization (default 15 min). */
  toolCallTimeoutMs?: number;
  /** How long to wait for a completion notification after a -32042 (default 10 min). */
  authWaitMs?: number;
  /** Show servers' stderr lines as they come (default: keep the last lines for error reports). */
  showServerLogs?: boolean;
  clientName?: string;
  /** Who answers URL elicitations (default: the terminal consent screen). The web chat puts a card on the page instead. */
  elicitationHost?: ElicitationHost;
}

/** What the hub needs from whoever shows URL elicitations to the person ({@link UrlElicitationHandler} is one). */
export type ElicitationHost = Pick<UrlElicitationHandler, 'handle' | 'complete' | 'waitFor'>;

export interface ConnectedServer {
  name: string;
  kind: 'stdio' | 'http';
  client: Client;
  protocolVersion: string;
  tools: Tool[];
}

export interface ExposedTool {
  /** The function name the model sees. */
  name: string;
  server: string;
  tool: Tool;
}

export interface ToolOutcome {
  /** Text content only: this is what the model gets. */
  text: string;
  isError: boolean;
  server?: string;
}

/** `<server>__<tool>`, sanitized to [A-Za-z0-9_-] and shortened with a hash suffix to fit 64 characters. */
export function exposedToolName(server: string, tool: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
  const full = `${clean(server)}${SEPARATOR}${clean(tool)}`;
  if (full.length <= MAX_FUNCTION_NAME) return full;
  const hash = createHash('sha256').update(`${server}\0${tool}`).digest('hex').slice(0, 8);
  return `${full.slice(0, MAX_FUNCTION_NAME - hash.length - 1)}_${hash}`;
}

/** One lock for everything that needs the person's attention (logins), so prompts do not interleave. */
class PromptLock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  }
}

export class McpHub {
  readonly servers = new Map<string, ConnectedServer>();
  readonly failures: Array<{ server: string; error: string }> = [];
  readonly elicitation: ElicitationHost;
  private readonly exposed = new Map<string, ExposedTool>();
  private readonly prompts = new PromptLock();
  private readonly tokenFile: TokenFile;

  constructor(private readonly options: HubOptions) {
    this.elicitation = options.elicitationHost ?? new UrlElicitationHandler(options.consent);
    this.tokenFile = options.tokenFile ?? new TokenFile();
  }

  private get terminal() {
    return this.options.consent.terminal;
  }

  /** Connect every server in parallel; failures are recorded and printed, the rest stay usable. */
  async connectAll(servers: ResolvedServer[]): Promise<void> {
    await Promise.all(
      servers.map(async (s) => {
        const hide = redactor(s);
        try {
          if (s.missing.length) throw new Error(`its config uses ${s.missing.map((m) => `\${${m}}`).join(', ')}, not set in the environment`);
          const connected = await this.connect(s.name, s.entry, s.written ?? s.entry, hide);
          this.servers.set(s.name, connected);
        } catch (e) {
          // Whatever the reason says (a server's own output included), values from the environment or the config's
          // env/headers are not shown.
          const error = hide(e instanceof Error ? e.message : String(e));
          this.failures.push({ server: s.name, error });
        }
      }),
    );
    this.rebuildToolIndex();
    for (const name of servers.map((s) => s.name)) {
      const ok = this.servers.get(name);
      const failed = this.failures.find((f) => f.server === name);
      if (ok)
        this.terminal.write(
          style.dim(this.terminal, `✓ ${name}: ${ok.kind}, MCP ${ok.protocolVersion}, ${ok.tools.length} tool(s): ${ok.tools.map((t) => t.name).join(', ')}\n`),
        );
      else if (failed) this.terminal.write(style.error(this.terminal, `✗ ${name}: not available: ${sanitize(failed.error)}\n`));
    }
  }

  /** Function definitions for the model. */
  toolSpecs(): ToolSpec[] {
    return [...this.exposed.values()].map(({ name, server, tool }) => {
      const { $schema: _drop, ...parameters } = (tool.inputSchema ?? { type: 'object', properties: {} }) as Record<string, unknown>;
      return {
        type: 'function',
        function: { name, description: `[${server}] ${tool.description ?? tool.title ?? tool.name}`.slice(0, 1024), parameters },
      };
    });
  }

  route(name: string): ExposedTool | undefined {
    return this.exposed.get(name);
  }

  /** Call a tool by the name the model used; any failure becomes an error outcome (text), never a throw. */
  async callTool(name: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutcome> {
    const route = this.exposed.get(name);
    const server = route && this.servers.get(route.server);
    if (!route || !server) return { text: `Unknown tool "${name}". Available tools: ${[...this.exposed.keys()].join(', ') || 'none'}.`, isError: true };
    const call = () =>
      server.client.callTool(
        { name: route.tool.name, arguments: args },
        { timeout: this.options.toolCallTimeoutMs ?? 15 * 60_000, resetTimeoutOnProgress: true, signal },
      ) as Promise<CallToolResult>;
    try {
      let result: CallToolResult;
      try {
        result = await call();
      } catch (e) {
        const elicitations = urlElicitationsOf(e);
        if (!elicitations) throw e;
        if (!(await this.fulfilThrownElicitations(server.name, elicitations))) {
          return { text: 'The user did not complete the authorization the tool asked for, so the tool did not run.', isError: true, server: server.name };
        }
        result = await call();
      }
      return { text: resultText(result), isError: result.isError === true, server: server.name };
    } catch (e) {
      if (signal?.aborted) return { text: 'The tool call was cancelled by the user.', isError: true, server: server.name };
      return { text: `The tool call failed: ${e instanceof Error ? e.message : String(e)}`, isError: true, server: server.name };
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.servers.values()].map((s) => s.client.close()));
    this.servers.clear();
  }

  private rebuildToolIndex(): void {
    this.exposed.clear();
    for (const server of [...this.servers.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      for (const tool of server.tools) {
        let name = exposedToolName(server.name, tool.name);
        if (this.exposed.has(name)) name = exposedToolName(`${server.name}_${createHash('sha256').update(server.name).digest('hex').slice(0, 4)}`, tool.name);
        this.exposed.set(name, { name, server: server.name, tool });
      }
    }
  }

  private buildClient(name: string): Client {
    const client = new Client(
      { name: this.options.clientName ?? 'qwen-chat', version: '0.1.0' },
      { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: this.options.era ?? 'auto' } },
    );
    client.setRequestHandler('elicitation/create', async (request): Promise<ElicitResult> => {
      const params = request.params as { mode?: string; url?: string; message?: string; elicitationId?: string };
      // Only URL mode is declared: anything else is invalid params (spec MUST).
      if (params.mode !== 'url' || typeof params.url !== 'string') throw new ProtocolError(-32602, 'This client supports URL elicitation only.');
      return this.elicitation.handle(name, { url: params.url, message: params.message, elicitationId: params.elicitationId });
    });
    client.setNotificationHandler('notifications/elicitation/complete', (n) => {
      this.elicitation.complete(name, n.params.elicitationId);
    });
    return client;
  }

  /** `written` is the entry before `${VAR}` expansion: the only form messages may quote. */
  private async connect(name: string, entry: ServerConfig, written: ServerConfig, hide: (text: string) => string): Promise<ConnectedServer> {
    const client = this.buildClient(name);
    let kind: ConnectedServer['kind'];
    if (isHttpServer(entry)) {
      kind = 'http';
      await this.connectHttp(name, entry, isHttpServer(written) ? written : entry, client);
    } else {
      kind = 'stdio';
      await this.connectStdio(name, entry, isHttpServer(written) ? entry : written, client, hide);
    }
    try {
      const tools: Tool[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor ? { cursor } : undefined);
        tools.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor);
      return { name, kind, client, tools, protocolVersion: client.getNegotiatedProtocolVersion?.() ?? 'unknown' };
    } catch (e) {
      await client.close().catch(() => {});
      throw e;
    }
  }

  private async connectStdio(
    name: string,
    entry: StdioServerConfig,
    written: StdioServerConfig,
    client: Client,
    hide: (text: string) => string,
  ): Promise<void> {
    const transport = new StdioClientTransport({ command: entry.command, args: entry.args, env: entry.env, cwd: entry.cwd, stderr: 'pipe' });
    const recent: string[] = [];
    transport.stderr?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        recent.push(line);
        if (recent.length > 8) recent.shift();
        if (this.options.showServerLogs) this.terminal.write(style.dim(this.terminal, `  ${name} │ ${sanitize(hide(line))}\n`));
      }
    });
    try {
      await client.connect(transport, { timeout: 60_000 });
    } catch (e) {
      await transport.close().catch(() => {});
      const reason = e instanceof Error ? e.message : String(e);
      const tail = recent.length ? `; its last output: ${recent.slice(-3).join(' | ').slice(0, 400)}` : '';
      // The command line as written in the config: `${VAR}` stays unexpanded, so a key passed in args is not shown.
      throw new Error(`could not start "${[written.command, ...(written.args ?? [])].join(' ')}" (${reason})${tail}`);
    }
  }

  private async connectHttp(name: string, entry: HttpServerConfig, written: HttpServerConfig, client: Client): Promise<void> {
    let url: URL;
    try {
      url = new URL(entry.url);
    } catch {
      throw new Error(`"url" is not a valid URL: ${written.url}`);
    }
    const headers = entry.headers ?? {};
    const staticAuth = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
    let provider: LoopbackOAuthProvider | undefined;
    if (!staticAuth && entry.oauth !== false) {
      const settings = entry.oauth || {};
      const key = url.href;
      const registered = this.tokenFile.get(key).clientInformation as { redirect_uris?: string[] } | undefined;
      const registeredPort = Number(new URL(registered?.redirect_uris?.[0] ?? 'http://x').port) || undefined;
      const port = settings.callbackPort ?? registeredPort ?? (await freeLoopbackPort());
      provider = new LoopbackOAuthProvider(name, key, this.tokenFile, port, settings);
    }
    const make = () => new StreamableHTTPClientTransport(url, { requestInit: { headers }, ...(provider ? { authProvider: provider } : {}) });
    let transport = make();
    try {
      await client.connect(transport, { timeout: 60_000 });
    } catch (e) {
      if (!provider || !(e instanceof UnauthorizedError)) {
        if (staticAuth && /401|unauthori[sz]ed/i.test(String(e))) throw new Error(`the server refused the credentials in "headers" (HTTP 401); check the key`);
        throw new Error(`could not connect to ${url.origin}${url.pathname} (${e instanceof Error ? e.message : String(e)})`);
      }
      const first = transport;
      const ok = await this.prompts.run(() => loginWithBrowser({ consent: this.options.consent, provider, finishAuth: (p) => first.finishAuth(p) }));
      if (!ok) throw new Error('it requires sign-in (OAuth), which did not complete');
      transport = make();
      await client.connect(transport, { timeout: 60_000 });
    }
  }

  /** -32042: the same consent screen per elicitation, then wait for completion (or Enter). */
  private async fulfilThrownElicitations(server: string, elicitations: Array<{ url: string; message?: string; elicitationId?: string }>): Promise<boolean> {
    const ids: string[] = [];
    for (const el of elicitations) {
      const { action } = await this.elicitation.handle(server, el);
      if (action !== 'accept') return false;
      if (el.elicitationId) ids.push(el.elicitationId);
    }
    const enter = new AbortController();
    const manual = this.terminal.interactive
      ? this.terminal
          .ask('   Press Enter once you are done in the browser (the chat also continues by itself when the server confirms). ', enter.signal)
          .then(() => enter.abort())
      : undefined;
    await this.elicitation.waitFor(server, ids, this.options.authWaitMs ?? 10 * 60_000, enter.signal);
    enter.abort();
    await manual?.catch(() => {});
    return true;
  }
}

/**
 * Hides, in text about a server, the values its config took from the environment (shown as `${VAR}` again) and the
 * values of its env entries, headers and client secret (shown as ***). Values shorter than 4 characters are left alone.
 */
export function redactor(server: ResolvedServer): (text: string) => string {
  const entry = server.entry;
  const pairs: Array<[string, string]> = [...(server.substituted ?? new Map<string, string>())].map(([name, value]) => [value, `\${${name}}`]);
  const literal = isHttpServer(entry)
    ? [...Object.values(entry.headers ?? {}), ...(entry.oauth ? [entry.oauth.clientSecret ?? ''] : [])]
    : Object.values(entry.env ?? {});
  for (const value of literal) pairs.push([value, '***']);
  const hidden = pairs.filter(([value]) => value.length >= 4).sort(([a], [b]) => b.length - a.length);
  return (text) => hidden.reduce((t, [value, shown]) => t.split(value).join(shown), text);
}

function urlElicitationsOf(e: unknown): Array<{ url: string; message?: string; elicitationId?: string }> | undefined {
  const err = e as { code?: number; data?: { elicitations?: unknown } };
  if (err?.code !== -32042 || !Array.isArray(err.data?.elicitations)) return undefined;
  const list = (err.data.elicitations as Array<{ mode?: string; url?: unknown; message?: unknown; elicitationId?: unknown }>).filter(
    (x) => x?.mode === 'url' && typeof x.url === 'string',
  );
  return list.length
    ? list.map((x) => ({
        url: x.url as string,
        message: typeof x.message === 'string' ? x.message : undefined,
        elicitationId: typeof x.elicitationId === 'string' ? x.elicitationId : undefined,
      }))
    : undefined;
}

/** The text the model sees: text blocks; other blocks by kind only. structuredContent is never passed on. */
export function resultText(result: CallToolResult): string {
  const parts = (result.content ?? []).map((block) => {
    switch (block.type) {
      case 'text':
        return block.text;
      case 'resource_link':
        return `[resource: ${block.name} ${block.uri}]`;
      case 'resource':
        return 'text' in block.resource ? block.resource.text : `[binary resource ${block.resource.uri}]`;
      default:
        return `[${block.type} content omitted]`;
    }
  });
  const text = parts.join('\n').trim() || (result.isError ? 'The tool failed without a message.' : 'The tool returned no text.');
  return text.length > 20_000 ? `${text.slice(0, 20_000)}\n…(truncated)` : text;
}
