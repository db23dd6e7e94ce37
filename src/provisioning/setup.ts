/**
 * `dingtalk-mcp setup`: read what exists, print a plan, then create or fix — in order — what the server needs:
 *   [HTTP mode] IMS OAuth app (WebApp) → its secret → Agent Identity identity provider
 *   RAM role (trust) → RAM policy (least privilege) → attach → workload identity → DingTalk credential provider.
 * Idempotent: everything already right is left alone. Resumable: every step is recorded as it happens
 * (record.ts), so a re-run after a failure continues and `teardown` can clean up a half-finished run.
 * It never deletes anything and never changes what it did not create (such resources are only adopted when
 * they already fit; otherwise the plan says what to fix).
 */
import { randomUUID } from 'node:crypto';
import { ControlPlaneError } from './control-plane-client.js';
import type { Context, Names } from './context.js';
import { freshRecord, issuerOf, resolveNames } from './context.js';
import {
  allowsTokenFetch,
  checkTrust,
  oauth2ProviderArn,
  permissionPolicy,
  policyArn,
  roleArn as ramRoleArn,
  sameJson,
  trustPolicy,
  workloadIdentityArn,
} from './documents.js';
import { printClientConfig } from './client-config.js';
import type { ResourceRecord, ResourceType } from './record.js';

type Action = 'create' | 'update' | 'ok' | 'adopt' | 'blocked';

interface PlanItem {
  type: ResourceType;
  label: string;
  name: string;
  action: Action;
  detail?: string;
  apply?: () => Promise<void>;
}

const SYMBOL: Record<Action, string> = { create: '+ create', update: '~ update', ok: '= ok    ', adopt: '= adopt ', blocked: '! blocked' };

/** The DingTalk OAuth endpoints (reference/dingtalk.md §OAuth); used only when setup creates the provider. */
export const DINGTALK_OAUTH = {
  issuer: 'https://login.dingtalk.com',
  authorizationEndpoint: 'https://login.dingtalk.com/oauth2/auth',
  tokenEndpoint: 'https://api.dingtalk.com/v1.0/oauth2/userAccessToken',
};

/** What apply steps learn and later steps need. */
interface Live {
  accountId?: string;
  appId?: string;
  roleArn?: string;
  providerCallbackUrl?: string;
  providerCreated?: boolean;
}

