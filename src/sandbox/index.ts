import { createServer } from 'node:net';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import type { AlibabaCloudCredential } from '../identity/agent-identity-client.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { Logger } from '../log.js';
import { startAgentIdentityEmulator, type AgentIdentityEmulator } from './agent-identity/index.js';
import { startDingTalkEmulator, type DingTalkEmulator, type EmulatorUser } from './dingtalk/index.js';
import { startOidcEmulator, type OidcEmulator, type OidcUser } from './oidc/index.js';

// A CommonJS package: Node hands us `module.exports` (class on `.default`); some loaders unwrap it already.
const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

/** Fixed, obviously-fake names and keys: the sandbox never talks to Alibaba Cloud or DingTalk. */
export const SANDBOX = {
  workloadIdentityName: 'sandbox-workload',
  providerName: 'test-provider-for-dingtalk',
  accessKeyId: 'LTAIsandboxAccessKey01',
  dingtalkClientId: 'dingsandboxapp0001',
  sampleDocumentId: 'SandboxDoc0001TeamNotes',
  /** The Agent Identity API-key credential provider holding the sandbox DingTalk app's secret. */
  appSecretProviderName: 'dingtalk-app-secret',
  /** HTTP mode: the server's OAuth client at the emulated identity provider, and the token audience. */
  oidcClientId: 'dingtalk-mcp-sandbox',
} as const;

export interface Sandbox {
  agentIdentityUrl: string;
  dingtalkUrl: string;
  workloadIdentityName: string;
  providerName: string;
  /** The API-key credential provider with the DingTalk app secret (GetResourceAPIKey). */
  appSecretProviderName: string;
  dingtalkClientId: string;
  /** Random per sandbox; held by the API-key provider above (and by the OAuth2 provider as its client secret). */
  dingtalkClientSecret: string;
  accessKeyId: string;
  /** Random per sandbox; only the emulator accepts it. */
  accessKeySecret: string;
  /** The server's credential for the emulated Agent Identity. */
  credential: AlibabaCloudCredential;
  sampleDocumentId: string;
  sampleDocumentLink: string;
  documentViewerUrl(documentId: string): string;
  /**
   * The environment of a `dingtalk-mcp` process configured against this sandbox exactly as it
   * would be against Alibaba Cloud (endpoints, workload identity, AccessKey), plus `extra`.
   */
  serverEnv(appRedirectUri: string, extra?: Record<string, string>): Record<string, string>;
  /** Allow one more `<APP_REDIRECT_URI>/callback` on the emulated workload identity (shared services: each copy's own). */
  allowCallbackUrl(url: string): void;
  agentIdentity: AgentIdentityEmulator;
  dingtalk: DingTalkEmulator;
  /** HTTP mode only: the emulated OpenID Connect identity provider. */
  oidc?: OidcEmulator;
  close(): Promise<void>;
}

/**
 * What a `--sandbox` copy needs to configure itself against a sandbox, whether it runs in this process or in the
 * shared services process (./services/): URLs, names and the credential, no emulator handles.
 */
export type SandboxEndpoints = Pick<
  Sandbox,
  | 'agentIdentityUrl'
  | 'dingtalkUrl'
  | 'workloadIdentityName'
  | 'providerName'
  | 'appSecretProviderName'
  | 'dingtalkClientId'
  | 'accessKeyId'
  | 'credential'
  | 'sampleDocumentId'
  | 'sampleDocumentLink'
  | 'documentViewerUrl'
> & {
  oidc?: { issuer: string; users: ReadonlyArray<{ sub: string }> };
  /** Set when the emulators run in the shared services process. */
  services?: { pid: number; stateFile: string; idleSeconds: number };
  /** In process: stop the emulators. Shared services: only stop keeping them alive; they exit on their own. */
  close(): Promise<void>;
};

export interface SandboxOptions {
  /** Our `<APP_REDIRECT_URI>/callback`; the emulated workload identity allows exactly these. */
  callbackUrl: string | string[];
  logger?: Logger;
  /** HTTP mode: also emulate the identity provider; `loginRedirectUri` is the server's `<APP_REDIRECT_URI>/login/callback`. */
  oidc?: { loginRedirectUri: string; users?: OidcUser[] };
  /** DingTalk accounts of the emulated organization (default: two). */
  dingtalkUsers?: EmulatorUser[];
}

