import { readFileSync, existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as z from 'zod/v4';
import { regionProblem } from './regions.js';
import { TOOLSETS, type Toolset } from './tools/toolsets.js';

/**
 * Every setting, layered: defaults < `.config.json` (the Python kit's file) < environment < flags
 * (docs/architecture.md decision 10). docs/settings.md's table is `settingsTable()` of `SETTINGS` below.
 */
export interface Setting {
  key: keyof RawConfig;
  env?: string;
  flag?: string;
  /** Key in `.config.json` (the Python kit's snake_case names where it has them). */
  file?: string;
  default?: string;
  help: string;
  /** What to tell the user when the value is missing or invalid. */
  fix?: string;
  secret?: boolean;
}

type RawConfig = {
  transport: string;
  host: string;
  port: string;
  sandbox: string;
  regionId: string;
  workloadIdentityName: string;
  providerName: string;
  scopes: string;
  dingtalkClientId: string;
  appSecretProvider: string;
  dingtalkClientSecret: string;
  toolsets: string;
  readOnly: string;
  appRedirectUri: string;
  userId: string;
  userJwt: string;
  useSts: string;
  agentIdentityEndpoint: string;
  dingtalkApiBase: string;
  dingtalkTimeoutMs: string;
  dingtalkMaxRetries: string;
  dingtalkRetryBaseDelayMs: string;
  authTimeoutSeconds: string;
  consentWaitSeconds: string;
  openBrowser: string;
  stateSecret: string;
  logLevel: string;
  configFile: string;
  oidcIssuer: string;
  oidcAudience: string;
  oidcClientId: string;
  oidcClientSecret: string;
  allowedHosts: string;
  allowedOrigins: string;
  trustedProxyHeader: string;
  trustedProxies: string;
  allowInsecureHttp: string;
  publicUrlProxied: string;
  rateLimitPerMinute: string;
  maxBody: string;
  redisUrl: string;
  redisKeyPrefix: string;
  localStateDir: string;
};

export const SETTINGS: Setting[] = [
  {
    key: 'transport',
    flag: 'transport',
    env: 'DINGTALK_MCP_TRANSPORT',
    default: 'stdio',
    help: 'How MCP clients connect: `stdio` (one local user) or `http` (streamable HTTP at `/mcp`, many users, OAuth bearer tokens).',
  },
  {
    key: 'host',
    flag: 'host',
    env: 'DINGTALK_MCP_HOST',
    default: '127.0.0.1',
    help: 'http: the address to listen on. Anything but loopback needs TLS in front (an https:// `APP_REDIRECT_URI`); refused otherwise unless `DINGTALK_MCP_ALLOW_INSECURE_HTTP` is set.',
  },
  {
    key: 'port',
    flag: 'port',
    env: 'DINGTALK_MCP_PORT',
    default: '8090',
    help: 'http: the port to listen on (8090 matches the default `APP_REDIRECT_URI`).',
    fix: 'use a port number between 1 and 65535',
  },
  {
    key: 'sandbox',
    flag: 'sandbox',
    env: 'DINGTALK_MCP_SANDBOX',
    default: 'false',
    help: 'Run against the embedded emulators of Agent Identity and DingTalk; no cloud account needed.',
  },
  { key: 'regionId', flag: 'region', env: 'AGENT_IDENTITY_REGION_ID', file: 'region_id', default: 'cn-beijing', help: 'Agent Identity region.' },
  {
    key: 'workloadIdentityName',
    flag: 'workload-identity',
    env: 'AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME',
    file: 'workload_identity_name',
    help: 'The Agent Identity workload identity this server acts as.',
    fix: "set AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME (or `workload_identity_name` in .config.json) to your workload identity's name, or try `--sandbox` first",
  },
  {
    key: 'providerName',
    flag: 'provider',
    env: 'AGENT_IDENTITY_DINGTALK_PROVIDER',
    file: 'dingtalk_provider_name',
    default: 'test-provider-for-dingtalk',
    help: 'Name of the DingTalk OAuth2 credential provider in Agent Identity.',
  },
  { key: 'scopes', flag: 'scopes', env: 'AGENT_IDENTITY_DINGTALK_SCOPES', default: 'openid,corpid', help: 'OAuth scopes asked of DingTalk, comma-separated.' },
  {
    key: 'dingtalkClientId',
    flag: 'dingtalk-client-id',
    env: 'DINGTALK_CLIENT_ID',
    file: 'dingtalk_client_id',
    help: "The DingTalk app's Client ID (its AppKey). With an app secret it enables the app-token tools (read, append, create, search, info, list); see docs/tools.md.",
  },
  {
    key: 'appSecretProvider',
    flag: 'app-secret-provider',
    env: 'AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER',
    file: 'dingtalk_app_secret_provider_name',
    help: 'The Agent Identity API-key credential provider holding the DingTalk app secret (read with GetResourceAPIKey); `setup` creates it.',
  },
  {
    key: 'dingtalkClientSecret',
    env: 'DINGTALK_CLIENT_SECRET',
    help: "Development fallback for the DingTalk app secret when no API-key credential provider is set. Prefer the provider: then the secret never sits in this server's environment.",
    secret: true,
  },
  {
    key: 'toolsets',
    flag: 'toolsets',
    env: 'DINGTALK_MCP_TOOLSETS',
    default: 'all',
    help: 'Which tools to expose, comma-separated: `read`, `write`, `account`, or `all`.',
    fix: 'use a comma-separated list of read, write, account (or all)',
  },
  {
    key: 'readOnly',
    flag: 'read-only',
    env: 'DINGTALK_MCP_READ_ONLY',
    default: 'false',
    help: 'Expose only tools that never change a document (drops write, append and create).',
  },
  {
    key: 'appRedirectUri',
    flag: 'redirect-uri',
    env: 'APP_REDIRECT_URI',
    default: 'http://localhost:8090',
    help: "Base URL of this server's browser pages; the OAuth return URL is `<APP_REDIRECT_URI>/callback` and must be allowed on the workload identity.",
    fix: 'use an absolute http(s) URL without query, e.g. http://localhost:8090',
  },
  { key: 'userId', flag: 'user-id', env: 'AGENT_IDENTITY_USER_ID', help: "stdio: the end user's id in Agent Identity (default: your OS user name)." },
  {
    key: 'userJwt',
    env: 'AGENT_IDENTITY_USER_JWT',
    help: "stdio: an end-user JWT from the workload identity's identity provider, used instead of the user id.",
    secret: true,
  },
  {
    key: 'useSts',
    flag: 'use-sts',
    env: 'AGENT_IDENTITY_USE_STS',
    default: 'true',
    help: "Sign GetResourceOAuth2Token with the workload role's STS credentials (AssumeRoleForWorkloadIdentity), like the Python kit.",
  },
  {
    key: 'agentIdentityEndpoint',
    flag: 'agent-identity-endpoint',
    env: 'AGENT_IDENTITY_ENDPOINT',
    help: 'Override the Agent Identity data-plane endpoint (default `agentidentitydata.<region>.aliyuncs.com`); a host or a full URL.',
  },
  {
    key: 'dingtalkApiBase',
    flag: 'dingtalk-api-base',
    env: 'DINGTALK_API_BASE',
    default: 'https://api.dingtalk.com',
    help: 'DingTalk OpenAPI base URL (`https://api.dingtalk.io` for the international site).',
  },
  {
    key: 'dingtalkTimeoutMs',
    flag: 'dingtalk-timeout-ms',
    env: 'DINGTALK_TIMEOUT_MS',
    default: '15000',
    help: 'Timeout of one DingTalk request, in milliseconds.',
  },
  {
    key: 'dingtalkMaxRetries',
    flag: 'dingtalk-max-retries',
    env: 'DINGTALK_MAX_RETRIES',
    default: '3',
    help: 'Retries for DingTalk QPS limits, 5xx and network errors (overwrite is idempotent).',
  },
  {
    key: 'dingtalkRetryBaseDelayMs',
    flag: 'dingtalk-retry-delay-ms',
    env: 'DINGTALK_RETRY_BASE_DELAY_MS',
    default: '1000',
    help: 'First retry delay for DingTalk; doubles each retry, with jitter (DingTalk advises waiting about 1 s after a QPS limit).',
  },
  {
    key: 'authTimeoutSeconds',
    flag: 'auth-timeout',
    env: 'DINGTALK_MCP_AUTH_TIMEOUT_SECONDS',
    default: '600',
    help: 'How long an authorization link stays valid (and a consent given through it still completes).',
  },
  {
    key: 'consentWaitSeconds',
    flag: 'consent-wait',
    env: 'DINGTALK_MCP_CONSENT_WAIT_SECONDS',
    default: '40',
    help: 'How long one tool call waits for the browser consent before answering that it is still pending (below the 60 s request timeout of the official MCP SDK clients).',
  },
  {
    key: 'openBrowser',
    flag: 'open-browser',
    env: 'DINGTALK_MCP_OPEN_BROWSER',
    default: 'false',
    help: 'stdio only: when the client cannot show URL elicitations, also open the authorization link in the system browser.',
  },
  {
    key: 'stateSecret',
    env: 'DINGTALK_MCP_STATE_SECRET',
    help: 'HMAC key (32+ chars) that signs OAuth `state` and MCP `requestState`. Unset: stdio uses a random per-user secret kept in `DINGTALK_MCP_STATE_DIR` (shared by your local copies), HTTP a random one per process.',
    secret: true,
    fix: 'use at least 32 characters, e.g. `openssl rand -hex 32`',
  },
  { key: 'logLevel', flag: 'log-level', env: 'DINGTALK_MCP_LOG_LEVEL', default: 'info', help: 'debug, info, warn, error or silent. Logs go to stderr.' },
  {
    key: 'oidcIssuer',
    flag: 'oidc-issuer',
    env: 'OIDC_ISSUER',
    file: 'oidc_issuer',
    help: 'http: the OpenID Connect issuer whose JWTs authorize `/mcp` (the identity provider registered on the workload identity), e.g. `https://oauth.aliyun.com`; its discovery document gives the JWKS and login endpoints. Must be https (plain http only on loopback, as in the sandbox); refused at start otherwise.',
    fix: "set OIDC_ISSUER to your identity provider's issuer URL (e.g. https://oauth.aliyun.com), or use --sandbox",
  },
  {
    key: 'oidcAudience',
    flag: 'oidc-audience',
    env: 'OIDC_AUDIENCE',
    file: 'oidc_audience',
    help: "http: the `aud` bearer tokens must carry; default `OIDC_CLIENT_ID` (the identity provider's AllowedAudience in Agent Identity).",
  },
  {
    key: 'oidcClientId',
    flag: 'oidc-client-id',
    env: 'OIDC_CLIENT_ID',
    file: 'inbound_app_id',
    help: "http: this server's OAuth client at the identity provider, used to sign the browser user in on `/connect` (authorization code + PKCE).",
    fix: "set OIDC_CLIENT_ID to the OAuth application users sign in with (the Python kit's `inbound_app_id`)",
  },
  { key: 'oidcClientSecret', env: 'OIDC_CLIENT_SECRET', help: "http: that client's secret, if the identity provider requires one.", secret: true },
  {
    key: 'allowedHosts',
    flag: 'allowed-hosts',
    env: 'DINGTALK_MCP_ALLOWED_HOSTS',
    help: 'http: comma-separated `Host` names accepted (DNS-rebinding protection); default the host of `APP_REDIRECT_URI` plus loopback names.',
  },
  {
    key: 'allowedOrigins',
    flag: 'allowed-origins',
    env: 'DINGTALK_MCP_ALLOWED_ORIGINS',
    help: 'http: comma-separated `Origin` host names accepted from browsers; default the same as the allowed hosts. Requests without `Origin` always pass.',
  },
  {
    key: 'trustedProxyHeader',
    flag: 'trusted-proxy-header',
    env: 'DINGTALK_MCP_TRUSTED_PROXY_HEADER',
    help: 'http, opt-in: take the user id from this header (e.g. `x-authenticated-user`) instead of a bearer JWT, but only from `DINGTALK_MCP_TRUSTED_PROXIES`.',
  },
  {
    key: 'trustedProxies',
    flag: 'trusted-proxies',
    env: 'DINGTALK_MCP_TRUSTED_PROXIES',
    help: 'http, opt-in: comma-separated IP addresses of the gateway allowed to set that header.',
  },
  {
    key: 'allowInsecureHttp',
    flag: 'allow-insecure-http',
    env: 'DINGTALK_MCP_ALLOW_INSECURE_HTTP',
    default: 'false',
    help: 'http: serve on a non-loopback `--host` although `APP_REDIRECT_URI` is `http://` (no TLS). Refused without it: bearer tokens and sign-in cookies would cross the network in clear text, and any page on the same host could plant cookies. For a trusted lab network only.',
  },
  {
    key: 'publicUrlProxied',
    flag: 'public-url-proxied',
    env: 'DINGTALK_MCP_PUBLIC_URL_PROXIED',
    default: 'false',
    help: 'http: a proxy on this machine forwards the loopback `APP_REDIRECT_URI` (another port) to `--port`. Without it a loopback `APP_REDIRECT_URI` whose port differs from `--port` is refused, since it would advertise another instance.',
  },
  {
    key: 'rateLimitPerMinute',
    flag: 'rate-limit',
    env: 'DINGTALK_MCP_RATE_LIMIT',
    default: '60',
    help: 'http: tool calls per user per minute; more get HTTP 429.',
  },
  {
    key: 'maxBody',
    flag: 'max-body',
    env: 'DINGTALK_MCP_MAX_BODY',
    default: '1mb',
    help: 'http: the largest request body accepted on `/mcp` (HTTP 413 above it).',
  },
  {
    key: 'redisUrl',
    flag: 'redis-url',
    env: 'DINGTALK_MCP_REDIS_URL',
    secret: true,
    help: 'http, several replicas: the Redis (ApsaraDB for Redis / Tair) in which replicas share pending authorizations, completion events, rate limits and sign-in state; `redis://` or `rediss://` (TLS), with `user:password@` for an ACL user. Requires `DINGTALK_MCP_STATE_SECRET`. Unset: in memory (one replica). See docs/deployment-replicas.md.',
    fix: 'use redis://[user:password@]host:port[/db] or rediss://… for TLS',
  },
  {
    key: 'redisKeyPrefix',
    env: 'DINGTALK_MCP_REDIS_PREFIX',
    default: 'dtmcp:',
    help: 'Prefix of every Redis key and channel this server uses (deployments sharing one Redis use different prefixes).',
  },
  {
    key: 'localStateDir',
    env: 'DINGTALK_MCP_STATE_DIR',
    help: 'stdio: the per-user folder (mode 0700) where your local copies share pending authorizations, the state secret and the pages host (docs/architecture.md decision 17); default `$XDG_STATE_HOME/agent-identity-dingtalk-mcp/local`, i.e. `~/.local/state/…`.',
    fix: 'use an absolute path to a folder of yours',
  },
  {
    key: 'configFile',
    flag: 'config',
    env: 'DINGTALK_MCP_CONFIG',
    default: '.config.json',
    help: "Path of the JSON config file (the Python kit's `.config.json`); optional.",
  },
];

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no', '']).transform((v) => v === 'true' || v === '1' || v === 'yes' || v === '');
const int = (min: number, max: number) => z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));
const httpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.search && !u.hash && !u.username && !u.password;
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL without query, fragment or credentials');