export async function runSetup(ctx: Context): Promise<number> {
  const { opts, file, cloud, io } = ctx;
  const live: Live = {};

  // Who are we? (also proves the credentials can sign)
  let accountError: string | undefined;
  try {
    live.accountId = (await cloud.callerIdentity()).accountId;
  } catch (e) {
    accountError = e instanceof Error ? e.message : String(e);
    if (!opts.dryRun) {
      io.err(`setup: cannot identify the Alibaba Cloud account. ${accountError}`);
      return 1;
    }
  }

  let record = file.record;
  if (record?.accountId && live.accountId && record.accountId !== live.accountId) {
    io.err(
      `setup: ${file.path} records resources of account ${record.accountId}, but the credentials belong to account ${live.accountId}. ` +
        'Fix: use the credentials of that account, or point --config at another file.',
    );
    return 1;
  }
  record ??= freshRecord(opts, opts.regionId ?? file.string('region_id') ?? 'cn-beijing');
  const names = resolveNames(opts, file, record.suffix);
  const http = opts.http || record.mode === 'http';

  const owned = (type: ResourceType, name: string) => {
    const r = file.record?.resources.find((x) => x.type === type && x.name === name);
    return r !== undefined && r.status !== 'adopted';
  };

  const plan: PlanItem[] = [];
  if (live.accountId) {
    try {
      await discover(ctx, names, live, http, owned, plan);
    } catch (e) {
      io.err(`setup: could not read the current state. ${e instanceof Error ? e.message : String(e)}`);
      return 1;
    }
  }

  // ---- the plan ----
  io.out(`Plan for account ${live.accountId ?? '(unknown)'}, region ${names.regionId}, ${http ? 'stdio + HTTP mode' : 'stdio mode'}:`);
  if (!live.accountId) {
    io.out(`  (the account could not be read, so this plan assumes nothing exists yet: ${accountError ?? ''})`);
    for (const [label, name] of plannedNames(names, http)) io.out(`  ${SYMBOL.create}  ${label.padEnd(28)} ${name}`);
  }
  for (const item of plan) io.out(`  ${SYMBOL[item.action]}  ${item.label.padEnd(28)} ${item.name}${item.detail ? `  (${item.detail})` : ''}`);
  const changes = plan.filter((p) => p.action === 'create' || p.action === 'update');
  const blocked = plan.filter((p) => p.action === 'blocked');
  if (opts.dryRun) {
    io.out(`Dry run: nothing was changed (${changes.length} change${changes.length === 1 ? '' : 's'} planned${blocked.length ? `, ${blocked.length} blocked` : ''}).`);
    return blocked.length ? 1 : 0;
  }
  if (blocked.length) {
    io.err('setup: nothing was changed, because:');
    for (const b of blocked) io.err(`  - ${b.label} ${b.name}: ${b.detail}`);
    return 1;
  }

  // ---- apply ----
  record.accountId = live.accountId;
  record.regionId = names.regionId;
  if (http) record.mode = 'http';
  file.record = record;
  file.data.region_id = names.regionId;
  file.data.workload_identity_name = names.workloadIdentity;
  file.data.dingtalk_provider_name = names.provider;
  if (http) {
    file.data.identity_provider_name = names.identityProvider;
    file.data.inbound_app_name = names.appName;
  }
  file.save();

  let step = 0;
  const total = changes.length;
  for (const item of plan) {
    if (!item.apply) continue;
    const counted = item.action === 'create' || item.action === 'update';
    if (counted) step += 1;
    try {
      await item.apply();
      if (counted) io.out(`[${step}/${total}] ${item.action === 'update' ? 'updated' : 'created'} ${item.label} ${item.name}`);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      io.err(`setup: step ${step} of ${total} failed (${item.label} ${item.name}). ${message}`);
      io.err(`What is done so far is recorded in ${file.path}: run \`dingtalk-mcp setup\` again to resume, or \`dingtalk-mcp teardown\` to remove it.`);
      return 1;
    }
  }
  if (total === 0) io.out('Everything is already in place; nothing changed.');

  file.data.role_arn = live.roleArn ?? file.data.role_arn;
  if (http && live.appId) {
    file.data.inbound_app_id = live.appId;
    file.data.oidc_issuer = issuerOf(names.discoveryUrl);
  }
  file.save();
  io.out(`Recorded in ${file.path}.`);

  const callback = live.providerCallbackUrl;
  io.out('');
  io.out('DingTalk app (open.dingtalk.com → your app):');
  if (callback) io.out(`  - add this redirect URL under 安全设置 / Security settings → 重定向URL: ${callback}`);
  io.out('  - grant the permission Document.Document.Write (委托方式覆写使用者本人的钉钉文档) under 权限管理.');
  io.out('');
  printClientConfig(ctx, names, { http, appId: live.appId ?? file.string('inbound_app_id') });
  return 0;
}

function plannedNames(n: Names, http: boolean): Array<[string, string]> {
  return [
    ...(http ? ([['IMS OAuth application', n.appName], ['IMS application secret', `(for ${n.appName})`], ['identity provider', n.identityProvider]] as Array<[string, string]>) : []),
    ['RAM role', n.role],
    ['RAM policy', n.policy],
    ['policy attachment', `${n.role}/${n.policy}`],
    ['workload identity', n.workloadIdentity],
    ['DingTalk credential provider', n.provider],
  ];
}

