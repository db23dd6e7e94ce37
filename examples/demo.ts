/**
 * `npm run demo`: the whole flow in a terminal, with no cloud account.
 *
 * 1. starts the emulated Agent Identity and DingTalk (src/sandbox),
 * 2. starts the real server (dist/src/cli.js) over stdio, configured against them exactly as it
 *    would be against Alibaba Cloud,
 * 3. connects as a real MCP client and calls write_dingtalk_doc,
 * 4. shows the authorization link (URL elicitation); you open it in a browser and choose Allow —
 *    or pass --yes and the demo plays the browser itself,
 * 5. prints the document afterwards, then writes once more to show that no new consent is needed.
 *
 * 6. keeps the sandbox (and its document viewer) running until you press Enter.
 *
 * Flags: --yes (the demo plays the browser and chooses Allow), --deny (with --yes: it chooses Deny, to show what a
 * refusal looks like), --keep-open (with --yes: still wait for Enter before stopping the sandbox), --era 2025 (speak protocol 2025-11-25 instead of 2026-07-28).
 */
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { followAuthorizationLink } from './shared/browser.js';
import { freePort, startSandbox } from '../src/sandbox/index.js';

const args = process.argv.slice(2);
const autoApprove = args.includes('--yes') || !process.stdin.isTTY;
const decision = args.includes('--deny') ? 'deny' : 'allow';
/** Interactive runs keep the sandbox up until Enter (its viewer link must stay alive); --keep-open asks for that with --yes. */
const keepOpen = args.includes('--keep-open') || !autoApprove;
const era = args.includes('--era') && args[args.indexOf('--era') + 1] === '2025' ? 'legacy' : 'auto';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const say = (s = '') => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  const port = await freePort();
  const appRedirectUri = `http://127.0.0.1:${port}`;
  const sandbox = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  say(bold('Sandbox started') + dim(' (emulated Agent Identity and DingTalk on 127.0.0.1; nothing leaves this machine)'));
  say(`  Agent Identity: ${sandbox.agentIdentityUrl}`);
  say(`  DingTalk:       ${sandbox.dingtalkUrl}`);
  say(`  Document:       ${sandbox.documentViewerUrl(sandbox.sampleDocumentId)}`);
  say();

  const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [cli],
    stderr: 'pipe',
    env: sandbox.serverEnv(appRedirectUri, { AGENT_IDENTITY_USER_ID: 'demo-user' }),
  });
  transport.stderr?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) process.stderr.write(dim(`  server │ ${line}`) + '\n');
  });

  const client = new Client({ name: 'dingtalk-mcp-demo', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: era } });
  client.setRequestHandler('elicitation/create', async (request) => {
    const params = request.params as { mode?: string; url?: string; message: string };
    if (params.mode !== 'url' || !params.url) return { action: 'decline' };
    const url = new URL(params.url);
    say();
    say(bold('The server asks you to authorize:'));
    say(`  ${params.message}`);
    say(`  ${url.protocol}//${bold(url.host)}${url.pathname}${url.search}`);
    if (autoApprove) {
      say(dim(`  --yes: the demo opens the link itself and chooses ${decision === 'deny' ? 'Deny' : 'Allow'} on the DingTalk consent page.`));
      const visit = await followAuthorizationLink(params.url, { decision });
      say(dim(`  browser finished on: ${/<h1>([^<]*)<\/h1>/.exec(visit.body)?.[1] ?? visit.status}`));
      return { action: 'accept' };
    }
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = (await rl.question('  Open this link in your browser now, choose Allow, and come back. Continue? [Y/n] ')).trim().toLowerCase();
    rl.close();
    if (answer === 'n' || answer === 'no') return { action: 'decline' };
    say(dim('  Waiting for you to finish in the browser…'));
    return { action: 'accept' };
  });
  client.setNotificationHandler('notifications/elicitation/complete', () => {
    say(dim('  (server: authorization complete)'));
  });

  await client.connect(transport);
  say(`Connected to ${bold(client.getServerVersion()?.name ?? 'server')} over stdio, protocol ${client.getNegotiatedProtocolVersion?.() ?? '?'}`);

  const content = `# ECS costs, last month\n\n| Region | Cost (CNY) |\n|---|---|\n| cn-beijing | 1,234.56 |\n| cn-hangzhou | 789.00 |\n\n_Written by agent-identity-dingtalk-mcp demo at ${new Date().toISOString()}_\n`;
  say();
  say(bold(`Calling write_dingtalk_doc on ${sandbox.sampleDocumentLink}`));
  const first = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: sandbox.sampleDocumentLink, content } }, { timeout: 15 * 60_000 });
  say(`  → ${textOf(first)}`);
  if (first.isError) {
    // A refusal (Deny, a declined prompt, an expired link) ends the demo: asking again would ignore the answer.
    await client.close();
    await sandbox.close();
    say();
    say(bold('Demo stopped: nothing was written') + ' (the answer above says why). To see the write, run `npm run demo` again and choose Allow.');
    process.exit(1);
  }

  const doc = sandbox.dingtalk.getDocument(sandbox.sampleDocumentId);
  say();
  say(bold('The DingTalk document now holds:'));
  say(
    (doc?.content ?? '(missing)')
      .split('\n')
      .map((l) => `  │ ${l}`)
      .join('\n'),
  );

  const callsBefore = sandbox.agentIdentity.calls.length;
  const second = await client.callTool({
    name: 'write_dingtalk_doc',
    arguments: { document: sandbox.sampleDocumentId, content: content.replace('last month', 'last month (updated)') },
  });
  say();
  say(bold('A second write') + ` → ${textOf(second)}`);
  say(dim(`  Agent Identity calls for it: ${sandbox.agentIdentity.calls.length - callsBefore} (the token is cached; one DingTalk request per write)`));

  await client.close();
  const ok = !second.isError;
  say();
  say(ok ? bold('Demo finished.') : bold('Demo failed.'));
  if (keepOpen) {
    // The viewer link above is served by the sandbox: keep it alive while the user looks.
    say(`The document stays viewable at ${sandbox.documentViewerUrl(sandbox.sampleDocumentId)}`);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    await rl.question('Press Enter to stop the sandbox. ');
    rl.close();
  }
  await sandbox.close();
  process.exit(ok ? 0 : 1);
}

function textOf(result: { content?: unknown; isError?: boolean }): string {
  const content = (result.content ?? []) as Array<{ type: string; text?: string }>;
  return `${result.isError ? 'ERROR: ' : ''}${content.map((c) => c.text ?? '').join(' ')}`;
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
