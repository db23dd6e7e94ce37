import { mkdtempSync, readFileSync, existsSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import type { AlibabaCloudCredential } from '../../src/identity/agent-identity-client.js';
import { runProvisioning } from '../../src/provisioning/cli.js';
import { freePort } from '../../src/sandbox/index.js';
import { startControlPlaneEmulator, type ControlPlaneEmulator, type ControlPlaneSeed } from '../../src/sandbox/control-plane/index.js';

const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

const AK = { accessKeyId: 'LTAIprovisioningTest01', accessKeySecret: 'prov-test-secret-0123456789abcdef' };
const DINGTALK_SECRET = 'dingtalk-client-secret-must-never-leak-42';
const DINGTALK_CLIENT_ID = 'dingprovtestapp01';

/** Everything any command printed in this file, for the no-secrets check. */
const allOutput: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let emu: ControlPlaneEmulator;
let dir: string;
let redirect: string;

async function start(seed?: ControlPlaneSeed, allowedActions: string[] | '*' = '*'): Promise<void> {
  emu = await startControlPlaneEmulator({ accessKeys: [{ ...AK, allowedActions }], ...(seed ? { seed } : {}) });
}

function credential(): AlibabaCloudCredential {
  return new Credential(new CredentialConfig({ type: 'access_key', ...AK }));
}

async function run(
  command: 'setup' | 'teardown' | 'doctor',
  args: string[] = [],
  opts: { credential?: AlibabaCloudCredential; env?: Record<string, string> } = {},
): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runProvisioning(command, ['--no-prompt', ...args], {
    cwd: dir,
    credential: opts.credential ?? credential(),
    env: {
      AGENT_IDENTITY_CONTROL_ENDPOINT: emu.url,
      ALIBABA_CLOUD_RAM_ENDPOINT: emu.url,
      ALIBABA_CLOUD_STS_ENDPOINT: emu.url,
      ALIBABA_CLOUD_IMS_ENDPOINT: emu.url,
      APP_REDIRECT_URI: redirect,
      DINGTALK_CLIENT_ID,
      DINGTALK_CLIENT_SECRET: DINGTALK_SECRET,
      OIDC_DISCOVERY_URL: emu.discoveryUrl,
      ...opts.env,
    },
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
  });
  allOutput.push(stdout, stderr);
  return { code, stdout, stderr };
}

const configJson = () =>
  JSON.parse(readFileSync(join(dir, '.config.json'), 'utf8')) as Record<string, unknown> & {
    dingtalk_mcp_setup?: { resources: Array<{ type: string; name: string; status: string; arn?: string }> };
  };
const mutating = () => emu.calls.filter((c) => /^(Create|Update|Delete|Attach|Detach)/.test(c.action));

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dingtalk-mcp-prov-'));
  redirect = `http://127.0.0.1:${await freePort()}`;
});
afterEach(async () => {
  await emu?.close();
});

afterAll(() => {
  const everything = allOutput.join('\n');
  for (const secret of [DINGTALK_SECRET, AK.accessKeySecret]) expect(everything).not.toContain(secret);
});

