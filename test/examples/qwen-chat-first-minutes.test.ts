/**
 * The terminal chat's first minutes: it asks before a tool that may destroy data, never claims a browser opened
 * when none can, and shows the whole (bounded) tool result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession, confirmInTerminal, formatToolResult, RESULT_LINES } from '../../examples/qwen-chat/chat.js';
import { DashScopeClient } from '../../examples/qwen-chat/dashscope.js';
import { askToOpen, hasDisplay } from '../../examples/qwen-chat/elicitation.js';
import { McpHub } from '../../examples/qwen-chat/mcp-hub.js';
import { TokenFile } from '../../examples/qwen-chat/oauth.js';
import { startChatSandbox, type ChatSandbox } from '../../examples/qwen-chat/sandbox.js';
import { scriptedTerminal } from '../../examples/qwen-chat/terminal.js';
import '../helpers/stack.js'; // fails early with a clear message when dist/ is not built

describe('a destructive tool asks first', () => {
  let sandbox: ChatSandbox;
  beforeAll(async () => {
    sandbox = await startChatSandbox();
  });
  afterAll(async () => {
    await sandbox.close();
  });

  async function session(answer: string) {
    const terminal = scriptedTerminal(() => answer);
    const hub = new McpHub({ consent: { terminal, opener: async () => {} }, era: 'auto', tokenFile: new TokenFile('/nonexistent/unused.json') });
    await hub.connectAll(sandbox.servers);
    const llm = new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl, retryBaseDelayMs: 1 });
    return { terminal, hub, chat: new ChatSession({ llm, hub, terminal, observer: { confirmToolCall: confirmInTerminal(terminal, false) } }) };
  }
  const document = () => sandbox.upstream.dingtalk.getDocument(sandbox.upstream.sampleDocumentId)?.content;

  it('No: the write never reaches the server; read-only tools run without asking', async () => {
    const { terminal, hub, chat } = await session('n');
    try {
      const before = document();
      const overwrites = sandbox.upstream.dingtalk.requests.filter((r) => r.api === 'overwriteContent').length;
      const result = await chat.send(`Write last month's ECS costs into ${sandbox.documentLink}`);
      // Only the destructive DingTalk writer was asked about (the billing query is read-only).
      expect(terminal.questions).toEqual(['  Run it? [y/N] ']);
      expect(terminal.output.join('')).toContain('dingtalk__write_dingtalk_doc may change or delete data');
      expect(result.toolCalls.find((c) => c.name === 'dingtalk__write_dingtalk_doc')).toMatchObject({
        isError: true,
        text: expect.stringMatching(/chose not to run/),
      });
      expect(document()).toBe(before);
      expect(sandbox.upstream.dingtalk.requests.filter((r) => r.api === 'overwriteContent').length).toBe(overwrites);
    } finally {
      await hub.close();
    }
  });

  it('--yes runs it and says that it did not ask', async () => {
    const terminal = scriptedTerminal([]);
    const confirm = confirmInTerminal(terminal, true);
    expect(await confirm({ id: '1', name: 'dingtalk__write_dingtalk_doc', args: {} })).toBe(true);
    expect(terminal.questions).toEqual([]);
    expect(terminal.output.join('')).toContain('--yes: running it without asking');
  });
});

describe('no display, no browser claim', () => {
  it('detects a graphical session only where there is one', () => {
    expect(hasDisplay({}, 'linux')).toBe(false);
    expect(hasDisplay({ DISPLAY: ':0' }, 'linux')).toBe(true);
    expect(hasDisplay({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux')).toBe(true);
    expect(hasDisplay({}, 'darwin')).toBe(true);
  });

  it('prints the link to open elsewhere and never says it opened', async () => {
    const terminal = scriptedTerminal(['y']);
    const url = 'https://signin.aliyun.com/consent?x=1';
    expect(await askToOpen({ terminal, display: false }, { server: 'dingtalk', url, purpose: 'asks you to authorize' })).toBe('accept');
    const out = terminal.output.join('');
    expect(out).not.toContain('Opened in your browser');
    expect(out).toContain('No display here');
    expect(out).toContain(`Open it yourself: ${url}`);
    expect(terminal.questions).toEqual(['   Will you open this link yourself? [y/N] ']);
  });
});

describe('tool results', () => {
  it('are shown whole, line by line, under the first', () => {
    expect(formatToolResult('Wrote 12 characters.\nPrevious content replaced.\nDocument: X')).toBe(
      'Wrote 12 characters.\n    Previous content replaced.\n    Document: X',
    );
  });

  it('are bounded, with a note of what was left out', () => {
    const long = Array.from({ length: RESULT_LINES + 10 }, (_, i) => `line ${i}`).join('\n');
    const shown = formatToolResult(long);
    expect(shown.split('\n')).toHaveLength(RESULT_LINES + 1);
    expect(shown).toContain(`line ${RESULT_LINES - 1}`);
    expect(shown).not.toContain(`line ${RESULT_LINES}\n`);
    expect(shown).toMatch(/… \(10 more lines, \d+ more characters not shown\)$/);
    expect(formatToolResult('x'.repeat(5000), 40, 100)).toMatch(/^x{100}\n {4}… \(4900 more characters not shown\)$/);
  });

  it('never pass terminal control sequences through', () => {
    expect(formatToolResult('ok\n\x1b[2Jcleared')).toBe('ok\n    cleared');
  });
});
