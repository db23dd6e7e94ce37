import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import { AgentIdentityClient, hintFor, resolveEndpoint, type AlibabaCloudCredential } from '../../src/identity/agent-identity-client.js';
import { AgentIdentityError } from '../../src/identity/types.js';
import { createLogger } from '../../src/log.js';
import { startAgentIdentityEmulator, type AgentIdentityEmulator } from '../../src/sandbox/agent-identity/index.js';

const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

const AK = { accessKeyId: 'LTAIclientTestKey001', accessKeySecret: 'client-test-secret-abcdef123456' };
const NO_COMPLETE_AK = {
  accessKeyId: 'LTAInoCompleteKey001',
  accessKeySecret: 'nocomplete-secret-987654321',
  allowedActions: ['GetWorkloadAccessTokenForUserId', 'GetWorkloadAccessTokenForJWT'],
};
const WORKLOAD = 'workload-client-test';
const PROVIDER = 'test-provider-for-dingtalk';
const RETURN_URL = 'http://localhost:8090/callback';

function ak(id: string, secret: string): AlibabaCloudCredential {
  return new Credential(new CredentialConfig({ type: 'access_key', accessKeyId: id, accessKeySecret: secret }));
}

function jwt(claims: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}.c2lnbmF0dXJl`;
}

async function failure(p: Promise<unknown>): Promise<AgentIdentityError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentIdentityError);
  return err as AgentIdentityError;
}

let emu: AgentIdentityEmulator;
let lines: string[];
let client: AgentIdentityClient;

beforeEach(async () => {
  emu = await startAgentIdentityEmulator({
    accessKeys: [AK, NO_COMPLETE_AK],
    workloadIdentities: [{ name: WORKLOAD, allowedReturnUrls: [RETURN_URL] }],
    providers: [
      {
        name: PROVIDER,
        clientId: 'dingclient',
        clientSecret: 'dingsecret',
        authorizationEndpoint: 'http://127.0.0.1:9/oauth2/auth',
        tokenEndpoint: 'http://127.0.0.1:9/v1.0/oauth2/userAccessToken',
      },
    ],
  });
  lines = [];
  client = new AgentIdentityClient({
    endpoint: emu.url,
    credential: ak(AK.accessKeyId, AK.accessKeySecret),
    logger: createLogger({ level: 'debug', write: (l) => lines.push(l) }),
  });
});

afterEach(async () => {
  await emu.close();
});

describe('endpoint', () => {
  it('defaults to the regional data-plane host over HTTPS and accepts full URLs', () => {
    expect(resolveEndpoint('cn-beijing')).toEqual({ protocol: 'https', host: 'agentidentitydata.cn-beijing.aliyuncs.com' });
    expect(resolveEndpoint('cn-hangzhou', 'http://127.0.0.1:1234')).toEqual({ protocol: 'http', host: '127.0.0.1:1234' });
    expect(resolveEndpoint('cn-beijing', 'agentidentitydata-vpc.cn-beijing.aliyuncs.com')).toEqual({
      protocol: 'https',
      host: 'agentidentitydata-vpc.cn-beijing.aliyuncs.com',
    });
    expect(new AgentIdentityClient({}).endpointUrl).toBe('https://agentidentitydata.cn-beijing.aliyuncs.com');
  });
});

describe('wire format', () => {
  it('sends each action with the exact field names, V3-signed with the server AccessKey', async () => {
    const userJwt = jwt({ iss: 'https://idp.example', sub: 'u-1', exp: Math.floor(Date.now() / 1000) + 600 });
    const byUser = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const byJwt = await client.getWorkloadAccessTokenForJWT(WORKLOAD, userJwt);
    expect(byUser.requestId).toBe(emu.calls[0]!.requestId);
    expect(emu.calls[0]).toMatchObject({
      action: 'GetWorkloadAccessTokenForUserId',
      params: { WorkloadIdentityName: WORKLOAD, UserId: 'alice' },
      signedBy: { type: 'accessKey', accessKeyId: AK.accessKeyId },
      signatureVersion: 'v3',
      status: 200,
    });
    expect(emu.calls[1]).toMatchObject({ action: 'GetWorkloadAccessTokenForJWT', params: { WorkloadIdentityName: WORKLOAD, UserToken: userJwt } });

    const r = await client.getResourceOAuth2Token({
      workloadAccessToken: byJwt.workloadAccessToken,
      providerName: PROVIDER,
      scopes: ['openid', 'corpid'],
      flow: 'USER_FEDERATION',
      returnUrl: RETURN_URL,
      customState: 'st-1',
      forceAuthentication: false,
      customParameters: { prompt: 'consent' },
    });
    expect(emu.calls[2]!.params).toEqual({
      WorkloadAccessToken: byJwt.workloadAccessToken,
      ResourceCredentialProviderName: PROVIDER,
      Scopes: '["openid","corpid"]',
      OAuth2Flow: 'USER_FEDERATION',
      ResourceOAuth2ReturnURL: RETURN_URL,
      CustomState: 'st-1',
      ForceAuthentication: 'false',
      CustomParameters: '{"prompt":"consent"}',
    });
    expect(r).toMatchObject({ sessionStatus: 'IN_PROGRESS' });
    expect(r.sessionUri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    expect(r.authorizationUrl).toContain('/oauth2/authorize?request_uri=');

    await failure(client.completeResourceTokenAuth(r.sessionUri!, { UserJWT: userJwt }));
    expect(emu.calls[3]).toMatchObject({
      action: 'CompleteResourceTokenAuth',
      params: { SessionURI: r.sessionUri, UserIdentifier: JSON.stringify({ UserJWT: userJwt }) },
    });

    const sts = await client.assumeRoleForWorkloadIdentity(byUser.workloadAccessToken, {
      roleSessionName: 'AgentIdentitySessionRole-t',
      durationSeconds: 3600,
    });
    expect(emu.calls[4]).toMatchObject({ action: 'AssumeRoleForWorkloadIdentity', signedBy: { type: 'anonymous' }, signatureVersion: 'none' });
    expect(sts.accessKeyId).toMatch(/^STS\./);
    expect(sts.expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    await client.getResourceOAuth2Token(
      {
        workloadAccessToken: byUser.workloadAccessToken,
        providerName: PROVIDER,
        scopes: ['openid'],
        flow: 'USER_FEDERATION',
        returnUrl: RETURN_URL,
        customState: 's',
      },
      sts,
    );
    expect(emu.calls[5]?.signedBy).toMatchObject({ type: 'sts', accessKeyId: sts.accessKeyId });
    // The server credential is still used for everything else afterwards.
    await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    expect(emu.calls[6]?.signedBy).toEqual({ type: 'accessKey', accessKeyId: AK.accessKeyId });
  });
});

describe('errors are actionable and never leak secrets', () => {
  it('wrong AccessKey secret → SignatureDoesNotMatch with credential advice', async () => {
    const wrongSecret = 'this-is-the-wrong-secret-42';
    const bad = new AgentIdentityClient({ endpoint: emu.url, credential: ak(AK.accessKeyId, wrongSecret) });
    const err = await failure(bad.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
    expect(err.code).toBe('SignatureDoesNotMatch');
    expect(err.action).toBe('GetWorkloadAccessTokenForUserId');
    expect(err.httpStatus).toBe(400);
    expect(err.requestId).toBe(emu.calls.at(-1)!.requestId);
    expect(err.message).toContain('GetWorkloadAccessTokenForUserId');
    expect(err.message).toContain('SignatureDoesNotMatch');
    expect(err.message).toContain(err.requestId!);
    expect(err.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_ID');
    expect(err.message).not.toContain(wrongSecret);
  });

  it('unknown AccessKey → InvalidAccessKeyId.NotFound', async () => {
    const bad = new AgentIdentityClient({ endpoint: emu.url, credential: ak('LTAInobody', 'nobody-secret-123456') });
    const err = await failure(bad.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
    expect(err.code).toBe('InvalidAccessKeyId.NotFound');
    expect(err.message).toMatch(/credential chain/);
  });

  it('no permission for CompleteResourceTokenAuth → names the RAM policy to grant', async () => {
    const limited = new AgentIdentityClient({ endpoint: emu.url, credential: ak(NO_COMPLETE_AK.accessKeyId, NO_COMPLETE_AK.accessKeySecret) });
    const userJwt = jwt({ sub: 'u-9' });
    const err = await failure(limited.completeResourceTokenAuth('urn:ietf:params:oauth:request_uri:abc', { UserJWT: userJwt }));
    expect(err.code).toBe('NoPermission');
    expect(err.httpStatus).toBe(403);
    expect(err.message).toContain('AliyunAgentIdentityDataCompleteAuthAccess');
    expect(err.message).not.toContain(userJwt);
  });

  it('unknown workload identity, disallowed return URL, unknown provider', async () => {
    const noWorkload = await failure(client.getWorkloadAccessTokenForUserId('typo-workload', 'alice'));
    expect(noWorkload.code).toBe('EntityNotExists.WorkloadIdentity');
    expect(noWorkload.message).toContain('AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME');

    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    const base = { workloadAccessToken, providerName: PROVIDER, scopes: ['openid'], flow: 'USER_FEDERATION' as const, customState: 's' };
    const badReturn = await failure(client.getResourceOAuth2Token({ ...base, returnUrl: 'http://localhost:9999/callback' }));
    expect(badReturn.message).toContain('AllowedResourceOAuth2ReturnURLs');
    expect(badReturn.message).toContain('add http://localhost:9999/callback to the workload identity');
    expect(badReturn.message).not.toContain(workloadAccessToken);

    const badProvider = await failure(client.getResourceOAuth2Token({ ...base, providerName: 'nope', returnUrl: RETURN_URL }));
    expect(badProvider.code).toBe('EntityNotExists.OAuth2CredentialProvider');
  });

  it('an unreachable endpoint → NetworkError naming the endpoint', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const offline = new AgentIdentityClient({ endpoint: `http://127.0.0.1:${port}`, credential: ak(AK.accessKeyId, AK.accessKeySecret), timeoutMs: 2000 });
    const err = await failure(offline.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
    expect(err.code).toBe('NetworkError');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toMatch(/unreachable/);
  });

  it('an injected service fault keeps code and RequestId; tokens never appear in messages or logs', async () => {
    const { workloadAccessToken } = await client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice');
    // A service message that echoes the token must not be passed through.
    emu.injectFault({ action: 'GetResourceOAuth2Token', status: 500, code: 'InternalError', message: `boom for ${workloadAccessToken}` });
    const err = await failure(
      client.getResourceOAuth2Token({
        workloadAccessToken,
        providerName: PROVIDER,
        scopes: ['openid'],
        flow: 'USER_FEDERATION',
        returnUrl: RETURN_URL,
        customState: 's',
      }),
    );
    expect(err.code).toBe('InternalError');
    expect(err.httpStatus).toBe(500);
    expect(err.message).toContain(err.requestId!);
    expect(err.message).toMatch(/retry later/);
    expect(err.message).not.toContain(workloadAccessToken);
    expect(err.message).not.toContain('eyJ');

    emu.injectFault({ action: 'GetWorkloadAccessTokenForUserId', status: 400, code: 'InvalidParameter', message: 'The UserId is too long.' });
    const withMessage = await failure(client.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
    expect(withMessage.message).toContain('The UserId is too long.');

    const all = lines.join('\n');
    expect(all).toContain('GetResourceOAuth2Token');
    expect(all).not.toContain(workloadAccessToken);
    expect(all).not.toContain(AK.accessKeySecret);
    expect(all).not.toContain('eyJ');
  });
});

