/**
 * The Qwen chat's MCP side: several servers at once (this one over stdio, a stand-in over HTTP with a Bearer key),
 * tool-name prefixing and routing, failed servers reported while the others work, the config file, the URL
 * consent screen, and a thrown -32042 (2025-11-25 URLElicitationRequiredError).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer, UrlElicitationRequiredError } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/v4';
import { ChatSession } from '../../examples/qwen-chat/chat.js';
import { parseConfig } from '../../examples/qwen-chat/config.js';
import { DashScopeClient } from '../../examples/qwen-chat/dashscope.js';
import { askToOpen, checkUrl, formatUrl, UrlElicitationHandler } from '../../examples/qwen-chat/elicitation.js';
import { exposedToolName, McpHub, MAX_FUNCTION_NAME } from '../../examples/qwen-chat/mcp-hub.js';
import { TokenFile } from '../../examples/qwen-chat/oauth.js';
import { startChatSandbox, type ChatSandbox } from '../../examples/qwen-chat/sandbox.js';
import { sanitize, scriptedTerminal, type Terminal } from '../../examples/qwen-chat/terminal.js';
import '../helpers/stack.js';

const unusedTokens = new TokenFile('/nonexistent/qwen-chat-test/oauth.json');

/** Both servers' tools as the model sees them: the billing tool and every DingTalk document tool. */
const ALL_TOOL_NAMES = [
  'billing__query_monthly_costs',
  ...['append', 'create', 'write'].map((v) => `dingtalk__${v}_dingtalk_doc`),
  'dingtalk__get_dingtalk_account',
  'dingtalk__get_dingtalk_doc_info',
  'dingtalk__list_dingtalk_folder',
  'dingtalk__read_dingtalk_doc',
  'dingtalk__search_dingtalk_docs',
].sort();

