/**
 * What every provisioning command works with: the parsed options, the record file, the cloud, where output
 * goes, and the names of the resources, resolved once (flags/env > `.config.json` > generated defaults).
 */
import { randomBytes } from 'node:crypto';
import type { Cloud } from './cloud.js';
import type { ConfigFile, SetupRecord } from './record.js';
import { DEFAULT_DISCOVERY_URL, DEFAULT_PROVIDER_NAME, type ProvisioningOptions } from './options.js';

export interface Output {
  /** Plan and results (stdout: these are CLI commands, not the stdio server). */
  out(line?: string): void;
  /** Diagnostics (stderr). */
  err(line: string): void;
}

export interface Context {
  opts: ProvisioningOptions;
  file: ConfigFile;
  cloud: Cloud;
  io: Output;
  env: NodeJS.ProcessEnv;
  /** Reads the DingTalk client secret: env first, then a hidden prompt. */
  readDingTalkSecret(): Promise<string | undefined>;
  /** Human name of the credential source, e.g. `env`, for doctor and the printed config. */
  credentialSource(): Promise<string | undefined>;
}

export interface Names {
  regionId: string;
  suffix: string;
  workloadIdentity: string;
  role: string;
  policy: string;
  provider: string;
  /** The API-key credential provider holding the DingTalk app secret. */
  appSecretProvider: string;
  appRedirectUri: string;
  callbackUrl: string;
  identityProvider: string;
  discoveryUrl: string;
  loginRedirectUri: string;
  appName: string;
}

export function newSuffix(): string {
  return randomBytes(4).toString('hex');
}

export function freshRecord(opts: ProvisioningOptions, regionId: string): SetupRecord {
  return { version: 1, suffix: newSuffix(), mode: opts.http ? 'http' : 'stdio', regionId, resources: [] };
}

export function resolveNames(opts: ProvisioningOptions, file: ConfigFile, suffix: string): Names {
  const regionId = opts.regionId ?? file.string('region_id') ?? file.record?.regionId ?? 'cn-beijing';
  const workloadIdentity = opts.workloadIdentityName ?? file.string('workload_identity_name') ?? `dingtalk-mcp-${suffix}`;
  // The kit's names (agent-identity-cli): role `AgentIdentityRole-<wi>`, policy `AgentIdentityPolicy-<role>`; RAM role names stop at 64.
  const kitRole = `AgentIdentityRole-${workloadIdentity}`;
  const role = kitRole.length <= 64 ? kitRole : `AgentIdentityRole-dingtalk-mcp-${suffix}`;
  const appRedirectUri = (opts.appRedirectUri ?? 'http://localhost:8090').replace(/\/+$/, '');
  return {
    regionId,
    suffix,
    workloadIdentity,
    role,
    policy: `AgentIdentityPolicy-${role}`,
    provider: opts.providerName ?? file.string('dingtalk_provider_name') ?? DEFAULT_PROVIDER_NAME,
    appSecretProvider: opts.appSecretProviderName ?? file.string('dingtalk_app_secret_provider_name') ?? `dingtalk-app-secret-${suffix}`,
    appRedirectUri,
    callbackUrl: `${appRedirectUri}/callback`,
    identityProvider: opts.identityProviderName ?? file.string('identity_provider_name') ?? `dingtalk-mcp-idp-${suffix}`,
    discoveryUrl: opts.discoveryUrl ?? DEFAULT_DISCOVERY_URL,
    loginRedirectUri: opts.loginRedirectUri ?? `${appRedirectUri}/login/callback`,
    appName: file.string('inbound_app_name') ?? `dingtalk-mcp-${suffix}`,
  };
}

/** `https://issuer/.well-known/openid-configuration` → `https://issuer`. */
export function issuerOf(discoveryUrl: string): string {
  return discoveryUrl.replace(/\/\.well-known\/openid-configuration\/?$/, '');
}
