import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import { AgentIdentityClient } from '../../src/identity/agent-identity-client.js';
import { AgentIdentityBroker, type AgentIdentityBrokerOptions } from '../../src/identity/broker.js';
import { AgentIdentityError, type UserIdentity } from '../../src/identity/types.js';
import { createLogger } from '../../src/log.js';
import { startAgentIdentityEmulator, type AgentIdentityEmulator } from '../../src/sandbox/agent-identity/index.js';

const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

const AK = { accessKeyId: 'LTAIbrokerTestKey001', accessKeySecret: 'broker-test-secret-0123456789ab' };
const WORKLOAD = 'workload-broker-test';
const PROVIDER = 'test-provider-for-dingtalk';
const RETURN_URL = 'http://localhost:8090/callback';
const ALICE: UserIdentity = { kind: 'userId', userId: 'alice' };

/** Stand-in for DingTalk's consent page (always "Allow") and token endpoint. */
async function startIdp(): Promise<{ url: string; issued: string[]; close(): Promise<void> }> {
  let n = 0;
  const issued: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/oauth2/auth') {
      const back = new URL(url.searchParams.get('redirect_uri')!);
      back.searchParams.set('authCode', `code-${++n}`);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (url.pathname === '/v1.0/oauth2/userAccessToken') {
      req.resume();
      req.on('end', () => {
        const accessToken = `dt-access-${++n}-${Math.random().toString(36).slice(2, 10)}`;
        issued.push(accessToken);
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ accessToken, refreshToken: `dt-refresh-${n}`, expireIn: 7200, corpId: 'c1' }));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, issued, close: () => new Promise((r) => server.close(() => r())) };
}

