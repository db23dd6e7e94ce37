/**
 * `dingtalk-mcp doctor`: check, in order, everything the server relies on, and print a fix for each failure.
 * Exit code 0 only when every check passes. It reads only; it never prints a secret.
 */
import { createServer } from 'node:net';
import type { Context } from './context.js';
import { resolveNames } from './context.js';
import type { WorkloadIdentity } from './cloud.js';
import { APP_PERMISSIONS } from '../dingtalk/app-api.js';
import {
  allowsTokenFetch,
  API_KEY_ACTION,
  apiKeyProviderArn,
  checkTrust,
  oauth2ProviderArn,
  roleNameFromArn,
  SYSTEM_POLICIES_WITH_TOKEN_FETCH,
  workloadIdentityArn,
} from './documents.js';

type Status = 'ok' | 'fail' | 'skip' | 'info';
interface Result {
  status: Status;
  title: string;
  detail: string;
  fix?: string;
}

const MARK: Record<Status, string> = { ok: '[ok]  ', fail: '[FAIL]', skip: '[skip]', info: '[info]' };

export async function runDoctor(ctx: Context): Promise<number> {
  const { opts, file, cloud, io } = ctx;
  const record = file.record;
  const n = resolveNames(opts, file, record?.suffix ?? '');
  const http = opts.http || record?.mode === 'http';
  const results: Result[] = [];
  const report = (r: Result) => {
    results.push(r);
    io.out(`${MARK[r.status]} ${results.length}. ${r.title}: ${r.detail}`);
    if (r.fix) io.out(`       fix: ${r.fix}`);
  };
  const configuredWi = opts.workloadIdentityName ?? file.string('workload_identity_name');
  // The document tools are on when an app-secret provider is configured (docs/tools.md).
  const appSecretProvider = opts.appSecretProviderName ?? file.string('dingtalk_app_secret_provider_name');
  const clientId = opts.dingtalkClientId ?? file.string('dingtalk_client_id');

  // 1. credentials
  let accountId: string | undefined;
  const source = await ctx.credentialSource();
  if (!source) {
    report({
      status: 'fail',
      title: 'Alibaba Cloud credentials',
      detail: 'none found in the default credential chain',
      fix: 'set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure`, or use an ECS RAM role / RRSA; then run doctor again',
    });
  } else {
    try {
      const who = await cloud.callerIdentity();
      accountId = who.accountId;
      report({ status: 'ok', title: 'Alibaba Cloud credentials', detail: `from ${source}; they sign: ${who.arn ?? 'caller'} (account ${who.accountId})` });
    } catch (e) {
      report({ status: 'fail', title: 'Alibaba Cloud credentials', detail: `found (${source}) but STS GetCallerIdentity failed`, fix: errorText(e) });
    }
  }

  // 2. workload identity and its return URL
  let wi: WorkloadIdentity | undefined;
  if (!accountId) report({ status: 'skip', title: 'workload identity', detail: 'needs working credentials' });
  else if (!configuredWi) {
    report({
      status: 'fail',
      title: 'workload identity',
      detail: 'none configured',
      fix: 'run `dingtalk-mcp setup`, or set AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME',
    });
  } else {
    try {
      wi = await cloud.getWorkloadIdentity(configuredWi);
      if (!wi) {
        report({
          status: 'fail',
          title: 'workload identity',
          detail: `${configuredWi} does not exist in ${n.regionId}`,
          fix: 'run `dingtalk-mcp setup` (it creates it), or check AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME and AGENT_IDENTITY_REGION_ID',
        });
      } else if (!wi.returnUrls.includes(n.callbackUrl)) {
        report({
          status: 'fail',
          title: 'workload identity',
          detail: `${configuredWi} does not allow the return URL ${n.callbackUrl} (allowed: ${wi.returnUrls.join(', ') || 'none'})`,
          fix: `run \`dingtalk-mcp setup\` with the same APP_REDIRECT_URI (it adds the URL when setup created the identity), or add ${n.callbackUrl} to its AllowedResourceOAuth2ReturnURLs in the Agent Identity console`,
        });
      } else {
        report({ status: 'ok', title: 'workload identity', detail: `${configuredWi} exists and allows ${n.callbackUrl}` });
      }
    } catch (e) {
      report({ status: 'fail', title: 'workload identity', detail: 'could not be read', fix: errorText(e) });
    }
  }

  // 3. DingTalk credential provider
  if (!accountId) report({ status: 'skip', title: 'DingTalk credential provider', detail: 'needs working credentials' });
  else {
    try {
      const provider = await cloud.getOAuth2Provider(n.provider);
      if (provider) {
        report({
          status: 'ok',
          title: 'DingTalk credential provider',
          detail: `${n.provider} exists${provider.callbackUrl ? `; its redirect URL for the DingTalk app: ${provider.callbackUrl}` : ''}`,
        });
      } else {
        report({
          status: 'fail',
          title: 'DingTalk credential provider',
          detail: `${n.provider} does not exist`,
          fix: 'create it in the Agent Identity console (Outbound → Credential Providers → OAuth2) and set AGENT_IDENTITY_DINGTALK_PROVIDER to its name, or run `dingtalk-mcp setup` with DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET set',
        });
      }
    } catch (e) {
      report({ status: 'fail', title: 'DingTalk credential provider', detail: 'could not be read', fix: errorText(e) });
    }
  }

  // 3b. the DingTalk app secret for the document tools
  if (!appSecretProvider) {
    report({
      status: 'info',
      title: 'document tools',
      detail: 'off: no app-secret provider is configured, so only write_dingtalk_doc and get_dingtalk_account are listed',
      fix: 'to turn on read, append, create, search, info and list, run `dingtalk-mcp setup` with DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET (it stores the secret in an Agent Identity API-key credential provider), or set AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER to one you made',
    });
  } else if (!accountId) report({ status: 'skip', title: 'document tools', detail: 'needs working credentials' });
  else {
    try {
      const provider = await cloud.getApiKeyProvider(appSecretProvider);
      if (!provider) {
        report({
          status: 'fail',
          title: 'document tools',
          detail: `the API-key credential provider ${appSecretProvider} does not exist`,
          fix: 'run `dingtalk-mcp setup` with DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET, or correct AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER',
        });
      } else if (!clientId) {
        report({
          status: 'fail',
          title: 'document tools',
          detail: `${appSecretProvider} exists, but the DingTalk app's Client ID is not known`,
          fix: "set DINGTALK_CLIENT_ID (the app's AppKey) where the server runs",
        });
      } else {
        report({ status: 'ok', title: 'document tools', detail: `the app secret of DingTalk app ${clientId} is in ${appSecretProvider}` });
      }
    } catch (e) {
      report({ status: 'fail', title: 'document tools', detail: 'the app-secret provider could not be read', fix: errorText(e) });
    }
  }

  // 4. the role: trust and permissions
  if (!accountId || !wi) report({ status: 'skip', title: 'workload role', detail: 'needs the workload identity' });
  else if (!wi.roleArn) {
    report({
      status: 'fail',
      title: 'workload role',
      detail: `${wi.name} has no RoleArn`,
      fix: 'run `dingtalk-mcp setup`, or set a RAM role on the workload identity in the console',
    });
  } else {
    const roleName = file.find('ram_role')?.arn?.toLowerCase() === wi.roleArn.toLowerCase() ? file.find('ram_role')!.name : roleNameFromArn(wi.roleArn);
    const wiArn = wi.arn ?? workloadIdentityArn(n.regionId, accountId, wi.name);
    const provArn = oauth2ProviderArn(n.regionId, accountId, n.provider);
    try {
      const role = roleName ? await cloud.getRole(roleName) : undefined;
      if (!role) {
        report({
          status: 'fail',
          title: 'workload role',
          detail: `${wi.roleArn} does not exist`,
          fix: 'run `dingtalk-mcp setup` to create the role, or point the workload identity at an existing role',
        });
      } else {
        const trust = checkTrust(role.trustPolicy, wiArn);
        const attached = await cloud.listPoliciesForRole(role.name);
        const docs: string[] = [];
        let system = false;
        for (const p of attached) {
          if (p.type === 'System') system ||= SYSTEM_POLICIES_WITH_TOKEN_FETCH.includes(p.name);
          else {
            const policy = await cloud.getPolicy(p.name, p.type);
            if (policy?.document) docs.push(policy.document);
          }
        }
        const permitted = system || allowsTokenFetch(docs, wiArn, provArn);
        if (!trust.ok) {
          report({
            status: 'fail',
            title: 'workload role',
            detail: `${role.name}: ${trust.problem}`,
            fix: `trust workload.agentidentity.aliyuncs.com with sts:AssumeRole and sts:SetContext, conditioned on ${wiArn} (run \`dingtalk-mcp setup\` if setup created the role)`,
          });
        } else if (!permitted) {
          report({
            status: 'fail',
            title: 'workload role',
            detail: `${role.name} may not call agentidentitydata:GetResourceOAuth2Token on the workload identity and the provider ${n.provider}`,
            fix: `attach a policy allowing agentidentitydata:GetResourceOAuth2Token on ${wiArn} and ${provArn} (run \`dingtalk-mcp setup\`), or set AGENT_IDENTITY_USE_STS=false so the server signs with its own credentials`,
          });
        } else if (
          appSecretProvider &&
          !system &&
          !allowsTokenFetch(docs, wiArn, apiKeyProviderArn(n.regionId, accountId, appSecretProvider), API_KEY_ACTION)
        ) {
          const keyArn = apiKeyProviderArn(n.regionId, accountId, appSecretProvider);
          report({
            status: 'fail',
            title: 'workload role',
            detail: `${role.name} may not call ${API_KEY_ACTION} on ${appSecretProvider}, so the document tools cannot read the DingTalk app secret`,
            fix: `allow ${API_KEY_ACTION} on ${wiArn} and ${keyArn} (run \`dingtalk-mcp setup\` if setup created the policy)`,
          });
        } else {
          report({
            status: 'ok',
            title: 'workload role',
            detail: `${role.name} trusts Agent Identity for this workload identity and allows GetResourceOAuth2Token on it and ${n.provider}${appSecretProvider ? `, and GetResourceAPIKey on ${appSecretProvider}` : ''}`,
          });
        }
      }
    } catch (e) {
      report({ status: 'fail', title: 'workload role', detail: 'could not be read', fix: errorText(e) });
    }
  }

  // 5. the DingTalk app permission (not visible from Alibaba Cloud)
  report({
    status: 'info',
    title: 'DingTalk app permission',
    detail:
      "cannot be checked from here: the DingTalk app must have Contact.User.Read and Document.Document.Write (委托方式覆写使用者本人的钉钉文档) under 权限管理, and the provider's redirect URL under 安全设置 → 重定向URL" +
      (appSecretProvider
        ? `; for the document tools also, per toolset, read: ${APP_PERMISSIONS.read.join(', ')}; write: ${APP_PERMISSIONS.write.join(', ')}`
        : ''),
  });

  // 6. the callback port
  const port = callbackPort(n.appRedirectUri);
  const host = new URL(n.appRedirectUri).hostname;
  if (!['localhost', '127.0.0.1', '[::1]', '::1'].includes(host)) {
    report({ status: 'info', title: 'callback port', detail: `${n.appRedirectUri} is not local; make sure it reaches this server` });
  } else if (await portFree(port)) {
    report({ status: 'ok', title: 'callback port', detail: `${port} is free for ${n.callbackUrl}` });
  } else {
    report({
      status: 'fail',
      title: 'callback port',
      detail: `port ${port} on 127.0.0.1 is in use`,
      fix: `stop whatever listens on ${port} (unless it is this server already running), or set APP_REDIRECT_URI to another port and run setup again so the workload identity allows it`,
    });
  }

  // 7. HTTP mode: identity provider
  if (http) {
    const expectedAudience = opts.audience ?? file.string('oidc_audience') ?? file.string('inbound_app_id');
    if (!accountId) report({ status: 'skip', title: 'identity provider (HTTP mode)', detail: 'needs working credentials' });
    else {
      try {
        const idp = await cloud.getIdentityProvider(n.identityProvider);
        if (!idp) {
          report({
            status: 'fail',
            title: 'identity provider (HTTP mode)',
            detail: `${n.identityProvider} does not exist`,
            fix: 'run `dingtalk-mcp setup --http`',
          });
        } else {
          const problems: string[] = [];
          const fixes: string[] = [];
          const discovery = idp.discoveryUrl ? await fetchDiscovery(idp.discoveryUrl) : { ok: false as const, why: 'no DiscoveryURL' };
          if (!discovery.ok) {
            problems.push(`its discovery document ${idp.discoveryUrl ?? ''} is not reachable (${discovery.why})`);
            fixes.push("check the DiscoveryURL and this machine's network");
          }
          if (!expectedAudience) {
            problems.push('no expected audience is known');
            fixes.push('set OIDC_AUDIENCE (the OAuth client id users sign in with) or run `dingtalk-mcp setup --http`');
          } else if (!idp.audience.includes(expectedAudience)) {
            problems.push(`its AllowedAudience (${idp.audience.join(', ') || 'none'}) does not include ${expectedAudience}`);
            fixes.push(
              `add ${expectedAudience} to the identity provider's AllowedAudience (run \`dingtalk-mcp setup --http\` if setup created it), or set OIDC_AUDIENCE to the right client id`,
            );
          }
          if (wi && wi.identityProviderName !== idp.name) {
            problems.push(`the workload identity uses ${wi.identityProviderName ?? 'no identity provider'}`);
            fixes.push(`bind ${idp.name} to the workload identity (run \`dingtalk-mcp setup --http\`)`);
          }
          if (problems.length)
            report({ status: 'fail', title: 'identity provider (HTTP mode)', detail: `${idp.name}: ${problems.join('; ')}`, fix: fixes.join('; ') });
          else
            report({
              status: 'ok',
              title: 'identity provider (HTTP mode)',
              detail: `${idp.name}: discovery reachable (issuer ${discovery.ok ? discovery.issuer : ''}), audience ${expectedAudience}`,
            });
        }
      } catch (e) {
        report({ status: 'fail', title: 'identity provider (HTTP mode)', detail: 'could not be read', fix: errorText(e) });
      }
    }
  }

  const failed = results.filter((r) => r.status === 'fail' || r.status === 'skip').length;
  io.out(failed ? `${failed} check${failed === 1 ? '' : 's'} did not pass.` : 'All checks passed.');
  return failed ? 1 : 0;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function callbackPort(base: string): number {
  const u = new URL(base);
  return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function fetchDiscovery(url: string): Promise<{ ok: true; issuer: string } | { ok: false; why: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000), headers: { accept: 'application/json' } });
    if (!res.ok) return { ok: false, why: `HTTP ${res.status}` };
    const doc = (await res.json()) as { issuer?: unknown };
    if (typeof doc.issuer !== 'string') return { ok: false, why: 'no issuer in it' };
    return { ok: true, issuer: doc.issuer };
  } catch (e) {
    return { ok: false, why: (e as Error).name === 'TimeoutError' ? 'timed out' : 'network error' };
  }
}
