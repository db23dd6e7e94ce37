/**
 * What the web chat's back end adds to one chat turn. The same turn ("call billing__query_monthly_costs {}": the
 * scripted model calls the billing stand-in, then answers) is run N times:
 *   baseline: the terminal chat's core (ChatSession + McpHub) in process, with the same user's bearer token;
 *   web:      the page's path: POST /api/chat (origin + CSRF checks), the per-user chat, events on /api/events until
 *             the turn ends.
 * Both talk to the same emulated DashScope and MCP servers in this run; the ratio is the web layer's cost.
 * Run: npm run build && node dist/bench/web-chat-turn.js
 */
import { ChatSession } from '../examples/qwen-chat/chat.js';
import { DashScopeClient } from '../examples/qwen-chat/dashscope.js';
import { McpHub } from '../examples/qwen-chat/mcp-hub.js';
import { scriptedTerminal } from '../examples/qwen-chat/terminal.js';
import { startWebSandbox } from '../examples/qwen-chat/web/sandbox.js';
import { startWebChat } from '../examples/qwen-chat/web/server.js';
import { SignIn } from '../examples/qwen-chat/web/sign-in.js';
import { followAuthorizationLink } from '../examples/shared/browser.js';

const TURNS = Number(process.env.BENCH_TURNS ?? 100);
const MESSAGE = 'call billing__query_monthly_costs {}';

async function main(): Promise<void> {
  const sandbox = await startWebSandbox();
  const llm = new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl });
  const web = await startWebChat({
    llm,
    servers: sandbox.servers,
    signInServer: 'dingtalk',
    signIn: async (o) => new SignIn({ ...sandbox.registerWebClient(`${o}/auth/callback`), redirectUri: `${o}/auth/callback` }),
    port: 0,
    limits: { messagesPerMinute: 1_000_000 },
    log: () => {},
  });
  const origin = new URL(web.url).origin;

  // Sign in as a browser would.
  const first = await fetch(`${origin}/api/session`);
  const cookies = new Map<string, string>();
  const [pair] = first.headers.getSetCookie()[0]!.split(';');
  cookies.set('qwc_session', pair!.slice(pair!.indexOf('=') + 1));
  let csrf = ((await first.json()) as { csrf: string }).csrf;
  const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const post = (path: string, body: unknown) =>
    fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', 'x-csrf-token': csrf, cookie: cookie() },
      body: JSON.stringify(body),
    });
  const { url } = (await (await post('/auth/login', {})).json()) as { url: string };
  await followAuthorizationLink(url, { oidcSub: 'alice-1001', cookies });
  csrf = ((await (await fetch(`${origin}/api/session`, { headers: { cookie: cookie() } })).json()) as { csrf: string }).csrf;

  // The page's event stream: resolve each turn when the back end reports it is no longer busy.
  let turnEnded: (() => void) | undefined;
  const stream = await fetch(`${origin}/api/events`, { headers: { cookie: cookie() } });
  const reader = stream.body!.getReader();
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line === 'data: {"type":"busy","busy":false}') turnEnded?.();
      }
    }
  })();
  const webTurn = async () => {
    const ended = new Promise<void>((r) => (turnEnded = r));
    const res = await post('/api/chat', { message: MESSAGE });
    if (res.status !== 202) throw new Error(`POST /api/chat answered ${res.status}`);
    await ended;
  };

  // Baseline: the same user's token, the terminal chat's core, no web layer.
  const token = web.heldSecrets()[0]!;
  const hub = new McpHub({ consent: { terminal: scriptedTerminal() } });
  await hub.connectAll(
    sandbox.servers.map((s) =>
      s.name === 'dingtalk' && 'url' in s.entry ? { ...s, entry: { ...s.entry, headers: { Authorization: `Bearer ${token}` }, oauth: false as const } } : s,
    ),
  );
  const session = new ChatSession({ llm, hub, terminal: scriptedTerminal() });
  const directTurn = async () => {
    const r = await session.send(MESSAGE);
    if (r.toolCalls[0]?.isError !== false) throw new Error('the baseline tool call failed');
  };

  const time = async (fn: () => Promise<unknown>) => {
    for (let i = 0; i < 10; i++) await fn(); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < TURNS; i++) await fn();
    return Number(process.hrtime.bigint() - started) / 1e6 / TURNS;
  };
  const baseline = await time(directTurn);
  const ours = await time(webTurn);
  process.stdout.write(
    `one chat turn (two DashScope calls and one MCP tool call), mean of ${TURNS} sequential turns:\n` +
      `  baseline (ChatSession + McpHub in process)      ${baseline.toFixed(2)} ms\n` +
      `  web chat (POST /api/chat → events until idle)   ${ours.toFixed(2)} ms\n` +
      `  ratio                                           ${(ours / baseline).toFixed(2)}x\n`,
  );
  await reader.cancel().catch(() => {});
  await hub.close();
  await web.close();
  await sandbox.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