/** Browser: follow redirects up to (not into) the app's return URL. */
async function consent(authorizationUrl: string): Promise<URL> {
  let url = authorizationUrl;
  for (let i = 0; i < 10; i++) {
    if (url.startsWith(RETURN_URL)) return new URL(url);
    const res = await fetch(url, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (!location) throw new Error(`no redirect from ${url}: ${res.status}`);
    url = new URL(location, url).toString();
  }
  throw new Error('too many redirects');
}

function userJwt(sub: string, extra: Record<string, unknown> = {}): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ iss: 'https://idp.example', sub, exp: Math.floor(Date.now() / 1000) + 7200, ...extra })}.c2lnbmF0dXJlLXZhbHVl`;
}

let clock = Date.now();
let idp: Awaited<ReturnType<typeof startIdp>>;
let emu: AgentIdentityEmulator;
let lines: string[];

beforeEach(async () => {
  clock = Date.now();
  idp = await startIdp();
  emu = await startAgentIdentityEmulator({
    accessKeys: [AK],
    workloadIdentities: [{ name: WORKLOAD, allowedReturnUrls: [RETURN_URL] }],
    providers: [
      {
        name: PROVIDER,
        clientId: 'dingclient',
        clientSecret: 'dingsecret',
        authorizationEndpoint: `${idp.url}/oauth2/auth`,
        tokenEndpoint: `${idp.url}/v1.0/oauth2/userAccessToken`,
      },
    ],
    now: () => clock,
  });
  lines = [];
});

afterEach(async () => {
  await emu.close();
  await idp.close();
});

function makeBroker(overrides: Partial<AgentIdentityBrokerOptions> = {}): AgentIdentityBroker {
  const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const client = new AgentIdentityClient({
    endpoint: emu.url,
    credential: new Credential(new CredentialConfig({ type: 'access_key', ...AK })),
    logger,
  });
  return new AgentIdentityBroker({
    client,
    workloadIdentityName: WORKLOAD,
    providerName: PROVIDER,
    scopes: ['openid', 'corpid'],
    now: () => clock,
    logger,
    ...overrides,
  });
}

const opts = (customState = 'pending-1') => ({ returnUrl: RETURN_URL, customState });
const actions = (from = 0) => emu.calls.slice(from).map((c) => c.action);

/** The whole consent dance through the broker; returns the DingTalk token. */
async function authorize(broker: AgentIdentityBroker, user: UserIdentity): Promise<string> {
  const first = await broker.getDingTalkToken(user, opts());
  if (first.status !== 'authorization_required') throw new Error('expected authorization');
  const back = await consent(first.authorizationUrl);
  expect(back.searchParams.get('state')).toBe('pending-1');
  expect(back.searchParams.get('session_uri')).toBe(first.sessionUri);
  await broker.completeAuthorization(back.searchParams.get('session_uri')!, user);
  const polled = await broker.getDingTalkToken(user, { ...opts(), sessionUri: first.sessionUri });
  if (polled.status !== 'token') throw new Error('expected token');
  return polled.accessToken;
}

describe('AgentIdentityBroker', () => {
  it('runs the authorization and signs each call with the right credential', async () => {
    const broker = makeBroker();
    const token = await authorize(broker, ALICE);
    expect(token).toBe(idp.issued[0]);
    expect(actions()).toEqual([
      'GetWorkloadAccessTokenForUserId',
      'AssumeRoleForWorkloadIdentity',
      'GetResourceOAuth2Token',
      'CompleteResourceTokenAuth',
      'GetResourceOAuth2Token',
    ]);
    const signer = (action: string) => emu.calls.filter((c) => c.action === action).map((c) => c.signedBy.type);
    expect(signer('GetWorkloadAccessTokenForUserId')).toEqual(['accessKey']);
    expect(signer('AssumeRoleForWorkloadIdentity')).toEqual(['anonymous']);
    expect(signer('GetResourceOAuth2Token')).toEqual(['sts', 'sts']);
    expect(signer('CompleteResourceTokenAuth')).toEqual(['accessKey']);
    expect(emu.calls.find((c) => c.action === 'CompleteResourceTokenAuth')!.params.UserIdentifier).toBe('{"UserId":"alice"}');
    expect(emu.calls[2]!.params).toMatchObject({
      ResourceOAuth2ReturnURL: RETURN_URL,
      CustomState: 'pending-1',
      Scopes: '["openid","corpid"]',
      OAuth2Flow: 'USER_FEDERATION',
    });
  });

  it('a cached token costs zero Agent Identity calls', async () => {
    const broker = makeBroker();
    const token = await authorize(broker, ALICE);
    const before = emu.calls.length;
    const again = await broker.getDingTalkToken(ALICE, opts('other-state'));
    expect(again).toEqual({ status: 'token', accessToken: token });
    expect(emu.calls.length).toBe(before);
  });

  it('concurrent callers share one upstream fetch (single-flight)', async () => {
    await authorize(makeBroker(), ALICE);
    const broker = makeBroker(); // cold caches, token in the vault
    const from = emu.calls.length;
    const results = await Promise.all(Array.from({ length: 6 }, () => broker.getDingTalkToken(ALICE, opts())));
    expect(new Set(results.map((r) => (r.status === 'token' ? r.accessToken : 'none')))).toEqual(new Set([idp.issued[0]]));
    expect(actions(from)).toEqual(['GetWorkloadAccessTokenForUserId', 'AssumeRoleForWorkloadIdentity', 'GetResourceOAuth2Token']);
  });

  it('concurrent callers with different states each get their own authorization session', async () => {
    const broker = makeBroker();
    const [a, b] = await Promise.all([broker.getDingTalkToken(ALICE, opts('state-a')), broker.getDingTalkToken(ALICE, opts('state-b'))]);
    expect(a.status).toBe('authorization_required');
    expect(b.status).toBe('authorization_required');
    const states = emu
      .sessions()
      .map((s) => s.customState)
      .sort();
    expect(states).toEqual(['state-a', 'state-b']);
    expect(actions().filter((x) => x === 'GetWorkloadAccessTokenForUserId')).toHaveLength(1);
  });

  it('drop → fetched again from Agent Identity, reusing the cached workload token and STS credentials', async () => {
    const broker = makeBroker();
    await authorize(broker, ALICE);
    await broker.getDingTalkToken(ALICE, opts());
    broker.dropDingTalkToken(ALICE);
    const from = emu.calls.length;
    const again = await broker.getDingTalkToken(ALICE, opts());
    expect(again).toEqual({ status: 'token', accessToken: idp.issued[0] });
    expect(actions(from)).toEqual(['GetResourceOAuth2Token']);
    // Revoked upstream too → the ladder starts over.
    emu.revokeVaultToken({ user: 'uid:alice' });
    broker.dropDingTalkToken(ALICE);
    expect((await broker.getDingTalkToken(ALICE, opts())).status).toBe('authorization_required');
  });

  it('re-fetches the DingTalk token after its max age, and the workload token / STS after expiry', async () => {
    const broker = makeBroker({ dingTalkTokenMaxAgeSeconds: 600, stsDurationSeconds: 3600 });
    await authorize(broker, ALICE);
    await broker.getDingTalkToken(ALICE, opts());
    clock += 601_000;
    let from = emu.calls.length;
    await broker.getDingTalkToken(ALICE, opts());
    expect(actions(from)).toEqual(['GetResourceOAuth2Token']);
    clock += 900_000; // past the emulator's 900 s workload token lifetime
    from = emu.calls.length;
    await broker.getDingTalkToken(ALICE, opts());
    expect(actions(from)).toEqual(['GetWorkloadAccessTokenForUserId', 'AssumeRoleForWorkloadIdentity', 'GetResourceOAuth2Token']);
  });

  it('completes with the byte-identical JWT that minted the workload token', async () => {
    const jwt = userJwt('u-77');
    const user: UserIdentity = { kind: 'jwt', jwt, subject: 'u-77', issuer: 'https://idp.example' };
    const broker = makeBroker();
    const token = await authorize(broker, user);
    expect(token).toBe(idp.issued[0]);
    const minted = emu.calls.find((c) => c.action === 'GetWorkloadAccessTokenForJWT')!;
    const completed = emu.calls.find((c) => c.action === 'CompleteResourceTokenAuth')!;
    expect(minted.params.UserToken).toBe(jwt);
    expect(JSON.parse(completed.params.UserIdentifier!)).toEqual({ UserJWT: jwt });
    expect(emu.vault.has('jwt:https://idp.example:u-77')).toBe(true);
  });

  it('completing with another user is refused and nothing is vaulted', async () => {
    const broker = makeBroker();
    const first = await broker.getDingTalkToken(ALICE, opts());
    if (first.status !== 'authorization_required') throw new Error('expected authorization');
    await consent(first.authorizationUrl);
    const err = await broker.completeAuthorization(first.sessionUri, { kind: 'userId', userId: 'mallory' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentIdentityError);
    expect((err as AgentIdentityError).action).toBe('CompleteResourceTokenAuth');
    expect(emu.vault.list()).toHaveLength(0);
  });

  it('without STS, GetResourceOAuth2Token is signed by the server AccessKey and AssumeRole is never called', async () => {
    const broker = makeBroker({ useSts: false });
    await authorize(broker, ALICE);
    expect(actions()).not.toContain('AssumeRoleForWorkloadIdentity');
    expect(emu.calls.filter((c) => c.action === 'GetResourceOAuth2Token').map((c) => c.signedBy.type)).toEqual(['accessKey', 'accessKey']);
  });

  it('an injected fault becomes an actionable AgentIdentityError and is not cached', async () => {
    const broker = makeBroker();
    emu.injectFault({ action: 'GetResourceOAuth2Token', status: 403, code: 'NoPermission' });
    const err = (await broker.getDingTalkToken(ALICE, opts()).catch((e: unknown) => e)) as AgentIdentityError;
    expect(err).toBeInstanceOf(AgentIdentityError);
    expect(err.code).toBe('NoPermission');
    expect(err.message).toContain('AliyunAgentIdentityDataGetCredentialAccess');
    expect(err.message).toContain(err.requestId!);
    expect((await broker.getDingTalkToken(ALICE, opts())).status).toBe('authorization_required');
  });

  it('retries once with a fresh workload token when Agent Identity rejects the cached one', async () => {
    const broker = makeBroker();
    await authorize(broker, ALICE);
    broker.dropDingTalkToken(ALICE);
    emu.injectFault({ action: 'GetResourceOAuth2Token', status: 401, code: 'InvalidWorkloadAccessToken.Expired' });
    const from = emu.calls.length;
    expect(await broker.getDingTalkToken(ALICE, opts())).toEqual({ status: 'token', accessToken: idp.issued[0] });
    expect(actions(from)).toEqual(['GetResourceOAuth2Token', 'GetWorkloadAccessTokenForUserId', 'AssumeRoleForWorkloadIdentity', 'GetResourceOAuth2Token']);
  });

  it('explains configuration problems', async () => {
    const badReturn = (await makeBroker()
      .getDingTalkToken(ALICE, { returnUrl: 'http://localhost:1234/callback', customState: 's' })
      .then(
        () => undefined,
        (e: unknown) => e as AgentIdentityError,
      )) as AgentIdentityError;
    expect(badReturn.message).toContain('AllowedResourceOAuth2ReturnURLs');
    const noWorkload = (await makeBroker({ workloadIdentityName: '' })
      .getDingTalkToken(ALICE, opts())
      .then(
        () => undefined,
        (e: unknown) => e as AgentIdentityError,
      )) as AgentIdentityError;
    expect(noWorkload.code).toBe('ConfigurationMissing');
    expect(noWorkload.message).toContain('AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME');
    const typo = (await makeBroker({ workloadIdentityName: 'typo' })
      .getDingTalkToken(ALICE, opts())
      .then(
        () => undefined,
        (e: unknown) => e as AgentIdentityError,
      )) as AgentIdentityError;
    expect(typo.code).toBe('EntityNotExists.WorkloadIdentity');
  });

  it('honours an abort signal', async () => {
    const broker = makeBroker();
    const ac = new AbortController();
    ac.abort(new Error('cancelled'));
    await expect(broker.getDingTalkToken(ALICE, { ...opts(), signal: ac.signal })).rejects.toThrow('cancelled');
    expect(emu.calls).toHaveLength(0);
  });

  it('reports credentials for a health check', async () => {
    expect(await makeBroker().checkCredentials()).toMatchObject({ ok: true });
  });

  it('never logs or reports a token or secret', async () => {
    const jwt = userJwt('u-secret');
    const user: UserIdentity = { kind: 'jwt', jwt, subject: 'u-secret', issuer: 'https://idp.example' };
    const broker = makeBroker();
    await authorize(broker, user);
    emu.injectFault({ action: 'GetResourceOAuth2Token', status: 500, code: 'InternalError' });
    broker.dropDingTalkToken(user);
    const err = (await broker.getDingTalkToken(user, opts()).catch((e: unknown) => e)) as AgentIdentityError;
    const workloadTokens = emu.calls.map((c) => c.params.WorkloadAccessToken).filter((t): t is string => !!t);
    const secrets = [jwt, AK.accessKeySecret, ...idp.issued, ...workloadTokens];
    expect(lines.length).toBeGreaterThan(3);
    for (const text of [...lines, err.message]) {
      for (const s of secrets) expect(text).not.toContain(s);
      expect(text).not.toMatch(/CAIS|eyJ/);
    }
  });
});
