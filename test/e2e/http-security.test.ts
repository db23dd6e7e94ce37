/**
 * HTTP-mode security defects from issue 9, part 2 ("Cookie tossing", "Identity provider", "Redirect
 * target") and part 1 point 4 (a --port that differs from APP_REDIRECT_URI). The HTTP transport runs
 * in-process against the sandbox; requests are raw HTTP, so the test sees what a browser or client would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { serveInProcess, type Served } from '../helpers/in-process-http.js';

let sandbox: Sandbox;
let served: Served;
/** A second port the emulated workload identity allows a callback on. */
let secondPort: number;

/** Start the HTTP transport with these flags and environment on top of the sandbox's. */
const serve = (argv: string[], env: Record<string, string>): Promise<Served> =>
  serveInProcess(sandbox, env.APP_REDIRECT_URI ?? 'http://127.0.0.1:1', argv, env);

beforeAll(async () => {
  const port = await freePort();
  secondPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  sandbox = await startSandbox({
    callbackUrl: [`${base}/callback`, `http://127.0.0.1:${secondPort}/callback`],
    oidc: { loginRedirectUri: `${base}/login/callback` },
  });
  served = await serve(['--port', String(port)], { APP_REDIRECT_URI: base });
});
afterAll(async () => {
  await served?.close();
  await sandbox?.close();
});