describe('two servers, and some that fail', () => {
  let sandbox: ChatSandbox;
  let hub: McpHub;
  let terminal: ReturnType<typeof scriptedTerminal>;
  beforeAll(async () => {
    sandbox = await startChatSandbox();
    terminal = scriptedTerminal(['n']);
    hub = new McpHub({ consent: { terminal, opener: async () => expect.fail('nothing should be opened') }, tokenFile: unusedTokens });
    const broken = parseConfig(
      JSON.stringify({
        mcpServers: {
          crashes: { command: process.execPath, args: ['-e', 'process.stderr.write("boom: a required setting is missing\\n"); process.exit(3)'] },
          'not-installed': { command: '/nonexistent/mcp-server-binary' },
          'wrong-key': { url: sandbox.billing.url, headers: { Authorization: 'Bearer sk-wrong' } },
          'no-key': { url: sandbox.billing.url, headers: { Authorization: 'Bearer ${QWEN_CHAT_TEST_UNSET_KEY}' } },
          skipped: { command: 'whatever', disabled: true },
        },
      }),
      {},
    );
    await hub.connectAll([...sandbox.servers, ...broken]);
  });
  afterAll(async () => {
    await hub.close();
    await sandbox.close();
  });

  it('connects the working servers and reports each failed one with its reason', () => {
    expect([...hub.servers.keys()].sort()).toEqual(['billing', 'dingtalk']);
    const failures = Object.fromEntries(hub.failures.map((f) => [f.server, f.error]));
    expect(Object.keys(failures).sort()).toEqual(['crashes', 'no-key', 'not-installed', 'wrong-key']);
    expect(failures.crashes).toMatch(/could not start ".*" \(.*\); its last output: boom: a required setting is missing/);
    expect(failures['not-installed']).toMatch(/could not start "\/nonexistent\/mcp-server-binary"/);
    expect(failures['wrong-key']).toMatch(/refused the credentials in "headers" \(HTTP 401\)/);
    expect(failures['no-key']).toBe('its config uses ${QWEN_CHAT_TEST_UNSET_KEY}, not set in the environment');
    const out = terminal.output.join('');
    expect(out).toContain('✓ dingtalk: stdio');
    expect(out).toContain('✓ billing: http');
    expect(out).toContain('✗ crashes: not available');
  });

  it('offers every tool with a server prefix and routes each call to its server', async () => {
    expect(
      hub
        .toolSpecs()
        .map((t) => t.function.name)
        .sort(),
    ).toEqual(ALL_TOOL_NAMES);
    expect(hub.toolSpecs().find((t) => t.function.name === 'billing__query_monthly_costs')?.function.description).toMatch(/^\[billing\] /);
    expect(hub.route('dingtalk__write_dingtalk_doc')).toMatchObject({ server: 'dingtalk', tool: { name: 'write_dingtalk_doc' } });

    const llm = new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl, retryBaseDelayMs: 1 });
    const session = new ChatSession({ llm, hub, terminal });
    const overwrites = () => sandbox.upstream.dingtalk.requests.filter((r) => r.api === 'overwriteContent').length;
    const writesBefore = overwrites();
    const result = await session.send('call billing__query_monthly_costs {"month":"2026-03"}');
    expect(result.toolCalls).toMatchObject([{ name: 'billing__query_monthly_costs', server: 'billing', isError: false }]);
    expect(sandbox.billing.calls).toEqual([{ tool: 'query_monthly_costs', month: '2026-03' }]);
    expect(result.answer).toContain('ECS costs for 2026-03');
    expect(overwrites()).toBe(writesBefore);
    // The model's tools in that request were exactly the prefixed ones.
    const sent = sandbox.dashscope.requests.at(-1)!.body as { tools: Array<{ function: { name: string } }> };
    expect(sent.tools.map((t) => t.function.name).sort()).toEqual(ALL_TOOL_NAMES);
  });

  it('the tool loop is bounded: after the limit Qwen gets no tools and must answer', async () => {
    const { startDashScopeEmulator } = await import('../../examples/shared/dashscope-emulator.js');
    const stubborn = await startDashScopeEmulator({
      rules: [(ctx) => (ctx.tools.length ? { toolCalls: [{ name: 'billing__query_monthly_costs', arguments: {} }] } : { content: 'Giving up on tools.' })],
    });
    try {
      const llm = new DashScopeClient({ apiKey: stubborn.apiKey, baseUrl: stubborn.baseUrl, retryBaseDelayMs: 1 });
      const session = new ChatSession({ llm, hub, terminal, maxToolRounds: 2 });
      const callsBefore = sandbox.billing.calls.length;
      const result = await session.send('loop forever');
      expect(result.toolCalls).toHaveLength(2);
      expect(sandbox.billing.calls.length - callsBefore).toBe(2);
      expect(result.answer).toBe('Giving up on tools.');
      expect(stubborn.requests).toHaveLength(3);
      expect(stubborn.requests.at(-1)!.body!.tools).toBeUndefined();
    } finally {
      await stubborn.close();
    }
  });

  it('an unknown tool name and bad arguments become tool errors the model can read, not crashes', async () => {
    expect(await hub.callTool('nope__tool', {})).toMatchObject({ isError: true, text: expect.stringMatching(/Unknown tool "nope__tool"/) });
    const bad = await hub.callTool('billing__query_monthly_costs', { month: 'March' });
    expect(bad.isError).toBe(true);
    expect(bad.server).toBe('billing');
  });
});

describe('secrets in failure reports', () => {
  it('a stdio server that fails to start is reported with its command as written; no expanded value is printed', async () => {
    const secret = 'sk-live-SUPERSECRET';
    const terminal = scriptedTerminal([]);
    const hub = new McpHub({ consent: { terminal }, tokenFile: unusedTokens, showServerLogs: true });
    const servers = parseConfig(
      JSON.stringify({
        mcpServers: {
          // Echoes its arguments and environment, as a failing server often does, then exits.
          leaky: {
            command: process.execPath,
            args: [
              '-e',
              'process.stderr.write(`bad key ${process.argv.at(-1)} / ${process.env.API_KEY} / ${process.env.OTHER}\\n`); process.exit(3)',
              'key=${QWEN_CHAT_TEST_SECRET}',
            ],
            env: { API_KEY: '${QWEN_CHAT_TEST_SECRET}', OTHER: 'literal-secret-in-env' },
          },
          'bad-url': { url: 'https://${QWEN_CHAT_TEST_SECRET}@/mcp', headers: { Authorization: 'Bearer ${QWEN_CHAT_TEST_SECRET}' } },
        },
      }),
      { QWEN_CHAT_TEST_SECRET: secret },
    );
    try {
      await hub.connectAll(servers);
    } finally {
      await hub.close();
    }
    const failures = Object.fromEntries(hub.failures.map((f) => [f.server, f.error]));
    expect(failures.leaky).toContain('key=${QWEN_CHAT_TEST_SECRET}"');
    expect(failures.leaky).toContain('its last output: bad key key=${QWEN_CHAT_TEST_SECRET} / ${QWEN_CHAT_TEST_SECRET} / ***');
    expect(failures['bad-url']).toBe('"url" is not a valid URL: https://${QWEN_CHAT_TEST_SECRET}@/mcp');
    const shown = [...hub.failures.map((f) => f.error), ...terminal.output].join('\n');
    expect(shown).toContain('✗ leaky: not available');
    expect(shown).not.toContain('SUPERSECRET');
    expect(shown).not.toContain('literal-secret-in-env');
  });
});

