import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import OpenApiModule, { Config as OpenApiConfig, OpenApiRequest, Params } from '@alicloud/openapi-client';
import { AgentIdentityClient, type AlibabaCloudCredential } from '../../src/identity/agent-identity-client.js';
import { AgentIdentityError } from '../../src/identity/types.js';
import { rpcParams } from '../../src/acs-rpc.js';
import { startAgentIdentityEmulator, type AgentIdentityEmulator } from '../../src/sandbox/agent-identity/index.js';

// CommonJS default exports: Node gives module.exports, some loaders give the class itself.
const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;
const OpenApiClient = ((OpenApiModule as unknown as { default?: unknown }).default ?? OpenApiModule) as typeof OpenApiModule.default;

const AK = { accessKeyId: 'LTAIemulatorServer01', accessKeySecret: 'server-secret-value-0123456789' };
const LIMITED_AK = {
  accessKeyId: 'LTAIemulatorLimited1',
  accessKeySecret: 'limited-secret-value-012345',
  allowedActions: ['GetWorkloadAccessTokenForUserId', 'GetResourceOAuth2Token'],
};
const WORKLOAD = 'workload-dingtalk-mcp';
const PROVIDER = 'test-provider-for-dingtalk';
const RETURN_URL = 'http://localhost:8090/callback';

/** A tiny stand-in for DingTalk's consent page and token endpoint (its real emulator lives in dingtalk-emulator.ts). */
interface StandInIdp {
  url: string;
  decision: 'allow' | 'deny';
  failRefresh: boolean;
  authorizeRequests: URL[];
  tokenRequests: Array<Record<string, unknown>>;
  issued: string[];
  close(): Promise<void>;
}

async function startStandInIdp(clientId: string, clientSecret: string): Promise<StandInIdp> {
  let n = 0;
  const codes = new Map<string, string>();
  const state: StandInIdp = {
    url: '',
    decision: 'allow',
    failRefresh: false,
    authorizeRequests: [],
    tokenRequests: [],
    issued: [],
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', state.url);
    if (req.method === 'GET' && url.pathname === '/oauth2/auth') {
      state.authorizeRequests.push(url);
      const back = new URL(url.searchParams.get('redirect_uri')!);
      if (state.decision === 'allow') {
        const code = `code-${++n}`;
        codes.set(code, url.searchParams.get('scope') ?? '');
        back.searchParams.set('authCode', code);
      } else {
        back.searchParams.set('error', 'access_denied');
      }
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/v1.0/oauth2/userAccessToken') {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const body = JSON.parse(raw) as Record<string, string>;
        state.tokenRequests.push(body);
        const ok =
          body.clientId === clientId &&
          body.clientSecret === clientSecret &&
          ((body.grantType === 'authorization_code' && codes.delete(body.code ?? '')) ||
            (body.grantType === 'refresh_token' && !state.failRefresh && body.refreshToken?.startsWith('dt-refresh-')));
        if (!ok) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'invalid_grant', message: 'bad grant' }));
          return;
        }
        const accessToken = `dt-access-${++n}-${Math.random().toString(36).slice(2)}`;
        state.issued.push(accessToken);
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ accessToken, refreshToken: `dt-refresh-${n}`, expireIn: 7200, corpId: 'dingcorp01' }));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** Follow redirects like a browser until the app's return URL is reached (which is never fetched). */
async function browse(start: string): Promise<{ returned?: URL; status?: number; body?: string }> {
  let url = start;
  for (let i = 0; i < 10; i++) {
    if (url.startsWith(RETURN_URL)) return { returned: new URL(url) };
    const res = await fetch(url, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      url = new URL(location, url).toString();
      continue;
    }
    return { status: res.status, body: await res.text() };
  }
  throw new Error('too many redirects');
}

