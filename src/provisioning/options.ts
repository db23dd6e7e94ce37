/**
 * Flags and environment of `dingtalk-mcp setup|teardown|doctor`. The settings shared with the server keep the
 * server's names (src/config.ts SETTINGS: `AGENT_IDENTITY_REGION_ID`, `AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME`,
 * `AGENT_IDENTITY_DINGTALK_PROVIDER`, `APP_REDIRECT_URI`, `DINGTALK_MCP_CONFIG`), layered the same way:
 * defaults < `.config.json` < environment < flags.
 */
import { parseArgs } from 'node:util';
import { SETTINGS } from '../config.js';
import type { Endpoints } from './control-plane-client.js';

export const DEFAULT_DISCOVERY_URL = 'https://oauth.aliyun.com/.well-known/openid-configuration';
/** UNVERIFIED: the vendor string Agent Identity expects for a manually configured (non-preset) OAuth2 provider. */
export const DEFAULT_DINGTALK_VENDOR = 'CustomOAuth2';
export const DEFAULT_PROVIDER_NAME = 'test-provider-for-dingtalk';

export interface ProvisioningOptions {
  help: boolean;
  dryRun: boolean;
  sandbox: boolean;
  http: boolean;
  /** Never prompt (CI); a missing DingTalk secret is then an error with a fix. */
  noPrompt: boolean;
  configFile: string;
  regionId?: string;
  workloadIdentityName?: string;
  providerName?: string;
  appRedirectUri?: string;
  identityProviderName?: string;
  discoveryUrl?: string;
  loginRedirectUri?: string;
  audience?: string;
  dingtalkClientId?: string;
  /** The API-key credential provider holding the DingTalk app secret (the document tools). */
  appSecretProviderName?: string;
  dingtalkVendor: string;
  endpoints: Endpoints;
}

export class UsageError extends Error {}

function envOf(key: string, fallback: string): string {
  return SETTINGS.find((s) => s.key === key)?.env ?? fallback;
}

/** Env names for the endpoint overrides (documented in docs/provisioning.md). */
export const ENDPOINT_ENV = {
  agentidentity: 'AGENT_IDENTITY_CONTROL_ENDPOINT',
  ram: 'ALIBABA_CLOUD_RAM_ENDPOINT',
  sts: 'ALIBABA_CLOUD_STS_ENDPOINT',
  ims: 'ALIBABA_CLOUD_IMS_ENDPOINT',
} as const;

export function parseProvisioningArgs(argv: string[], env: NodeJS.ProcessEnv): ProvisioningOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        'dry-run': { type: 'boolean' },
        sandbox: { type: 'boolean' },
        http: { type: 'boolean' },
        'no-prompt': { type: 'boolean' },
        config: { type: 'string' },
        region: { type: 'string' },
        'workload-identity': { type: 'string' },
        provider: { type: 'string' },
        'redirect-uri': { type: 'string' },
        'identity-provider': { type: 'string' },
        'discovery-url': { type: 'string' },
        'login-redirect-uri': { type: 'string' },
        audience: { type: 'string' },
        'dingtalk-client-id': { type: 'string' },
        'app-secret-provider': { type: 'string' },
        'dingtalk-vendor': { type: 'string' },
        'agent-identity-control-endpoint': { type: 'string' },
        'ram-endpoint': { type: 'string' },
        'sts-endpoint': { type: 'string' },
        'ims-endpoint': { type: 'string' },
      },
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}; run with --help to see every flag`);
  }
  const s = (flag: string, envName?: string): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string' && v !== '') return v;
    const e = envName ? env[envName] : undefined;
    return e !== undefined && e !== '' ? e : undefined;
  };
  const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes)$/i.test(v);

  const endpoints: Endpoints = {};
  const ai = s('agent-identity-control-endpoint', ENDPOINT_ENV.agentidentity);
  const ram = s('ram-endpoint', ENDPOINT_ENV.ram);
  const sts = s('sts-endpoint', ENDPOINT_ENV.sts);
  const ims = s('ims-endpoint', ENDPOINT_ENV.ims);
  if (ai) endpoints.agentidentity = ai;
  if (ram) endpoints.ram = ram;
  if (sts) endpoints.sts = sts;
  if (ims) endpoints.ims = ims;

  const opts: ProvisioningOptions = {
    help: values.help === true,
    dryRun: values['dry-run'] === true,
    sandbox: values.sandbox === true || truthy(env[envOf('sandbox', 'DINGTALK_MCP_SANDBOX')]),
    http: values.http === true,
    noPrompt: values['no-prompt'] === true || truthy(env.DINGTALK_MCP_NO_PROMPT),
    configFile: s('config', envOf('configFile', 'DINGTALK_MCP_CONFIG')) ?? '.config.json',
    dingtalkVendor: s('dingtalk-vendor', 'DINGTALK_PROVIDER_VENDOR') ?? DEFAULT_DINGTALK_VENDOR,
    endpoints,
  };
  const optional: Array<[keyof ProvisioningOptions, string | undefined]> = [
    ['regionId', s('region', envOf('regionId', 'AGENT_IDENTITY_REGION_ID'))],
    ['workloadIdentityName', s('workload-identity', envOf('workloadIdentityName', 'AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME'))],
    ['providerName', s('provider', envOf('providerName', 'AGENT_IDENTITY_DINGTALK_PROVIDER'))],
    ['appRedirectUri', s('redirect-uri', envOf('appRedirectUri', 'APP_REDIRECT_URI'))],
    ['identityProviderName', s('identity-provider', 'AGENT_IDENTITY_IDENTITY_PROVIDER')],
    ['discoveryUrl', s('discovery-url', 'OIDC_DISCOVERY_URL')],
    ['loginRedirectUri', s('login-redirect-uri', 'OIDC_LOGIN_REDIRECT_URI')],
    ['audience', s('audience', 'OIDC_AUDIENCE')],
    ['dingtalkClientId', s('dingtalk-client-id', 'DINGTALK_CLIENT_ID')],
    ['appSecretProviderName', s('app-secret-provider', envOf('appSecretProvider', 'AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER'))],
  ];
  for (const [k, v] of optional) if (v !== undefined) (opts as unknown as Record<string, unknown>)[k] = v;

  for (const [name, v] of [
    ['--redirect-uri / APP_REDIRECT_URI', opts.appRedirectUri],
    ['--discovery-url / OIDC_DISCOVERY_URL', opts.discoveryUrl],
    ['--login-redirect-uri', opts.loginRedirectUri],
  ] as const) {
    if (v !== undefined && !isHttpUrl(v)) throw new UsageError(`${name}: must be an absolute http(s) URL without query or fragment, got ${JSON.stringify(v)}`);
  }
  for (const [name, v] of [
    ['--workload-identity', opts.workloadIdentityName],
    ['--provider', opts.providerName],
    ['--identity-provider', opts.identityProviderName],
    ['--app-secret-provider', opts.appSecretProviderName],
  ] as const) {
    if (v !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v))
      throw new UsageError(`${name}: use 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(v)}`);
  }
  return opts;
}

function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash && !u.username && !u.password;
  } catch {
    return false;
  }
}

export const USAGE = `Usage:
  dingtalk-mcp setup    [--http] [--dry-run] [flags]   create what the server needs (prints a plan first)
  dingtalk-mcp teardown [--dry-run] [flags]            delete exactly what setup created
  dingtalk-mcp doctor   [--http] [flags]               check the configuration; exit 0 only if all checks pass