describe('tool names', () => {
  it('prefixes, sanitizes, and keeps within 64 characters with a stable hash', () => {
    expect(exposedToolName('dingtalk', 'write_dingtalk_doc')).toBe('dingtalk__write_dingtalk_doc');
    expect(exposedToolName('my server', 'ns.tool/x')).toBe('my_server__ns_tool_x');
    const a = exposedToolName('alibaba-cloud-openapi-mcp-server', 'DescribeInstancesWithAVeryLongOperationNameA');
    const b = exposedToolName('alibaba-cloud-openapi-mcp-server', 'DescribeInstancesWithAVeryLongOperationNameB');
    expect(a.length).toBeLessThanOrEqual(MAX_FUNCTION_NAME);
    expect(a).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(exposedToolName('alibaba-cloud-openapi-mcp-server', 'DescribeInstancesWithAVeryLongOperationNameA')).toBe(a);
  });
});

describe('config', () => {
  it('reads mcpServers, expands ${VAR}, drops unset optional stdio env entries, and reports missing ones', () => {
    const servers = parseConfig(
      JSON.stringify({
        mcpServers: {
          local: { command: 'node', args: ['x.js', '--user=${USER_NAME}'], env: { A: '${SET}', B: '${UNSET}', C: 'prefix-${UNSET}' } },
          remote: { url: 'https://dashscope.aliyuncs.com/api/v1/mcps/WebSearch/mcp', headers: { Authorization: 'Bearer ${KEY}' } },
        },
      }),
      { SET: 'yes', USER_NAME: 'alice', KEY: 'sk-1' },
    );
    expect(servers).toMatchObject([
      { name: 'local', missing: ['UNSET'], entry: { command: 'node', args: ['x.js', '--user=alice'], env: { A: 'yes', C: 'prefix-' } } },
      { name: 'remote', missing: [], entry: { url: 'https://dashscope.aliyuncs.com/api/v1/mcps/WebSearch/mcp', headers: { Authorization: 'Bearer sk-1' } } },
    ]);
    expect(servers.map((s) => s.entry)).toEqual([
      { command: 'node', args: ['x.js', '--user=alice'], env: { A: 'yes', C: 'prefix-' } },
      { url: 'https://dashscope.aliyuncs.com/api/v1/mcps/WebSearch/mcp', headers: { Authorization: 'Bearer sk-1' } },
    ]);
    expect(servers[0]!.written).toMatchObject({ args: ['x.js', '--user=${USER_NAME}'] });
    expect(() => parseConfig('{"servers":{}}')).toThrow(/not an "mcpServers" config/);
    expect(() => parseConfig('{oops')).toThrow(/not valid JSON/);
  });
});

