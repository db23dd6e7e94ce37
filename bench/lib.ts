/** Bench plumbing: measured server processes, light MCP clients (stdio lines, raw HTTP), statistics. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

export const PROBE = fileURLToPath(new URL('./probe.js', import.meta.url));
export const OURS = process.env.BENCH_OURS ?? fileURLToPath(new URL('../src/cli.js', import.meta.url));

// ------------------------------------------------------------------------------------------------
// Measured processes

export interface Measured {
  name: string;
  child: ChildProcess;
  /** CPU time (user + system, all threads) the process has used so far, in µs. */
  cpu(): Promise<number>;
  /** Heap in use after a forced GC, in bytes. */
  heap(): Promise<number>;
  stderr(): string;
  stop(): Promise<void>;
}

/** Spawn `node --import probe script args` with an IPC side channel for CPU and heap readings. */
export function spawnMeasured(name: string, script: string, args: string[], env: Record<string, string>, stdin: 'pipe' | 'ignore' = 'ignore'): Measured {
  // BENCH_CPU_PROF=<dir>: every measured server (the baseline too, so ratios stay fair) writes a CPU
  // profile into <dir>/<its role> when it exits.
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/${name}`] : [];
  const child = spawn(process.execPath, ['--expose-gc', ...profile, '--import', PROBE, script, ...args], { env, stdio: [stdin, 'pipe', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const ask = <T>(what: 'cpu' | 'heap', key: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: Record<string, T>) => {
        if (m && key in m) {
          child.off('message', onMessage);
          resolve(m[key]!);
        }
      };
      child.on('message', onMessage);
      if (!child.send(what)) reject(new Error(`${name}: IPC channel closed`));
    });
  return {
    name,
    child,
    cpu: () => ask<number>('cpu', 'cpuMicros'),
    heap: () => ask<number>('heap', 'heapBytes'),
    stderr: () => stderr,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ------------------------------------------------------------------------------------------------
// MCP messages

export const ENVELOPE = (capabilities: Record<string, unknown> = {}) => ({
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': capabilities,
});

export type Era = 'legacy' | 'modern';

export interface JsonRpcMessage {
  jsonrpc: '2.0';
  id?: number | string | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

export interface ToolResult {
  isError?: boolean;
  content?: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
  resultType?: string;
  inputRequests?: Record<string, { method: string; params: { url: string } }>;
  requestState?: string;
}

/** Answers a server→client request (elicitation/create): the result to send back. */
export type ServerRequestHandler = (request: JsonRpcMessage) => Promise<Record<string, unknown>>;

export function toolCall(
  id: number,
  era: Era,
  args: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  capabilities: Record<string, unknown> = {},
): JsonRpcMessage {
  const params: Record<string, unknown> = { name: 'write_dingtalk_doc', arguments: args, ...extra };
  if (era === 'modern') params._meta = ENVELOPE(capabilities);
  return { jsonrpc: '2.0', id, method: 'tools/call', params };
}

export const initialize = (id: number, capabilities: Record<string, unknown> = {}): JsonRpcMessage => ({
  jsonrpc: '2.0',
  id,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'bench', version: '1' } },
});

// ------------------------------------------------------------------------------------------------
// stdio: JSON lines over the child's stdin/stdout

export class StdioClient {
  private buffer = '';
  private nextId = 1;
  private readonly waiting = new Map<number | string, (m: JsonRpcMessage) => void>();
  onRequest?: ServerRequestHandler;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim()) this.dispatch(JSON.parse(line) as JsonRpcMessage);
      }
    });
  }

  private dispatch(m: JsonRpcMessage): void {
    if (m.method && m.id !== undefined && m.id !== null) {
      const handler = this.onRequest ?? (async () => ({ action: 'cancel' }));
      void handler(m).then((result) => this.write({ jsonrpc: '2.0', id: m.id, result }));
      return;
    }
    if (m.method) return; // notifications
    const resolve = this.waiting.get(m.id!);
    if (resolve) {
      this.waiting.delete(m.id!);
      resolve(m);
    }
  }

  private write(m: JsonRpcMessage): void {
    this.child.stdin!.write(JSON.stringify(m) + '\n');
  }

  request(make: (id: number) => JsonRpcMessage): Promise<JsonRpcMessage> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.write(make(id));
    });
  }

  notify(m: JsonRpcMessage): void {
    this.write(m);
  }

  async handshake(era: Era, capabilities: Record<string, unknown> = {}): Promise<void> {
    if (era === 'modern') return; // 2026-07-28: no handshake, every request carries the envelope
    const answer = await this.request((id) => initialize(id, capabilities));
    if (answer.error) throw new Error(`initialize failed: ${answer.error.message}`);
    this.notify({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  async call(era: Era, args: Record<string, unknown>, extra: Record<string, unknown> = {}, capabilities: Record<string, unknown> = {}): Promise<ToolResult> {
    const answer = await this.request((id) => toolCall(id, era, args, extra, capabilities));
    if (answer.error) throw new Error(`tools/call failed: ${answer.error.message}`);
    return answer.result as ToolResult;
  }
}

// ------------------------------------------------------------------------------------------------
// HTTP: raw requests over one keep-alive pool per client (each client is its own user)

export class HttpClient {
  private readonly pool: Pool;
  private nextId = 1;
  private sessionId?: string;
  onRequest?: ServerRequestHandler;

  constructor(
    readonly url: string,
    private readonly bearer: string,
    readonly era: Era,
  ) {
    this.pool = new Pool(new URL(url).origin, { connections: 3, pipelining: 1 });
  }

  private headers(method?: string): Record<string, string> {
    const h: Record<string, string> = {
      authorization: `Bearer ${this.bearer}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (this.era === 'modern') {
      h['mcp-protocol-version'] = '2026-07-28';
      if (method) h['mcp-method'] = method;
      if (method === 'tools/call') h['mcp-name'] = 'write_dingtalk_doc';
    } else if (this.sessionId) {
      h['mcp-session-id'] = this.sessionId;
      h['mcp-protocol-version'] = '2025-11-25';
    }
    return h;
  }

  /** POST one message; the answer with the same id (JSON or from an SSE stream, answering server requests on the way). */
  async post(message: JsonRpcMessage): Promise<{ status: number; message?: JsonRpcMessage; headers: Record<string, unknown> }> {
    const res = await this.pool.request({
      path: new URL(this.url).pathname,
      method: 'POST',
      headers: this.headers(message.method),
      body: JSON.stringify(message),
    });
    const type = String(res.headers['content-type'] ?? '');
    if (res.statusCode === 202 || message.id === undefined) {
      await res.body.dump();
      return { status: res.statusCode, headers: res.headers };
    }
    if (!type.startsWith('text/event-stream')) {
      const text = await res.body.text();
      return { status: res.statusCode, message: text ? (JSON.parse(text) as JsonRpcMessage) : undefined, headers: res.headers };
    }
    let answer: JsonRpcMessage | undefined;
    for await (const m of sseMessages(res.body)) {
      if (m.method && m.id !== undefined && m.id !== null) await this.answer(m);
      else if (!m.method && m.id === message.id) {
        answer = m;
        break;
      }
    }
    res.body.destroy();
    return { status: res.statusCode, message: answer, headers: res.headers };
  }

  private async answer(request: JsonRpcMessage): Promise<void> {
    const result = await (this.onRequest ?? (async () => ({ action: 'cancel' })))(request);
    await this.post({ jsonrpc: '2.0', id: request.id, result });
  }

  /**
   * 2025-11-25: open the standalone GET stream, as the SDK client does after initialize; server
   * requests not tied to a POST (our elicitation/create) arrive there.
   */
  async openStream(): Promise<void> {
    const headers = this.headers();
    delete headers['content-type'];
    headers.accept = 'text/event-stream';
    const res = await this.pool.request({ path: new URL(this.url).pathname, method: 'GET', headers });
    this.stream = res.body;
    void (async () => {
      try {
        for await (const m of sseMessages(res.body)) if (m.method && m.id !== undefined && m.id !== null) await this.answer(m);
      } catch {
        // closed
      }
    })();
  }
  private stream?: { destroy(): unknown };

  async handshake(capabilities: Record<string, unknown> = {}): Promise<void> {
    if (this.era === 'modern') return;
    const answer = await this.post(initialize(this.nextId++, capabilities));
    if (answer.status !== 200 || answer.message?.error) throw new Error(`initialize failed: HTTP ${answer.status} ${JSON.stringify(answer.message)}`);
    this.sessionId = String(answer.headers['mcp-session-id']);
    await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  async call(args: Record<string, unknown>, extra: Record<string, unknown> = {}, capabilities: Record<string, unknown> = {}): Promise<ToolResult> {
    const answer = await this.post(toolCall(this.nextId++, this.era, args, extra, capabilities));
    if (answer.status !== 200 || !answer.message || answer.message.error)
      throw new Error(`tools/call failed: HTTP ${answer.status} ${JSON.stringify(answer.message)}`);
    return answer.message.result as ToolResult;
  }

  close(): Promise<void> {
    this.stream?.destroy();
    return this.pool.close();
  }
}

/** The JSON-RPC messages of an SSE body, as they arrive. */
async function* sseMessages(body: AsyncIterable<Buffer>): AsyncGenerator<JsonRpcMessage> {
  let buffer = '';
  for await (const chunk of body) {
    buffer += chunk.toString();
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (data) yield JSON.parse(data) as JsonRpcMessage;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Statistics

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** "median (min–max)" of per-round values. */
export function spread(xs: number[], digits = 2): string {
  if (xs.length === 0) return 'n/a';
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}