const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

const schema = z.object({
  transport: z.enum(['stdio', 'http']),
  host: z.string().min(1),
  port: int(1, 65_535),
  sandbox: bool,
  // Checked against the region list in loadConfig (src/regions.ts), so the message can quote the bad value.
  regionId: z.string(),
  workloadIdentityName: z.string().min(1).optional(),
  providerName: z.string().min(1),
  scopes: z
    .string()
    .transform((s) => s.split(/[\s,]+/).filter(Boolean))
    .pipe(z.array(z.string()).min(1, 'needs at least one scope')),
  dingtalkClientId: z
    .string()
    .regex(/^[\w-]{1,128}$/, 'must be the app\'s Client ID (AppKey): letters, digits, "-" and "_"')
    .optional(),
  appSecretProvider: z.string().min(1).max(256).optional(),
  dingtalkClientSecret: z.string().min(1).max(512).optional(),
  toolsets: list
    .pipe(z.array(z.enum(['all', ...TOOLSETS], { message: 'unknown toolset' })).min(1, 'needs at least one toolset'))
    .transform((l) => (l.includes('all') ? [...TOOLSETS] : ([...new Set(l)] as Toolset[]))),
  readOnly: bool,
  appRedirectUri: httpUrl.transform((v) => v.replace(/\/+$/, '')),
  userId: z.string().min(1).max(256).optional(),
  userJwt: z
    .string()
    .regex(/^[\w-]+\.[\w-]+\.[\w-]*$/, 'must be a JWT (three base64url parts)')
    .optional(),
  useSts: bool,
  agentIdentityEndpoint: z.string().min(1).optional(),
  dingtalkApiBase: httpUrl.transform((v) => v.replace(/\/+$/, '')),
  dingtalkTimeoutMs: int(100, 600_000),
  dingtalkMaxRetries: int(0, 10),
  dingtalkRetryBaseDelayMs: int(0, 60_000),
  authTimeoutSeconds: int(1, 86_400),
  consentWaitSeconds: int(1, 86_400),
  openBrowser: bool,
  stateSecret: z.string().min(32).optional(),
  logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']),
  configFile: z.string(),
  oidcIssuer: httpUrl.transform((v) => v.replace(/\/+$/, '')).optional(),
  oidcAudience: z.string().min(1).optional(),
  oidcClientId: z.string().min(1).optional(),
  oidcClientSecret: z.string().min(1).optional(),
  allowedHosts: list.optional(),
  allowedOrigins: list.optional(),
  trustedProxyHeader: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, 'must be a header name')
    .transform((h) => h.toLowerCase())
    .optional(),
  trustedProxies: list.optional(),
  allowInsecureHttp: bool,
  publicUrlProxied: bool,
  rateLimitPerMinute: int(1, 100_000),
  maxBody: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 1mb or 500kb'),
  redisUrl: z
    .string()
    .refine((v) => {
      try {
        const u = new URL(v);
        return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '' && !u.hash && /^(\/\d*)?$/.test(u.pathname);
      } catch {
        return false;
      }
    }, 'must be a redis:// or rediss:// URL with a host')
    .optional(),
  localStateDir: z
    .string()
    .refine((v) => isAbsolute(v), 'must be an absolute path')
    .optional(),
  redisKeyPrefix: z.string().regex(/^[A-Za-z0-9:_.-]{1,32}$/, 'must be 1-32 characters of letters, digits and : _ . -'),
});