describe('cookie tossing', () => {
  it.each(['/callback?state=abc', '/login/callback?state=abc&code=x'])(
    '%s with one of our cookies twice → 400 page, a security warning without values',
    async (path) => {
      const res = await fetch(`${served.base}${path}`, {
        headers: { cookie: 'dtmcp_bind_p1=planted-by-attacker-1; other=1; dtmcp_bind_p1=victims-own-2' },
        redirect: 'manual',
      });
      expect(res.status).toBe(400);
      const page = await res.text();
      expect(page).toContain('Conflicting cookies');
      expect(page).toContain('Nothing was changed.');
      const logs = served.logs.join('\n');
      expect(logs).toContain('cookie tossing');
      expect(logs).toContain('dtmcp_bind_p1');
      expect(logs).not.toContain('planted-by-attacker-1');
      expect(logs).not.toContain('victims-own-2');
    },
  );

  it('the warning names a pending id and its cookie by their first characters only (a link is its id)', async () => {
    const id = 'PendingIdOfSomebody0123456789abcdefgh';
    const res = await fetch(`${served.base}/connect/${id}/continue`, { headers: { cookie: `dtmcp_bind_${id}=a; dtmcp_bind_${id}=b` }, redirect: 'manual' });
    expect(res.status).toBe(400);
    const line = served.logs.filter((l) => l.includes('cookie tossing')).at(-1)!;
    expect(line).toContain('connect/Pendin…');
    expect(line).toContain('dtmcp_bind_Pendin…');
    expect(line).not.toContain(id);
  });

  it('a malformed cookie value of ours is treated as absent: 400 page, not 500', async () => {
    const res = await fetch(`${served.base}/login/callback?state=abc&code=x`, { headers: { cookie: 'dtmcp_oidc_abc=%E0%A4%A' } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('does not match a sign-in started in this browser');
  });

  it('a cookie of another application twice is not our concern: the callback goes on to its own checks', async () => {
    const res = await fetch(`${served.base}/callback?state=abc`, { headers: { cookie: '_ga=1; _ga=2' } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('could not be verified');
  });
});

describe('where HTTP mode listens', () => {
  it('a non-loopback address with an http:// APP_REDIRECT_URI is refused, naming the fix', async () => {
    const port = await freePort();
    await expect(serve(['--host', '0.0.0.0', '--port', String(port)], { APP_REDIRECT_URI: `http://10.1.2.3:${port}` })).rejects.toThrow(
      /refusing to serve on 0\.0\.0\.0 without TLS.*https:\/\/.*DINGTALK_MCP_ALLOW_INSECURE_HTTP=1/,
    );
  });

  it('DINGTALK_MCP_ALLOW_INSECURE_HTTP=1 serves anyway, with the loud warning', async () => {
    const port = await freePort();
    const own = await serve(['--host', '0.0.0.0', '--port', String(port)], {
      APP_REDIRECT_URI: `http://10.1.2.3:${port}`,
      DINGTALK_MCP_ALLOW_INSECURE_HTTP: '1',
    });
    try {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBeLessThan(500);
      expect(own.logs.join('\n')).toContain('without TLS');
    } finally {
      await own.close();
    }
  });

  it('an https public URL in front of a non-loopback bind is the normal deployment', async () => {
    const port = await freePort();
    const own = await serve(['--host', '0.0.0.0', '--port', String(port)], { APP_REDIRECT_URI: 'https://mcp.example.com' });
    await own.close();
  });

  it('a plain-http OIDC_ISSUER off loopback is refused at start, naming the fix', async () => {
    const port = await freePort();
    await expect(serve(['--port', String(port)], { APP_REDIRECT_URI: `http://127.0.0.1:${port}`, OIDC_ISSUER: 'http://idp.example.com' })).rejects.toThrow(
      "OIDC_ISSUER is http://idp.example.com: plain http is allowed only on loopback (the sandbox's identity provider), because this server reads the keys that sign bearer tokens from it and sends sign-in codes to it. Use the identity provider's https:// issuer URL.",
    );
  });

  it('a loopback APP_REDIRECT_URI on another port than --port is refused, naming both and the fixes', async () => {
    const [listen, other] = [await freePort(), await freePort()];
    const attempt = serve(['--port', String(listen)], { APP_REDIRECT_URI: `http://127.0.0.1:${other}` });
    await expect(attempt).rejects.toThrow(`APP_REDIRECT_URI is http://127.0.0.1:${other} (port ${other}) but --port is ${listen}`);
    await expect(attempt).rejects.toThrow(`Use --port ${other}, or set APP_REDIRECT_URI=http://127.0.0.1:${listen}`);
    await expect(attempt).rejects.toThrow('DINGTALK_MCP_PUBLIC_URL_PROXIED=1');
  });

  it('a local proxy in front (DINGTALK_MCP_PUBLIC_URL_PROXIED=1) may use another port', async () => {
    const [listen, other] = [await freePort(), await freePort()];
    const own = await serve(['--port', String(listen)], { APP_REDIRECT_URI: `http://127.0.0.1:${other}`, DINGTALK_MCP_PUBLIC_URL_PROXIED: '1' });
    await own.close();
  });

  it('without APP_REDIRECT_URI, the advertised URL follows --port', async () => {
    const port = await freePort();
    const config = loadConfig({ argv: ['--transport', 'http', '--port', String(port), '--sandbox'], env: {}, cwd: '/nonexistent' });
    expect(config.appRedirectUri).toBe(`http://localhost:${port}`);
    expect(config.callbackUrl).toBe(`http://localhost:${port}/callback`);
  });
});

describe('identity provider', () => {
  const ALICE = 'alice-1001';
  const initialize = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  const post = (base: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: initialize,
    });
  const bearer = async () => ({ authorization: `Bearer ${await sandbox.oidc!.mintAccessToken({ sub: ALICE })}` });
  const own = async () => {
    const port = await freePort();
    return serve(['--port', String(port)], { APP_REDIRECT_URI: `http://127.0.0.1:${port}` });
  };

  it('no Authorization header → 401 with the bare Bearer challenge, no error code (RFC 6750 §3.1)', async () => {
    const res = await post(served.base);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${served.base}/.well-known/oauth-protected-resource/mcp"`);
  });

  it('a token signed with a key published a moment ago is accepted at once, after one JWKS fetch', async () => {
    const server = await own();
    try {
      expect((await post(server.base, await bearer())).status).toBe(200);
      await sandbox.oidc!.rotateKey();
      const before = sandbox.oidc!.hits.get('/jwks') ?? 0;
      expect((await post(server.base, await bearer())).status).toBe(200);
      expect(sandbox.oidc!.hits.get('/jwks')).toBe(before + 1);
    } finally {
      await server.close();
    }
  });

  it('tokens naming unknown keys cannot make the server hammer the JWKS: concurrent ones share one fetch', async () => {
    const server = await own();
    try {
      expect((await post(server.base, await bearer())).status).toBe(200);
      const before = sandbox.oidc!.hits.get('/jwks') ?? 0;
      const forged = await Promise.all(
        Array.from(
          { length: 20 },
          async () => (await post(server.base, { authorization: `Bearer ${await sandbox.oidc!.mintAccessToken({ sub: ALICE, foreignKey: true })}` })).status,
        ),
      );
      expect(forged.every((s) => s === 401)).toBe(true);
      expect(sandbox.oidc!.hits.get('/jwks')).toBe(before + 1);
    } finally {
      await server.close();
    }
  });

  it('an outage after start keeps the last good keys: valid tokens still pass; a key it cannot look up → 503, not 401', async () => {
    const server = await own();
    try {
      expect((await post(server.base, await bearer())).status).toBe(200);
      sandbox.oidc!.setOutage({ discovery: true, jwks: true });
      expect((await post(server.base, await bearer())).status).toBe(200);
      await sandbox.oidc!.rotateKey();
      const res = await post(server.base, await bearer());
      expect(res.status).toBe(503);
      expect(res.headers.get('www-authenticate')).toBeNull();
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.json()).toMatchObject({
        error: 'temporarily_unavailable',
        error_description: expect.stringContaining('identity provider is unreachable'),
      });
    } finally {
      sandbox.oidc!.setOutage({});
      await server.close();
    }
  });

  it('with no usable copy (the provider down since start) → 503 with Retry-After; once it is back the same token passes', async () => {
    sandbox.oidc!.setOutage({ discovery: true, jwks: true });
    const server = await own();
    try {
      const auth = await bearer();
      const res = await post(server.base, auth);
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringContaining('it was not refused') });
      expect(server.logs.join('\n')).toContain('identity provider unreachable');
      sandbox.oidc!.setOutage({});
      expect((await post(server.base, auth)).status).toBe(200);
    } finally {
      sandbox.oidc!.setOutage({});
      await server.close();
    }
  });
});