async function discover(
  ctx: Context,
  n: Names,
  live: Live,
  http: boolean,
  owned: (type: ResourceType, name: string) => boolean,
  plan: PlanItem[],
): Promise<void> {
  const { cloud, file, opts } = ctx;
  const account = live.accountId!;
  const wiArn = workloadIdentityArn(n.regionId, account, n.workloadIdentity);
  const provArn = oauth2ProviderArn(n.regionId, account, n.provider);
  const track = (entry: Omit<ResourceRecord, 'at'>) => file.track(entry);

  // ---- HTTP mode: OAuth application, its secret, identity provider ----
  if (http) {
    const appRec = file.find('ims_application');
    const knownId = appRec?.appId ?? file.string('inbound_app_id');
    const app = knownId ? await cloud.getApplication(knownId) : undefined;
    const appOwned = appRec !== undefined && appRec.status !== 'adopted';
    if (app) {
      live.appId = app.appId;
      const missing = !app.redirectUris.includes(n.loginRedirectUri);
      plan.push({
        type: 'ims_application',
        label: 'IMS OAuth application',
        name: `${app.appName ?? n.appName} (${app.appId})`,
        action: appOwned ? 'ok' : 'adopt',
        ...(missing ? { detail: `warning: its redirect URIs lack ${n.loginRedirectUri}; add it in the RAM console → OAuth applications` } : {}),
        ...(appOwned ? {} : { apply: async () => track({ type: 'ims_application', name: app.appName ?? n.appName, appId: app.appId, status: 'adopted' }) }),
      });
    } else if (knownId && !appRec) {
      plan.push({
        type: 'ims_application',
        label: 'IMS OAuth application',
        name: knownId,
        action: 'blocked',
        detail: `inbound_app_id ${knownId} in ${file.path} does not exist in this account; remove the key to let setup create a new application`,
      });
    } else {
      plan.push({
        type: 'ims_application',
        label: 'IMS OAuth application',
        name: n.appName,
        action: 'create',
        detail: `WebApp, redirect ${n.loginRedirectUri}`,
        apply: async () => {
          track({ type: 'ims_application', name: n.appName, status: 'pending' });
          const created = await cloud.createWebApplication({ appName: n.appName, displayName: 'dingtalk-mcp', redirectUris: [n.loginRedirectUri], scopes: ['openid', 'profile', 'aliuid'] });
          live.appId = created.appId;
          track({ type: 'ims_application', name: n.appName, appId: created.appId, status: 'created', arn: `acs:ram::${account}:application/${created.appId}` });
        },
      });
    }

    // A WebApp's secret (IMS: "always required" for WebApp). Only for an app setup created: an adopted app's secret is the user's.
    const secretRec = file.find('ims_app_secret');
    const haveSecret = file.readSecret('oidc_client_secret') !== undefined && secretRec?.status === 'created' && (!live.appId || secretRec.appId === live.appId);
    if (!app || appOwned) {
      plan.push({
        type: 'ims_app_secret',
        label: 'IMS application secret',
        name: haveSecret ? secretRec!.name : `(new, stored in ${file.secretsPath})`,
        action: haveSecret ? 'ok' : 'create',
        ...(haveSecret
          ? {}
          : {
              apply: async () => {
                const { secretId, secret } = await cloud.createAppSecret(live.appId!);
                file.writeSecret('oidc_client_secret', secret); // mode 0600; never printed, never in .config.json
                track({ type: 'ims_app_secret', name: secretId, appId: live.appId!, status: 'created' });
              },
            }),
      });
    }

    const idp = await cloud.getIdentityProvider(n.identityProvider);
    const idpFits = (p: { discoveryUrl?: string; audience: string[] }) => p.discoveryUrl === n.discoveryUrl && live.appId !== undefined && p.audience.includes(live.appId);
    const idpInput = () => ({ name: n.identityProvider, discoveryUrl: n.discoveryUrl, audience: [live.appId!] });
    if (!idp) {
      plan.push({
        type: 'identity_provider',
        label: 'identity provider',
        name: n.identityProvider,
        action: 'create',
        detail: `discovery ${n.discoveryUrl}, audience = the app id`,
        apply: async () => {
          track({ type: 'identity_provider', name: n.identityProvider, status: 'pending' });
          const created = await cloud.createIdentityProvider({ ...idpInput(), description: 'dingtalk-mcp: sign-in for HTTP mode' });
          track({ type: 'identity_provider', name: n.identityProvider, status: 'created', ...(created.arn ? { arn: created.arn } : {}) });
        },
      });
    } else if (owned('identity_provider', n.identityProvider)) {
      const fits = idpFits(idp);
      plan.push({
        type: 'identity_provider',
        label: 'identity provider',
        name: n.identityProvider,
        action: fits ? 'ok' : 'update',
        ...(fits ? {} : { detail: 'discovery URL or audience differ' }),
        apply: async () => {
          if (!fits) await cloud.updateIdentityProvider(idpInput());
          track({ type: 'identity_provider', name: n.identityProvider, status: 'created', ...(idp.arn ? { arn: idp.arn } : {}) });
        },
      });
    } else if (idpFits(idp)) {
      plan.push({ type: 'identity_provider', label: 'identity provider', name: n.identityProvider, action: 'adopt', apply: async () => track({ type: 'identity_provider', name: n.identityProvider, status: 'adopted', ...(idp.arn ? { arn: idp.arn } : {}) }) });
    } else {
      plan.push({
        type: 'identity_provider',
        label: 'identity provider',
        name: n.identityProvider,
        action: 'blocked',
        detail: `it exists but was not created by setup, and its DiscoveryURL (${idp.discoveryUrl ?? 'none'}) or AllowedAudience (${idp.audience.join(', ') || 'none'}) differ from ${n.discoveryUrl} / the app id; fix it in the Agent Identity console or pass --identity-provider <another name>`,
      });
    }
  }

  // ---- RAM role ----
  const expectedTrust = trustPolicy(wiArn);
  const role = await cloud.getRole(n.role);
  const roleTrack = (status: ResourceRecord['status'], arn?: string) => track({ type: 'ram_role', name: n.role, status, arn: arn ?? ramRoleArn(account, n.role) });
  if (!role) {
    plan.push({
      type: 'ram_role',
      label: 'RAM role',
      name: n.role,
      action: 'create',
      detail: `trusted by ${'workload.agentidentity.aliyuncs.com'} for this workload identity only`,
      apply: async () => {
        roleTrack('pending');
        const created = await cloud.createRole({ name: n.role, trustPolicy: expectedTrust, description: `dingtalk-mcp: role of workload identity ${n.workloadIdentity}` });
        live.roleArn = created.arn || ramRoleArn(account, n.role);
        roleTrack('created', live.roleArn);
      },
    });
  } else {
    live.roleArn = role.arn;
    if (owned('ram_role', n.role)) {
      const fits = sameJson(role.trustPolicy, expectedTrust);
      plan.push({
        type: 'ram_role',
        label: 'RAM role',
        name: n.role,
        action: fits ? 'ok' : 'update',
        ...(fits ? {} : { detail: 'trust policy differs' }),
        apply: async () => {
          if (!fits) await cloud.updateRoleTrust(n.role, expectedTrust);
          roleTrack('created', role.arn);
        },
      });
    } else {
      const trust = checkTrust(role.trustPolicy, wiArn);
      plan.push(
        trust.ok
          ? { type: 'ram_role', label: 'RAM role', name: n.role, action: 'adopt', apply: async () => roleTrack('adopted', role.arn) }
          : { type: 'ram_role', label: 'RAM role', name: n.role, action: 'blocked', detail: `it exists but was not created by setup, and ${trust.problem}; fix its trust policy in the RAM console or pass --workload-identity <another name>` },
      );
    }
  }

  // ---- RAM policy ----
  const expectedPolicy = permissionPolicy(wiArn, provArn);
  const policy = await cloud.getPolicy(n.policy);
  const policyTrack = (status: ResourceRecord['status']) => track({ type: 'ram_policy', name: n.policy, status, arn: policyArn(account, n.policy) });
  if (!policy) {
    plan.push({
      type: 'ram_policy',
      label: 'RAM policy',
      name: n.policy,
      action: 'create',
      detail: 'only agentidentitydata:GetResourceOAuth2Token on this workload identity and provider',
      apply: async () => {
        policyTrack('pending');
        await cloud.createPolicy({ name: n.policy, document: expectedPolicy, description: `dingtalk-mcp: least privilege for ${n.workloadIdentity}` });
        policyTrack('created');
      },
    });
  } else if (owned('ram_policy', n.policy)) {
    const fits = sameJson(policy.document, expectedPolicy);
    plan.push({
      type: 'ram_policy',
      label: 'RAM policy',
      name: n.policy,
      action: fits ? 'ok' : 'update',
      ...(fits ? {} : { detail: 'document differs; a new default version' }),
      apply: async () => {
        if (!fits) await cloud.setPolicyDocument(n.policy, expectedPolicy);
        policyTrack('created');
      },
    });
  } else if (allowsTokenFetch(policy.document ? [policy.document] : [], wiArn, provArn)) {
    plan.push({ type: 'ram_policy', label: 'RAM policy', name: n.policy, action: 'adopt', apply: async () => policyTrack('adopted') });
  } else {
    plan.push({ type: 'ram_policy', label: 'RAM policy', name: n.policy, action: 'blocked', detail: 'it exists but was not created by setup, and does not allow GetResourceOAuth2Token on this workload identity and provider; fix it or pass --workload-identity <another name>' });
  }

  // ---- attachment ----
  const attachName = `${n.role}/${n.policy}`;
  const attached = role && policy ? (await cloud.listPoliciesForRole(n.role)).some((p) => p.type === 'Custom' && p.name.toLowerCase() === n.policy.toLowerCase()) : false;
  if (!attached) {
    plan.push({
      type: 'ram_policy_attachment',
      label: 'policy attachment',
      name: attachName,
      action: 'create',
      apply: async () => {
        track({ type: 'ram_policy_attachment', name: attachName, status: 'pending' });
        await cloud.attachPolicyToRole(n.policy, n.role);
        track({ type: 'ram_policy_attachment', name: attachName, status: 'created' });
      },
    });
  } else {
    const mine = owned('ram_policy_attachment', attachName);
    plan.push({ type: 'ram_policy_attachment', label: 'policy attachment', name: attachName, action: mine ? 'ok' : 'adopt', apply: async () => track({ type: 'ram_policy_attachment', name: attachName, status: mine ? 'created' : 'adopted' }) });
  }

  // ---- workload identity ----
  const wi = await cloud.getWorkloadIdentity(n.workloadIdentity);
  const idpName = http ? n.identityProvider : undefined;
  const wiTrack = (status: ResourceRecord['status'], arn?: string) => track({ type: 'workload_identity', name: n.workloadIdentity, status, arn: arn ?? wiArn });
  if (!wi) {
    plan.push({
      type: 'workload_identity',
      label: 'workload identity',
      name: n.workloadIdentity,
      action: 'create',
      detail: `return URL ${n.callbackUrl}${idpName ? `, identity provider ${idpName}` : ''}`,
      apply: async () => {
        wiTrack('pending');
        const created = await cloud.createWorkloadIdentity({
          name: n.workloadIdentity,
          roleArn: live.roleArn!,
          ...(idpName ? { identityProviderName: idpName } : {}),
          returnUrls: [n.callbackUrl],
          description: 'dingtalk-mcp: writes DingTalk documents as the user',
        });
        wiTrack('created', created.arn);
      },
    });
  } else {
    const problems: string[] = [];
    if (!wi.returnUrls.includes(n.callbackUrl)) problems.push(`AllowedResourceOAuth2ReturnURLs lacks ${n.callbackUrl}`);
    if (live.roleArn && wi.roleArn?.toLowerCase() !== live.roleArn.toLowerCase()) problems.push(`RoleArn is ${wi.roleArn ?? 'empty'}, not ${live.roleArn}`);
    if (idpName && wi.identityProviderName !== idpName) problems.push(`IdentityProviderName is ${wi.identityProviderName ?? 'empty'}, not ${idpName}`);
    if (owned('workload_identity', n.workloadIdentity)) {
      plan.push({
        type: 'workload_identity',
        label: 'workload identity',
        name: n.workloadIdentity,
        action: problems.length ? 'update' : 'ok',
        ...(problems.length ? { detail: problems.join('; ') } : {}),
        apply: async () => {
          if (problems.length) {
            await cloud.updateWorkloadIdentity({
              name: n.workloadIdentity,
              roleArn: live.roleArn!,
              ...(idpName ? { identityProviderName: idpName } : {}),
              returnUrls: [...new Set([...wi.returnUrls, n.callbackUrl])],
            });
          }
          wiTrack('created', wi.arn);
        },
      });
    } else if (problems.length === 0) {
      plan.push({ type: 'workload_identity', label: 'workload identity', name: n.workloadIdentity, action: 'adopt', apply: async () => wiTrack('adopted', wi.arn) });
    } else {
      plan.push({
        type: 'workload_identity',
        label: 'workload identity',
        name: n.workloadIdentity,
        action: 'blocked',
        detail: `it exists but was not created by setup: ${problems.join('; ')}. Fix it in the Agent Identity console, or pass --workload-identity <a new name> to let setup create its own`,
      });
    }
  }

  // ---- DingTalk OAuth2 credential provider ----
  const provider = await cloud.getOAuth2Provider(n.provider);
  const providerTrack = (status: ResourceRecord['status'], arn?: string) => track({ type: 'oauth2_credential_provider', name: n.provider, status, arn: arn ?? provArn });
  if (provider) {
    live.providerCallbackUrl = provider.callbackUrl;
    const mine = owned('oauth2_credential_provider', n.provider);
    plan.push({
      type: 'oauth2_credential_provider',
      label: 'DingTalk credential provider',
      name: n.provider,
      action: mine ? 'ok' : 'adopt',
      ...(mine ? {} : { detail: 'exists; used as is, never deleted by teardown' }),
      apply: async () => providerTrack(mine ? 'created' : 'adopted', provider.arn),
    });
    return;
  }
  const clientId = opts.dingtalkClientId;
  let secret: string | undefined;
  if (clientId && !opts.dryRun) secret = await ctx.readDingTalkSecret();
  if (!clientId || (!opts.dryRun && !secret)) {
    plan.push({
      type: 'oauth2_credential_provider',
      label: 'DingTalk credential provider',
      name: n.provider,
      action: opts.dryRun ? 'create' : 'blocked',
      detail: opts.dryRun && clientId
        ? `from DingTalk app ${clientId}; vendor ${opts.dingtalkVendor}`
        : `it does not exist. Either create it in the Agent Identity console (Outbound → Credential Providers → OAuth2, DingTalk) and run setup again with AGENT_IDENTITY_DINGTALK_PROVIDER=<its name>, or set DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET (the DingTalk app's Client ID / Client Secret) so setup creates it`,
    });
    return;
  }
  // Like the kit's prepare.py, the caller picks Agent Identity's IdP-facing callback (it must be registered at DingTalk).
  const callbackUrl = `https://agentidentitydata.${n.regionId}.aliyuncs.com/oauth2/callback/${randomUUID()}`;
  plan.push({
    type: 'oauth2_credential_provider',
    label: 'DingTalk credential provider',
    name: n.provider,
    action: 'create',
    detail: `from DingTalk app ${clientId}; vendor ${opts.dingtalkVendor} (UNVERIFIED)`,
    apply: async () => {
      providerTrack('pending');
      // Shape from agentidentity-20250901 models CustomOAuth2ProviderConfig / OAuth2Discovery / AuthorizationServerMetadata
      // (wire key `TokenRequest`; the generated type is misspelt TokenReqeust). Vendor string and whether Agent Identity
      // speaks DingTalk's JSON token endpoint this way are UNVERIFIED — adoption of a console-made provider is the documented path.
      const config = {
        CustomOAuth2ProviderConfig: {
          ClientId: clientId,
          ClientSecret: secret!,
          OAuth2Discovery: {
            AuthorizationServerMetadata: {
              Issuer: DINGTALK_OAUTH.issuer,
              AuthorizationRequest: { Endpoint: DINGTALK_OAUTH.authorizationEndpoint },
              TokenRequest: { Endpoint: DINGTALK_OAUTH.tokenEndpoint },
              PKCE: { Enabled: false },
            },
          },
        },
      };
      try {
        const created = await cloud.createOAuth2Provider({ name: n.provider, vendor: opts.dingtalkVendor, callbackUrl, config, clientSecret: secret!, description: 'dingtalk-mcp: DingTalk user tokens' });
        live.providerCallbackUrl = created.callbackUrl ?? callbackUrl;
        live.providerCreated = true;
        providerTrack('created', created.arn);
      } catch (e) {
        if (e instanceof ControlPlaneError && e.alreadyExists) {
          // Someone made it between our read and our create: adopt, never overwrite.
          providerTrack('adopted');
          return;
        }
        throw e;
      }
    },
  });
}
