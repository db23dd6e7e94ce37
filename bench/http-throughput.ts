/**
 * HTTP mode on this machine: tool calls per second through /mcp against the sandbox (token cached),
 * sequential and with concurrent users, compared in the same run with the bare upstream cost (the
 * same DingTalk overwrite sent straight to the emulator).
 * Run: npm run bench
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { DingTalkClient } from '../src/dingtalk/client.js';
import { followAuthorizationLink } from '../examples/shared/browser.js';
import { freePort, SANDBOX, startSandbox } from '../src/sandbox/index.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 300);
const USERS = ['alice-1001', 'bob-2002', 'carol-3003'];

async function main(): Promise<void> {
  const base = `http://127.0.0.1:${await freePort()}`;
  const sandbox = await startSandbox({ callbackUrl: `${base}/callback`, oidc: { loginRedirectUri: `${base}/login/callback` } });
  const child = spawn(process.execPath, [fileURLToPath(new URL('../src/cli.js', import.meta.url)), '--transport', 'http', '--port', new URL(base).port], {
    stdio: ['ignore', 'ignore', 'inherit'], // the server logs warnings only
    env: sandbox.serverEnv(base, { DINGTALK_MCP_RATE_LIMIT: '100000', DINGTALK_MCP_LOG_LEVEL: 'warn' }),
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
    const timer = setInterval(() => fetch(`${base}/healthz`).then((r) => r.ok && (clearInterval(timer), resolve()), () => {}), 100);
  });

  const clients = await Promise.all(
    USERS.map(async (sub, i) => {
      const client = new Client({ name: `bench-${sub}`, version: '1' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'auto' } });
      client.setRequestHandler('elicitation/create', async (request) => {
        await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: sub, unionId: sandbox.dingtalk.users[i % 2]!.unionId });
        return { action: 'accept' };
      });
      const bearer = await sandbox.oidc!.mintAccessToken({ sub });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
      return client;
    }),
  );
  const args = { document: sandbox.sampleDocumentId, content: '# bench\n\n' + 'lorem ipsum '.repeat(200) };
  for (const c of clients) {
    const r = await c.callTool({ name: 'write_dingtalk_doc', arguments: args }, { timeout: 60_000 });
    if (r.isError) throw new Error('authorization failed in the bench');
  }
  const token = sandbox.agentIdentity.vault.list()[0]!.accessToken;
  const direct = new DingTalkClient({ baseUrl: sandbox.dingtalkUrl });

  const rate = async (parallel: number, call: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await call(i);
    const started = process.hrtime.bigint();
    let next = 0;
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (next < CALLS) await call(next++);
    }));
    return CALLS / (Number(process.hrtime.bigint() - started) / 1e9);
  };
  const baseline = await rate(1, () => direct.overwriteDocument(args.document, args.content, token));
  const sequential = await rate(1, () => clients[0]!.callTool({ name: 'write_dingtalk_doc', arguments: args }));
  const concurrent = await rate(6, (i) => clients[i % clients.length]!.callTool({ name: 'write_dingtalk_doc', arguments: args }));

  process.stdout.write(
    `HTTP /mcp on this machine (${CALLS} calls each, token cached, 2.4 KB of markdown):\n` +
      `  baseline (direct DingTalk overwrite, sequential)   ${baseline.toFixed(0)} calls/s\n` +
      `  write_dingtalk_doc, 1 client, sequential           ${sequential.toFixed(0)} calls/s  (ratio to baseline ${(baseline / sequential).toFixed(2)}x slower)\n` +
      `  write_dingtalk_doc, 3 users x 2 in flight          ${concurrent.toFixed(0)} calls/s\n`,
  );
  await Promise.allSettled(clients.map((c) => c.close()));
  await direct.close();
  child.kill('SIGTERM');
  await sandbox.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
