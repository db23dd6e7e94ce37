import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startDingTalkEmulator } from '../../src/sandbox/dingtalk/index.js';
import type { DingTalkEmulator } from '../../src/sandbox/dingtalk/index.js';
import { DingTalkClient } from '../../src/dingtalk/client.js';
import { DingTalkError } from '../../src/dingtalk/types.js';

const APP = { clientId: 'dingemuapp', clientSecret: 'emu-secret-123456', redirectUris: ['http://127.0.0.1:8090/callback'] };
const REDIRECT = APP.redirectUris[0]!;
const DOC = 'DocAbc123_xyz';

let emu: DingTalkEmulator;
let client: DingTalkClient;

beforeEach(async () => {
  emu = await startDingTalkEmulator({ apps: [APP], documents: [{ id: DOC, title: '周报 <draft>', content: 'old' }] });
  client = new DingTalkClient({ baseUrl: emu.url, maxRetries: 0, retryBaseDelayMs: 1 });
});
afterEach(async () => {
  await client.close();
  await emu.close();
});

function authorizeUrl(overrides: Record<string, string | null> = {}): string {
  const params: Record<string, string | null> = {
    client_id: APP.clientId,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'openid corpid',
    state: 'st-42',
    prompt: 'consent',
    ...overrides,
  };
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null) q.set(k, v);
  return `${emu.url}/oauth2/auth?${q}`;
}

async function consent(decision: 'allow' | 'deny', unionId?: string): Promise<URL> {
  const page = await fetch(authorizeUrl());
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain('<form method="post" action="/oauth2/auth/decision">');
  expect(html).toContain('name="decision" value="allow"');
  expect(html).toContain('name="decision" value="deny"');
  expect(html).toContain('张三');
  expect(html).toContain('李四');
  expect(html).toContain('openid');
  expect(html).not.toMatch(/<script|https?:\/\/(?!127\.0\.0\.1)/); // no scripts, no external assets
  const consentRequest = /name="consent_request" value="([^"]+)"/.exec(html)?.[1];
  expect(consentRequest).toBeTruthy();
  const firstUser = /<select name="unionId"><option value="([^"]+)"/.exec(html)?.[1];
  const form = new URLSearchParams({ consent_request: consentRequest!, decision, unionId: unionId ?? firstUser! });
  const res = await fetch(`${emu.url}/oauth2/auth/decision`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
    redirect: 'manual',
  });
  expect(res.status).toBe(302);
  return new URL(res.headers.get('location')!);
}

