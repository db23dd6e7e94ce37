/**
 * Steady-state cost of one write_dingtalk_doc call (token cached) through the stdio server,
 * compared in the same run with the bare upstream cost: the same DingTalk overwrite sent
 * directly to the emulator by our DingTalk client. The ratio is what MCP + our server add.
 * Run: npm run bench
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { DingTalkClient } from '../src/dingtalk/client.js';
import { followAuthorizationLink } from '../examples/shared/browser.js';
import { freePort, startSandbox } from '../src/sandbox/index.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 300);

async function main(): Promise<void> {
  const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
  const sandbox = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  const client = new Client({ name: 'bench', version: '1' }, { capabilities: { elicitation: { url: {} } } });
  client.setRequestHandler('elicitation/create', async (request) => {
    await followAuthorizationLink((request.params as { url: string }).url);
    return { action: 'accept' };
  });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [fileURLToPath(new URL('../src/cli.js', import.meta.url))],
      stderr: 'ignore',
      env: sandbox.serverEnv(appRedirectUri, { DINGTALK_MCP_LOG_LEVEL: 'warn' }),
    }),
  );
  const args = { document: sandbox.sampleDocumentId, content: '# bench\n\n' + 'lorem ipsum '.repeat(200) };
  const first = await client.callTool({ name: 'write_dingtalk_doc', arguments: args }, { timeout: 60_000 });
  if (first.isError) throw new Error('authorization failed in the bench');
  const token = sandbox.agentIdentity.vault.list()[0]!.accessToken;
  const direct = new DingTalkClient({ baseUrl: sandbox.dingtalkUrl });

  const time = async (fn: () => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await fn(); // warm-up
    const started = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) await fn();
    return Number(process.hrtime.bigint() - started) / 1e6 / CALLS;
  };
  const baseline = await time(() => direct.overwriteDocument(args.document, args.content, token));
  const aiCallsBefore = sandbox.agentIdentity.calls.length;
  const ours = await time(() => client.callTool({ name: 'write_dingtalk_doc', arguments: args }));
  const aiCalls = sandbox.agentIdentity.calls.length - aiCallsBefore;

  process.stdout.write(
    `steady-state write latency (mean of ${CALLS} sequential calls, 2.4 KB of markdown):\n` +
      `  baseline (direct DingTalk overwrite)   ${baseline.toFixed(2)} ms\n` +
      `  write_dingtalk_doc over stdio MCP      ${ours.toFixed(2)} ms  (${(1000 / ours).toFixed(0)} calls/s)\n` +
      `  ratio                                  ${(ours / baseline).toFixed(2)}x\n` +
      `  Agent Identity calls during the run    ${aiCalls}\n`,
  );
  await client.close();
  await direct.close();
  await sandbox.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