export type Config = z.output<typeof schema> & {
  callbackUrl: string;
  /** The config file that was read (absolute path), or undefined when none was. */
  configFileRead: string | undefined;
  /** Where the config file was looked for (absolute path). */
  configFileLookedFor: string;
  /** stdio: the user id fell back to the OS user name (nobody chose it). */
  userIdFromOs: boolean;
  /** APP_REDIRECT_URI was set (file, environment or flag), not the default. */
  appRedirectUriChosen: boolean;
};

export class ConfigError extends Error {
  /** `note`: which config file was read, or where it was looked for; shown after the problems. */
  constructor(
    readonly problems: string[],
    note?: string,
  ) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}${note ? `\n${note}` : ''}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigInput {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Parse flags, read the config file and environment, validate; throws ConfigError naming every problem. */
export function loadConfig({ argv = [], env = process.env, cwd = process.cwd() }: LoadConfigInput = {}): Config {
  const problems: string[] = [];
  const flags = parseFlags(argv, problems);

  const raw: Partial<Record<keyof RawConfig, string>> = {};
  for (const s of SETTINGS) if (s.default !== undefined) raw[s.key] = s.default;
  // Settings someone chose (file, environment or flag), as opposed to defaults.
  const chosen = new Set<keyof RawConfig>();

  const configPath = resolve(cwd, flags.configFile ?? env.DINGTALK_MCP_CONFIG ?? '.config.json');
  const explicitConfig = flags.configFile !== undefined || env.DINGTALK_MCP_CONFIG !== undefined;
  let configFileRead: string | undefined;
  if (existsSync(configPath)) {
    try {
      const file = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      configFileRead = configPath;
      for (const s of SETTINGS) {
        const v = s.file ? file[s.file] : undefined;
        if (typeof v === 'string' && v !== '') {
          raw[s.key] = v;
          chosen.add(s.key);
        }
      }
    } catch (e) {
      problems.push(`${configPath} is not valid JSON (${(e as Error).message}); fix or remove it`);
    }
  } else if (explicitConfig) {
    problems.push(`config file ${configPath} does not exist; fix --config / DINGTALK_MCP_CONFIG`);
  }

  for (const s of SETTINGS) {
    const v = s.env ? env[s.env] : undefined;
    if (v !== undefined && v !== '') {
      raw[s.key] = v;
      chosen.add(s.key);
    }
  }
  for (const s of SETTINGS) {
    const v = flags[s.key];
    if (v !== undefined) {
      raw[s.key] = v;
      chosen.add(s.key);
    }
  }
  if (raw.regionId !== undefined) {
    const problem = regionProblem(raw.regionId);
    if (problem)
      problems.push(
        describeProblem(
          SETTINGS.find((s) => s.key === 'regionId'),
          problem,
        ),
      );
  }
  const redirectProblem = raw.appRedirectUri === undefined ? undefined : callbackSuffixProblem(raw.appRedirectUri);
  if (redirectProblem)
    problems.push(
      describeProblem(
        SETTINGS.find((s) => s.key === 'appRedirectUri'),
        redirectProblem,
      ),
    );
  const userIdFromOs = raw.userId === undefined;
  raw.userId ??= safeUserName();

  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const setting = SETTINGS.find((s) => s.key === issue.path[0]);
      problems.push(describeProblem(setting, issue.message));
    }
  }
  const sandbox = parsed.success ? parsed.data.sandbox : /^(true|1|yes)$/.test(raw.sandbox ?? '');
  const required = (key: keyof RawConfig, why = 'is required') => {
    if (!raw[key])
      problems.push(
        describeProblem(
          SETTINGS.find((s) => s.key === key),
          why,
        ),
      );
  };
  if (!sandbox) required('workloadIdentityName');
  if (!sandbox && raw.transport === 'http') {
    if (raw.trustedProxyHeader) required('trustedProxies', 'is required with DINGTALK_MCP_TRUSTED_PROXY_HEADER: name the gateway addresses allowed to set it');
    else {
      required('oidcIssuer', 'is required for --transport http');
      required('oidcClientId', 'is required for --transport http (browser sign-in on /connect)');
    }
  }
  if (raw.redisUrl && !raw.stateSecret) {
    problems.push(
      'DINGTALK_MCP_STATE_SECRET is required with DINGTALK_MCP_REDIS_URL: every replica must verify the state and cookies the others sign, and seal what they put in Redis. ' +
        'Give every replica the same value of at least 32 characters (e.g. `openssl rand -hex 32`), kept out of the Redis URL and of logs.',
    );
  }
  if (!parsed.success || problems.length > 0) {
    const note = configFileRead
      ? `Settings were also read from ${configFileRead}.`
      : `No config file was read (looked for ${configPath}; --config or DINGTALK_MCP_CONFIG names another).`;
    throw new ConfigError(problems, note);
  }
  const config = parsed.data;
  // HTTP mode without APP_REDIRECT_URI: the public URL is this listener, on whatever --port says
  // (the default names port 8090, which a second copy on --port 8091 would otherwise advertise).
  if (config.transport === 'http' && !chosen.has('appRedirectUri')) config.appRedirectUri = `http://localhost:${config.port}`;
  return {
    ...config,
    callbackUrl: `${config.appRedirectUri}/callback`,
    userIdFromOs,
    appRedirectUriChosen: chosen.has('appRedirectUri'),
    configFileRead,
    configFileLookedFor: configPath,
  };
}

