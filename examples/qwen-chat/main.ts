#!/usr/bin/env node
/**
 * qwen-chat: chat with Qwen (DashScope, OpenAI-compatible API) in a terminal, with tools from several MCP servers,
 * among them this project's DingTalk writer. See docs/qwen-chat.md.
 *
 *   node dist/examples/qwen-chat/main.js --sandbox --yes         the whole flow against emulators, scripted
 *   node dist/examples/qwen-chat/main.js --sandbox               the same, you type and approve
 *   node dist/examples/qwen-chat/main.js --config mcp.json       real DashScope (DASHSCOPE_API_KEY) and real servers
 */
import { parseArgs } from 'node:util';
import { followAuthorizationLink } from '../shared/browser.js';
import { ChatSession, confirmInTerminal, DEFAULT_MAX_TOOL_ROUNDS } from './chat.js';
import { ConfigFileError, readConfigFile, type ResolvedServer } from './config.js';
import { DashScopeClient, DashScopeError, DEFAULT_BASE_URL, DEFAULT_MODEL } from './dashscope.js';
import type { Opener } from './elicitation.js';
import { McpHub } from './mcp-hub.js';
import { DEFAULT_TOKEN_FILE, TokenFile } from './oauth.js';
import { startChatSandbox, type ChatSandbox } from './sandbox.js';
import { processTerminal, sanitize, style } from './terminal.js';

const USAGE = `qwen-chat: chat with Qwen (DashScope) using tools from several MCP servers.

Usage: node dist/examples/qwen-chat/main.js [options]

  --sandbox              emulated DashScope, Agent Identity, DingTalk and a stand-in billing MCP service (no account)
  --yes                  answer consent prompts with yes and exit after the scripted messages (in --sandbox,
                         a scripted browser plays you on the emulated consent page; without --sandbox it implies
                         --no-browser: links are printed for you to open, never opened for you)
  --message <text>       send this first (repeatable); --sandbox --yes sends a sample request when none is given
  --config <file>        mcpServers JSON (default: mcp.json); see examples/qwen-chat/mcp.example.json
  --model <id>           default $DASHSCOPE_MODEL or ${DEFAULT_MODEL}
  --base-url <url>       default $DASHSCOPE_BASE_URL or ${DEFAULT_BASE_URL}
                         (Singapore: https://dashscope-intl.aliyuncs.com/compatible-mode/v1)
  --no-browser           never start a browser: print links to open yourself
  --no-stream            non-streaming calls (sends enable_thinking:false to Qwen models)
  --era <2025|2026>      MCP protocol: 2026 negotiates 2026-07-28 when offered (default), 2025 speaks 2025-11-25
  --max-tool-rounds <n>  tool rounds per message (default ${DEFAULT_MAX_TOOL_ROUNDS})
  --token-file <file>    where OAuth tokens for MCP servers are kept, mode 0600 (default ${DEFAULT_TOKEN_FILE})
  --verbose              show the MCP servers' logs
  -h, --help

Environment: DASHSCOPE_API_KEY (required unless --sandbox), DASHSCOPE_BASE_URL, DASHSCOPE_MODEL, and whatever
your config references as \${VAR}. In the chat: /tools lists tools, /exit quits.
`;