describe('redirect target', () => {
  const write = (id: number) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name: 'write_dingtalk_doc',
        arguments: { document: 'RedirectDoc0001', content: 'must not be written' },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    });
  const call = async (base: string, sub: string) => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'write_dingtalk_doc',
        authorization: `Bearer ${await sandbox.oidc!.mintAccessToken({ sub })}`,
      },
      body: write(1),
    });
    return (await res.json()) as { result: { isError?: boolean; content: Array<{ text: string }>; structuredContent?: { authorizationUrl?: string } } };
  };

  it('a consent link on the configured Agent Identity endpoint is offered (the sandbox emulator, from configuration)', async () => {
    sandbox.dingtalk.seedDocument('RedirectDoc0001', { title: 'Redirect', content: 'original' });
    const { result } = await call(served.base, 'carol-3003');
    expect(result.structuredContent?.authorizationUrl).toBeDefined();
  });

  it('a consent link on another origin than the configured endpoint → isError, nothing written, logged without its query', async () => {
    sandbox.dingtalk.seedDocument('RedirectDoc0001', { title: 'Redirect', content: 'original' });
    const port = secondPort;
    // The same emulator under another name: its links say 127.0.0.1, which is not the configured origin.
    const endpoint = sandbox.agentIdentity.url.replace('127.0.0.1', 'localhost');
    const server = await serve(['--port', String(port)], { APP_REDIRECT_URI: `http://127.0.0.1:${port}`, AGENT_IDENTITY_ENDPOINT: endpoint });
    try {
      const { result } = await call(server.base, 'dave-4004');
      expect(result.isError).toBe(true);
      expect(result.content[0]!.text).toContain('Agent Identity returned an unexpected authorization link');
      expect(result.content[0]!.text).toContain(`on ${sandbox.agentIdentity.url}, not on ${endpoint}`);
      expect(result.content[0]!.text).toContain('Nothing was written');
      expect(result.structuredContent?.authorizationUrl).toBeUndefined();
      expect(sandbox.dingtalk.getDocument('RedirectDoc0001')?.content).toBe('original');
      const logs = server.logs.join('\n');
      expect(logs).toContain('authorization link outside Agent Identity');
      expect(logs).not.toContain('request_uri');
    } finally {
      await server.close();
    }
  });
});
