#!/usr/bin/env node
/**
 * The Qwen chat in a browser. See docs/web-chat.md.
 *
 *   node dist/examples/qwen-chat/web/main.js --sandbox               everything emulated (npm run demo:web)
 *   node dist/examples/qwen-chat/web/main.js --config mcp.json --client-id <id>   real DashScope and MCP servers
 */
import { parseArgs } from 'node:util';
import { ConfigFileError, isHttpServer, readConfigFile, type ResolvedServer } from '../config.js';
import { DashScopeClient, DashScopeError, DEFAULT_BASE_URL, DEFAULT_MODEL } from '../dashscope.js';
import { startWebSandbox, type WebSandbox } from './sandbox.js';
import { startWebChat } from './server.js';
import { discoverIssuer, SignIn } from './sign-in.js';

const USAGE = `qwen-chat web: the Qwen chat in your browser, signed in as you.

Usage: node dist/examples/qwen-chat/web/main.js [options]

  --sandbox               emulated DashScope, Agent Identity, DingTalk, identity provider and billing service,
                          and this project's server in HTTP mode (no account needed)
  --port <n>              port on 127.0.0.1 (default 8090; 0 picks a free one)
  --config <file>         mcpServers JSON (default mcp.json): HTTP servers only (a stdio server would act for every
                          browser user as one identity, so it is skipped)
  --sign-in-server <name> the server whose identity provider signs people in; each user's connection to it carries
                          their own token (default: the first HTTP server without an Authorization header)
  --issuer <url>          the identity provider (default: from that server's protected-resource metadata)
  --client-id <id>        this web app's OAuth client id at the identity provider (or QWEN_WEB_CLIENT_ID); register
                          the redirect URI http://127.0.0.1:<port>/auth/callback there. Secret: QWEN_WEB_CLIENT_SECRET
  --model <id>            default $DASHSCOPE_MODEL or ${DEFAULT_MODEL}
  --base-url <url>        default $DASHSCOPE_BASE_URL or ${DEFAULT_BASE_URL}
  --era <2025|2026>       MCP protocol: 2026 negotiates 2026-07-28 when offered (default), 2025 speaks 2025-11-25
  -h, --help
`;

async function main(argv: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        sandbox: { type: 'boolean' },
        port: { type: 'string' },
        config: { type: 'string' },
        'sign-in-server': { type: 'string' },
        issuer: { type: 'string' },
        'client-id': { type: 'string' },
        model: { type: 'string' },
        'base-url': { type: 'string' },
        era: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    throw new ConfigFileError(`${(e as Error).message}. Run with --help for the options.`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const port = values.port === undefined ? 8090 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigFileError('--port must be a port number (0 picks a free one)');
  if (values.era !== undefined && values.era !== '2025' && values.era !== '2026') throw new ConfigFileError('--era must be 2025 or 2026');
  const say = (s: string) => process.stdout.write(`${s}\n`);

  let sandbox: WebSandbox | undefined;
  let servers: ResolvedServer[];
  let signInServer: string;
  let apiKey = process.env.DASHSCOPE_API_KEY;
  let baseUrl = (values['base-url'] as string | undefined) || process.env.DASHSCOPE_BASE_URL || DEFAULT_BASE_URL;
  let makeSignIn: (origin: string) => Promise<SignIn>;

  if (values.sandbox) {
    sandbox = await startWebSandbox();
    servers = sandbox.servers;
    signInServer = 'dingtalk';
    apiKey = sandbox.dashscope.apiKey;
    baseUrl = sandbox.dashscope.baseUrl;
    const box = sandbox;
    makeSignIn = async (origin) => new SignIn({ ...box.registerWebClient(`${origin}/auth/callback`), redirectUri: `${origin}/auth/callback` });
  } else {
    if (!apiKey) {
      throw new DashScopeError(
        `DASHSCOPE_API_KEY is not set. Create an API key in the Model Studio (百炼) console for the region of your base URL (${baseUrl}) and export DASHSCOPE_API_KEY=sk-..., or run with --sandbox.`,
      );
    }
    const all = readConfigFile((values.config as string | undefined) ?? 'mcp.json');
    servers = [];
    for (const s of all) {
      if (!isHttpServer(s.entry)) say(`Skipping "${s.name}": a stdio server would act for every browser user as one identity. Run it in HTTP mode.`);
      else servers.push(s);
    }
    const named = values['sign-in-server'] as string | undefined;
    const chosen = named
      ? servers.find((s) => s.name === named)
      : servers.find((s) => isHttpServer(s.entry) && !Object.keys(s.entry.headers ?? {}).some((h) => h.toLowerCase() === 'authorization'));
    if (!chosen || !isHttpServer(chosen.entry))
      throw new ConfigFileError(
        named
          ? `--sign-in-server ${named}: no HTTP server of that name in the config`
          : 'No HTTP server without an Authorization header in the config: which one should people sign in to? Add this project\'s server in HTTP mode ("url") or pass --sign-in-server.',
      );
    signInServer = chosen.name;
    const clientId = (values['client-id'] as string | undefined) || process.env.QWEN_WEB_CLIENT_ID;
    if (!clientId)
      throw new ConfigFileError(
        `--client-id (or QWEN_WEB_CLIENT_ID) is required: register this web app as an OAuth client at the identity provider "${chosen.name}" trusts, with the redirect URI http://127.0.0.1:${port || '<port>'}/auth/callback.`,
      );
    const issuer = (values.issuer as string | undefined) || (await discoverIssuer(chosen.entry.url));
    // Other servers keep their static headers; none of them may start an OAuth sign-in of its own on this machine.
    servers = servers.map((s) => (isHttpServer(s.entry) ? { ...s, entry: { ...s.entry, oauth: false as const } } : s));
    makeSignIn = async (origin) => new SignIn({ issuer, clientId, clientSecret: process.env.QWEN_WEB_CLIENT_SECRET, redirectUri: `${origin}/auth/callback` });
  }

  const llm = new DashScopeClient({ apiKey, baseUrl, model: (values.model as string | undefined) || process.env.DASHSCOPE_MODEL || DEFAULT_MODEL });
  const web = await startWebChat({
    llm,
    servers,
    signInServer,
    signIn: makeSignIn,
    port,
    era: values.era === '2025' ? 'legacy' : 'auto',
    banner: sandbox
      ? 'Sandbox: Qwen, Agent Identity, DingTalk, the sign-in and the billing service are emulated on this machine. Sign in as any test user.'
      : undefined,
  }).catch(async (e: unknown) => {
    await sandbox?.close();
    throw e;
  });
  say(`Web chat: ${web.url}`);
  if (sandbox) {
    say(`  Sign in as any test user: ${sandbox.upstream.oidc!.users.map((u) => u.name).join(', ')}.`);
    say(`  Try: Write last month's ECS costs into ${sandbox.documentLink} as a short table.`);
    say(`  The emulated document: ${sandbox.upstream.documentViewerUrl(sandbox.upstream.sampleDocumentId)}`);
  }
  say('Press Ctrl+C to stop.');
  const stop = async () => {
    await web.close();
    await sandbox?.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const message = e instanceof ConfigFileError || e instanceof DashScopeError ? e.message : e instanceof Error ? e.message : String(e);
  process.stderr.write(`qwen-chat web: ${message}\n`);
  process.exit(2);
});
