/**
 * A consent slower than the client's request timeout (issue 9 point 1): the official SDK clients give up on a request
 * after 60 s by default, while DingTalk's QR login often takes longer. The call answers "still pending, call this tool
 * again" within the client's patience, the authorization stays open, and the retry after approval writes, with one
 * consent. Both eras run concurrently, so the file takes about 70 s.
 */
import { describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { connectServer, startStack, textOf, type Stack } from '../helpers/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One era: the user is shown the link, approves `approveAfterMs` later, then the assistant calls again. */
async function slowConsent(era: 'legacy' | 'modern', approveAfterMs: number, env: Record<string, string> = {}) {
  // A stack of its own: the eras run concurrently and each server needs its own callback port.
  const stack = await startStack();
  try {
    await slowConsentOn(stack, era, approveAfterMs, env);
  } finally {
    await stack.close();
  }
}

async function slowConsentOn(stack: Stack, era: 'legacy' | 'modern', approveAfterMs: number, env: Record<string, string>) {
  const doc = () => stack.sandbox.sampleDocumentId;
  const completions = (userId: string) =>
    stack.sandbox.agentIdentity.calls.filter((c) => c.action === 'CompleteResourceTokenAuth' && JSON.parse(c.params.UserIdentifier ?? '{}').UserId === userId);
  const userId = `slow-${era}-${approveAfterMs}`;
  const server = await connectServer(stack, { era, userId, env });
  try {
    const shown: string[] = [];
    let shownAt: number | undefined;
    server.client.setRequestHandler('elicitation/create', async (request) => {
      shown.push((request.params as { url: string }).url);
      shownAt ??= Date.now();
      return { action: 'accept' }; // the user agreed to open the link; approving takes a while
    });
    const content = `approved slowly (${era}, ${approveAfterMs} ms)`;
    // The client's DEFAULT request timeout (60 s): no options passed.
    const first = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content } });
    expect(first.isError).toBeFalsy();
    expect(textOf(first)).toContain('Still waiting for your DingTalk approval');
    expect(textOf(first)).toContain('call this tool again');
    expect(shown).toHaveLength(1);
    expect(textOf(first)).toContain(shown[0]!);
    expect(stack.sandbox.dingtalk.getDocument(doc())?.content).not.toBe(content);

    await sleep(shownAt! + approveAfterMs - Date.now());
    const visit = await followAuthorizationLink(shown[0]!);
    expect(visit.body).toContain('DingTalk access granted');

    const retry = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content } });
    expect(retry.isError).toBeFalsy();
    expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(content);
    expect(shown).toHaveLength(1);
    expect(completions(userId)).toHaveLength(1);
  } finally {
    await server.close();
  }
}

describe.concurrent('consent slower than the client request timeout', () => {
  for (const era of ['legacy', 'modern'] as const) {
    const name = era === 'legacy' ? '2025-11-25' : '2026-07-28';
    it(`${name} client, default timeout: approved 65 s after the link is shown, the retry writes with one consent`, () => slowConsent(era, 65_000), 150_000);
    it(
      `${name} client: the wait shortened to 1 s passes well before approval; the authorization stays open until the link expires`,
      () => slowConsent(era, 4_000, { DINGTALK_MCP_CONSENT_WAIT_SECONDS: '1' }),
      60_000,
    );
  }
});
