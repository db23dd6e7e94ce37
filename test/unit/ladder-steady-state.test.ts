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
function setup(answer: (options: GetDingTalkTokenOptions) => DingTalkTokenOutcome, client: { capabilities?: Record<string, unknown> } = {}) {
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
      elicitInput: async () => ({ action: 'accept' }),
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
    expect(new SignedState('steady-state-test-secret').verify(sent[0]!)).toEqual({ ok: true, pendingId: id });
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
    for (let i = 0; i < 5; i++) await pending.add(pending.newId(), USER, `session-other-${i}`, 'https://agentidentity.example/authorize');
    const outcome = await call;
    const text = outcome.kind === 'result' ? (outcome.result.content as Array<{ text: string }>)[0]!.text : '';
    expect(outcome.kind === 'result' && outcome.result.isError).toBe(true);
    expect(text).toContain('A newer authorization for your account replaced this one');
    expect(text).toContain('nothing was written');
    expect(text).not.toContain('No authorization arrived');
  });
});
