import type { McpServer, RequestStateCodec, ServerContext } from '@modelcontextprotocol/server';
import { describe, expect, it } from 'vitest';
import { acquireDingTalkToken, type AuthRequestState } from '../../src/authorization/ladder.js';
import { PendingAuthorizations } from '../../src/authorization/pending.js';
import { SignedState } from '../../src/authorization/signed-state.js';
import type { DingTalkTokenOutcome, GetDingTalkTokenOptions, IdentityBroker, UserIdentity } from '../../src/identity/types.js';
import { silentLogger } from '../../src/log.js';
import { MemoryPendingRecords } from '../../src/state/memory.js';

const USER: UserIdentity = { kind: 'userId', userId: 'steady-state-user' };

/** Counts what the ladder spends before it knows whether consent is needed (issue 10 item 5). */
function setup(
  answer: (options: GetDingTalkTokenOptions) => DingTalkTokenOutcome,
  client: { capabilities?: Record<string, unknown>; consentWaitMs?: number; holdElicitation?: boolean } = {},
) {
  const counts = { newId: 0, sign: 0 };
  const pending = new PendingAuthorizations(new MemoryPendingRecords({ lingerMs: 60_000, maxPerUser: 5 }), { ttlMs: 600_000 });
  const newId = pending.newId.bind(pending);
  pending.newId = () => {
    counts.newId += 1;
    return newId();
  };
  const state = new SignedState('steady-state-test-secret');
  const sign = state.sign.bind(state);
  state.sign = (id, expiresAt) => {
    counts.sign += 1;
    return sign(id, expiresAt);
  };
  const broker: IdentityBroker = {
    // Like AgentIdentityBroker's cache hit: `customState` is read only when Agent Identity is actually asked.
    getDingTalkToken: async (_user, options) => answer(options),
    completeAuthorization: async () => {},
    dropDingTalkToken: () => {},
  };
  const ctx = {
    mcpReq: {
      requestState: () => undefined,
      signal: new AbortController().signal,
      _meta: {},
      id: 1,
      // The user accepts the elicitation at once; the call then waits for the browser flow.
      elicitInput: () => (client.holdElicitation ? new Promise(() => {}) : Promise.resolve({ action: 'accept' })),
    },
  } as unknown as ServerContext;
  const server = {
    server: { getClientCapabilities: () => client.capabilities ?? {}, createElicitationCompletionNotifier: () => async () => {} },
  } as unknown as McpServer;
  const run = () =>
    acquireDingTalkToken(
      {
        broker,
        pending,
        state,
        requestStateCodec: {} as RequestStateCodec<AuthRequestState>,
        callbackUrl: 'http://127.0.0.1:8090/callback',
        connectUrl: (id) => `http://127.0.0.1:8090/connect/${id}`,
        authTimeoutMs: 600_000,
        ...(client.consentWaitMs !== undefined ? { consentWaitMs: client.consentWaitMs } : {}),
        callbackProblem: () => undefined,
        logger: silentLogger,
      },
      {
        ctx,
        server,
        user: USER,
        structured: (x) => x,
        purpose: 'writing to DingTalk document d1',
      },
    );
  return { counts, run, pending };
}

describe('authorization ladder on a steady-state call', () => {
  it('a cached token costs no pending id and no signed state', async () => {
    const { counts, run } = setup(() => ({ status: 'token', accessToken: 'dt-cached' }));
    const outcome = await run();
    expect(outcome).toEqual({ kind: 'token', accessToken: 'dt-cached' });
    expect(counts).toEqual({ newId: 0, sign: 0 });
  });

  it('when consent is needed, the state sent to Agent Identity names the pending authorization the link opens', async () => {
    const sent: string[] = [];
    const { counts, run, pending } = setup((options) => {
      sent.push(options.customState);
      return { status: 'authorization_required', authorizationUrl: 'https://agentidentity.example/authorize', sessionUri: 'session-1' };
    });
    const outcome = await run();
    expect(outcome.kind).toBe('result');
    const text = outcome.kind === 'result' ? (outcome.result.content as Array<{ text: string }>)[0]!.text : '';
    expect(text).toContain('Authorization needed for writing to DingTalk document d1 as you');
    expect(text).toContain('call this tool again');
    const id = /\/connect\/([A-Za-z0-9_-]+)/.exec(text)?.[1];
    expect(new SignedState('steady-state-test-secret').verify(sent[0]!)).toEqual({ ok: true, pendingId: id, tag: expect.any(String) });
    expect((await pending.get(id!))?.sessionUri).toBe('session-1');
    expect(counts).toEqual({ newId: 1, sign: 1 });
  });
});