Credentials: the Alibaba Cloud default credential chain (ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET, STS token,
RAM role ARN, ECS RAM role, OIDC/RRSA, or an \`aliyun configure\` profile).

Flags (environment in brackets):
  --dry-run                         print the plan only, change nothing
  --sandbox                         run against an in-process emulator (no account needed)
  --http                            also provision HTTP mode: IMS OAuth app + identity provider
  --no-prompt                       never prompt [DINGTALK_MCP_NO_PROMPT]
  --config <path>                   the record file [DINGTALK_MCP_CONFIG], default .config.json
  --region <id>                     [AGENT_IDENTITY_REGION_ID], default cn-beijing
  --workload-identity <name>        [AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME], default dingtalk-mcp-<random>
  --provider <name>                 DingTalk OAuth2 credential provider [AGENT_IDENTITY_DINGTALK_PROVIDER],
                                    default ${DEFAULT_PROVIDER_NAME}; adopted if it exists
  --redirect-uri <url>              [APP_REDIRECT_URI], default http://localhost:8090 (callback: <url>/callback)
  --dingtalk-client-id <id>         DingTalk app client id (AppKey) [DINGTALK_CLIENT_ID], to create the provider;
                                    its secret comes from DINGTALK_CLIENT_SECRET or a hidden prompt, never a flag
  --app-secret-provider <name>      API-key credential provider holding the DingTalk app secret, for the document
                                    tools [AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER], default dingtalk-app-secret-<random>;
                                    created from the same secret when DINGTALK_CLIENT_ID is set, adopted if it exists
  --dingtalk-vendor <vendor>        CredentialProviderVendor when creating it [DINGTALK_PROVIDER_VENDOR],
                                    default ${DEFAULT_DINGTALK_VENDOR} (UNVERIFIED; adopting a console-made provider is safer)
  --identity-provider <name>        HTTP mode [AGENT_IDENTITY_IDENTITY_PROVIDER], default dingtalk-mcp-idp-<random>
  --discovery-url <url>             HTTP mode [OIDC_DISCOVERY_URL], default ${DEFAULT_DISCOVERY_URL}
  --login-redirect-uri <url>        HTTP mode sign-in redirect [OIDC_LOGIN_REDIRECT_URI], default <redirect-uri>/login/callback
  --audience <aud>                  doctor, HTTP mode: expected audience [OIDC_AUDIENCE], default the recorded app id
  --agent-identity-control-endpoint <host|url>  [AGENT_IDENTITY_CONTROL_ENDPOINT], default agentidentity.<region>.aliyuncs.com
  --ram-endpoint <host|url>         [ALIBABA_CLOUD_RAM_ENDPOINT], default ram.aliyuncs.com
  --sts-endpoint <host|url>         [ALIBABA_CLOUD_STS_ENDPOINT], default sts.<region>.aliyuncs.com
  --ims-endpoint <host|url>         [ALIBABA_CLOUD_IMS_ENDPOINT], default ims.aliyuncs.com
`;