describe('checkCredentials', () => {
  it('reports usable credentials without revealing them', async () => {
    const check = await client.checkCredentials();
    expect(check).toMatchObject({ ok: true, type: 'access_key' });
    expect(JSON.stringify(check)).not.toContain(AK.accessKeySecret);
    expect(JSON.stringify(check)).not.toContain(AK.accessKeyId);
  });

  it('reports a credential chain that yields nothing', async () => {
    const broken = new Credential(null, {
      getProviderName: () => 'broken',
      getCredentials: async () => {
        throw new Error('no credentials anywhere');
      },
    });
    const c = new AgentIdentityClient({ endpoint: emu.url, credential: broken });
    const check = await c.checkCredentials();
    expect(check.ok).toBe(false);
    const err = await failure(c.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
    expect(err.code).toBe('CredentialsUnavailable');
    expect(err.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_ID');
  });

  it('with no Alibaba Cloud credentials at all (the real default chain), says none were found and how to provide them, not "unreachable"', async () => {
    const saved = { ...process.env };
    const home = mkdtempSync(join(tmpdir(), 'no-credentials-'));
    for (const k of Object.keys(process.env)) if (k.startsWith('ALIBABA_CLOUD_') || k.startsWith('ALICLOUD_')) delete process.env[k];
    process.env.HOME = home;
    process.env.ALIBABA_CLOUD_ECS_METADATA_DISABLED = 'true';
    try {
      const c = new AgentIdentityClient({ endpoint: emu.url });
      const err = await failure(c.getWorkloadAccessTokenForUserId(WORKLOAD, 'alice'));
      expect(err.code).toBe('CredentialsUnavailable');
      expect(err.message).toContain('No Alibaba Cloud credentials were found');
      expect(err.message).toContain('ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET');
      expect(err.message).toContain('aliyun configure');
      expect(err.message).not.toMatch(/unreachable/i);
      expect(emu.calls).toEqual([]);
    } finally {
      process.env = saved;
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('hints by action for permission errors', () => {
    expect(hintFor('GetResourceOAuth2Token', 'Forbidden.RAM', 403)).toContain('AliyunAgentIdentityDataGetCredentialAccess');
    expect(hintFor('CompleteResourceTokenAuth', 'Forbidden.RAM', 403)).toContain('AliyunAgentIdentityDataCompleteAuthAccess');
  });
});