export const SANDBOX_SAMPLE_MESSAGE = (link: string) => `Write last month's ECS costs into ${link} as a short table.`;

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      sandbox: { type: 'boolean' },
      yes: { type: 'boolean' },
      message: { type: 'string', multiple: true },
      config: { type: 'string' },
      model: { type: 'string' },
      'base-url': { type: 'string' },
      'no-browser': { type: 'boolean' },
      'no-stream': { type: 'boolean' },
      era: { type: 'string' },
      'max-tool-rounds': { type: 'string' },
      'token-file': { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (e) {
    throw new ConfigFileError(`${e instanceof Error ? e.message : String(e)}. Run with --help for the options.`);
  }
  const { values } = parsed;

  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const terminal = processTerminal();
  const say = (s = '') => terminal.write(`${s}\n`);
  const maxToolRounds = values['max-tool-rounds'] ? Number(values['max-tool-rounds']) : DEFAULT_MAX_TOOL_ROUNDS;
  if (!Number.isInteger(maxToolRounds) || maxToolRounds < 1) throw new ConfigFileError('--max-tool-rounds must be a positive integer');
  if (values.era && !['2025', '2026'].includes(values.era)) throw new ConfigFileError('--era must be 2025 or 2026');

  let sandbox: ChatSandbox | undefined;
  let servers: ResolvedServer[];
  let apiKey = process.env.DASHSCOPE_API_KEY;
  let baseUrl = values['base-url'] || process.env.DASHSCOPE_BASE_URL || DEFAULT_BASE_URL;
  let opener: Opener | undefined;
  const messages = [...(values.message ?? [])];

  if (values.sandbox) {
    sandbox = await startChatSandbox();
    servers = sandbox.servers;
    apiKey = sandbox.dashscope.apiKey;
    baseUrl = sandbox.dashscope.baseUrl;
    say(
      style.bold(terminal, 'Sandbox') +
        style.dim(
          terminal,
          ': emulated DashScope ("Qwen" follows scripted rules), Agent Identity, DingTalk, and a stand-in billing MCP service, all on 127.0.0.1.',
        ),
    );
    say(style.dim(terminal, `  DashScope: ${baseUrl}`));
    say(style.dim(terminal, `  Document:  ${sandbox.documentLink}  (view: ${sandbox.upstream.documentViewerUrl(sandbox.upstream.sampleDocumentId)})`));
    if (values.yes) {
      // Like a real browser, the scripted one runs on its own: the chat continues when the server confirms.
      opener = async (url) => {
        void followAuthorizationLink(url, { decision: 'allow' }).catch((e: unknown) => say(style.error(terminal, `   scripted browser failed: ${String(e)}`)));
        return '(sandbox --yes: a scripted browser opens the link and chooses Allow on the emulated DingTalk page)';
      };
      if (messages.length === 0) messages.push(SANDBOX_SAMPLE_MESSAGE(sandbox.documentLink));
    }
  } else {
    servers = readConfigFile(values.config ?? 'mcp.json');
    if (!apiKey) {
      // Say it before starting any server: nothing works without a key.
      throw new DashScopeError(
        `DASHSCOPE_API_KEY is not set. Create an API key in the Model Studio (百炼) console for the region of your base URL (${baseUrl}) ` +
          'and export DASHSCOPE_API_KEY=sk-..., or run with --sandbox to try everything without a key.',
      );
    }
  }

  const llm = new DashScopeClient({
    apiKey,
    baseUrl,
    model: values.model || process.env.DASHSCOPE_MODEL || DEFAULT_MODEL,
    onRetry: ({ attempt, delayMs, reason }) => say(style.warn(terminal, `  (DashScope: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s)`)),
  });
  // --yes outside the sandbox never starts a browser: a configured server could otherwise get any https link opened
  // without anyone agreeing (MCP client rule: no opening without explicit consent). It prints the link instead.
  const yesPrintsOnly = values.yes === true && !values.sandbox;
  if (yesPrintsOnly && !values['no-browser']) say(style.dim(terminal, '--yes without --sandbox: links are printed for you to open; no browser is started.'));
  const hub = new McpHub({
    consent: { terminal, autoApprove: values.yes, openBrowser: !values['no-browser'] && !yesPrintsOnly, opener },
    era: values.era === '2025' ? 'legacy' : 'auto',
    tokenFile: new TokenFile(values['token-file'] ?? DEFAULT_TOKEN_FILE),
    showServerLogs: values.verbose,
  });

  let failed = false;
  try {
    say(style.dim(terminal, `Connecting to ${servers.length} MCP server(s)…`));
    await hub.connectAll(servers);
    if (hub.servers.size === 0) say(style.warn(terminal, 'No MCP server is available: Qwen will answer without tools.'));
    say(style.dim(terminal, `Model ${llm.model} at ${llm.baseUrl}. Type /exit to quit.`));

    // A tool that may change or delete data runs only after a yes (--yes answers it, and says so).
    const observer = { confirmToolCall: confirmInTerminal(terminal, values.yes === true) };
    const session = new ChatSession({ llm, hub, terminal, maxToolRounds, noStream: values['no-stream'], observer });
    let inFlight: AbortController | undefined;
    process.on('SIGINT', () => {
      if (inFlight && !inFlight.signal.aborted) {
        inFlight.abort();
        say(style.warn(terminal, '\n  (cancelled; Ctrl+C again to quit)'));
      } else process.exit(130);
    });
    const turn = async (text: string): Promise<boolean> => {
      inFlight = new AbortController();
      try {
        const result = await session.send(text, inFlight.signal);
        if (result.stoppedEarly) say(style.warn(terminal, `  (stopped after ${maxToolRounds} tool rounds)`));
        return !result.toolCalls.some((c) => c.isError);
      } catch (e) {
        if (inFlight.signal.aborted) return false;
        say(style.error(terminal, `\n✗ ${e instanceof DashScopeError ? e.message : `Unexpected error: ${e instanceof Error ? e.message : String(e)}`}`));
        // Keep the history valid: drop the unanswered user message.
        if (session.messages.at(-1)?.role === 'user') session.messages.pop();
        return false;
      } finally {
        inFlight = undefined;
      }
    };

    for (const text of messages) {
      say(`\n${style.bold(terminal, 'you ›')} ${sanitize(text)}`);
      if (!(await turn(text))) failed = true;
    }
    if (!values.yes) {
      if (messages.length === 0 && sandbox) say(style.dim(terminal, `Try: ${SANDBOX_SAMPLE_MESSAGE(sandbox.documentLink)}`));
      for (;;) {
        const line = await terminal.ask(`\n${style.bold(terminal, 'you ›')} `);
        if (line === undefined || line.trim() === '/exit' || line.trim() === '/quit') break;
        if (!line.trim()) continue;
        if (line.trim() === '/tools') {
          for (const t of hub.toolSpecs()) say(`  ${t.function.name}  ${style.dim(terminal, t.function.description ?? '')}`);
          continue;
        }
        await turn(line);
      }
    }
    if (sandbox) {
      const doc = sandbox.upstream.dingtalk.getDocument(sandbox.upstream.sampleDocumentId);
      say();
      say(style.bold(terminal, 'The emulated DingTalk document now holds:'));
      say(
        (doc?.content ?? '(missing)')
          .split('\n')
          .map((l) => `  │ ${l}`)
          .join('\n'),
      );
    }
  } finally {
    terminal.close();
    await hub.close();
    await sandbox?.close();
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const message = e instanceof ConfigFileError || e instanceof DashScopeError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`qwen-chat: ${message}\n`);
    process.exit(2);
  },
);
