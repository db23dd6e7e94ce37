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
import { APP_PERMISSIONS } from '../dingtalk/app-api.js';
import type { ApiKeyProvider, Application, IdentityProvider, OAuth2Provider, Policy, Role, WorkloadIdentity } from './cloud.js';
import type { Context, Names } from './context.js';
import { freshRecord, issuerOf, resolveNames } from './context.js';
import { createOrAdopt, GONE } from './create-step.js';
import { planResource, type Action, type Owned, type PlanItem } from './plan.js';
import {
  allowsTokenFetch,
  API_KEY_ACTION,
  apiKeyProviderArn,
  oauth2ProviderArn,
  permissionPolicy,
  policyArn,
  roleArn as ramRoleArn,
  ROLE_ACTION,
  sameJson,
  trustPolicy,
  trustProblem,
  workloadIdentityArn,
} from './documents.js';
import { appIdentity, applicationsNamed, attachmentIdentity, policyIdentity, readIdentity, roleIdentity } from './identity.js';
import { printClientConfig } from './client-config.js';
import type { ResourceRecord } from './record.js';

const SYMBOL: Record<Action, string> = { create: '+ create', update: '~ update', ok: '= ok    ', adopt: '= adopt ', blocked: '! blocked' };

/** The DingTalk OAuth endpoints (docs/reference/dingtalk.md §2.1); used only when setup creates the provider. */
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
  /** The role / app exists but is not setup's: never changed (no policy attached, no secret created). */
  roleAdopted?: boolean;
  appAdopted?: boolean;
  /** The API-key provider with the DingTalk app secret exists or will: the document tools are on. */
  documentTools?: boolean;
  /** The DingTalk app secret, read once (environment or hidden prompt) for both providers; never printed or stored. */
  secret?: string;
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
  if (record.resources.length > 0 && names.regionId !== record.regionId) {
    io.err(
      `setup: ${file.path} records resources in region ${record.regionId}, but this run is for region ${names.regionId}. ` +
        `Setup never switches regions under a record. Fix: run \`dingtalk-mcp teardown\` first, or use another --config for region ${names.regionId}.`,
    );
    return 1;
  }

  const owned: Owned = (type, name, identity) => {
    const r = file.record?.resources.find((x) => x.type === type && x.name === name);
    return r !== undefined && r.status !== 'adopted' && (r.identity === undefined || r.identity === identity);
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
    io.out(
      `Dry run: nothing was changed (${changes.length} change${changes.length === 1 ? '' : 's'} planned${blocked.length ? `, ${blocked.length} blocked` : ''}).`,
    );
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
      const line = await item.apply();
      if (counted) io.out(`[${step}/${total}] ${line || `${item.action === 'update' ? 'updated' : 'created'} ${item.label} ${item.name}`}`);
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
  io.out('  - grant these permissions under 权限管理 (only those of the toolsets you expose):');
  io.out(
    '      every deployment: Contact.User.Read (who the signed-in user is); write_dingtalk_doc: Document.Document.Write (委托方式覆写使用者本人的钉钉文档)',
  );
  if (live.documentTools) {
    io.out(`      toolset read (search, read, info, list): ${APP_PERMISSIONS.read.join(', ')}`);
    io.out(`      toolset write (append, create): ${APP_PERMISSIONS.write.join(', ')}`);
  } else {
    io.out(
      '  - the document tools (read, append, create, search, info, list) stay off: run setup with DINGTALK_CLIENT_ID (and its secret) to store the app secret in Agent Identity and turn them on.',
    );
  }
  io.out('');
  printClientConfig(ctx, names, { http, appId: live.appId ?? file.string('inbound_app_id') });
  return 0;
}

function plannedNames(n: Names, http: boolean): Array<[string, string]> {
  return [
    ...(http
      ? ([
          ['IMS OAuth application', n.appName],
          ['IMS application secret', `(for ${n.appName})`],
          ['identity provider', n.identityProvider],
        ] as Array<[string, string]>)
      : []),
    ['RAM role', n.role],
    ['RAM policy', n.policy],
    ['policy attachment', `${n.role}/${n.policy}`],
    ['workload identity', n.workloadIdentity],
    ['DingTalk app secret provider', n.appSecretProvider],
    ['DingTalk credential provider', n.provider],
  ];
}