/** Start emulated Agent Identity and DingTalk on 127.0.0.1, wired to each other (docs/architecture.md decision 11). */
export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const accessKeySecret = randomSecret();
  const dingtalkClientSecret = randomSecret();
  // Agent Identity's callback URL must be registered at DingTalk before either starts: reserve its port.
  const agentIdentityPort = await freePort();
  const providerCallbackId = 'sandbox-dingtalk';
  const agentIdentityCallback = `http://127.0.0.1:${agentIdentityPort}/oauth2/callback/${providerCallbackId}`;
  // The emulator keeps this very array on its workload identity, so allowCallbackUrl() below extends it.
  const allowedReturnUrls = ([] as string[]).concat(options.callbackUrl);

  // Agent Identity trusts the identity provider's JWTs (GetWorkloadAccessTokenForJWT) the way the
  // real service trusts the provider registered on the workload identity: by its JWKS.
  const oidc = options.oidc
    ? await startOidcEmulator({
        audience: SANDBOX.oidcClientId,
        users: options.oidc.users,
        clients: [{ clientId: SANDBOX.oidcClientId, redirectUris: [options.oidc.loginRedirectUri] }],
      })
    : undefined;
  const jwks = oidc ? createRemoteJWKSet(new URL(`${oidc.issuer}/jwks`)) : undefined;

  const dingtalk = await startDingTalkEmulator({
    apps: [{ clientId: SANDBOX.dingtalkClientId, clientSecret: dingtalkClientSecret, redirectUris: [agentIdentityCallback], name: 'Sandbox DingTalk app' }],
    documents: [{ id: SANDBOX.sampleDocumentId, title: 'Team notes (sandbox)', content: '# Team notes\n\nNothing here yet.\n' }],
    ...(options.dingtalkUsers ? { users: options.dingtalkUsers } : {}),
  });
  seedPersonalDocuments(dingtalk);
  let agentIdentity: AgentIdentityEmulator;
  try {
    agentIdentity = await startAgentIdentityEmulator({
      port: agentIdentityPort,
      accessKeys: [{ accessKeyId: SANDBOX.accessKeyId, accessKeySecret, allowedActions: '*' }],
      workloadIdentities: [{ name: SANDBOX.workloadIdentityName, allowedReturnUrls }],
      trustedJwtIssuers:
        oidc && jwks
          ? {
              issuers: [oidc.issuer],
              verify: async (jwt) => {
                try {
                  await jwtVerify(jwt, jwks, { issuer: oidc.issuer, audience: SANDBOX.oidcClientId });
                  return true;
                } catch {
                  return false;
                }
              },
            }
          : undefined,
      apiKeyProviders: [{ name: SANDBOX.appSecretProviderName, apiKey: dingtalkClientSecret }],
      providers: [
        {
          name: SANDBOX.providerName,
          clientId: SANDBOX.dingtalkClientId,
          clientSecret: dingtalkClientSecret,
          authorizationEndpoint: `${dingtalk.url}/oauth2/auth`,
          tokenEndpoint: `${dingtalk.url}/v1.0/oauth2/userAccessToken`,
          callbackId: providerCallbackId,
        },
      ],
    });
  } catch (e) {
    await Promise.allSettled([dingtalk.close(), oidc?.close()]);
    throw e;
  }

  const credential = new Credential(new CredentialConfig({ type: 'access_key', accessKeyId: SANDBOX.accessKeyId, accessKeySecret }));
  return {
    agentIdentityUrl: agentIdentity.url,
    dingtalkUrl: dingtalk.url,
    workloadIdentityName: SANDBOX.workloadIdentityName,
    providerName: SANDBOX.providerName,
    appSecretProviderName: SANDBOX.appSecretProviderName,
    dingtalkClientId: SANDBOX.dingtalkClientId,
    dingtalkClientSecret,
    accessKeyId: SANDBOX.accessKeyId,
    accessKeySecret,
    credential,
    sampleDocumentId: SANDBOX.sampleDocumentId,
    sampleDocumentLink: `https://alidocs.dingtalk.com/i/nodes/${SANDBOX.sampleDocumentId}?utm_scene=team_space`,
    documentViewerUrl: (id) => `${dingtalk.url}/sandbox/docs/${encodeURIComponent(id)}`,
    serverEnv: (appRedirectUri, extra = {}) => ({
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      AGENT_IDENTITY_ENDPOINT: agentIdentity.url,
      AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: SANDBOX.workloadIdentityName,
      AGENT_IDENTITY_DINGTALK_PROVIDER: SANDBOX.providerName,
      DINGTALK_CLIENT_ID: SANDBOX.dingtalkClientId,
      AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER: SANDBOX.appSecretProviderName,
      ALIBABA_CLOUD_ACCESS_KEY_ID: SANDBOX.accessKeyId,
      ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret,
      DINGTALK_API_BASE: dingtalk.url,
      APP_REDIRECT_URI: appRedirectUri,
      ...(oidc ? { OIDC_ISSUER: oidc.issuer, OIDC_CLIENT_ID: SANDBOX.oidcClientId } : {}),
      ...extra,
    }),
    allowCallbackUrl(url) {
      if (!allowedReturnUrls.includes(url)) allowedReturnUrls.push(url);
    },
    agentIdentity,
    dingtalk,
    oidc,
    async close() {
      await Promise.allSettled([agentIdentity.close(), dingtalk.close(), oidc?.close()]);
    },
  };
}

/** A little of each user's 我的文档, so search, list and read have something to find (private to its owner). */
function seedPersonalDocuments(dingtalk: DingTalkEmulator): void {
  const [zhang, li] = dingtalk.users;
  if (zhang) {
    dingtalk.seedFolder('SandboxFolder0001Projects', { title: 'Projects', owner: zhang.unionId });
    dingtalk.seedDocument('SandboxDoc0002CostReport', {
      title: 'ECS cost report',
      owner: zhang.unionId,
      folder: 'SandboxFolder0001Projects',
      content:
        '# ECS cost report\n\n| Month | Cost (CNY) |\n| --- | --- |\n| September | 1,204.50 |\n\nSee [the billing console](https://usercenter2.aliyun.com/).\n',
    });
  }
  if (li)
    dingtalk.seedDocument('SandboxDoc0003PrivatePlan', { title: 'Private plan', owner: li.unionId, content: '# Private plan\n\n- only 李四 may read this\n' });
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
