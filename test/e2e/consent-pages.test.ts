/**
 * Issue 9: the pages between our link and DingTalk's consent, served by the stdio pages host (src/local/) with the
 * same routes as HTTP mode (src/browser/routes.ts). A link opened twice still leads to a working consent (a fresh
 * Agent Identity session for the same pending authorization) and the waiting call writes; the superseded session's
 * callback is refused with a page that says so; the interstitial names who, what for and which server (escaped);
 * Cancel ends the call as declined; the success page tells the true next step and a refresh says "already granted".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { connectServer, startStack, textOf, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});

const doc = () => stack.sandbox.sampleDocumentId;
const linkIn = (text: string) => /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(text)?.[1];
const callbackOf = () => `${stack.appRedirectUri}/callback`;

describe('a link opened twice (refresh, second device, back button)', () => {
  it('both visits reach a working consent; the older approval is refused as superseded, the newer one completes and the waiting call writes', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'twice-user' });
    try {
      const pages: Record<string, { status: number; body: string }> = {};
      server.client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        // First visit: through DingTalk's consent (Agent Identity's link is spent), the callback held in hand.
        const first = await followAuthorizationLink(url, { stopAt: callbackOf() });
        expect(new URL(first.finalUrl).pathname).toBe('/callback');
        // Second visit of the same link: a working consent again, not "already been used".
        const second = await followAuthorizationLink(url, { stopAt: callbackOf() });
        expect(second.trail.every((hop) => hop.status < 400)).toBe(true);
        expect(new URL(second.finalUrl).pathname).toBe('/callback');
        expect(new URL(second.finalUrl).searchParams.get('session_uri')).not.toBe(new URL(first.finalUrl).searchParams.get('session_uri'));
        const older = await fetch(first.finalUrl);
        pages.older = { status: older.status, body: await older.text() };
        const newer = await fetch(second.finalUrl);
        pages.newer = { status: newer.status, body: await newer.text() };
        const refresh = await fetch(second.finalUrl);
        pages.refresh = { status: refresh.status, body: await refresh.text() };
        const replayOlder = await fetch(first.finalUrl);
        pages.replayOlder = { status: replayOlder.status, body: await replayOlder.text() };
        return { action: 'accept' };
      });
      const result = await server.client.callTool(
        { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'written after a second visit' } },
        { timeout: 60_000 },
      );
      expect(result.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('written after a second visit');

      expect(pages.older!.status).toBe(409);
      expect(pages.older!.body).toContain('A newer link was opened');
      expect(pages.older!.body).toContain('open the link from your assistant again');
      expect(pages.newer!.status).toBe(200);
      expect(pages.newer!.body).toContain('DingTalk access granted');
      expect(pages.newer!.body).toContain(`Return to your assistant: it will finish writing to DingTalk document ${doc()}.`);
      expect(pages.refresh!.status).toBe(200);
      expect(pages.refresh!.body).toContain('DingTalk access already granted');
      expect(pages.refresh!.body).toContain('Return to your assistant: it will finish writing');
      // A replay of the other session after completion stays refused.
      expect(pages.replayOlder!.status).toBe(409);
    } finally {
      await server.close();
    }
  });
});

describe('the page before DingTalk', () => {
  it('names the user, the purpose and the server, escaped, with Continue and Cancel links; the text-link rung says to call again', async () => {
    const server = await connectServer(stack, { urlElicitation: false, userId: 'page-user' });
    try {
      const title = '<img src=x onerror=alert(1)> & "q"';
      const answer = await server.client.callTool({ name: 'create_dingtalk_doc', arguments: { title } });
      expect(textOf(answer)).toContain('The link is only for you and expires in');
      expect(textOf(answer)).not.toContain('works once');
      const url = linkIn(textOf(answer))!;
      const page = await fetch(url, { redirect: 'manual' });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("form-action 'none'");
      expect(page.headers.get('cache-control')).toBe('no-store');
      const html = await page.text();
      expect(html).toContain('User page-user is connecting a DingTalk account to agent-identity-dingtalk-mcp');
      expect(html).toContain('creating the DingTalk document &quot;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;&quot;');
      expect(html).not.toContain('<img');
      expect(html).toMatch(/<a href="[A-Za-z0-9_-]+\/continue" class="primary">Continue to DingTalk<\/a>/);
      expect(html).toMatch(/<a href="[A-Za-z0-9_-]+\/cancel">This was not me \/ Cancel<\/a>/);
      // Only our own page leads on: a navigation started by another site is sent back to it.
      const elsewhere = await fetch(`${url}/cancel`, { redirect: 'manual', headers: { 'sec-fetch-site': 'cross-site' } });
      expect(elsewhere.status).toBe(303);
      expect(new URL(elsewhere.headers.get('location')!, `${url}/cancel`).toString()).toBe(url);

      const visit = await followAuthorizationLink(url);
      expect(visit.body).toContain('DingTalk access granted');
      expect(visit.body).toContain('Return to your assistant and ask it to call the tool again');
    } finally {
      await server.close();
    }
  });

  it('"This was not me / Cancel" settles the authorization as denied: the waiting call says the user declined, nothing is written', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'cancel-user' });
    try {
      const before = stack.sandbox.dingtalk.getDocument(doc())?.content;
      let cancelled = '';
      server.client.setRequestHandler('elicitation/create', async (request) => {
        const visit = await followAuthorizationLink((request.params as { url: string }).url, { interstitial: 'cancel' });
        cancelled = visit.body;
        return { action: 'accept' };
      });
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } }, { timeout: 60_000 });
      expect(cancelled).toContain('Cancelled');
      expect(cancelled).toContain('Nothing was connected');
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('You declined to authorize DingTalk access, so nothing was written.');
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(before);
      expect(stack.sandbox.agentIdentity.vault.has('uid:cancel-user')).toBe(false);
    } finally {
      await server.close();
    }
  });
});