describe('the URL consent screen', () => {
  it('refuses non-https remote links, script URLs and disguised hosts; warns on punycode', () => {
    expect(checkUrl('javascript:alert(1)').ok).toBe(false);
    expect(checkUrl('http://evil.example.com/connect').reason).toMatch(/only https/);
    expect(checkUrl('https://alidocs.dingtalk.com@evil.example/x').reason).toMatch(/user name or password/);
    expect(checkUrl('https://xn--dngtalk-9ya.com/login').warnings.join()).toMatch(/punycode/);
    expect(checkUrl('https://例子.测试/').warnings.join()).toMatch(/punycode/);
    expect(checkUrl('https://login.dingtalk.com/oauth2/auth?x=1')).toMatchObject({ ok: true, warnings: [] });
    expect(checkUrl('http://127.0.0.1:8090/connect/abc').ok).toBe(true);
  });

  it('shows the full URL with the host highlighted', () => {
    const colored: Terminal = { ...scriptedTerminal(), color: true };
    expect(formatUrl(colored, new URL('https://login.dingtalk.com:8443/oauth2/auth?state=x#f'))).toBe(
      'https://\x1b[1;4;33mlogin.dingtalk.com:8443\x1b[0m/oauth2/auth?state=x#f',
    );
  });

  it('default answer is No; --no-browser prints the link instead of opening it; server text is sanitized', async () => {
    const opened: string[] = [];
    const opener = async (u: string) => void opened.push(u);
    const url = 'https://alidocs.dingtalk.com/connect/abc';

    const enter = scriptedTerminal(['']);
    expect(await askToOpen({ terminal: enter, opener }, { server: 'x', url, message: 'please \x1b[31mclick\x1b[0m', purpose: 'asks' })).toBe('decline');
    expect(enter.output.join('')).toContain('please click');
    expect(enter.output.join('')).not.toContain('\x1b[31m');

    const print = scriptedTerminal(['y']);
    expect(await askToOpen({ terminal: print, opener, openBrowser: false }, { server: 'x', url, purpose: 'asks' })).toBe('accept');
    expect(print.output.join('')).toContain(`Open it yourself (--no-browser): ${url}`);
    expect(opened).toEqual([]);

    const refused = scriptedTerminal(['y']);
    expect(await askToOpen({ terminal: refused, opener }, { server: 'x', url: 'http://phish.example/x', purpose: 'asks' })).toBe('decline');
    expect(refused.questions).toEqual([]);

    expect(sanitize('a\x1b]8;;http://x\x07b\x1b[2Jc\x07')).toBe('abc');
  });

  it('ignores completion notifications for unknown ids', () => {
    const t = scriptedTerminal();
    new UrlElicitationHandler({ terminal: t }).complete('dingtalk', 'never-issued');
    expect(t.output).toEqual([]);
  });
});

describe('a server that throws -32042 (URLElicitationRequiredError, 2025-11-25)', () => {
  it('consent, browser, then one retry of the same call', async () => {
    let authorized = false;
    let calls = 0;
    const mcp = toNodeHandler(
      createMcpHandler(() => {
        const server = new McpServer({ name: 'needs-auth', version: '1.0.0' });
        server.registerTool('read_secret_doc', { description: 'reads', inputSchema: z.object({}) }, async () => {
          calls += 1;
          if (!authorized) {
            throw new UrlElicitationRequiredError([
              { mode: 'url', elicitationId: 'el-1', url: `${base}/connect/el-1`, message: 'Connect your account first.' },
            ]);
          }
          return { content: [{ type: 'text', text: 'the secret document' }] };
        });
        return server;
      }),
    );
    const http = createServer((req, res) => {
      if (req.url === '/connect/el-1') {
        authorized = true;
        res.writeHead(200).end('connected');
        return;
      }
      void mcp(req, res);
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const terminal = scriptedTerminal(['y']);
    const hub = new McpHub({
      consent: { terminal, opener: async (u) => void (await fetch(u)) },
      era: 'legacy',
      authWaitMs: 10, // stateless HTTP cannot deliver the completion notification: continue after the wait
      tokenFile: unusedTokens,
    });
    try {
      await hub.connectAll([{ name: 'needs-auth', missing: [], entry: { url: `${base}/mcp` } }]);
      const outcome = await hub.callTool('needs-auth__read_secret_doc', {});
      expect(outcome).toEqual({ text: 'the secret document', isError: false, server: 'needs-auth' });
      expect(calls).toBe(2);
      expect(terminal.output.join('')).toContain(`Link: ${base}/connect/el-1`);
      expect(terminal.output.join('')).toContain('Connect your account first.');
    } finally {
      await hub.close();
      http.closeAllConnections();
      http.close();
    }
  });
});