async function exchange(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${emu.url}/v1.0/oauth2/userAccessToken`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('consent flow (reference §2.1)', () => {
  it('allow → 302 with authCode+state → exchange → token works on users/me and overwrite', async () => {
    const lisi = emu.users[1]!;
    const cb = await consent('allow', lisi.unionId);
    expect(`${cb.origin}${cb.pathname}`).toBe(REDIRECT);
    expect(cb.searchParams.get('state')).toBe('st-42');
    const code = cb.searchParams.get('authCode');
    expect(code).toMatch(/^[0-9a-f]{32}$/);

    const { status, json } = await exchange({ clientId: APP.clientId, clientSecret: APP.clientSecret, code, grantType: 'authorization_code' });
    expect(status).toBe(200);
    expect(json).toMatchObject({ expireIn: 7200, corpId: expect.any(String) });
    const accessToken = json['accessToken'] as string;
    expect(accessToken.length).toBeGreaterThanOrEqual(32);

    await expect(client.getCurrentUser(accessToken)).resolves.toEqual({ unionId: lisi.unionId, nick: '李四' });
    await client.overwriteDocument(DOC, '# 新内容', accessToken);
    const doc = emu.getDocument(DOC)!;
    expect(doc.content).toBe('# 新内容');
    expect(doc.writes.map((w) => w.unionId)).toEqual([lisi.unionId]);

    // the code is single-use
    const again = await exchange({ clientId: APP.clientId, clientSecret: APP.clientSecret, code, grantType: 'authorization_code' });
    expect(again.status).toBe(400);
    expect(again.json).toMatchObject({ code: expect.any(String), requestid: expect.any(String), message: expect.any(String) });
  });

  it('deny → error=access_denied with state, no code', async () => {
    const cb = await consent('deny');
    expect(cb.searchParams.get('error')).toBe('access_denied');
    expect(cb.searchParams.get('state')).toBe('st-42');
    expect(cb.searchParams.has('authCode')).toBe(false);
  });

  it('a consent_request can be answered only once', async () => {
    const html = await (await fetch(authorizeUrl())).text();
    const id = /name="consent_request" value="([^"]+)"/.exec(html)![1]!;
    const post = () =>
      fetch(`${emu.url}/oauth2/auth/decision`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ consent_request: id, decision: 'allow', unionId: emu.users[0]!.unionId }).toString(),
        redirect: 'manual',
      });
    expect((await post()).status).toBe(302);
    expect((await post()).status).toBe(400);
  });

  it.each([
    ['unknown client', { client_id: 'nope' }],
    ['missing client', { client_id: null }],
    ['unregistered redirect_uri', { redirect_uri: 'http://127.0.0.1:8090/callback/evil' }],
    ['redirect_uri prefix trick', { redirect_uri: 'http://127.0.0.1:8090/callbackx' }],
    ['response_type', { response_type: 'token' }],
    ['scope without openid', { scope: 'corpid' }],
    ['missing prompt', { prompt: null }],
  ])('invalid request (%s) → 400 page, no redirect', async (_name, overrides) => {
    const res = await fetch(authorizeUrl(overrides), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
  });

  it('escapes what it echoes', async () => {
    const res = await fetch(authorizeUrl({ client_id: '<script>alert(1)</script>' }));
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
  });
});

describe('token endpoint (reference §2.1 step 2)', () => {
  it('bad client secret → 400 invalidClientIdOrSecret', async () => {
    const { status, json } = await exchange({ clientId: APP.clientId, clientSecret: 'wrong', code: 'x', grantType: 'authorization_code' });
    expect(status).toBe(400);
    expect(json['code']).toBe('invalidClientIdOrSecret');
  });

  it('refresh rotates the refresh token', async () => {
    const cb = await consent('allow');
    const first = await exchange({
      clientId: APP.clientId,
      clientSecret: APP.clientSecret,
      code: cb.searchParams.get('authCode'),
      grantType: 'authorization_code',
    });
    const rt = first.json['refreshToken'];
    const second = await exchange({ clientId: APP.clientId, clientSecret: APP.clientSecret, refreshToken: rt, grantType: 'refresh_token' });
    expect(second.status).toBe(200);
    expect(second.json['refreshToken']).not.toBe(rt);
    expect(second.json['accessToken']).not.toBe(first.json['accessToken']);
    const reuse = await exchange({ clientId: APP.clientId, clientSecret: APP.clientSecret, refreshToken: rt, grantType: 'refresh_token' });
    expect(reuse.status).toBe(400);
  });

  it('an expired auth code is rejected', async () => {
    const cb = await consent('allow');
    emu.advanceTime(60 * 60_000);
    const { status } = await exchange({
      clientId: APP.clientId,
      clientSecret: APP.clientSecret,
      code: cb.searchParams.get('authCode'),
      grantType: 'authorization_code',
    });
    expect(status).toBe(400);
  });
});

describe('overwriteContent (reference §3.1 (b), §4)', () => {
  const overwriteUrl = (id = DOC) => `${emu.url}/v2.0/doc/me/suites/documents/${id}/overwriteContent`;

  it('Authorization: Bearer instead of the header → 400 AuthenticationFailed.MissingParameter', async () => {
    const { accessToken } = emu.issueTokens(APP.clientId, emu.users[0]!.unionId);
    const res = await fetch(overwriteUrl(), {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'x' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'AuthenticationFailed.MissingParameter', requestid: expect.any(String) });
    expect(res.headers.get('x-acs-request-id')).toBe(body['requestid']);
    expect(emu.getDocument(DOC)!.content).toBe('old');
  });

  it('validates the body: content required, ≤ 50,000 chars, dataType markdown', async () => {
    const { accessToken } = emu.issueTokens(APP.clientId, emu.users[0]!.unionId);
    const post = (body: unknown) =>
      fetch(overwriteUrl(), {
        method: 'POST',
        headers: { 'x-acs-dingtalk-access-token': accessToken, 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    expect((await post({})).status).toBe(400);
    expect((await post('not json')).status).toBe(400);
    expect((await post({ content: 'x', dataType: 'html' })).status).toBe(400);
    const tooLong = await post({ content: 'a'.repeat(50_001) });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { message: string }).message).toMatch(/50000/);
    expect(emu.getDocument(DOC)!.content).toBe('old');
    expect((await post({ content: 'a'.repeat(50_000) })).status).toBe(200);
    expect(emu.getDocument(DOC)!.content.length).toBe(50_000);
  });

  it('unknown document → 404; revoked and expired tokens → InvalidAuthentication', async () => {
    const zhang = emu.users[0]!.unionId;
    const t1 = emu.issueTokens(APP.clientId, zhang).accessToken;
    await expect(client.overwriteDocument('NoSuchDoc123', 'x', t1)).rejects.toMatchObject({ kind: 'not_found', httpStatus: 404 });

    emu.revokeAccessToken(t1);
    await expect(client.overwriteDocument(DOC, 'x', t1)).rejects.toMatchObject({ kind: 'invalid_token', code: 'InvalidAuthentication' });

    const t2 = emu.issueTokens(APP.clientId, zhang).accessToken;
    emu.revokeTokensForUser(zhang);
    await expect(client.getCurrentUser(t2)).rejects.toMatchObject({ kind: 'invalid_token' });

    const t3 = emu.issueTokens(APP.clientId, zhang).accessToken;
    await client.overwriteDocument(DOC, 'fine', t3);
    emu.advanceTime(7200 * 1000 + 1);
    await expect(client.overwriteDocument(DOC, 'late', t3)).rejects.toBeInstanceOf(DingTalkError);
    expect(emu.getDocument(DOC)!.content).toBe('fine');
  });

  it('an app without Document.Document.Write → 403 with requiredScopes', async () => {
    await emu.close();
    emu = await startDingTalkEmulator({ apps: [{ ...APP, permissions: ['Contact.User.Read'] }], documents: [{ id: DOC }] });
    await client.close();
    client = new DingTalkClient({ baseUrl: emu.url, maxRetries: 0 });
    const { accessToken } = emu.issueTokens(APP.clientId, emu.users[0]!.unionId);
    const err = (await client.overwriteDocument(DOC, 'x', accessToken).catch((e: unknown) => e)) as DingTalkError;
    expect(err.kind).toBe('permission_denied');
    expect(err.message).toContain('Document.Document.Write');
  });

  it('records who wrote what', async () => {
    const [zhang, lisi] = emu.users;
    await client.overwriteDocument(DOC, 'by zhang', emu.issueTokens(APP.clientId, zhang!.unionId).accessToken);
    await client.overwriteDocument(DOC, 'by lisi', emu.issueTokens(APP.clientId, lisi!.unionId).accessToken);
    expect(emu.getDocument(DOC)!.writes.map((w) => w.unionId)).toEqual([zhang!.unionId, lisi!.unionId]);
    const writes = emu.requests.filter((r) => r.api === 'overwriteContent');
    expect(writes.map((r) => [r.unionId, r.status, r.documentId])).toEqual([
      [zhang!.unionId, 200, DOC],
      [lisi!.unionId, 200, DOC],
    ]);
  });
});

describe('sandbox pages and switches', () => {
  it('shows the document escaped, and raw markdown', async () => {
    const { accessToken } = emu.issueTokens(APP.clientId, emu.users[0]!.unionId);
    await client.overwriteDocument(DOC, '# Hi <img src=x onerror=alert(1)> & "q"', accessToken);
    const html = await (await fetch(`${emu.url}/sandbox/docs/${DOC}`)).text();
    expect(html).toContain('<pre># Hi &lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;</pre>');
    expect(html).toContain('周报 &lt;draft&gt;');
    expect(html).not.toContain('<img');
    const md = await fetch(`${emu.url}/sandbox/docs/${DOC}.md`);
    expect(md.headers.get('content-type')).toMatch(/text\/markdown/);
    expect(await md.text()).toBe('# Hi <img src=x onerror=alert(1)> & "q"');
    expect((await fetch(`${emu.url}/sandbox/docs/nope123.md`)).status).toBe(404);
  });

  it('POST/DELETE /sandbox/faults toggles faults over HTTP', async () => {
    const { accessToken } = emu.issueTokens(APP.clientId, emu.users[0]!.unionId);
    const add = await fetch(`${emu.url}/sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 503, code: 'ServiceUnavailable', match: 'overwriteContent' }), // times omitted → until cleared
    });
    expect(add.status).toBe(201);
    await expect(client.overwriteDocument(DOC, 'x', accessToken)).rejects.toMatchObject({ kind: 'server_error' });
    await expect(client.overwriteDocument(DOC, 'x', accessToken)).rejects.toMatchObject({ kind: 'server_error' });
    await expect(client.getCurrentUser(accessToken)).resolves.toBeTruthy(); // other APIs unaffected
    expect((await fetch(`${emu.url}/sandbox/faults`, { method: 'DELETE' })).status).toBe(200);
    await expect(client.overwriteDocument(DOC, 'x', accessToken)).resolves.toMatchObject({ documentId: DOC });
    // not JSON → refused (a cross-site form cannot flip switches)
    const form = await fetch(`${emu.url}/sandbox/faults`, { method: 'POST', body: new URLSearchParams({ status: '503' }) });
    expect(form.status).toBe(415);
  });

  it('unknown API paths → 404 InvalidAction.NotFound', async () => {
    const res = await fetch(`${emu.url}/v1.0/doc/suites/documents/${DOC}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'InvalidAction.NotFound', requestid: expect.any(String) });
  });
});