describe('authorization ladder: a waiting call whose link is retired', () => {
  it('says a newer authorization replaced it, not that no authorization arrived in time', async () => {
    const { run, pending } = setup(
      () => ({ status: 'authorization_required', authorizationUrl: 'https://agentidentity.example/authorize', sessionUri: 'session-1' }),
      {
        // A 2025-11-25 client with URL elicitation: the call waits for the callback.
        capabilities: { elicitation: { url: {} } },
      },
    );
    const call = run();
    // The same user opens five more links elsewhere: the store keeps five per user and retires the oldest.
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 5; i++)
      await pending.add(pending.newId(), USER, {
        sessionUri: `session-other-${i}`,
        authorizationUrl: 'https://agentidentity.example/authorize',
        stateTag: 'tag',
      });
    const outcome = await call;
    const text = outcome.kind === 'result' ? (outcome.result.content as Array<{ text: string }>)[0]!.text : '';
    expect(outcome.kind === 'result' && outcome.result.isError).toBe(true);
    expect(text).toContain('A newer authorization for your account replaced this one');
    expect(text).toContain('nothing was written');
    expect(text).not.toContain('No authorization arrived');
  });
});

describe('authorization ladder: a consent slower than one call may wait', () => {
  const needsConsent = () => ({
    status: 'authorization_required' as const,
    authorizationUrl: 'https://agentidentity.example/authorize',
    sessionUri: 'session-1',
  });
  for (const hold of [false, true]) {
    it(`answers "still pending, call again" by the bounded wait and keeps the authorization open${hold ? ' (client holds its elicitation answer)' : ''}`, async () => {
      const { run, pending } = setup(needsConsent, { capabilities: { elicitation: { url: {} } }, consentWaitMs: 30, holdElicitation: hold });
      const outcome = await run();
      expect(outcome.kind).toBe('result');
      if (outcome.kind !== 'result') throw new Error('expected a result');
      const result = outcome.result;
      const text = (result.content as Array<{ text: string }>)[0]!.text;
      expect(result.isError).toBeFalsy();
      expect(text).toContain('Still waiting for your DingTalk approval for writing to DingTalk document d1, so nothing was written yet.');
      expect(text).toContain('Once you have approved in the browser, call this tool again with the same arguments.');
      const id = /\/connect\/([A-Za-z0-9_-]+)/.exec(text)?.[1];
      // Still open: the callback can complete it until the link's own expiry (authTimeoutMs), not the call's wait.
      const entry = await pending.get(id!);
      expect(entry?.settlement).toBeUndefined();
      expect(entry!.expiresAt - Date.now()).toBeGreaterThan(500_000);
      expect(await pending.claimCallback(id!)).toBe('claimed');
    });
  }

  it('several bounded waits pass and the first link still completes the authorization', async () => {
    const { run, pending } = setup(needsConsent, { capabilities: { elicitation: { url: {} } }, consentWaitMs: 20 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await run();
      const text = outcome.kind === 'result' ? (outcome.result.content as Array<{ text: string }>)[0]!.text : '';
      expect(text).toContain('Still waiting');
      ids.push(/\/connect\/([A-Za-z0-9_-]+)/.exec(text)![1]!);
    }
    for (const id of ids) expect((await pending.get(id))?.settlement).toBeUndefined();
    expect(await pending.claimCallback(ids[0]!)).toBe('claimed');
    await pending.settle(ids[0]!, 'completed');
    // Approving the first link completes the later ones too (one consent), so nothing is left waiting.
    for (const id of ids) expect((await pending.get(id))?.settlement).toBe('completed');
  });
});
