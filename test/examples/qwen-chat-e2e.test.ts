/**
 * The Qwen chat end to end, against the DashScope emulator and the sandboxed DingTalk server (the built
 * dist/src/cli.js over stdio, emulated Agent Identity and DingTalk). The test plays the user (a scripted terminal)
 * and the browser (followAuthorizationLink).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession } from '../../examples/qwen-chat/chat.js';
import { DashScopeClient } from '../../examples/qwen-chat/dashscope.js';
import { McpHub } from '../../examples/qwen-chat/mcp-hub.js';
import { TokenFile } from '../../examples/qwen-chat/oauth.js';
import { startChatSandbox, type ChatSandbox } from '../../examples/qwen-chat/sandbox.js';
import { scriptedTerminal } from '../../examples/qwen-chat/terminal.js';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import '../helpers/stack.js'; // fails early with a clear message when dist/ is not built

let sandbox: ChatSandbox;
beforeAll(async () => {
  sandbox = await startChatSandbox();
});
afterAll(async () => {
  await sandbox.close();
});

async function chat(options: { era: 'auto' | 'legacy'; userId: string; answer: string }) {
  const terminal = scriptedTerminal(() => options.answer);
  const opened: string[] = [];
  // The browser's visits as they run: the write may land (the callback completed it) before the browser has read the page.
  const visits: Array<ReturnType<typeof followAuthorizationLink>> = [];
  const hub = new McpHub({
    consent: {
      terminal,
      // The user's browser: it goes through /connect, Agent Identity and DingTalk's consent page (Allow).
      opener: async (url) => {
        opened.push(url);
        const visit = followAuthorizationLink(url);
        visits.push(visit);
        await visit;
      },
    },
    era: options.era,
    tokenFile: new TokenFile('/nonexistent/unused.json'),
  });
  const servers = sandbox.servers.map((s) =>
    s.name === 'dingtalk' && 'command' in s.entry ? { ...s, entry: { ...s.entry, env: { ...s.entry.env, AGENT_IDENTITY_USER_ID: options.userId } } } : s,
  );
  await hub.connectAll(servers);
  const llm = new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl, retryBaseDelayMs: 1 });
  const session = new ChatSession({ llm, hub, terminal });
  return { terminal, opened, visits, hub, session };
}

const document = () => sandbox.upstream.dingtalk.getDocument(sandbox.upstream.sampleDocumentId)?.content;

describe('a scripted conversation: ask, tool call, authorization link, consent, write, answer', () => {
  for (const era of ['auto', 'legacy'] as const) {
    it(`${era === 'auto' ? '2026-07-28 (input_required, retry)' : '2025-11-25 (elicitation/create, completion notification)'}`, async () => {
      const { terminal, opened, visits, hub, session } = await chat({ era, userId: `chat-user-${era}`, answer: 'y' });
      try {
        expect([...hub.servers.values()].find((s) => s.name === 'dingtalk')?.protocolVersion).toBe(era === 'auto' ? '2026-07-28' : '2025-11-25');
        const requestsBefore = sandbox.dashscope.requests.length;
        const result = await session.send(`Write last month's ECS costs into ${sandbox.documentLink}`);

        // The model called the billing stand-in, then the DingTalk writer, then answered.
        expect(result.toolCalls.map((c) => [c.name, c.server, c.isError])).toEqual([
          ['billing__query_monthly_costs', 'billing', false],
          ['dingtalk__write_dingtalk_doc', 'dingtalk', false],
        ]);
        expect(result.answer).toMatch(/^Done\. The DingTalk tool reports: "Wrote \d+ characters/);
        const writeCall = sandbox.dashscope.requests
          .flatMap((r) => r.reply?.toolCalls ?? [])
          .filter((c) => c.name === 'dingtalk__write_dingtalk_doc')
          .at(-1)!;
        expect(document()).toBe((writeCall.arguments as { content: string }).content);
        expect(document()).toContain('| cn-beijing | 1,234.56 |');

        // The human saw the full link with its site, was asked, and the browser opened exactly that link.
        const out = terminal.output.join('');
        expect(opened).toHaveLength(1);
        expect(opened[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/connect\/[A-Za-z0-9_-]{20,}$/);
        expect(out).toContain(`Link: ${opened[0]}`);
        expect(out).toContain(`Site: ${new URL(opened[0]!).host}`);
        expect(terminal.questions).toEqual(['   Open this link in your browser? [y/N] ']);
        expect((await visits[0]!).body).toContain('DingTalk access granted');
        if (era === 'legacy') expect(out).toContain('✓ Server "dingtalk" reports the browser step is complete.');

        // The model never saw the link or any token.
        const sentToModel = JSON.stringify(sandbox.dashscope.requests.slice(requestsBefore).map((r) => r.body));
        expect(sentToModel).not.toContain('/connect/');
        const tokens = sandbox.upstream.agentIdentity.vault.list().map((v) => v.accessToken);
        expect(tokens.length).toBeGreaterThan(0);
        for (const token of tokens) {
          expect(sentToModel).not.toContain(token);
          expect(out).not.toContain(token);
        }

        // A second request writes at once: no new consent.
        const again = await session.send(`Please note that the review is on Friday in ${sandbox.documentLink}`);
        expect(again.answer).toMatch(/^Done\./);
        expect(opened).toHaveLength(1);
        expect(document()).toContain('the review is on Friday');
      } finally {
        await hub.close();
      }
    });
  }

  it('the user says No: nothing is opened, nothing is written, the answer says so', async () => {
    const { terminal, opened, hub, session } = await chat({ era: 'auto', userId: 'chat-user-declines', answer: 'n' });
    try {
      const before = document();
      const result = await session.send(`Put "never" into ${sandbox.documentLink}`);
      expect(opened).toEqual([]);
      expect(result.toolCalls).toMatchObject([{ name: 'dingtalk__write_dingtalk_doc', isError: true }]);
      expect(result.toolCalls[0]!.text).toMatch(/declined.*nothing was written/i);
      expect(result.answer).toMatch(/did not succeed/);
      expect(document()).toBe(before);
      expect(terminal.output.join('')).toContain('Not opened.');
    } finally {
      await hub.close();
    }
  });
});

describe('the chat reads and appends, as the user asks', () => {
  it('"add last month\'s ECS costs to this doc" appends (the rest stays); "what does this doc say" reads', async () => {
    const { hub, session, opened } = await chat({ era: 'auto', userId: 'chat-user-appends', answer: 'y' });
    try {
      const before = document()!;
      const added = await session.send(`Add last month's ECS costs to ${sandbox.documentLink}`);
      expect(added.toolCalls.map((c) => [c.name, c.isError])).toEqual([
        ['billing__query_monthly_costs', false],
        ['dingtalk__append_dingtalk_doc', false],
      ]);
      expect(added.answer).toMatch(/^Done\. The DingTalk tool reports: "Added \d+ characters/);
      expect(opened).toHaveLength(1);
      const after = document()!;
      expect(after.startsWith(before.trimEnd())).toBe(true);
      expect(after).toContain('## ECS costs, last month');
      expect(after).toContain('| cn-beijing | 1,234.56 |');

      const read = await session.send(`What does ${sandbox.documentLink} say?`);
      expect(read.toolCalls.map((c) => [c.name, c.isError])).toEqual([['dingtalk__read_dingtalk_doc', false]]);
      expect(read.answer).toMatch(/^The document says:/);
      expect(read.answer).toContain('| cn-beijing | 1,234.56 |');
      expect(document()).toBe(after);
    } finally {
      await hub.close();
    }
  });
});

describe('the sandbox demo command', () => {
  it('node dist/examples/qwen-chat/main.js --sandbox --yes shows the whole conversation and exits 0', () => {
    const main = fileURLToPath(new URL('../../dist/examples/qwen-chat/main.js', import.meta.url));
    const run = spawnSync(process.execPath, [main, '--sandbox', '--yes'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = run.stdout;
    for (const step of [
      "you › Write last month's ECS costs into https://alidocs.dingtalk.com/i/nodes/SandboxDoc0001TeamNotes",
      '⚙ billing__query_monthly_costs',
      '⚙ dingtalk__write_dingtalk_doc',
      '🔐 Server "dingtalk" asks you to complete a step in your browser',
      'Link: http://127.0.0.1:',
      '↳ Wrote',
      'qwen › Done. The DingTalk tool reports',
      '│ | cn-beijing | 1,234.56 |',
    ]) {
      expect(out).toContain(step);
    }
  });

  it('a real run without DASHSCOPE_API_KEY gives one clear message', () => {
    const main = fileURLToPath(new URL('../../dist/examples/qwen-chat/main.js', import.meta.url));
    const config = fileURLToPath(new URL('../../examples/qwen-chat/mcp.example.json', import.meta.url));
    const run = spawnSync(process.execPath, [main, '--config', config, '--yes', '--message', 'hi'], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { PATH: process.env.PATH ?? '', HOME: '/tmp/qwen-chat-test-home' },
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^qwen-chat: DASHSCOPE_API_KEY is not set\. .*--sandbox/);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe(''); // no server was started
  });
});
