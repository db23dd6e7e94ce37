/**
 * Per tool call at steady state (tokens, unionId and app token cached): DingTalk requests, Agent Identity calls
 * and time, through the stdio server, compared in the same run with a bare SDK stdio server
 * (bench/bare-dingtalk-server.ts) sending the same DingTalk requests with tokens handed to it. The ratio is what
 * our server adds (identity, authorization, validation, mapping, logging). Also: the upstream cost of a user's
 * first call. Run: npm run build && node dist/bench/doc-tools.js
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { followAuthorizationLink } from '../examples/shared/browser.js';
import { freePort, startSandbox } from '../src/sandbox/index.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 200);

async function main(): Promise<void> {
  const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
  const sandbox = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  const dt = sandbox.dingtalk;
  const unionId = dt.users[0]!.unionId;
  const DOC = 'BenchReadDoc0001';
  const APPEND_DOC = 'BenchAppendDoc01';
  dt.seedDocument(DOC, {
    title: 'Bench',
    owner: unionId,
    content: `# Bench\n\n${'A paragraph of text with a [link](https://example.com).\n\n'.repeat(40)}- item\n- item\n`,
  });
  dt.seedDocument(APPEND_DOC, { title: 'Append target', owner: unionId, content: '' });
  const root = dt.mineWorkspace(unionId);

  const ours = new Client({ name: 'bench', version: '1' }, { capabilities: { elicitation: { url: {} } } });
  ours.setRequestHandler('elicitation/create', async (request) => {
    await followAuthorizationLink((request.params as { url: string }).url, { unionId });
    return { action: 'accept' };
  });
  await ours.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [fileURLToPath(new URL('../src/cli.js', import.meta.url))],
      stderr: 'ignore',
      env: sandbox.serverEnv(appRedirectUri, { DINGTALK_MCP_LOG_LEVEL: 'warn', AGENT_IDENTITY_USER_ID: 'bench-user' }),
    }),
  );

  // The first call of a user: consent, users/me, the app secret and token.
  const before = { dt: dt.requests.length, ai: sandbox.agentIdentity.calls.length };
  const first = await ours.callTool({ name: 'read_dingtalk_doc', arguments: { document: DOC } }, { timeout: 60_000 });
  if (first.isError) throw new Error(`first call failed: ${JSON.stringify(first.content)}`);
  const firstDt = dt.requests.slice(before.dt).filter((r) => r.api !== 'authorize' && r.api !== 'decision');
  const firstAi = sandbox.agentIdentity.calls.slice(before.ai).map((c) => c.action);

  const userToken = sandbox.agentIdentity.vault.list()[0]!.accessToken;
  const appToken = (
    (await (
      await fetch(`${sandbox.dingtalkUrl}/v1.0/oauth2/accessToken`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ appKey: sandbox.dingtalkClientId, appSecret: sandbox.dingtalkClientSecret }),
      })
    ).json()) as { accessToken: string }
  ).accessToken;
  const bare = new Client({ name: 'bench-bare', version: '1' });
  await bare.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [fileURLToPath(new URL('./bare-dingtalk-server.js', import.meta.url))],
      stderr: 'ignore',
      env: { PATH: process.env.PATH ?? '', DINGTALK_API_BASE: sandbox.dingtalkUrl, BENCH_APP_TOKEN: appToken, BENCH_USER_TOKEN: userToken },
    }),
  );

  const q = `operatorId=${encodeURIComponent(unionId)}`;
  const md = '## added\n\nsome text';
  type Req = { family: 'app' | 'user'; method: 'GET' | 'POST'; path: string; body?: string };
  const cases: Array<{ tool: string; args: Record<string, unknown>; same: Req[] }> = [
    {
      tool: 'search_dingtalk_docs',
      args: { query: 'Bench' },
      same: [
        { family: 'app', method: 'POST', path: `/v2.0/storage/dentries/search?${q}`, body: JSON.stringify({ keyword: 'Bench', option: { maxResults: 20 } }) },
      ],
    },
    {
      tool: 'read_dingtalk_doc',
      args: { document: DOC },
      same: [
        { family: 'app', method: 'GET', path: `/v2.0/wiki/nodes/${DOC}?${q}&withPermissionRole=true` },
        { family: 'app', method: 'GET', path: `/v1.0/doc/suites/documents/${DOC}/blocks?${q}` },
      ],
    },
    {
      tool: 'get_dingtalk_doc_info',
      args: { document: DOC },
      same: [{ family: 'app', method: 'GET', path: `/v2.0/wiki/nodes/${DOC}?${q}&withPermissionRole=true` }],
    },
    {
      tool: 'list_dingtalk_folder',
      args: {},
      same: [{ family: 'app', method: 'GET', path: `/v2.0/wiki/nodes?parentNodeId=${root.rootNodeId}&${q}&maxResults=50` }],
    },
    {
      tool: 'append_dingtalk_doc',
      args: { document: APPEND_DOC, content: md },
      same: [
        {
          family: 'app',
          method: 'POST',
          path: `/v1.0/doc/suites/documents/${APPEND_DOC}/content?${q}`,
          body: JSON.stringify({ content: { type: 'markdown', content: md } }),
        },
      ],
    },
    {
      tool: 'create_dingtalk_doc',
      args: { title: 'bench' },
      same: [
        {
          family: 'app',
          method: 'POST',
          path: `/v1.0/doc/workspaces/${root.workspaceId}/docs`,
          body: JSON.stringify({ docType: 'DOC', name: 'bench', operatorId: unionId }),
        },
      ],
    },
    {
      tool: 'write_dingtalk_doc',
      args: { document: APPEND_DOC, content: md },
      same: [
        {
          family: 'user',
          method: 'POST',
          path: `/v2.0/doc/me/suites/documents/${APPEND_DOC}/overwriteContent`,
          body: JSON.stringify({ content: md, dataType: 'markdown' }),
        },
      ],
    },
    { tool: 'get_dingtalk_account', args: {}, same: [] },
  ];

  /** Mean ms per call of `a` and of `b`, measured in alternating rounds so drift and noise hit both alike. */
  const race = async (a: () => Promise<{ isError?: unknown }>, b?: () => Promise<{ isError?: unknown }>) => {
    for (let i = 0; i < 10; i++) {
      if ((await a()).isError || (b && (await b()).isError)) throw new Error('a benchmark call failed');
    }
    const total = [0n, 0n];
    const rounds = 10;
    for (let round = 0; round < rounds; round++) {
      for (const [i, fn] of [a, b].entries()) {
        if (!fn) continue;
        const started = process.hrtime.bigint();
        for (let k = 0; k < CALLS / rounds; k++) await fn();
        total[i]! += process.hrtime.bigint() - started;
      }
    }
    return total.map((t) => Number(t) / 1e6 / CALLS) as [number, number];
  };

  const rows: string[] = [];
  for (const c of cases) {
    await ours.callTool({ name: c.tool, arguments: c.args }); // first call of this tool (e.g. 我的文档 lookup)
    const ourCall = () => ours.callTool({ name: c.tool, arguments: c.args }) as Promise<{ isError?: unknown }>;
    // Our requests per call, counted on their own.
    const n0 = { dt: dt.requests.length, ai: sandbox.agentIdentity.calls.length };
    for (let i = 0; i < 20; i++) await ourCall();
    const perCall = (dt.requests.length - n0.dt) / 20;
    const aiPerCall = (sandbox.agentIdentity.calls.length - n0.ai) / 20;
    const bareCall = c.same.length
      ? () => bare.callTool({ name: 'dingtalk_requests', arguments: { requests: c.same } }) as Promise<{ isError?: unknown }>
      : undefined;
    const [ourMs, bareMsRaw] = await race(ourCall, bareCall);
    const bareMs = bareCall ? bareMsRaw : undefined;
    rows.push(
      `  ${c.tool.padEnd(22)} ${perCall.toFixed(2).padStart(6)} ${aiPerCall.toFixed(2).padStart(6)} ${ourMs.toFixed(2).padStart(9)} ${(bareMs?.toFixed(2) ?? '—').padStart(9)} ${(bareMs ? `${(ourMs / bareMs).toFixed(2)}x` : '—').padStart(7)}`,
    );
  }
  process.stdout.write(
    `document tools at steady state (mean of ${CALLS} sequential calls each, stdio, emulated DingTalk on loopback):\n` +
      `  ${'tool'.padEnd(22)} ${'DT req'.padStart(6)} ${'AI'.padStart(6)} ${'ours ms'.padStart(9)} ${'bare ms'.padStart(9)} ${'ratio'.padStart(7)}\n` +
      `${rows.join('\n')}\n` +
      `  (bare = the same SDK over stdio sending the same DingTalk requests with tokens handed to it)\n` +
      `first call of a user (read_dingtalk_doc): ${firstDt.length} DingTalk requests (${firstDt.map((r) => r.api).join(', ')}), ` +
      `${firstAi.length} Agent Identity calls (${firstAi.join(', ')})\n`,
  );
  await Promise.all([ours.close(), bare.close()]);
  await sandbox.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