/** APP_REDIRECT_URI is the base of this server's pages; the copy-pasted return URL (…/callback) would become …/callback/callback. */
function callbackSuffixProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined; // the URL check names it
  }
  if (!/\/callback\/*$/.test(url.pathname)) return undefined;
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/(login\/)?callback$/, '')}`;
  return `"${value}" ends in /callback, but it is the base URL of this server's pages and /callback is appended to it (the return URL would be ${value.replace(/\/+$/, '')}/callback); set it to ${base}`;
}

function describeProblem(setting: Setting | undefined, message: string): string {
  if (!setting) return message;
  const names = [setting.env, setting.flag && `--${setting.flag}`].filter(Boolean).join(' / ');
  return `${names}: ${message}${setting.fix ? `; ${setting.fix}` : ''}`;
}

function parseFlags(argv: string[], problems: string[]): Partial<Record<keyof RawConfig, string>> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const s of SETTINGS) {
    if (!s.flag) continue;
    const isBool = s.default === 'true' || s.default === 'false';
    options[s.flag] = { type: isBool ? 'boolean' : 'string' };
    if (isBool) options[`no-${s.flag}`] = { type: 'boolean' };
  }
  const out: Partial<Record<keyof RawConfig, string>> = {};
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    for (const s of SETTINGS) {
      if (!s.flag) continue;
      const v = values[s.flag];
      if (v !== undefined) out[s.key] = String(v);
      if (values[`no-${s.flag}`]) out[s.key] = 'false';
    }
  } catch (e) {
    problems.push(`${(e as Error).message}; run with --help to see every flag`);
  }
  return out;
}

function safeUserName(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

/** The settings table of docs/settings.md (Markdown); `--help` prints the same settings as plain text (help.ts). */
export function settingsTable(): string {
  const rows = SETTINGS.map(
    (s) =>
      `| ${s.env ? `\`${s.env}\`` : ''} | ${s.flag ? `\`--${s.flag}\`` : ''} | ${s.file ? `\`${s.file}\`` : ''} | ${s.default !== undefined ? `\`${s.default}\`` : s.key === 'userId' ? 'OS user name' : ''} | ${s.help} |`,
  );
  return ['| Environment | Flag | `.config.json` | Default | Meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