async function discover(ctx: Context, n: Names, live: Live, http: boolean, owned: Owned, plan: PlanItem[]): Promise<void> {
  const { cloud, file, opts } = ctx;
  const account = live.accountId!;
  const wiArn = workloadIdentityArn(n.regionId, account, n.workloadIdentity);
  const provArn = oauth2ProviderArn(n.regionId, account, n.provider);
  const track = (entry: Omit<ResourceRecord, 'at'>) => file.track(entry);
  const withIdentity = (identity: string | undefined) => (identity ? { identity } : {});

  // ---- HTTP mode: OAuth application, its secret, identity provider ----
  if (http) {
    const appRec = file.find('ims_application');
    let app: Application | undefined;
    let appBlocked: string | undefined;
    const knownId = appRec?.appId ?? file.string('inbound_app_id');
    if (appRec && appRec.status === 'pending' && !appRec.appId) {
      // An earlier create's answer was lost: the application, if it was made, is known only by its name.
      const named = await applicationsNamed(cloud, appRec.name);
      if (named.length === 1) app = named[0];
      else if (named.length > 1) {
        appBlocked = `${named.length} IMS applications are named ${appRec.name} (${named.map((a) => a.appId).join(', ')}), so setup cannot tell which one its interrupted run created; delete the extra ones in the RAM console (OAuth applications) and run setup again`;
      }
    } else if (knownId) {
      app = await cloud.getApplication(knownId);
    }
    const appOwned =
      app !== undefined && owned('ims_application', appRec?.name ?? '', appIdentity(app)) && (appRec?.appId === undefined || appRec.appId === app.appId);
    const appTrack = (a: Application, status: 'created' | 'adopted') =>
      track({
        type: 'ims_application',
        name: status === 'created' ? n.appName : (a.appName ?? n.appName),
        appId: a.appId,
        status,
        ...(status === 'created' ? { arn: `acs:ram::${account}:application/${a.appId}`, identity: appIdentity(a) } : {}),
      });
    if (appBlocked) {
      plan.push({ type: 'ims_application', label: 'IMS OAuth application', name: n.appName, action: 'blocked', detail: appBlocked });
    } else if (app) {
      const found = app;
      live.appId = found.appId;
      live.appAdopted = !appOwned;
      const missing = !found.redirectUris.includes(n.loginRedirectUri);
      plan.push({
        type: 'ims_application',
        label: 'IMS OAuth application',
        name: `${found.appName ?? n.appName} (${found.appId})`,
        action: appOwned ? 'ok' : 'adopt',
        ...(missing ? { detail: `warning: its redirect URIs lack ${n.loginRedirectUri}; add it in the RAM console → OAuth applications` } : {}),
        apply: async () => appTrack(found, appOwned ? 'created' : 'adopted'),
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
        apply: () =>
          createOrAdopt(file, {
            type: 'ims_application',
            name: n.appName,
            label: 'IMS OAuth application',
            create: () =>
              cloud.createWebApplication({
                appName: n.appName,
                displayName: 'dingtalk-mcp',
                redirectUris: [n.loginRedirectUri],
                scopes: ['openid', 'profile', 'aliuid'],
              }),
            created: (a) => {
              live.appId = a.appId;
              appTrack({ ...a, appName: n.appName }, 'created');
            },
            adopt: async () => {
              const named = await applicationsNamed(cloud, n.appName);
              if (named.length !== 1) return named.length ? `${named.length} applications have that name` : GONE;
              live.appId = named[0]!.appId;
              live.appAdopted = true;
              appTrack(named[0]!, 'adopted');
              return undefined;
            },
          }),
      });
    }

    // A WebApp's secret (IMS: "always required" for WebApp). Only for an app setup created: an adopted app's secret is the user's.
    const secretRec = file.find('ims_app_secret');
    const haveSecret =
      file.readSecret('oidc_client_secret') !== undefined && secretRec?.status === 'created' && (!live.appId || secretRec.appId === live.appId);
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
                if (live.appAdopted)
                  return "skipped IMS application secret: the application is not setup's, so its secret is yours to create (set OIDC_CLIENT_SECRET)";
                const { secretId, secret } = await cloud.createAppSecret(live.appId!);
                file.writeSecret('oidc_client_secret', secret); // mode 0600; never printed, never in .config.json
                track({ type: 'ims_app_secret', name: secretId, appId: live.appId!, status: 'created', identity: secretId });
                return undefined;
              },
            }),
      });
    }

    const idp = await cloud.getIdentityProvider(n.identityProvider);
    const idpProblem = (p: IdentityProvider) =>
      p.discoveryUrl === n.discoveryUrl && live.appId !== undefined && p.audience.includes(live.appId)
        ? undefined
        : `its DiscoveryURL (${p.discoveryUrl ?? 'none'}) or AllowedAudience (${p.audience.join(', ') || 'none'}) differ from ${n.discoveryUrl} / the app id; fix it in the Agent Identity console or pass --identity-provider <another name>`;
    const idpInput = () => ({ name: n.identityProvider, discoveryUrl: n.discoveryUrl, audience: [live.appId!] });
    const idpTrack = (p: IdentityProvider | undefined, status: 'created' | 'adopted') =>
      track({
        type: 'identity_provider',
        name: n.identityProvider,
        status,
        ...(p?.arn ? { arn: p.arn } : {}),
        ...(status === 'created' ? withIdentity(p?.createTime) : {}),
      });
    plan.push(
      planResource(file, owned, {
        type: 'identity_provider',
        label: 'identity provider',
        name: n.identityProvider,
        found: idp,
        identity: (p) => p.createTime,
        unfit: idpProblem,
        record: idpTrack,
        create: {
          detail: `discovery ${n.discoveryUrl}, audience = the app id`,
          run: () => cloud.createIdentityProvider({ ...idpInput(), description: 'dingtalk-mcp: sign-in for HTTP mode' }),
          created: async (p) => idpTrack(p.createTime ? p : ((await cloud.getIdentityProvider(n.identityProvider)) ?? p), 'created'),
          reread: () => cloud.getIdentityProvider(n.identityProvider),
        },
        update: {
          differs: (p) => (idpProblem(p) === undefined ? undefined : 'discovery URL or audience differ'),
          run: () => cloud.updateIdentityProvider(idpInput()),
        },
        blockedJoin: ', and ',
      }),
    );
  }

  // ---- RAM role: adopted only when its trust policy is exactly setup's; an adopted role is never changed ----
  const expectedTrust = trustPolicy(wiArn);
  const role = await cloud.getRole(n.role);
  const roleTrack = (r: Role | undefined, status: ResourceRecord['status']) =>
    track({
      type: 'ram_role',
      name: n.role,
      status,
      arn: r?.arn || ramRoleArn(account, n.role),
      ...(status === 'created' && r ? withIdentity(roleIdentity(r)) : {}),
    });
  const roleProblem = (r: Role) => {
    const problem = trustProblem(r.trustPolicy, wiArn);
    return (
      problem &&
      `${problem}. Setup adopts an existing role only when its trust policy is exactly the one setup would write (see docs/provisioning.md); fix it in the RAM console or pass --workload-identity <another name>`
    );
  };
  plan.push(
    planResource(file, owned, {
      type: 'ram_role',
      label: 'RAM role',
      name: n.role,
      found: role,
      identity: roleIdentity,
      unfit: roleProblem,
      record: roleTrack,
      use: (r, mine) => {
        live.roleArn = r.arn;
        if (!mine) live.roleAdopted = true;
      },
      create: {
        detail: `trusted by ${'workload.agentidentity.aliyuncs.com'} for this workload identity only`,
        run: () => cloud.createRole({ name: n.role, trustPolicy: expectedTrust, description: `dingtalk-mcp: role of workload identity ${n.workloadIdentity}` }),
        created: async (r) => {
          const read = roleIdentity(r) ? r : ((await cloud.getRole(n.role)) ?? r);
          live.roleArn = read.arn || ramRoleArn(account, n.role);
          roleTrack({ ...read, arn: live.roleArn }, 'created');
        },
        reread: () => cloud.getRole(n.role),
      },
      update: {
        differs: (r) => (trustProblem(r.trustPolicy, wiArn) === undefined ? undefined : 'trust policy differs'),
        run: () => cloud.updateRoleTrust(n.role, expectedTrust),
      },
      adoptDetail: 'exists; used as is, never changed or deleted',
    }),
  );

  // ---- which providers: the document tools need the app secret in an API-key provider (docs/tools.md) ----
  const appSecretProvider = await cloud.getApiKeyProvider(n.appSecretProvider);
  const oauth2Provider = await cloud.getOAuth2Provider(n.provider);
  live.documentTools = appSecretProvider !== undefined || opts.dingtalkClientId !== undefined;
  if (opts.dingtalkClientId && !opts.dryRun && (!appSecretProvider || !oauth2Provider)) live.secret = await ctx.readDingTalkSecret();
  const apiKeyArn = live.documentTools ? apiKeyProviderArn(n.regionId, account, n.appSecretProvider) : undefined;

  // ---- RAM policy ----
  const expectedPolicy = permissionPolicy(wiArn, provArn, apiKeyArn);
  const policy = await cloud.getPolicy(n.policy);
  const policyTrack = (p: Policy | undefined, status: ResourceRecord['status']) =>
    track({
      type: 'ram_policy',
      name: n.policy,
      status,
      arn: policyArn(account, n.policy),
      ...(status === 'created' && p ? withIdentity(policyIdentity(p)) : {}),
    });
  const policyProblem = (p: Policy) =>
    allowsTokenFetch(p.document ? [p.document] : [], wiArn, provArn)
      ? undefined
      : 'it does not allow GetResourceOAuth2Token on this workload identity and provider; fix it or pass --workload-identity <another name>';
  // A policy setup did not create is never changed: without GetResourceAPIKey only the document tools fail, so say so.
  const lacksApiKey =
    apiKeyArn !== undefined && policy !== undefined && !allowsTokenFetch(policy.document ? [policy.document] : [], wiArn, apiKeyArn, API_KEY_ACTION);
  plan.push(
    planResource(file, owned, {
      type: 'ram_policy',
      label: 'RAM policy',
      name: n.policy,
      found: policy,
      identity: policyIdentity,
      unfit: policyProblem,
      record: policyTrack,
      create: {
        detail: `only agentidentitydata:GetResourceOAuth2Token on this workload identity and provider${apiKeyArn ? ', and GetResourceAPIKey on the app secret provider' : ''}`,
        run: () => cloud.createPolicy({ name: n.policy, document: expectedPolicy, description: `dingtalk-mcp: least privilege for ${n.workloadIdentity}` }),
        created: async (p) => policyTrack(policyIdentity(p) ? p : ((await cloud.getPolicy(n.policy)) ?? p), 'created'),
        reread: () => cloud.getPolicy(n.policy),
      },
      update: {
        differs: (p) => (sameJson(p.document, expectedPolicy) ? undefined : 'document differs; a new default version'),
        run: () => cloud.setPolicyDocument(n.policy, expectedPolicy),
      },
      ...(lacksApiKey
        ? {
            adoptDetail: `warning: it does not allow ${API_KEY_ACTION} on ${apiKeyArn}, so the document tools cannot read the DingTalk app secret until you add that`,
          }
        : {}),
      blockedJoin: ', and ',
    }),
  );

  // ---- attachment: only ever to a role setup created ----
  const attachName = `${n.role}/${n.policy}`;
  const isAttached = async () => (await cloud.listPoliciesForRole(n.role)).some((p) => p.type === 'Custom' && p.name.toLowerCase() === n.policy.toLowerCase());
  const attached = role && policy ? await isAttached() : false;
  const attachTrack = async (status: 'created' | 'adopted') =>
    track({
      type: 'ram_policy_attachment',
      name: attachName,
      status,
      ...(status === 'created' ? withIdentity((await readIdentity(cloud, 'ram_policy_attachment', attachName))?.identity) : {}),
    });
  const notOurRole = (policyExists: boolean) =>
    `the RAM role ${n.role} was not created by setup, so setup never attaches a policy to it (nor changes it otherwise). ` +
    `Attach the custom policy ${n.policy} to it yourself in the RAM console${policyExists ? '' : ` (create it first, allowing only ${ROLE_ACTION} on ${wiArn} and ${provArn})`} and run setup again, or pass --workload-identity <another name> so setup creates its own role`;
  if (attached) {
    const mine = owned('ram_policy_attachment', attachName, attachmentIdentity(role!, policy!));
    plan.push({
      type: 'ram_policy_attachment',
      label: 'policy attachment',
      name: attachName,
      action: mine ? 'ok' : 'adopt',
      apply: () => attachTrack(mine ? 'created' : 'adopted'),
    });
  } else if (live.roleAdopted) {
    plan.push({ type: 'ram_policy_attachment', label: 'policy attachment', name: attachName, action: 'blocked', detail: notOurRole(policy !== undefined) });
  } else {
    plan.push({
      type: 'ram_policy_attachment',
      label: 'policy attachment',
      name: attachName,
      action: 'create',
      apply: async () => {
        if (live.roleAdopted) {
          // The role turned out to be someone else's during this run.
          if (!(await isAttached())) throw new Error(`setup stopped before attaching: ${notOurRole(true)}.`);
          await attachTrack('adopted');
          return `adopted policy attachment ${attachName} (the role is not setup's)`;
        }
        return createOrAdopt(file, {
          type: 'ram_policy_attachment',
          name: attachName,
          label: 'policy attachment',
          create: () => cloud.attachPolicyToRole(n.policy, n.role),
          created: () => attachTrack('created'),
          adopt: async () => {
            if (!(await isAttached())) return GONE;
            await attachTrack('adopted');
            return undefined;
          },
        });
      },
    });
  }

  // ---- workload identity ----
  const wi = await cloud.getWorkloadIdentity(n.workloadIdentity);
  const idpName = http ? n.identityProvider : undefined;
  const wiTrack = (w: WorkloadIdentity | undefined, status: ResourceRecord['status']) =>
    track({ type: 'workload_identity', name: n.workloadIdentity, status, arn: w?.arn ?? wiArn, ...(status === 'created' ? withIdentity(w?.createTime) : {}) });
  const wiProblems = (w: WorkloadIdentity) => {
    const problems: string[] = [];
    if (!w.returnUrls.includes(n.callbackUrl)) problems.push(`AllowedResourceOAuth2ReturnURLs lacks ${n.callbackUrl}`);
    if (live.roleArn && w.roleArn?.toLowerCase() !== live.roleArn.toLowerCase()) problems.push(`RoleArn is ${w.roleArn ?? 'empty'}, not ${live.roleArn}`);
    if (idpName && w.identityProviderName !== idpName) problems.push(`IdentityProviderName is ${w.identityProviderName ?? 'empty'}, not ${idpName}`);
    return problems;
  };
  const wiFix = 'Fix it in the Agent Identity console, or pass --workload-identity <a new name> to let setup create its own';
  plan.push(
    planResource(file, owned, {
      type: 'workload_identity',
      label: 'workload identity',
      name: n.workloadIdentity,
      found: wi,
      identity: (w) => w.createTime,
      unfit: (w) => {
        const problems = wiProblems(w);
        return problems.length ? `${problems.join('; ')}. ${wiFix}` : undefined;
      },
      record: wiTrack,
      create: {
        detail: `return URL ${n.callbackUrl}${idpName ? `, identity provider ${idpName}` : ''}`,
        run: () =>
          cloud.createWorkloadIdentity({
            name: n.workloadIdentity,
            roleArn: live.roleArn!,
            ...(idpName ? { identityProviderName: idpName } : {}),
            returnUrls: [n.callbackUrl],
            description: 'dingtalk-mcp: writes DingTalk documents as the user',
          }),
        created: async (w) => wiTrack(w.createTime ? w : ((await cloud.getWorkloadIdentity(n.workloadIdentity)) ?? w), 'created'),
        reread: () => cloud.getWorkloadIdentity(n.workloadIdentity),
      },
      update: {
        differs: (w) => wiProblems(w).join('; ') || undefined,
        run: (w) =>
          cloud.updateWorkloadIdentity({
            name: n.workloadIdentity,
            roleArn: live.roleArn!,
            ...(idpName ? { identityProviderName: idpName } : {}),
            returnUrls: [...new Set([...w.returnUrls, n.callbackUrl])],
          }),
      },
    }),
  );

  // ---- the DingTalk app secret, as an API-key credential provider (GetResourceAPIKey at run time) ----
  if (live.documentTools) {
    const keyTrack = (p: ApiKeyProvider | undefined, status: ResourceRecord['status']) => {
      track({
        type: 'apikey_credential_provider',
        name: n.appSecretProvider,
        status,
        arn: p?.arn ?? apiKeyArn!,
        ...(status === 'created' ? withIdentity(p?.createTime) : {}),
      });
      // What the server reads (src/config.ts): the provider's name and, when known, the app's Client ID.
      file.data.dingtalk_app_secret_provider_name = n.appSecretProvider;
      if (opts.dingtalkClientId) file.data.dingtalk_client_id = opts.dingtalkClientId;
    };
    if (!appSecretProvider && !opts.dryRun && !live.secret) {
      plan.push({
        type: 'apikey_credential_provider',
        label: 'DingTalk app secret provider',
        name: n.appSecretProvider,
        action: 'blocked',
        detail:
          'it does not exist and no DingTalk app secret was given: set DINGTALK_CLIENT_SECRET (or answer the hidden prompt), or leave DINGTALK_CLIENT_ID unset to keep the document tools off',
      });
    } else {
      plan.push(
        planResource(file, owned, {
          type: 'apikey_credential_provider',
          label: 'DingTalk app secret provider',
          name: n.appSecretProvider,
          found: appSecretProvider,
          identity: (p) => p.createTime,
          // A provider of that name is used as is: setup never replaces a secret it did not store.
          unfit: () => undefined,
          record: keyTrack,
          create: {
            detail: `holds the secret of DingTalk app ${opts.dingtalkClientId ?? ''} for the document tools`,
            run: () =>
              cloud.createApiKeyProvider({
                name: n.appSecretProvider,
                apiKey: live.secret!,
                description: 'dingtalk-mcp: DingTalk app secret (document tools)',
              }),
            created: async (p) => keyTrack(p.createTime ? p : ((await cloud.getApiKeyProvider(n.appSecretProvider)) ?? p), 'created'),
            reread: () => cloud.getApiKeyProvider(n.appSecretProvider),
          },
          adoptDetail: 'exists; used as is, never deleted by teardown',
        }),
      );
    }
  }

  // ---- DingTalk OAuth2 credential provider ----
  const provider = oauth2Provider;
  const providerTrack = (p: OAuth2Provider | undefined, status: ResourceRecord['status']) =>
    track({
      type: 'oauth2_credential_provider',
      name: n.provider,
      status,
      arn: p?.arn ?? provArn,
      ...(status === 'created' ? withIdentity(p?.createTime) : {}),
    });
  const clientId = opts.dingtalkClientId;
  const secret = live.secret;
  if (!provider && (!clientId || (!opts.dryRun && !secret))) {
    plan.push({
      type: 'oauth2_credential_provider',
      label: 'DingTalk credential provider',
      name: n.provider,
      action: opts.dryRun ? 'create' : 'blocked',
      detail:
        opts.dryRun && clientId
          ? `from DingTalk app ${clientId}; vendor ${opts.dingtalkVendor}`
          : `it does not exist. Either create it in the Agent Identity console (Outbound → Credential Providers → OAuth2, DingTalk) and run setup again with AGENT_IDENTITY_DINGTALK_PROVIDER=<its name>, or set DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET (the DingTalk app's Client ID / Client Secret) so setup creates it`,
    });
    return;
  }
  // Like the kit's prepare.py, the caller picks Agent Identity's IdP-facing callback (it must be registered at DingTalk).
  const callbackUrl = `https://agentidentitydata.${n.regionId}.aliyuncs.com/oauth2/callback/${randomUUID()}`;
  // Shape from agentidentity-20250901 models CustomOAuth2ProviderConfig / OAuth2Discovery / AuthorizationServerMetadata
  // (wire key `TokenRequest`; the generated type is misspelt TokenReqeust). Vendor string and whether Agent Identity
  // speaks DingTalk's JSON token endpoint this way are UNVERIFIED — adoption of a console-made provider is the documented path.
  const config = {
    CustomOAuth2ProviderConfig: {
      ClientId: clientId!,
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
  plan.push(
    planResource(file, owned, {
      type: 'oauth2_credential_provider',
      label: 'DingTalk credential provider',
      name: n.provider,
      found: provider,
      identity: (p) => p.createTime,
      // A provider of that name is used as is: setup never changes a credential provider.
      unfit: () => undefined,
      record: providerTrack,
      use: (p) => {
        live.providerCallbackUrl = p.callbackUrl;
      },
      create: {
        detail: `from DingTalk app ${clientId}; vendor ${opts.dingtalkVendor} (UNVERIFIED)`,
        run: () =>
          cloud.createOAuth2Provider({
            name: n.provider,
            vendor: opts.dingtalkVendor,
            callbackUrl,
            config,
            clientSecret: secret!,
            description: 'dingtalk-mcp: DingTalk user tokens',
          }),
        created: async (p) => {
          live.providerCallbackUrl = p.callbackUrl ?? callbackUrl;
          providerTrack(p.createTime ? p : ((await cloud.getOAuth2Provider(n.provider)) ?? p), 'created');
        },
        reread: () => cloud.getOAuth2Provider(n.provider),
      },
      adoptDetail: 'exists; used as is, never deleted by teardown',
    }),
  );
}