function jwt(claims: Record<string, unknown>, signature = 'sig'): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}.${signature}`;
}

function akCredential(accessKeyId: string, accessKeySecret: string): AlibabaCloudCredential {
  return new Credential(new CredentialConfig({ type: 'access_key', accessKeyId, accessKeySecret }));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AgentIdentityError) return err.code;
    throw err;
  }
  return 'OK';
}

let clock = Date.now();
let idp: StandInIdp;
let emu: AgentIdentityEmulator;
let client: AgentIdentityClient;

beforeEach(async () => {
  clock = Date.now();
  idp = await startStandInIdp('dingclient', 'dingsecret-abcdef');
  emu = await startAgentIdentityEmulator({
    accessKeys: [AK, LIMITED_AK],
    workloadIdentities: [{ name: WORKLOAD, allowedReturnUrls: [RETURN_URL] }],
    providers: [
      {
        name: PROVIDER,
        clientId: 'dingclient',
        clientSecret: 'dingsecret-abcdef',
        authorizationEndpoint: `${idp.url}/oauth2/auth`,
        tokenEndpoint: `${idp.url}/v1.0/oauth2/userAccessToken`,
      },
    ],
    apiKeyProviders: [{ name: 'test-provider-api-key', apiKey: '12345678' }],
    now: () => clock,
  });
  client = new AgentIdentityClient({ endpoint: emu.url, credential: akCredential(AK.accessKeyId, AK.accessKeySecret) });
});

afterEach(async () => {
  await emu.close();
  await idp.close();
});

function tokenRequest(workloadAccessToken: string, extra: Partial<Parameters<AgentIdentityClient['getResourceOAuth2Token']>[0]> = {}) {
  return {
    workloadAccessToken,
    providerName: PROVIDER,
    scopes: ['openid', 'corpid'],
    flow: 'USER_FEDERATION' as const,
    returnUrl: RETURN_URL,
    customState: 'pending-123',
    ...extra,
  };
}

describe('session flow (USER_FEDERATION)', () => {
  it('runs token → authorize → IdP → callback → CompleteResourceTokenAuth → AccessToken', async () => {
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    expect(workloadAccessToken.split('.')).toHaveLength(3);

    const first = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken, { customParameters: { lang: 'zh_CN' } }));
    expect(first.accessToken).toBeUndefined();
    expect(first.sessionStatus).toBe('IN_PROGRESS');
    expect(first.sessionUri).toMatch(/^urn:ietf:params:oauth:request_uri:[0-9a-f-]{36}$/);
    expect(first.authorizationUrl).toBe(`${emu.url}/oauth2/authorize?request_uri=${encodeURIComponent(first.sessionUri!)}`);

    const { returned } = await browse(first.authorizationUrl!);
    // What the IdP saw.
    const auth = idp.authorizeRequests[0]!;
    expect(auth.searchParams.get('client_id')).toBe('dingclient');
    expect(auth.searchParams.get('redirect_uri')).toBe(emu.callbackUrl(PROVIDER));
    expect(auth.searchParams.get('response_type')).toBe('code');
    expect(auth.searchParams.get('scope')).toBe('openid corpid');
    expect(auth.searchParams.get('prompt')).toBe('consent');
    expect(auth.searchParams.get('lang')).toBe('zh_CN');
    expect(auth.searchParams.get('state')).not.toBe('pending-123');
    expect(idp.tokenRequests[0]).toMatchObject({ clientId: 'dingclient', grantType: 'authorization_code' });
    // What the app's callback gets.
    expect(returned!.origin + returned!.pathname).toBe(RETURN_URL);
    expect(returned!.searchParams.get('session_uri')).toBe(first.sessionUri);
    expect(returned!.searchParams.get('state')).toBe('pending-123');

    // The provider's token sits on the session, not in the vault, until CompleteResourceTokenAuth.
    expect(emu.vault.has('uid:alice')).toBe(false);
    expect(emu.sessions()[0]).toMatchObject({ hasProviderToken: true, status: 'IN_PROGRESS', customState: 'pending-123' });
    const polled = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken, { sessionUri: first.sessionUri! }));
    expect(polled).toMatchObject({ sessionUri: first.sessionUri, sessionStatus: 'IN_PROGRESS' });
    expect(polled.accessToken).toBeUndefined();

    await client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'alice' });
    expect(emu.vault.get('uid:alice')?.accessToken).toBe(idp.issued[0]);

    const done = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken, { sessionUri: first.sessionUri! }));
    expect(done.accessToken).toBe(idp.issued[0]);
    // Later calls get the vaulted token directly.
    const again = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken));
    expect(again.accessToken).toBe(idp.issued[0]);
    expect(again.authorizationUrl).toBeUndefined();

    // Single use: the authorization URL and the completion.
    const reused = await browse(first.authorizationUrl!);
    expect(reused.status).toBe(400);
    expect(await codeOf(client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'alice' }))).toBe('InvalidParameter.SessionURI');
  });

  it('binds the session to the artifact that minted the workload token (UserId)', async () => {
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const first = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken));
    // Before the user consented there is nothing to complete.
    expect(await codeOf(client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'alice' }))).toBe('InvalidParameter.SessionURI');
    await browse(first.authorizationUrl!);

    const err = await client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'mallory' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentIdentityError);
    expect((err as AgentIdentityError).code).toBe('InvalidParameter.SessionURI');
    expect((err as AgentIdentityError).message).toContain('Invalid or expired session');
    expect(emu.vault.list()).toHaveLength(0);
    // The rightful user can still complete it.
    await client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'alice' });
    expect(emu.vault.has('uid:alice')).toBe(true);
  });

  it('binds the session to the byte-identical JWT', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const userJwt = jwt({ iss: 'https://idp.example', sub: 'u-42', exp });
    const sameUserOtherJwt = jwt({ iss: 'https://idp.example', sub: 'u-42', exp: exp + 1 });
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForJWT(WORKLOAD, userJwt);
    expect(emu.calls.at(-1)?.params.UserToken).toBe(userJwt);
    const first = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken));
    await browse(first.authorizationUrl!);

    expect(await codeOf(client.completeResourceTokenAuth(first.sessionUri!, { UserJWT: sameUserOtherJwt }))).toBe('InvalidParameter.SessionURI');
    expect(await codeOf(client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'u-42' }))).toBe('InvalidParameter.SessionURI');
    expect(emu.vault.list()).toHaveLength(0);
    await client.completeResourceTokenAuth(first.sessionUri!, { UserJWT: userJwt });
    expect(emu.vault.has('jwt:https://idp.example:u-42', PROVIDER, WORKLOAD)).toBe(true);
    expect(JSON.parse(emu.calls.at(-1)!.params.UserIdentifier!)).toEqual({ UserJWT: userJwt });

    // A fresh JWT of the same user finds the vaulted token.
    const next = await client.getWorkloadAccessTokenForJWT(WORKLOAD, sameUserOtherJwt);
    expect((await client.getResourceOAuth2Token(tokenRequest(next.workloadAccessToken))).accessToken).toBe(idp.issued[0]);
  });

  it('reports a denied consent to the return URL (modeled) and the session fails', async () => {
    idp.decision = 'deny';
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'bob');
    const first = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken));
    const { returned } = await browse(first.authorizationUrl!);
    expect(returned!.searchParams.get('error')).toBe('access_denied');
    expect(returned!.searchParams.get('session_uri')).toBe(first.sessionUri);
    expect(returned!.searchParams.get('state')).toBe('pending-123');
    const polled = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken, { sessionUri: first.sessionUri! }));
    expect(polled.sessionStatus).toBe('FAILED');
    expect(await codeOf(client.completeResourceTokenAuth(first.sessionUri!, { UserId: 'bob' }))).toBe('InvalidParameter.SessionURI');
  });

  async function vaultTokenFor(userId: string): Promise<string> {
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, userId);
    const first = await client.getResourceOAuth2Token(tokenRequest(workloadAccessToken));
    await browse(first.authorizationUrl!);
    await client.completeResourceTokenAuth(first.sessionUri!, { UserId: userId });
    return workloadAccessToken;
  }

  it('starts a new session on ForceAuthentication and when the vault token was revoked', async () => {
    const wat = await vaultTokenFor('carol');
    const forced = await client.getResourceOAuth2Token(tokenRequest(wat, { forceAuthentication: true }));
    expect(forced.authorizationUrl).toBeDefined();
    expect(emu.calls.at(-1)?.params.ForceAuthentication).toBe('true');
    expect(emu.revokeVaultToken({ user: 'uid:carol' })).toBe(1);
    expect((await client.getResourceOAuth2Token(tokenRequest(wat))).authorizationUrl).toBeDefined();
  });

  it('refreshes an expired vault token through the provider, and starts over when refresh fails', async () => {
    const wat = await vaultTokenFor('dave');
    emu.expireVaultToken({ user: 'uid:dave' });
    const refreshed = await client.getResourceOAuth2Token(tokenRequest(wat));
    expect(idp.tokenRequests.at(-1)).toMatchObject({ grantType: 'refresh_token', refreshToken: 'dt-refresh-2' });
    expect(refreshed.accessToken).toBe(idp.issued[1]);

    idp.failRefresh = true;
    emu.expireVaultToken({ user: 'uid:dave' });
    const restarted = await client.getResourceOAuth2Token(tokenRequest(wat));
    expect(restarted.authorizationUrl).toBeDefined();
    expect(emu.vault.has('uid:dave')).toBe(false);
  });
});

/** A GetResourceOAuth2Token call signed by the server's key, with a body the typed client would never send. */
function rawTokenCall() {
  const raw = new OpenApiClient(
    new OpenApiConfig({ endpoint: new URL(emu.url).host, protocol: 'http', credential: akCredential(AK.accessKeyId, AK.accessKeySecret) }),
  );
  return { raw, params: new Params(rpcParams('GetResourceOAuth2Token', '2025-11-27', 'http')) };
}

describe('validation', () => {
  it('rejects bad parameters like the service would', async () => {
    const { workloadAccessToken: wat } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    expect(await codeOf(client.getWorkloadAccessTokenForUserId('nope', 'alice'))).toBe('EntityNotExists.WorkloadIdentity');
    expect(await codeOf(client.getWorkloadAccessTokenForUserId(WORKLOAD, ''))).toBe('MissingParameter.UserId');
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat, { providerName: 'nope' })))).toBe('EntityNotExists.OAuth2CredentialProvider');
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat, { returnUrl: 'https://evil.example/cb' })))).toBe(
      'InvalidParameter.ResourceOAuth2ReturnURL',
    );
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat, { flow: 'M2M' as 'USER_FEDERATION' })))).toBe('InvalidParameter.OAuth2Flow');
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat, { sessionUri: 'urn:ietf:params:oauth:request_uri:nope' })))).toBe(
      'InvalidParameter.SessionURI',
    );
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat.slice(0, -2) + 'xx')))).toBe('InvalidWorkloadAccessToken');
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest('not-a-token')))).toBe('InvalidWorkloadAccessToken');
    expect(await codeOf(client.getWorkloadAccessTokenForJWT(WORKLOAD, 'abc.def'))).toBe('InvalidParameter.UserToken');
    expect(await codeOf(client.getWorkloadAccessTokenForJWT(WORKLOAD, jwt({ iss: 'x' })))).toBe('InvalidParameter.UserToken');
    expect(await codeOf(client.getWorkloadAccessTokenForJWT(WORKLOAD, jwt({ sub: 'u', exp: 1000 })))).toBe('InvalidUserToken.Expired');
    // A user-less workload token cannot federate a user.
    const bare = await client.getWorkloadAccessToken(WORKLOAD);
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(bare.workloadAccessToken)))).toBe('InvalidParameter.WorkloadAccessToken');
  });

  it('rejects JSON-string params that do not parse', async () => {
    const { workloadAccessToken: wat } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const { raw, params } = rawTokenCall();
    const body = { WorkloadAccessToken: wat, ResourceCredentialProviderName: PROVIDER, OAuth2Flow: 'USER_FEDERATION', ResourceOAuth2ReturnURL: RETURN_URL };
    const err = (await raw.callApi(params, new OpenApiRequest({ body: { ...body, Scopes: 'openid corpid' } }), {} as never).catch((e: unknown) => e)) as {
      code: string;
    };
    expect(err.code).toBe('InvalidParameter.Scopes');
    const err2 = (await raw.callApi(params, new OpenApiRequest({ body: { ...body, CustomParameters: '["x"]' } }), {} as never).catch((e: unknown) => e)) as {
      code: string;
    };
    expect(err2.code).toBe('InvalidParameter.CustomParameters');
  });

  it('refuses GetResourceOAuth2Token without Scopes, or with none in it, as the service refuses a missing parameter', async () => {
    const { workloadAccessToken: wat } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const { raw, params } = rawTokenCall();
    const body = { WorkloadAccessToken: wat, ResourceCredentialProviderName: PROVIDER, OAuth2Flow: 'USER_FEDERATION', ResourceOAuth2ReturnURL: RETURN_URL };
    const missing = (await raw.callApi(params, new OpenApiRequest({ body }), {} as never).catch((e: unknown) => e)) as {
      code: string;
      statusCode: number;
      data: Record<string, unknown>;
    };
    expect(missing).toMatchObject({ code: 'MissingParameter.Scopes', statusCode: 400 });
    expect(missing.data).toMatchObject({ Code: 'MissingParameter.Scopes', HostId: new URL(emu.url).host });
    expect(String(missing.data.Message)).toMatch(/"Scopes" that is mandatory/);
    for (const scopes of ['[]', '[""]']) {
      const err = (await raw.callApi(params, new OpenApiRequest({ body: { ...body, Scopes: scopes } }), {} as never).catch((e: unknown) => e)) as {
        code: string;
      };
      expect(err.code).toBe('InvalidParameter.Scopes');
    }
    expect(emu.sessions()).toHaveLength(0);
  });

  it('expires workload access tokens by its clock', async () => {
    const { workloadAccessToken: wat } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const exp = JSON.parse(Buffer.from(wat.split('.')[1]!, 'base64url').toString()) as { exp: number; wi: string };
    expect(exp.wi).toBe(WORKLOAD);
    clock += 901_000;
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(wat)))).toBe('InvalidWorkloadAccessToken.Expired');
  });
});

describe('signatures and who may call what', () => {
  it('verifies V3 signatures: wrong secret, unknown key, tampered body, unsigned, wrong version', async () => {
    const wrong = new AgentIdentityClient({ endpoint: emu.url, credential: akCredential(AK.accessKeyId, 'not-the-secret-xxxxxxxx') });
    expect(await codeOf(wrong.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('SignatureDoesNotMatch');
    const unknown = new AgentIdentityClient({ endpoint: emu.url, credential: akCredential('LTAIunknown', 'whatever-secret-123') });
    expect(await codeOf(unknown.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('InvalidAccessKeyId.NotFound');
    expect(emu.calls.at(-1)).toMatchObject({ status: 404, code: 'InvalidAccessKeyId.NotFound' });

    const form = 'WorkloadIdentityName=' + WORKLOAD + '&UserId=alice';
    const headers = {
      'content-type': 'application/x-www-form-urlencoded',
      'x-acs-action': 'GetWorkloadAccessTokenForUserId',
      'x-acs-version': '2025-11-27',
      'x-acs-date': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      'x-acs-signature-nonce': 'n-' + Math.random(),
      'x-acs-content-sha256': createHash('sha256').update('').digest('hex'),
    };
    const tampered = await fetch(emu.url + '/', {
      method: 'POST',
      body: form,
      headers: {
        ...headers,
        authorization: `ACS3-HMAC-SHA256 Credential=${AK.accessKeyId},SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=00`,
      },
    });
    const tamperedBody = (await tampered.json()) as Record<string, string>;
    expect(tampered.status).toBe(400);
    expect(tamperedBody.Code).toBe('SignatureDoesNotMatch');
    expect(Object.keys(tamperedBody).sort()).toEqual(['Code', 'HostId', 'Message', 'Recommend', 'RequestId']);

    const unsigned = await fetch(emu.url + '/', { method: 'POST', body: form, headers });
    expect(((await unsigned.json()) as { Code: string }).Code).toBe('MissingAuthorization');

    const badVersion = await fetch(emu.url + '/?Action=GetWorkloadAccessTokenForUserId&Version=2025-09-01', { method: 'POST' });
    expect(((await badVersion.json()) as { Code: string }).Code).toBe('InvalidVersion');
    const unknownAction = await fetch(emu.url + '/?Action=GetResourceOauth2Token&Version=2025-11-27', { method: 'POST' });
    expect(unknownAction.status).toBe(404);
  });

  it('verifies V2 (HMAC-SHA1) signatures too', async () => {
    const host = new URL(emu.url).host;
    const params = new Params(rpcParams('GetWorkloadAccessTokenForUserId', '2025-11-27', 'http'));
    const req = () => new OpenApiRequest({ body: { WorkloadIdentityName: WORKLOAD, UserId: 'alice' } });
    const good = new OpenApiClient(
      new OpenApiConfig({ endpoint: host, protocol: 'http', signatureAlgorithm: 'v2', credential: akCredential(AK.accessKeyId, AK.accessKeySecret) }),
    );
    const res = await good.callApi(params, req(), {} as never);
    expect((res.body as { WorkloadAccessToken: string }).WorkloadAccessToken).toBeTruthy();
    expect(emu.calls.at(-1)).toMatchObject({ signatureVersion: 'v2', signedBy: { type: 'accessKey', accessKeyId: AK.accessKeyId } });
    const bad = new OpenApiClient(
      new OpenApiConfig({ endpoint: host, protocol: 'http', signatureAlgorithm: 'v2', credential: akCredential(AK.accessKeyId, 'wrong-secret-0000000') }),
    );
    const err = (await bad.callApi(params, req(), {} as never).catch((e: unknown) => e)) as { code: string };
    expect(err.code).toBe('SignatureDoesNotMatch');
  });

  it('accepts the anonymous AssumeRoleForWorkloadIdentity both as doRPCRequest (generated SDK) and as callApi (V3, unsigned)', async () => {
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const raw = new OpenApiClient(new OpenApiConfig({ endpoint: new URL(emu.url).host, protocol: 'http' }));
    const params = new Params(rpcParams('AssumeRoleForWorkloadIdentity', '2025-11-27', 'http', 'Anonymous'));
    const body = { WorkloadAccessToken: workloadAccessToken, RoleSessionName: 'AgentIdentitySessionRole-v3', DurationSeconds: 900 };
    const res = await raw.callApi(params, new OpenApiRequest({ body }), {} as never);
    expect((res.body as { Credentials: { AccessKeyId: string } }).Credentials.AccessKeyId).toMatch(/^STS\./);
    expect((res.body as { WorkloadContextInfo: { UserContext: unknown } }).WorkloadContextInfo.UserContext).toEqual({ UserId: 'alice' });
    expect(emu.calls.at(-1)).toMatchObject({ signedBy: { type: 'anonymous' }, signatureVersion: 'none', status: 200 });
    // Without a workload token there is no credential at all.
    const err = (await raw.callApi(params, new OpenApiRequest({ body: { RoleSessionName: 'x1' } }), {} as never).catch((e: unknown) => e)) as { code: string };
    expect(err.code).toBe('MissingParameter.WorkloadAccessToken');
  });

  it('honours allowedActions of an AccessKey', async () => {
    const limited = new AgentIdentityClient({ endpoint: emu.url, credential: akCredential(LIMITED_AK.accessKeyId, LIMITED_AK.accessKeySecret) });
    await limited.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    expect(await codeOf(limited.completeResourceTokenAuth('urn:ietf:params:oauth:request_uri:x', { UserId: 'alice' }))).toBe('NoPermission');
    expect(emu.calls.at(-1)).toMatchObject({ action: 'CompleteResourceTokenAuth', status: 403 });
  });

  it('issues STS credentials anonymously that only fetch credentials for their own workload + user', async () => {
    const alice = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const bob = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'bob');
    const sts = await client.assumeRoleForWorkloadIdentity(alice.workloadAccessToken, { roleSessionName: 'AgentIdentitySessionRole-1', durationSeconds: 3600 });
    expect(emu.calls.at(-1)).toMatchObject({ action: 'AssumeRoleForWorkloadIdentity', signedBy: { type: 'anonymous' }, status: 200 });
    expect(emu.calls.at(-1)?.params).toMatchObject({ RoleSessionName: 'AgentIdentitySessionRole-1', DurationSeconds: '3600' });
    expect(Date.parse(sts.expiration)).toBeGreaterThan(clock);

    const viaSts = await client.getResourceOAuth2Token(tokenRequest(alice.workloadAccessToken), sts);
    expect(viaSts.authorizationUrl).toBeDefined();
    expect(emu.calls.at(-1)?.signedBy).toMatchObject({ type: 'sts', accessKeyId: sts.accessKeyId, workloadIdentityName: WORKLOAD, user: 'uid:alice' });

    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(bob.workloadAccessToken), sts))).toBe('Forbidden.WorkloadIdentityMismatch');
    const stsClient = new AgentIdentityClient({
      endpoint: emu.url,
      credential: new Credential(
        new CredentialConfig({ type: 'sts', accessKeyId: sts.accessKeyId, accessKeySecret: sts.accessKeySecret, securityToken: sts.securityToken }),
      ),
    });
    expect(await codeOf(stsClient.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('NoPermission');
    expect(await codeOf(stsClient.completeResourceTokenAuth(viaSts.sessionUri!, { UserId: 'alice' }))).toBe('NoPermission');

    const forged = { ...sts, securityToken: sts.securityToken.slice(0, -4) + 'AAAA' };
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(alice.workloadAccessToken), forged))).toBe('InvalidSecurityToken.MismatchWithAccessKey');
    clock += 3601_000;
    expect(await codeOf(client.getResourceOAuth2Token(tokenRequest(alice.workloadAccessToken), sts))).toBe('InvalidSecurityToken.Expired');
    expect(await codeOf(client.assumeRoleForWorkloadIdentity('forged.token.here', { roleSessionName: 'x1', durationSeconds: 3600 }))).toBe(
      'InvalidWorkloadAccessToken',
    );
  });

  it('injects faults a given number of times and logs every call with a RequestId', async () => {
    emu.injectFault({ action: 'GetWorkloadAccessTokenForUserId', status: 503, code: 'ServiceUnavailable', times: 2 });
    expect(await codeOf(client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('ServiceUnavailable');
    expect(await codeOf(client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('ServiceUnavailable');
    expect(await codeOf(client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('OK');
    emu.injectFault({ action: 'GetWorkloadAccessTokenForUserId', status: 500, code: 'InternalError', times: 5 });
    emu.clearFaults();
    expect(await codeOf(client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'))).toBe('OK');
    expect(emu.calls).toHaveLength(4);
    for (const c of emu.calls) expect(c.requestId).toMatch(/^[0-9A-F-]{36}$/);
  });
});