describe('setup', () => {
  it('creates exactly the expected resources on an empty account, with the expected documents', async () => {
    await start();
    const r = await run('setup');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Plan for account 1234567890123456/);

    const s = emu.state();
    const record = configJson();
    const wiName = record.workload_identity_name as string;
    expect(wiName).toMatch(/^dingtalk-mcp-[0-9a-f]{8}$/);
    const wiArn = `acs:agentidentity:cn-beijing:1234567890123456:workloadidentitydirectory/default/workloadidentity/${wiName}`;
    const providerArn = 'acs:agentidentity:cn-beijing:1234567890123456:tokenvault/default/oauth2credentialprovider/test-provider-for-dingtalk';
    const appSecretName = record.dingtalk_app_secret_provider_name as string;
    expect(appSecretName).toMatch(/^dingtalk-app-secret-[0-9a-f]{8}$/);
    const apiKeyArn = `acs:agentidentity:cn-beijing:1234567890123456:tokenvault/default/apikeycredentialprovider/${appSecretName}`;

    expect(s.roles.map((x) => x.RoleName)).toEqual([`AgentIdentityRole-${wiName}`]);
    expect(JSON.parse(s.roles[0]!.AssumeRolePolicyDocument)).toEqual({
      Version: '1',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['sts:AssumeRole', 'sts:SetContext'],
          Principal: { Service: ['workload.agentidentity.aliyuncs.com'] },
          Condition: { StringEquals: { 'sts:RequestContext/agentidentity:WorkloadIdentityArn': wiArn } },
        },
      ],
    });
    expect(s.policies.map((p) => p.PolicyName)).toEqual([`AgentIdentityPolicy-AgentIdentityRole-${wiName}`]);
    expect(JSON.parse(s.policies[0]!.versions[0]!.PolicyDocument)).toEqual({
      Version: '1',
      Statement: [
        { Effect: 'Allow', Action: ['agentidentitydata:GetResourceOAuth2Token'], Resource: [wiArn, providerArn] },
        // The document tools: the app secret, and only that API-key provider.
        { Effect: 'Allow', Action: ['agentidentitydata:GetResourceAPIKey'], Resource: [wiArn, apiKeyArn] },
      ],
    });
    expect(s.attachments).toEqual({ [`agentidentityrole-${wiName}`]: [`Custom:AgentIdentityPolicy-AgentIdentityRole-${wiName}`] });
    expect(s.workloadIdentities).toHaveLength(1);
    expect(s.workloadIdentities[0]).toMatchObject({
      WorkloadIdentityName: wiName,
      WorkloadIdentityArn: wiArn,
      RoleArn: s.roles[0]!.Arn,
      AllowedResourceOAuth2ReturnURLs: [`${redirect}/callback`],
    });
    expect(s.workloadIdentities[0]!.IdentityProviderName).toBeUndefined();
    expect(s.oauth2Providers).toHaveLength(1);
    expect(s.oauth2Providers[0]).toMatchObject({ OAuth2CredentialProviderName: 'test-provider-for-dingtalk', CredentialProviderVendor: 'CustomOAuth2' });
    expect(s.oauth2Providers[0]!.OAuth2ProviderConfig).toMatchObject({
      CustomOAuth2ProviderConfig: { ClientId: DINGTALK_CLIENT_ID, ClientSecret: DINGTALK_SECRET },
    });
    expect(s.apiKeyProviders).toEqual([
      expect.objectContaining({ APIKeyCredentialProviderName: appSecretName, CredentialProviderArn: apiKeyArn, APIKey: DINGTALK_SECRET }),
    ]);
    expect(s.identityProviders).toEqual([]);
    expect(s.applications).toEqual([]);

    // The record: the kit's keys plus every created resource with its ARN; no secret.
    expect(record).toMatchObject({
      region_id: 'cn-beijing',
      role_arn: s.roles[0]!.Arn,
      dingtalk_provider_name: 'test-provider-for-dingtalk',
      dingtalk_client_id: DINGTALK_CLIENT_ID,
    });
    const resources = record.dingtalk_mcp_setup!.resources;
    expect(resources.map((x) => [x.type, x.status])).toEqual([
      ['ram_role', 'created'],
      ['ram_policy', 'created'],
      ['ram_policy_attachment', 'created'],
      ['workload_identity', 'created'],
      ['apikey_credential_provider', 'created'],
      ['oauth2_credential_provider', 'created'],
    ]);
    expect(resources.find((x) => x.type === 'apikey_credential_provider')!.arn).toBe(apiKeyArn);
    // The checklist names the DingTalk app permissions of each toolset.
    expect(r.stdout).toContain('toolset read (search, read, info, list): Storage.File.Read, Wiki.Node.Read, Wiki.Workspace.Read, Storage.Dentry.Search');
    expect(r.stdout).toContain('toolset write (append, create): Storage.File.Write, Document.WorkspaceDocument.Write');
    expect(resources.find((x) => x.type === 'workload_identity')!.arn).toBe(wiArn);
    expect(resources.find((x) => x.type === 'oauth2_credential_provider')!.arn).toBe(providerArn);
    expect(readFileSync(join(dir, '.config.json'), 'utf8')).not.toContain(DINGTALK_SECRET);

    // The config to paste names the resources, never a secret.
    expect(r.stdout).toContain(`"AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME": "${wiName}"`);
    expect(r.stdout).toContain('"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "<your AccessKey secret>"');
    // It names the user, so nobody is silently their OS user name.
    expect(r.stdout).toContain('"AGENT_IDENTITY_USER_ID": "<your user id, e.g. alice@example.com>"');
    expect(r.stdout).toContain('AGENT_IDENTITY_USER_ID names you in Agent Identity');

    // A second run changes nothing.
    const before = mutating().length;
    const again = await run('setup');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Everything is already in place');
    expect(mutating().length).toBe(before);
    expect(emu.state()).toEqual(s);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    await start();
    const r = await run('setup', ['--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('+ create  RAM role');
    expect(r.stdout).toContain('Dry run: nothing was changed (6 changes planned)');
    expect(mutating()).toEqual([]);
    expect(existsSync(join(dir, '.config.json'))).toBe(false);
  });

  it('a run failing at step 3 of 6 leaves a record; the re-run completes it', async () => {
    await start();
    emu.injectFault({ action: 'AttachPolicyToRole', status: 503, code: 'ServiceUnavailable' });
    const failed = await run('setup');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('step 3 of 6 failed');
    expect(failed.stderr).toContain('run `dingtalk-mcp setup` again to resume');
    const partial = configJson().dingtalk_mcp_setup!.resources.map((x) => [x.type, x.status]);
    expect(partial).toEqual([
      ['ram_role', 'created'],
      ['ram_policy', 'created'],
      ['ram_policy_attachment', 'pending'],
    ]);

    const resumed = await run('setup');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('= ok      RAM role');
    const s = emu.state();
    expect(s.roles).toHaveLength(1);
    expect(s.policies).toHaveLength(1);
    expect(s.workloadIdentities).toHaveLength(1);
    expect(s.oauth2Providers).toHaveLength(1);
    expect(Object.values(s.attachments).flat()).toHaveLength(1);
  });

  it('a half-finished run is cleaned by teardown', async () => {
    await start();
    emu.injectFault({ action: 'CreateWorkloadIdentity', status: 403, code: 'NoPermission' });
    const failed = await run('setup');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('AliyunAgentIdentityFullAccess');
    const td = await run('teardown');
    expect(td.code).toBe(0);
    const s = emu.state();
    expect([s.roles, s.policies, s.workloadIdentities, s.oauth2Providers]).toEqual([[], [], [], []]);
  });

  it('adopts an existing DingTalk provider and never deletes it; says how to get one when missing', async () => {
    await start({
      oauth2Providers: [
        { OAuth2CredentialProviderName: 'console-made-dingtalk', CallbackURL: 'https://agentidentitydata.cn-beijing.aliyuncs.com/oauth2/callback/abc' },
      ],
    });
    const r = await run('setup', ['--provider', 'console-made-dingtalk'], { env: { DINGTALK_CLIENT_ID: '', DINGTALK_CLIENT_SECRET: '' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('= adopt   DingTalk credential provider console-made-dingtalk');
    expect(r.stdout).toContain('https://agentidentitydata.cn-beijing.aliyuncs.com/oauth2/callback/abc');
    expect(configJson().dingtalk_provider_name).toBe('console-made-dingtalk');
    const td = await run('teardown');
    expect(td.code).toBe(0);
    expect(emu.state().oauth2Providers.map((p) => p.OAuth2CredentialProviderName)).toEqual(['console-made-dingtalk']);

    const missing = await run('setup', ['--provider', 'nobody-made-this'], { env: { DINGTALK_CLIENT_ID: '', DINGTALK_CLIENT_SECRET: '' } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nothing was changed');
    expect(missing.stderr).toContain('AGENT_IDENTITY_DINGTALK_PROVIDER=<its name>');
  });

  it('names the missing RAM permission', async () => {
    await start(undefined, ['agentidentity:*']);
    const r = await run('setup');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NoPermission');
    expect(r.stderr).toContain('AliyunRAMFullAccess');
  });
});

describe('setup --http', () => {
  it('creates the OAuth app, its secret and the identity provider, and prints the HTTP settings', async () => {
    await start();
    const r = await run('setup', ['--http']);
    expect(r.code).toBe(0);
    const s = emu.state();
    expect(s.applications).toHaveLength(1);
    const app = s.applications[0]!;
    expect(app).toMatchObject({ AppType: 'WebApp', SecretRequired: true, ProtocolVersion: '2.1', RedirectUris: [`${redirect}/login/callback`] });
    expect(app.secrets).toHaveLength(1);
    expect(s.identityProviders).toEqual([expect.objectContaining({ DiscoveryURL: emu.discoveryUrl, AllowedAudience: [app.AppId] })]);
    expect(s.workloadIdentities[0]!.IdentityProviderName).toBe(s.identityProviders[0]!.IdentityProviderName);
    const record = configJson();
    expect(record).toMatchObject({ inbound_app_id: app.AppId, identity_provider_name: s.identityProviders[0]!.IdentityProviderName });
    // The app secret lives only in a 0600 file beside the record; never printed.
    const secretsFile = join(dir, '.dingtalk-mcp.secrets.json');
    expect(JSON.parse(readFileSync(secretsFile, 'utf8'))).toEqual({ oidc_client_secret: app.secrets[0]!.AppSecretValue });
    expect(statSync(secretsFile).mode & 0o077).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(app.secrets[0]!.AppSecretValue);
    expect(readFileSync(join(dir, '.config.json'), 'utf8')).not.toContain(app.secrets[0]!.AppSecretValue);
    expect(r.stdout).toContain(`OIDC_CLIENT_ID=${app.AppId}`);
    expect(r.stdout).toContain(`OIDC_AUDIENCE=${app.AppId}`);

    const again = await run('setup', ['--http']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Everything is already in place');
  });

  it('teardown leaves an unrelated workload identity on the same identity provider untouched', async () => {
    await start({
      identityProviders: [{ IdentityProviderName: 'shared-idp', AllowedAudience: ['4711000000000000001'] }],
      workloadIdentities: [
        { WorkloadIdentityName: 'other-team-workload', IdentityProviderName: 'shared-idp', AllowedResourceOAuth2ReturnURLs: ['https://other.example/cb'] },
      ],
    });
    emu.mutate((s) => {
      s.identityProviders[0]!.DiscoveryURL = emu.discoveryUrl;
      s.applications.push({
        AppId: '4711000000000000001',
        AppName: 'team-login',
        DisplayName: 'team-login',
        AppType: 'WebApp',
        RedirectUris: [],
        PredefinedScopes: ['openid'],
        RequiredScopes: [],
        SecretRequired: true,
        ProtocolVersion: '2.1',
        AccountId: emu.accountId,
        CreateDate: '2026-01-01T00:00:00Z',
        UpdateDate: '2026-01-01T00:00:00Z',
        secrets: [],
      });
    });
    writeFileSync(join(dir, '.config.json'), JSON.stringify({ inbound_app_id: '4711000000000000001', note: 'kept' }));

    const r = await run('setup', ['--http', '--identity-provider', 'shared-idp']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('= adopt   identity provider');
    expect(r.stdout).toContain('= adopt   IMS OAuth application');
    const mine = configJson().workload_identity_name as string;
    expect(
      emu
        .state()
        .workloadIdentities.map((w) => w.WorkloadIdentityName)
        .sort(),
    ).toEqual([mine, 'other-team-workload'].sort());

    const td = await run('teardown');
    expect(td.code).toBe(0);
    const s = emu.state();
    expect(s.workloadIdentities.map((w) => w.WorkloadIdentityName)).toEqual(['other-team-workload']);
    expect(s.identityProviders.map((p) => p.IdentityProviderName)).toEqual(['shared-idp']);
    expect(s.applications.map((a) => a.AppId)).toEqual(['4711000000000000001']);
    expect([s.roles, s.policies, s.oauth2Providers]).toEqual([[], [], []]);
    expect(configJson()).toMatchObject({ note: 'kept', inbound_app_id: '4711000000000000001' });
  });
});

describe('teardown', () => {
  it('deletes exactly what setup created (role and policy included), tolerates what is already gone, supports --dry-run', async () => {
    await start({ workloadIdentities: [{ WorkloadIdentityName: 'unrelated', AllowedResourceOAuth2ReturnURLs: [] }] });
    expect((await run('setup')).code).toBe(0);
    const wiName = configJson().workload_identity_name as string;

    const dry = await run('teardown', ['--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('Plan: delete 6 resources');
    expect(emu.state().workloadIdentities).toHaveLength(2);

    emu.mutate((s) => {
      s.workloadIdentities = s.workloadIdentities.filter((w) => w.WorkloadIdentityName !== wiName);
    });
    const td = await run('teardown');
    expect(td.code).toBe(0);
    expect(td.stdout).toContain(`already gone: workload identity ${wiName}`);
    const s = emu.state();
    expect(s.workloadIdentities.map((w) => w.WorkloadIdentityName)).toEqual(['unrelated']);
    expect([s.roles, s.policies, s.oauth2Providers, s.apiKeyProviders, Object.values(s.attachments).flat()]).toEqual([[], [], [], [], []]);
    expect(configJson().dingtalk_mcp_setup).toBeUndefined();
    expect(configJson().dingtalk_app_secret_provider_name).toBeUndefined();
    expect(configJson().workload_identity_name).toBeUndefined();

    const again = await run('teardown');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Nothing to tear down');
  });
});

describe('doctor', () => {
  it('passes on a correct setup', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    const r = await run('doctor');
    expect(r.stdout).toContain('All checks passed.');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\[ok\] {3}1\. Alibaba Cloud credentials: from static_ak/);
    expect(r.stdout).toContain('Document.Document.Write');
  });

  it('reports a missing return URL with its fix', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    emu.mutate((s) => {
      s.workloadIdentities[0]!.AllowedResourceOAuth2ReturnURLs = ['https://elsewhere.example/callback'];
    });
    const r = await run('doctor');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `[FAIL] 2. workload identity: ${configJson().workload_identity_name as string} does not allow the return URL ${redirect}/callback`,
    );
    expect(r.stdout).toMatch(/fix: run `dingtalk-mcp setup`.*AllowedResourceOAuth2ReturnURLs/);
    // setup repairs what it created
    expect((await run('setup')).code).toBe(0);
    expect((await run('doctor')).code).toBe(0);
  });

  it('reports a missing provider with its fix', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    emu.mutate((s) => {
      s.oauth2Providers = [];
    });
    const r = await run('doctor');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] 3. DingTalk credential provider: test-provider-for-dingtalk does not exist');
    expect(r.stdout).toContain('fix: create it in the Agent Identity console');
  });

  it('reports a role that may not fetch tokens', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    emu.mutate((s) => {
      s.policies[0]!.versions[0]!.PolicyDocument = JSON.stringify({
        Version: '1',
        Statement: [{ Effect: 'Allow', Action: ['agentidentitydata:GetResourceAPIKey'], Resource: ['*'] }],
      });
    });
    const r = await run('doctor');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('may not call agentidentitydata:GetResourceOAuth2Token');
  });

  it('checks the document tools: the app-secret provider, the role may read exactly it; says how to turn them on', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    const name = configJson().dingtalk_app_secret_provider_name as string;
    const ok = await run('doctor');
    expect(ok.stdout).toContain(`[ok]   4. document tools: the app secret of DingTalk app ${DINGTALK_CLIENT_ID} is in ${name}`);
    expect(ok.stdout).toContain(`and GetResourceAPIKey on ${name}`);
    expect(ok.stdout).toContain('read: Storage.File.Read');

    emu.mutate((s) => {
      const doc = JSON.parse(s.policies[0]!.versions[0]!.PolicyDocument) as { Statement: unknown[] };
      s.policies[0]!.versions[0]!.PolicyDocument = JSON.stringify({ ...doc, Statement: doc.Statement.slice(0, 1) });
    });
    const noKey = await run('doctor');
    expect(noKey.code).toBe(1);
    expect(noKey.stdout).toContain('may not call agentidentitydata:GetResourceAPIKey');
    expect((await run('setup')).code).toBe(0); // setup repairs its own policy
    emu.mutate((s) => {
      s.apiKeyProviders = [];
    });
    const gone = await run('doctor');
    expect(gone.code).toBe(1);
    expect(gone.stdout).toContain(`[FAIL] 4. document tools: the API-key credential provider ${name} does not exist`);

    // Without DINGTALK_CLIENT_ID a fresh setup leaves the document tools off, and doctor says how to turn them on.
    dir = mkdtempSync(join(tmpdir(), 'dingtalk-mcp-prov-'));
    expect((await run('setup', ['--provider', 'test-provider-for-dingtalk'], { env: { DINGTALK_CLIENT_ID: '' } })).stdout).toContain(
      'the document tools (read, append, create, search, info, list) stay off',
    );
    const off = await run('doctor', [], { env: { DINGTALK_CLIENT_ID: '' } });
    expect(off.stdout).toContain('[info] 4. document tools: off');
    expect(off.stdout).toMatch(/fix: to turn on read, append, create, search, info and list, run `dingtalk-mcp setup` with DINGTALK_CLIENT_ID/);
  });

  it('reports a wrong audience (HTTP mode) with its fix', async () => {
    await start();
    expect((await run('setup', ['--http'])).code).toBe(0);
    emu.mutate((s) => {
      s.identityProviders[0]!.AllowedAudience = ['some-other-client'];
    });
    const r = await run('doctor', ['--http']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\[FAIL\] 8\. identity provider \(HTTP mode\): .*AllowedAudience \(some-other-client\) does not include \d+/);
    expect(r.stdout).toContain('fix: add');
  });

  it('reports missing credentials with its fix, and skips what needs them', async () => {
    await start();
    const none = {
      getCredential: async () => Promise.reject(new Error('unable to get credentials from any of the providers in the chain')),
    } as unknown as AlibabaCloudCredential;
    const r = await run('doctor', [], { credential: none });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] 1. Alibaba Cloud credentials: none found');
    expect(r.stdout).toContain('fix: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET');
    expect(r.stdout).toContain('[skip] 2. workload identity');
  });

  it('reports a busy callback port', async () => {
    await start();
    expect((await run('setup')).code).toBe(0);
    const { createServer } = await import('node:net');
    const blocker = createServer();
    const port = Number(new URL(redirect).port);
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const r = await run('doctor');
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`port ${port} on 127.0.0.1 is in use`);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('--sandbox', () => {
  it('runs setup, doctor and teardown against the in-process emulator', async () => {
    await start(); // unused here; keeps afterEach simple
    for (const command of ['setup', 'doctor', 'teardown'] as const) {
      let out = '';
      const code = await runProvisioning(command, ['--sandbox', '--redirect-uri', redirect], {
        cwd: dir,
        env: {},
        stdout: (t) => void (out += t),
        stderr: (t) => void (out += t),
      });
      allOutput.push(out);
      expect(code, out).toBe(0);
    }
    expect(existsSync(join(dir, '.config.json'))).toBe(false);
  });
});

describe('ownership (review fixes)', () => {
  const WI = 'wi-own';
  const ROLE = `AgentIdentityRole-${WI}`;
  const POLICY = `AgentIdentityPolicy-${ROLE}`;
  const wiArn = `acs:agentidentity:cn-beijing:1234567890123456:workloadidentitydirectory/default/workloadidentity/${WI}`;
  const providerArn = 'acs:agentidentity:cn-beijing:1234567890123456:tokenvault/default/oauth2credentialprovider/test-provider-for-dingtalk';
  const exactTrust = (arn = wiArn) =>
    JSON.stringify({
      Version: '1',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['sts:AssumeRole', 'sts:SetContext'],
          Principal: { Service: ['workload.agentidentity.aliyuncs.com'] },
          Condition: { StringEquals: { 'sts:RequestContext/agentidentity:WorkloadIdentityArn': arn } },
        },
      ],
    });
  const foreignTrust = JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { RAM: ['acs:ram::999:root'] } }] });
  const recorded = (type: string) => configJson().dingtalk_mcp_setup?.resources.find((r) => r.type === type);

  it('fix 1: a create refused with EntityAlreadyExists is never claimed: a foreign role blocks, is never changed, teardown leaves it', async () => {
    await start({ roles: [{ RoleName: ROLE, AssumeRolePolicyDocument: foreignTrust }] });
    // The race: setup reads "no such role", someone else creates it, setup's CreateRole is refused.
    emu.injectFault({ action: 'GetRole', status: 404, code: 'EntityNotExist.Role' });
    const first = await run('setup', ['--workload-identity', WI]);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(`RAM role ${ROLE} was created by someone else while setup ran`);
    expect(recorded('ram_role')).toBeUndefined();

    const again = await run('setup', ['--workload-identity', WI]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`! blocked  RAM role`);
    expect(emu.state().roles[0]!.AssumeRolePolicyDocument).toBe(foreignTrust);
    expect(emu.calls.filter((c) => c.action === 'UpdateRole' || c.action === 'AttachPolicyToRole')).toEqual([]);

    expect((await run('teardown')).code).toBe(0);
    expect(emu.state().roles.map((r) => r.RoleName)).toEqual([ROLE]);
  });

  it('fix 1: a workload identity created by someone else mid-run is adopted when it fits, never recorded as created, kept by teardown', async () => {
    await start({
      workloadIdentities: [{ WorkloadIdentityName: WI, RoleArn: `acs:ram::1234567890123456:role/${ROLE.toLowerCase()}`, AllowedResourceOAuth2ReturnURLs: [] }],
    });
    emu.mutate((s) => {
      s.workloadIdentities[0]!.AllowedResourceOAuth2ReturnURLs = [`${redirect}/callback`];
    });
    emu.injectFault({ action: 'GetWorkloadIdentity', status: 404, code: 'EntityNotExists.WorkloadIdentity' });
    const r = await run('setup', ['--workload-identity', WI]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`adopted workload identity ${WI} (someone else created it while setup ran`);
    expect(recorded('workload_identity')?.status).toBe('adopted');
    const td = await run('teardown');
    expect(td.code).toBe(0);
    expect(emu.state().workloadIdentities.map((w) => w.WorkloadIdentityName)).toEqual([WI]);
    expect(emu.state().roles).toEqual([]);
  });

  it('fix 2: teardown deletes only what still has the identity setup recorded', async () => {
    await start({ roles: [{ RoleName: 'ProductionRole', AssumeRolePolicyDocument: foreignTrust }] });
    expect((await run('setup', ['--workload-identity', WI])).code).toBe(0);
    expect(recorded('ram_role')).toMatchObject({ status: 'created', identity: emu.state().roles.find((r) => r.RoleName === ROLE)!.RoleId });
    // Someone deletes setup's provider and makes their own under the same name.
    emu.mutate((s) => {
      s.oauth2Providers = [
        {
          OAuth2CredentialProviderName: 'test-provider-for-dingtalk',
          CredentialProviderArn: providerArn,
          CreateTime: '2099-01-01T00:00:00Z',
          UpdateTime: '2099-01-01T00:00:00Z',
          Description: 'someone else',
        },
      ];
    });
    // A hand-edited record points the workload identity entry at someone else's resource name.
    const data = configJson();
    const wiEntry = data.dingtalk_mcp_setup!.resources.find((x) => x.type === 'workload_identity')!;
    emu.mutate((s) => {
      s.workloadIdentities.push({ ...s.workloadIdentities[0]!, WorkloadIdentityName: 'prod-workload', CreateTime: '2020-01-01T00:00:00Z' });
    });
    wiEntry.name = 'prod-workload';
    writeFileSync(join(dir, '.config.json'), JSON.stringify(data));

    const td = await run('teardown');
    expect(td.stderr).toContain('DingTalk credential provider test-provider-for-dingtalk was re-created by someone else after setup; left untouched');
    expect(td.stderr).toContain('workload identity prod-workload was re-created by someone else after setup; left untouched');
    const s = emu.state();
    expect(s.oauth2Providers.map((p) => p.Description)).toEqual(['someone else']);
    expect(s.workloadIdentities.map((w) => w.WorkloadIdentityName)).toContain('prod-workload');
    expect(s.roles.map((r) => r.RoleName)).toEqual(['ProductionRole']);
    expect(s.policies).toEqual([]);
  });

  it('fix 2: teardown refuses a record without accountId, and leaves resources whose identity was never recorded', async () => {
    await start();
    expect((await run('setup', ['--workload-identity', WI])).code).toBe(0);
    const data = configJson() as Record<string, unknown> & { dingtalk_mcp_setup: { accountId?: string; resources: Array<Record<string, unknown>> } };
    delete data.dingtalk_mcp_setup.accountId;
    writeFileSync(join(dir, '.config.json'), JSON.stringify(data));
    const refused = await run('teardown');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('does not say which account and region');
    expect(mutating().filter((c) => c.action.startsWith('Delete') || c.action.startsWith('Detach'))).toEqual([]);

    // A record from before identities (or a pending create) is not proof: left untouched until setup confirms it.
    data.dingtalk_mcp_setup.accountId = emu.accountId;
    for (const r of data.dingtalk_mcp_setup.resources) delete r.identity;
    writeFileSync(join(dir, '.config.json'), JSON.stringify(data));
    const unproven = await run('teardown');
    expect(unproven.code).toBe(1);
    expect(unproven.stderr).toContain(`RAM role ${ROLE} exists, but setup never learned its identity`);
    expect(emu.state().roles).toHaveLength(1);
    expect((await run('setup', ['--workload-identity', WI])).code).toBe(0);
    expect((await run('teardown')).code).toBe(0);
    expect(emu.state().roles).toEqual([]);
  });

  it('fix 3: teardown works only in the recorded region; setup does not switch regions under a record', async () => {
    await start();
    expect((await run('setup', ['--workload-identity', WI])).code).toBe(0);
    const byFlag = await run('teardown', ['--region', 'cn-hangzhou']);
    expect(byFlag.code).toBe(1);
    expect(byFlag.stderr).toContain('the record is for region cn-beijing, but --region / AGENT_IDENTITY_REGION_ID says cn-hangzhou');
    const byEnv = await run('teardown', [], { env: { AGENT_IDENTITY_REGION_ID: 'cn-hangzhou' } });
    expect(byEnv.code).toBe(1);
    const moved = await run('setup', ['--workload-identity', WI, '--region', 'cn-hangzhou']);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain('run `dingtalk-mcp teardown` first, or use another --config');
    expect(mutating().filter((c) => !c.action.startsWith('Create') && c.action !== 'AttachPolicyToRole')).toEqual([]);
    expect(configJson().dingtalk_mcp_setup).toMatchObject({ regionId: 'cn-beijing' });
    expect((await run('teardown', ['--region', 'cn-beijing'])).code).toBe(0);
    expect(emu.state().roles).toEqual([]);
  });

  it('fix 4: an IMS application whose create answer was lost is found by name (ListApplications) by setup; teardown never deletes on a name', async () => {
    const { Cloud } = await import('../../src/provisioning/cloud.js');
    const { ControlPlaneError } = await import('../../src/provisioning/control-plane-client.js');
    const original = Cloud.prototype.createWebApplication;
    let lose = 0;
    Cloud.prototype.createWebApplication = async function (this: InstanceType<typeof Cloud>, a) {
      const created = await original.call(this, a);
      if (lose > 0) {
        lose -= 1;
        throw new ControlPlaneError('IMS CreateApplication failed: NetworkError.', 'ims', 'CreateApplication', 'NetworkError');
      }
      return created;
    };
    try {
      await start();
      lose = 1;
      expect((await run('setup', ['--http', '--workload-identity', WI])).code).toBe(1);
      expect(recorded('ims_application')).toMatchObject({ status: 'pending' });
      expect(emu.state().applications).toHaveLength(1);
      // teardown finds it by name, but a name is no proof: it is left, and the user is told which one to check
      const appId = emu.state().applications[0]!.AppId;
      const refused = await run('teardown');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`AppId ${appId}`);
      expect(refused.stderr).toContain('a name is no proof that setup made it; left untouched');
      expect(emu.state().applications.map((a) => a.AppId)).toEqual([appId]);
      expect(emu.calls.some((c) => c.action === 'DeleteApplication')).toBe(false);
      // deleted by hand, the next teardown finds it gone and finishes
      emu.mutate((s) => {
        s.applications = [];
      });
      expect((await run('teardown')).code).toBe(0);
      expect(emu.state().applications).toEqual([]);

      lose = 1;
      expect((await run('setup', ['--http', '--workload-identity', WI])).code).toBe(1);
      const resumed = await run('setup', ['--http', '--workload-identity', WI]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const apps = emu.state().applications;
      expect(apps).toHaveLength(1);
      expect(recorded('ims_application')).toMatchObject({ status: 'created', appId: apps[0]!.AppId, identity: apps[0]!.AppId });
      expect(emu.calls.some((c) => c.product === 'ims' && c.action === 'ListApplications' && c.status === 200)).toBe(true);
      expect((await run('teardown')).code).toBe(0);
      expect(emu.state().applications).toEqual([]);
    } finally {
      Cloud.prototype.createWebApplication = original;
    }
  });

  it('fix 5: a role is adopted only with exactly the expected trust policy, and an adopted role is never changed', async () => {
    const withExtra = JSON.stringify({
      Version: '1',
      Statement: [...JSON.parse(exactTrust()).Statement, { Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { RAM: ['acs:ram::999:root'] } }],
    });
    const noCondition = JSON.stringify({
      Version: '1',
      Statement: [{ Effect: 'Allow', Action: ['sts:AssumeRole', 'sts:SetContext'], Principal: { Service: ['workload.agentidentity.aliyuncs.com'] } }],
    });
    for (const [doc, problem] of [
      [withExtra, 'its trust policy has 2 statements'],
      [noCondition, 'Condition is not exactly StringEquals'],
    ] as const) {
      await start({ roles: [{ RoleName: ROLE, AssumeRolePolicyDocument: doc }] });
      const r = await run('setup', ['--workload-identity', WI]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(problem);
      expect(mutating()).toEqual([]);
      await emu.close();
    }

    // Exact trust but without setup's policy: blocked, never attached.
    await start({ roles: [{ RoleName: ROLE, AssumeRolePolicyDocument: exactTrust() }] });
    const lacking = await run('setup', ['--workload-identity', WI]);
    expect(lacking.code).toBe(1);
    expect(lacking.stderr).toContain(`the RAM role ${ROLE} was not created by setup, so setup never attaches a policy to it`);
    expect(mutating()).toEqual([]);
    await emu.close();

    // Exact trust with the policy attached: adopted as is, and teardown keeps both.
    const doc = JSON.stringify({
      Version: '1',
      Statement: [{ Effect: 'Allow', Action: ['agentidentitydata:GetResourceOAuth2Token'], Resource: [wiArn, providerArn] }],
    });
    await start({
      roles: [{ RoleName: ROLE, AssumeRolePolicyDocument: exactTrust() }],
      policies: [{ PolicyName: POLICY, PolicyDocument: doc, attachTo: [ROLE] }],
    });
    const ok = await run('setup', ['--workload-identity', WI]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('= adopt   RAM role');
    expect(emu.calls.filter((c) => ['UpdateRole', 'AttachPolicyToRole', 'CreatePolicyVersion'].includes(c.action))).toEqual([]);
    expect((await run('teardown')).code).toBe(0);
    expect(emu.state().roles.map((r) => r.RoleName)).toEqual([ROLE]);
    expect(emu.state().policies.map((p) => p.PolicyName)).toEqual([POLICY]);
  });
});
