/**
 * End to end over stdio: the built `dingtalk-mcp` is spawned and driven by real MCP clients
 * (2025-11-25 and 2026-07-28, with and without URL elicitation), against the emulated
 * Agent Identity and DingTalk. The test plays the user's browser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignedState } from '../../src/authorization/signed-state.js';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { allServerStderr, connectServer, startStack, STATE_SECRET, stopPagesHosts, textOf, waitFor, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});

const doc = () => stack.sandbox.sampleDocumentId;
const link = (id = doc()) => `https://alidocs.dingtalk.com/i/nodes/${id}?utm_scene=person_space`;
const aiCalls = (action?: string) => stack.sandbox.agentIdentity.calls.filter((c) => !action || c.action === action);
const overwrites = () => stack.sandbox.dingtalk.requests.filter((r) => r.api === 'overwriteContent');

describe('tools/list', () => {
  it('matches the committed schema snapshot', async () => {
    const server = await connectServer(stack);
    try {
      const { tools } = await server.client.listTools();
      // Every tool, with the sandbox's app credential configured (the snapshot covers each one).
      expect(tools.map((t) => t.name)).toEqual([
        'search_dingtalk_docs',
        'read_dingtalk_doc',
        'get_dingtalk_doc_info',
        'list_dingtalk_folder',
        'append_dingtalk_doc',
        'create_dingtalk_doc',
        'write_dingtalk_doc',
        'get_dingtalk_account',
      ]);
      await expect(JSON.stringify(tools, null, 2) + '\n').toMatchFileSnapshot('./__toolsnaps__/tools.json');
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      expect(byName['write_dingtalk_doc']!.annotations).toMatchObject({
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: true,
        readOnlyHint: false,
      });
      expect(byName['append_dingtalk_doc']!.annotations).toMatchObject({ destructiveHint: false, idempotentHint: false, readOnlyHint: false });
      expect(byName['create_dingtalk_doc']!.annotations).toMatchObject({ destructiveHint: false, idempotentHint: false, readOnlyHint: false });
      for (const name of ['search_dingtalk_docs', 'read_dingtalk_doc', 'get_dingtalk_doc_info', 'list_dingtalk_folder', 'get_dingtalk_account']) {
        expect(byName[name]!.annotations?.readOnlyHint).toBe(true);
      }
      for (const t of tools) expect(t.outputSchema).toBeDefined();
    } finally {
      await server.close();
    }
  });
});

describe('first write, URL elicitation, the browser, the same call completes', () => {
  it('2025-11-25 client: elicitation/create, completion notification, write; second write makes no Agent Identity call', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'user-2025' });
    try {
      expect(server.client.getNegotiatedProtocolVersion?.()).toBe('2025-11-25');
      const elicitations: Array<{ mode?: string; url?: string; elicitationId?: string; message: string }> = [];
      const completed: string[] = [];
      server.client.setNotificationHandler('notifications/elicitation/complete', (n) => {
        completed.push(n.params.elicitationId);
      });
      let visit: Awaited<ReturnType<typeof followAuthorizationLink>> | undefined;
      server.client.setRequestHandler('elicitation/create', async (request) => {
        const params = request.params as (typeof elicitations)[number];
        elicitations.push(params);
        // Answer at once (the user agreed to open the link), then "open" it, as a browser would.
        setTimeout(() => void followAuthorizationLink(params.url!).then((v) => (visit = v)), 10);
        return { action: 'accept' };
      });

      const content = `# Report 2025\n\nwritten at ${Date.now()} — 你好`;
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: link(), content } }, { timeout: 60_000 });

      expect(result.isError).toBeFalsy();
      expect(result.structuredContent).toEqual({ status: 'written', documentId: doc(), charactersWritten: content.length });
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(content);
      expect(elicitations).toHaveLength(1);
      expect(elicitations[0]!.mode).toBe('url');
      expect(elicitations[0]!.url).toMatch(new RegExp(`^${stack.appRedirectUri}/connect/[A-Za-z0-9_-]{20,}$`));
      expect(elicitations[0]!.url).not.toContain('user-2025');
      await waitFor(() => completed.length === 1, 'the completion notification');
      expect(completed).toEqual([elicitations[0]!.elicitationId]);
      expect(visit?.body).toContain('DingTalk access granted');

      // Session binding: CompleteResourceTokenAuth got the same artifact that minted the workload token.
      const minted = aiCalls('GetWorkloadAccessTokenForUserId').filter((c) => c.params.UserId === 'user-2025');
      const completes = aiCalls('CompleteResourceTokenAuth');
      expect(minted.length).toBeGreaterThan(0);
      expect(JSON.parse(completes.at(-1)!.params.UserIdentifier!)).toEqual({ UserId: 'user-2025' });

      const before = aiCalls().length;
      const writesBefore = overwrites().length;
      const second = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'second' } });
      expect(second.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('second');
      expect(aiCalls().length - before).toBe(0);
      expect(overwrites().length - writesBefore).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('2026-07-28 client: input_required with a URL elicitation, retry with requestState, write', async () => {
    const server = await connectServer(stack, { era: 'modern', userId: 'user-2026' });
    try {
      expect(server.client.getNegotiatedProtocolVersion?.()).toBe('2026-07-28');
      const urls: string[] = [];
      server.client.setRequestHandler('elicitation/create', async (request) => {
        const params = request.params as { mode?: string; url?: string };
        expect(params.mode).toBe('url');
        urls.push(params.url!);
        // The user finishes in the browser before the client retries.
        const visit = await followAuthorizationLink(params.url!);
        expect(visit.body).toContain('DingTalk access granted');
        return { action: 'accept' };
      });
      const content = `# Report 2026\n\n- a\n- b\n${'x'.repeat(1000)}`;
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: link(), content } }, { timeout: 60_000 });
      expect(textOf(result)).toContain('Wrote');
      expect(result.isError).toBeFalsy();
      expect(urls).toHaveLength(1);
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(content);

      const before = aiCalls().length;
      const second = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'again' } });
      expect(second.isError).toBeFalsy();
      expect(aiCalls().length - before).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('a v1 SDK client (independent 2025-11-25 implementation) completes the flow too', async () => {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const { CLI } = await import('../helpers/stack.js');
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI],
      stderr: 'pipe',
      // The stack's local state (shared with its other copies, whose pages host serves this port) and secret.
      env: stack.sandbox.serverEnv(stack.appRedirectUri, {
        AGENT_IDENTITY_USER_ID: 'user-v1-sdk',
        DINGTALK_MCP_STATE_DIR: stack.stateDir,
        DINGTALK_MCP_STATE_SECRET: STATE_SECRET,
      }),
    });
    transport.stderr?.on('data', (c: Buffer) => allServerStderr.push(c.toString()));
    const client = new Client({ name: 'v1-client', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      const params = request.params as { url: string };
      await followAuthorizationLink(params.url);
      return { action: 'accept' };
    });
    await client.connect(transport);
    try {
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'from the v1 SDK' } }, undefined, {
        timeout: 60_000,
      });
      expect(result.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('from the v1 SDK');
    } finally {
      await client.close();
    }
  });

  for (const era of ['legacy', 'modern'] as const) {
    it(`${era === 'legacy' ? '2025-11-25' : '2026-07-28'} client without URL elicitation: the link as text, then success on retry`, async () => {
      const server = await connectServer(stack, { era, urlElicitation: false, userId: `user-text-${era}` });
      try {
        const content = `after consent (${era})`;
        const first = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content } });
        expect(first.isError).toBeFalsy();
        const text = textOf(first);
        expect(text).toContain('call this tool again');
        const url = /(http:\/\/127\.0\.0\.1:\d+\/connect\/[A-Za-z0-9_-]+)/.exec(text)?.[1];
        expect(url).toBeDefined();
        expect(first.structuredContent).toMatchObject({ status: 'authorization_required', authorizationUrl: url, charactersWritten: 0 });
        expect(stack.sandbox.dingtalk.getDocument(doc())?.content).not.toBe(content);

        const visit = await followAuthorizationLink(url!);
        expect(visit.status).toBe(200);

        const retry = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content } });
        expect(retry.isError).toBeFalsy();
        expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(content);
      } finally {
        await server.close();
      }
    });
  }

  it('two calls of one user waiting at once: one consent completes both', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'user-twice' });
    try {
      const urls: string[] = [];
      server.client.setRequestHandler('elicitation/create', async (request) => {
        urls.push((request.params as { url: string }).url);
        // Only the first link is ever opened.
        if (urls.length === 1) setTimeout(() => void followAuthorizationLink(urls[0]!), 300);
        return { action: 'accept' };
      });
      const [a, b] = await Promise.all([
        server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'twice A' } }, { timeout: 60_000 }),
        server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'twice B' } }, { timeout: 60_000 }),
      ]);
      expect(urls).toHaveLength(2);
      expect([a.isError, b.isError]).toEqual([undefined, undefined]);
      expect(['twice A', 'twice B']).toContain(stack.sandbox.dingtalk.getDocument(doc())?.content);
    } finally {
      await server.close();
    }
  });

  it('--open-browser (stdio rung 3): a client without URL elicitation also gets the link opened locally', async () => {
    const { mkdtempSync, writeFileSync, readFileSync, chmodSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    // A stand-in for the system's opener (xdg-open on Linux) that records what it was asked to open.
    const bin = mkdtempSync(join(tmpdir(), 'opener-'));
    const opened = join(bin, 'opened.txt');
    writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\necho "$1" >> "${opened}"\n`);
    chmodSync(join(bin, 'xdg-open'), 0o755);
    const server = await connectServer(stack, {
      urlElicitation: false,
      userId: 'user-open-browser',
      env: { DINGTALK_MCP_OPEN_BROWSER: 'true', PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    try {
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'x' } });
      const text = textOf(result);
      expect(text).toContain('It was also opened in your browser.');
      const link = /(http:\/\/127\.0\.0\.1:\d+\/connect\/[A-Za-z0-9_-]+)/.exec(text)![1]!;
      await waitFor(() => existsSync(opened), 'the opener to run');
      expect(readFileSync(opened, 'utf8').trim()).toBe(link);
    } finally {
      await server.close();
    }
  });

  it('a declined or cancelled elicitation ends the call with a clear message and writes nothing', async () => {
    for (const [era, action] of [
      ['legacy', 'decline'],
      ['modern', 'cancel'],
    ] as const) {
      const server = await connectServer(stack, { era, userId: `user-${action}` });
      try {
        server.client.setRequestHandler('elicitation/create', async () => ({ action }));
        const writes = overwrites().length;
        const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(action === 'decline' ? /declined.*nothing was written/i : /cancelled.*nothing was written/i);
        expect(overwrites().length).toBe(writes);
      } finally {
        await server.close();
      }
    }
  });

  it('Deny on the DingTalk consent page ends the waiting call with a clear message', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'user-deny' });
    try {
      server.client.setRequestHandler('elicitation/create', async (request) => {
        const visit = await followAuthorizationLink((request.params as { url: string }).url, { decision: 'deny' });
        expect(visit.body).toContain('did not grant access');
        return { action: 'accept' };
      });
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } }, { timeout: 60_000 });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/denied on the DingTalk consent page, so nothing was written/);
      expect(stack.sandbox.agentIdentity.vault.has('uid:user-deny')).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('waiting is bounded: no authorization within the timeout gives a clear error', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'user-slow', env: { DINGTALK_MCP_AUTH_TIMEOUT_SECONDS: '2' } });
    try {
      server.client.setRequestHandler('elicitation/create', async () => ({ action: 'accept' }));
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/No authorization arrived within 2 seconds, so nothing was written/);
    } finally {
      await server.close();
    }
  });
});

describe('cancellation', () => {
  it('the client cancelling a call that waits for consent stops the wait; nothing is written', async () => {
    const server = await connectServer(stack, { era: 'legacy', userId: 'user-cancel' });
    try {
      const controller = new AbortController();
      server.client.setRequestHandler('elicitation/create', async () => {
        // The user agreed to open the link but never finishes; the client gives up.
        setTimeout(() => controller.abort(), 50);
        return { action: 'accept' };
      });
      const writes = overwrites().length;
      await expect(
        server.client.callTool(
          { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } },
          { timeout: 60_000, signal: controller.signal },
        ),
      ).rejects.toThrow();
      await waitFor(() => server.stderr().includes('outcome=cancelled'), 'the server to log the cancelled call');
      expect(overwrites().length).toBe(writes);
    } finally {
      await server.close();
    }
  });
});

describe('session binding on /callback', () => {
  it('refuses forged, expired and replayed states and binds nothing', async () => {
    const server = await connectServer(stack, { era: 'modern', urlElicitation: false, userId: 'user-binding' });
    try {
      const first = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'x' } });
      const connectUrl = /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(textOf(first))![1]!;
      // Stop the browser at our /callback to hold the real response in hand.
      const hops: string[] = [];
      let url = connectUrl;
      for (let i = 0; i < 10 && !url.startsWith(`${stack.appRedirectUri}/callback`); i++) {
        const res = await fetch(url, { redirect: 'manual' });
        if (res.status === 200 && new URL(url).pathname.startsWith('/connect/')) {
          // Our page before DingTalk: follow "Continue to DingTalk".
          const html = await res.text();
          url = new URL(/<a href="([^"]+)" class="primary">/.exec(html)![1]!, url).toString();
        } else if (res.status === 200) {
          const html = await res.text();
          const consent = /name="consent_request" value="([^"]+)"/.exec(html)![1]!;
          const post = await fetch(new URL('/oauth2/auth/decision', url), {
            method: 'POST',
            redirect: 'manual',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ consent_request: consent, decision: 'allow', unionId: stack.sandbox.dingtalk.users[0]!.unionId }).toString(),
          });
          url = new URL(post.headers.get('location')!, url).toString();
        } else {
          url = new URL(res.headers.get('location')!, url).toString();
        }
        hops.push(url);
      }
      const callback = new URL(url);
      expect(callback.pathname).toBe('/callback');
      const sessionUri = callback.searchParams.get('session_uri')!;
      const state = callback.searchParams.get('state')!;
      const completesBefore = aiCalls('CompleteResourceTokenAuth').length;

      const forged = new URL(callback);
      forged.searchParams.set('state', state.slice(0, -2) + (state.endsWith('AA') ? 'BB' : 'AA'));
      expect((await fetch(forged)).status).toBe(400);

      const expiredState = new SignedState(STATE_SECRET).sign('whatever-pending-id', Date.now() - 1000).state;
      const expired = new URL(callback);
      expired.searchParams.set('state', expiredState);
      expect((await fetch(expired)).status).toBe(410);

      const otherSession = new URL(callback);
      otherSession.searchParams.set('session_uri', 'urn:ietf:params:oauth:request_uri:00000000-0000-0000-0000-000000000000');
      expect((await fetch(otherSession)).status).toBe(400);

      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completesBefore);
      expect(stack.sandbox.agentIdentity.vault.has('uid:user-binding')).toBe(false);

      const genuine = await fetch(callback);
      expect(genuine.status).toBe(200);
      expect(genuine.headers.get('cache-control')).toBe('no-store');
      expect(genuine.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await genuine.text()).toContain('You can close this tab');
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completesBefore + 1);
      expect(stack.sandbox.agentIdentity.vault.has('uid:user-binding')).toBe(true);
      expect(sessionUri).toMatch(/^urn:ietf:params:oauth:request_uri:/);

      // Issue 9: the same callback again (a refresh of the success page) says so, and completes nothing twice;
      // the state replayed with another session stays refused.
      const replay = await fetch(callback);
      expect(replay.status).toBe(200);
      expect(await replay.text()).toContain('DingTalk access already granted');
      expect((await fetch(otherSession)).status).toBe(409);
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completesBefore + 1);

      // The /connect link of a finished authorization no longer leads anywhere.
      expect((await fetch(connectUrl, { redirect: 'manual' })).status).toBe(410);
      expect((await fetch(`${stack.appRedirectUri}/connect/not-a-real-id`, { redirect: 'manual' })).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('a user JWT is the artifact for both the workload token and CompleteResourceTokenAuth', async () => {
    const payload = Buffer.from(
      JSON.stringify({ sub: 'jwt-user-7', iss: 'https://idp.example.test', aud: 'dingtalk-mcp', exp: Math.floor(Date.now() / 1000) + 3600 }),
    ).toString('base64url');
    const jwt = `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.${payload}.c2lnbmF0dXJl`;
    const server = await connectServer(stack, { era: 'legacy', env: { AGENT_IDENTITY_USER_JWT: jwt } });
    try {
      server.client.setRequestHandler('elicitation/create', async (request) => {
        await followAuthorizationLink((request.params as { url: string }).url);
        return { action: 'accept' };
      });
      const result = await server.client.callTool(
        { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'as a JWT user' } },
        { timeout: 60_000 },
      );
      expect(result.isError).toBeFalsy();
      const minted = aiCalls('GetWorkloadAccessTokenForJWT').at(-1)!;
      const completed = aiCalls('CompleteResourceTokenAuth').at(-1)!;
      expect(minted.params.UserToken).toBe(jwt);
      expect(JSON.parse(completed.params.UserIdentifier!)).toEqual({ UserJWT: jwt });
      expect(server.stderr()).not.toContain(jwt);
    } finally {
      await server.close();
    }
  });
});

describe('the callback port is taken', () => {
  it('a call needing consent says so with the actual callback URL, not a placeholder', async () => {
    const { createServer: createNetServer } = await import('node:net');
    // A program that accepts connections and never answers; it reads, so a connection the server drops ends here too.
    const squatter = createNetServer((socket) => socket.resume());
    const port = Number(new URL(stack.appRedirectUri).port);
    // The stack's pages host serves the port between tests: end it, so another program can take the port.
    await stopPagesHosts(stack.stateDir);
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const server = await connectServer(stack, { userId: 'user-port-taken' });
      try {
        const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'x' } });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`port ${port} on 127.0.0.1 is already in use`);
        expect(textOf(result)).toContain(`${stack.appRedirectUri}/callback`);
        expect(textOf(result)).not.toContain('<APP_REDIRECT_URI>');
      } finally {
        await server.close();
      }
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });
});

describe('arguments a client adds on its own', () => {
  it('a call carrying a key the tool does not define (Gemini CLI adds wait_for_previous) still writes, and the schema clients see stays strict', async () => {
    const server = await connectServer(stack, { userId: 'user-extra-args', env: { DINGTALK_MCP_LOG_LEVEL: 'debug' } });
    try {
      server.client.setRequestHandler('elicitation/create', async (request) => {
        await followAuthorizationLink((request.params as { url: string }).url);
        return { action: 'accept' };
      });
      const listed = await server.client.listTools();
      const write = listed.tools.find((t) => t.name === 'write_dingtalk_doc')!;
      expect(write.inputSchema.additionalProperties).toBe(false);
      const content = 'written despite an extra key';
      const result = await server.client.callTool(
        { name: 'write_dingtalk_doc', arguments: { document: doc(), content, wait_for_previous: true } },
        { timeout: 60_000 },
      );
      expect(result.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe(content);
      await waitFor(() => server.stderr().includes('wait_for_previous'), 'the debug line about ignored arguments');
      expect(server.stderr()).toMatch(/ignored arguments the tool does not define.*wait_for_previous/);
      // Documented checks still apply with an extra key present.
      const empty = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: '', wait_for_previous: true } });
      expect(empty.isError).toBe(true);
      expect(textOf(empty)).toMatch(/content is empty/);
    } finally {
      await server.close();
    }
  });
});

describe('bad input: a clear isError result and no upstream call', () => {
  it.each([
    ['a link to another site', { document: 'https://evil.example.com/i/nodes/abcdef123', content: 'x' }, /alidocs\.dingtalk\.com/],
    ['a look-alike host', { document: 'https://alidocs.dingtalk.com.evil.example/i/nodes/abcdef123', content: 'x' }, /alidocs\.dingtalk\.com/],
    ['a share short link', { document: 'https://alidocs.dingtalk.com/i/p/Y7kmbokZp3pgGLq2', content: 'x' }, /i\/nodes/],
    ['empty content', { document: 'abcdef123456', content: '' }, /content is empty/],
    ['oversized content', { document: 'abcdef123456', content: 'x'.repeat(50_001) }, /longer than DingTalk's limit of 50000 characters/],
    ['a missing argument', { document: 'abcdef123456' }, /content/],
  ])('%s', async (_name, args, message) => {
    const server = await connectServer(stack, { userId: 'user-bad-input' });
    try {
      const ai = aiCalls().length;
      const dt = stack.sandbox.dingtalk.requests.length;
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: args });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(message);
      expect(aiCalls().length).toBe(ai);
      expect(stack.sandbox.dingtalk.requests.length).toBe(dt);
    } finally {
      await server.close();
    }
  });
});

describe('upstream faults', () => {
  // One authorized user shared by these tests.
  let server: Awaited<ReturnType<typeof connectServer>>;
  beforeAll(async () => {
    server = await connectServer(stack, { era: 'legacy', userId: 'user-faults', env: { DINGTALK_MAX_RETRIES: '2' } });
    server.client.setRequestHandler('elicitation/create', async (request) => {
      await followAuthorizationLink((request.params as { url: string }).url);
      return { action: 'accept' };
    });
    const ok = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'warm-up' } }, { timeout: 60_000 });
    expect(ok.isError).toBeFalsy();
  });
  afterAll(async () => {
    stack.sandbox.dingtalk.clearFaults();
    stack.sandbox.agentIdentity.clearFaults();
    await server.close();
  });

  it('QPS limit twice: retried, then the write succeeds', async () => {
    stack.sandbox.dingtalk.injectFault({ status: 403, code: 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', times: 2, match: 'overwriteContent' });
    const before = overwrites().length;
    const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'after qps' } });
    expect(result.isError).toBeFalsy();
    expect(overwrites().length - before).toBe(3);
    expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('after qps');
  });

  it('persistent 5xx: a clear error after bounded retries', async () => {
    stack.sandbox.dingtalk.injectFault({ status: 503, code: 'ServiceUnavailable', times: Infinity, match: 'overwriteContent' });
    try {
      const before = overwrites().length;
      const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/3 attempts/);
      expect(textOf(result)).toMatch(/Nothing was written/);
      expect(overwrites().length - before).toBe(3);
    } finally {
      stack.sandbox.dingtalk.clearFaults();
    }
  });

  it('an unknown document: DingTalk 404 becomes an actionable message', async () => {
    const result = await server.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: 'NoSuchDocument123', content: 'x' } });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/NoSuchDocument123/);
  });

  it('an expired DingTalk token: InvalidAuthentication drops the cache and the flow restarts', async () => {
    const token = stack.sandbox.agentIdentity.vault.get('uid:user-faults')!.accessToken;
    stack.sandbox.dingtalk.revokeAccessToken(token);
    let elicited = 0;
    server.client.setRequestHandler('elicitation/create', async (request) => {
      elicited += 1;
      await followAuthorizationLink((request.params as { url: string }).url);
      return { action: 'accept' };
    });
    const result = await server.client.callTool(
      { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'with a fresh token' } },
      { timeout: 60_000 },
    );
    expect(result.isError).toBeFalsy();
    expect(elicited).toBe(1);
    expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('with a fresh token');
    expect(stack.sandbox.agentIdentity.vault.get('uid:user-faults')!.accessToken).not.toBe(token);
  });

  it('an Agent Identity error: a clear message, nothing written', async () => {
    // A fresh user, so the broker must ask Agent Identity.
    const other = await connectServer(stack, { userId: 'user-ai-fault' });
    try {
      stack.sandbox.agentIdentity.injectFault({ action: 'GetWorkloadAccessTokenForUserId', status: 404, code: 'EntityNotExists.WorkloadIdentity', times: 1 });
      const result = await other.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'never' } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/EntityNotExists\.WorkloadIdentity/);
      expect(textOf(result)).toMatch(/AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME/);
    } finally {
      await other.close();
    }
  });
});

describe("the README's first command", () => {
  it('npm run demo -- --yes walks the whole flow and prints the document', async () => {
    const { spawnSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const demo = fileURLToPath(new URL('../../dist/examples/demo.js', import.meta.url));
    const run = spawnSync(process.execPath, [demo, '--yes'], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '' } });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('The server asks you to authorize');
    expect(run.stdout).toContain('| cn-beijing | 1,234.56 |');
    expect(run.stdout).toContain('Agent Identity calls for it: 0');
    expect(run.stdout).toContain('Demo finished.');
  });
});

describe('configuration errors', () => {
  it('a missing workload identity fails at start with one message naming the fix', async () => {
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('../helpers/stack.js');
    const run = spawnSync(process.execPath, [CLI, '--dingtalk-timeout-ms', 'soon'], {
      env: { PATH: process.env.PATH ?? '', APP_REDIRECT_URI: 'not a url' },
      encoding: 'utf8',
      cwd: '/tmp',
    });
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME');
    expect(run.stderr).toContain('APP_REDIRECT_URI');
    expect(run.stderr).toContain('DINGTALK_TIMEOUT_MS');
  });
});

describe('where the settings came from', () => {
  it('the start log names the config file, or where it was looked for', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { CLI } = await import('../helpers/stack.js');
    const cwd = mkdtempSync(join(tmpdir(), 'dingtalk-mcp-start-'));
    try {
      const start = () =>
        spawnSync(process.execPath, [CLI, '--sandbox'], {
          // In-process emulators: a start log is all this needs, no shared services left behind (docs/sandbox.md).
          env: { PATH: process.env.PATH ?? '', DINGTALK_MCP_SANDBOX_DETACHED: '0' },
          encoding: 'utf8',
          cwd,
          input: '',
          timeout: 30_000,
        });
      const first = start();
      expect(first.stderr).toContain(`INFO configuration configFile=none (looked for ${join(cwd, '.config.json')})`);
      // No AGENT_IDENTITY_USER_ID: the start line says the OS user name is used, not that the setting is.
      expect(first.stderr).toMatch(/serving MCP over stdio user=.*the OS user name \(AGENT_IDENTITY_USER_ID is not set\)/);
      expect(first.stderr).not.toContain('user=from AGENT_IDENTITY_USER_ID');
      writeFileSync(join(cwd, '.config.json'), JSON.stringify({ region_id: 'cn-beijng' }));
      const typo = start();
      expect(typo.status).toBe(2);
      expect(typo.stderr).toContain('AGENT_IDENTITY_REGION_ID / --region: "cn-beijng" is not an Alibaba Cloud region; did you mean "cn-beijing"?');
      expect(typo.stderr).toContain(`Settings were also read from ${join(cwd, '.config.json')}.`);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('secrets', () => {
  it('no token, JWT or AccessKey secret appears in anything the servers wrote to stderr', () => {
    const stderr = allServerStderr.join('');
    expect(stderr.length).toBeGreaterThan(0);
    const secrets = [
      stack.sandbox.accessKeySecret,
      ...stack.sandbox.agentIdentity.vault.list().map((v) => v.accessToken),
      ...stack.sandbox.agentIdentity.calls.flatMap((c) => [c.params.WorkloadAccessToken, c.params.UserToken]),
      ...stack.sandbox.agentIdentity.sessions().map((s) => s.sessionUri),
      ...stack.sandbox.agentIdentity.issuedSecrets(),
      STATE_SECRET,
    ].filter((s): s is string => typeof s === 'string' && s.length > 0);
    expect(secrets.length).toBeGreaterThan(5);
    for (const secret of secrets) expect(stderr).not.toContain(secret);
  });
});
