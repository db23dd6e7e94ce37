/**
 * An emulator of the Alibaba Cloud control-plane APIs that `dingtalk-mcp setup|teardown|doctor` call, for the
 * tests and `--sandbox`. Loopback only. One server answers all four products; the API version tells them apart:
 *
 * | Product | Version | Actions |
 * |---|---|---|
 * | AgentIdentity | 2025-09-01 | Create/Get/Update/Delete WorkloadIdentity, ListWorkloadIdentities, Create/Get/Update/Delete IdentityProvider, Create/Get/Delete OAuth2CredentialProvider |
 * | RAM | 2015-05-01 | Create/Get/Update/Delete Role, Create/Get/Delete Policy, CreatePolicyVersion, AttachPolicyToRole, DetachPolicyFromRole, ListPoliciesForRole |
 * | STS | 2015-04-01 | GetCallerIdentity |
 * | IMS | 2019-08-15 | Create/Get/Delete Application, ListApplications, CreateAppSecret |
 *
 * Parameter and response field names follow the generated SDKs (aliyun/alibabacloud-typescript-sdk,
 * `agentidentity-20250901`, `ram-20150501`, `sts-20150401`, `ims-20190815`; see docs/provisioning.md).
 * Requests are RPC `POST /`, signed V3 (`ACS3-HMAC-SHA256`) or V2, verified by ./acs-rpc.ts.
 *
 * Error codes. VERIFIED: `EntityAlreadyExists.IdentityProvider`, `EntityAlreadyExists.OAuth2CredentialProvider`,
 * `EntityNotExists.IdentityProvider`, `EntityNotExists.OAuth2CredentialProvider` (reference §1.3, the kit's
 * prepare.py/clear.py), IMS `EntityNotExist.Application` (§1.3), RAM `EntityNotExist.Role` and
 * `DeleteConflict.Role.Policy` (DeleteRole API reference). MODELED (same naming, unconfirmed):
 * `EntityAlreadyExists.WorkloadIdentity`, `EntityNotExists.WorkloadIdentity`, `EntityAlreadyExists.Role`,
 * `EntityAlreadyExists.Policy`, `EntityNotExist.Policy`, `EntityAlreadyExists.Role.Policy`,
 * `EntityNotExist.Role.Policy`, `DeleteConflict.Policy.Role`, `NoPermission` (403) wording.
 *
 * It also serves an OIDC discovery document at `/.well-known/openid-configuration`, so HTTP-mode checks
 * (`doctor` fetching an identity provider's DiscoveryURL) run without the internet.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AcsError, createSignatureVerifier, firstHeader, isStringArray, jsonParam, readRpcInput, requiredParam } from './acs-rpc.js';
import { listen, shutdown } from './http.js';

export const CONTROL_PLANE_VERSIONS = {
  agentidentity: '2025-09-01',
  ram: '2015-05-01',
  sts: '2015-04-01',
  ims: '2019-08-15',
} as const;
type Product = keyof typeof CONTROL_PLANE_VERSIONS;

export interface ControlPlaneAccessKey {
  accessKeyId: string;
  accessKeySecret: string;
  /** RAM-style actions this identity may call, e.g. `agentidentity:*`, `ram:CreateRole`, `*` (default). */
  allowedActions?: string[] | '*';
  /** Default `dingtalk-mcp-admin`. */
  userName?: string;
}

export interface EmuWorkloadIdentity {
  WorkloadIdentityName: string;
  WorkloadIdentityArn: string;
  RoleArn?: string;
  IdentityProviderName?: string;
  AllowedResourceOAuth2ReturnURLs: string[];
  Description?: string;
  SessionBindingEnabled?: boolean;
  CreateTime: string;
  UpdateTime: string;
}

export interface EmuIdentityProvider {
  IdentityProviderName: string;
  IdentityProviderArn: string;
  DiscoveryURL?: string;
  AllowedAudience: string[];
  Description?: string;
  CreateTime: string;
  UpdateTime: string;
}

export interface EmuOAuth2Provider {
  OAuth2CredentialProviderName: string;
  CredentialProviderArn: string;
  CredentialProviderVendor?: string;
  CallbackURL?: string;
  /** As sent (JSON); answered with every `ClientSecret` removed. */
  OAuth2ProviderConfig?: unknown;
  OAuthType?: string;
  Description?: string;
  CreateTime: string;
  UpdateTime: string;
}

export interface EmuRole {
  RoleName: string;
  RoleId: string;
  Arn: string;
  AssumeRolePolicyDocument: string;
  Description?: string;
  MaxSessionDuration: number;
  CreateDate: string;
  UpdateDate: string;
}

export interface EmuPolicy {
  PolicyName: string;
  PolicyType: 'Custom' | 'System';
  Description?: string;
  DefaultVersion: string;
  versions: Array<{ VersionId: string; PolicyDocument: string; CreateDate: string }>;
  CreateDate: string;
  UpdateDate: string;
}

export interface EmuApplication {
  AppId: string;
  AppName: string;
  DisplayName: string;
  AppType: string;
  RedirectUris: string[];
  PredefinedScopes: string[];
  RequiredScopes: string[];
  SecretRequired: boolean;
  ProtocolVersion: string;
  AccountId: string;
  CreateDate: string;
  UpdateDate: string;
  secrets: Array<{ AppSecretId: string; AppSecretValue: string; CreateDate: string }>;
}

export interface ControlPlaneSeed {
  workloadIdentities?: Array<Partial<EmuWorkloadIdentity> & { WorkloadIdentityName: string }>;
  identityProviders?: Array<Partial<EmuIdentityProvider> & { IdentityProviderName: string }>;
  oauth2Providers?: Array<Partial<EmuOAuth2Provider> & { OAuth2CredentialProviderName: string }>;
  roles?: Array<Partial<EmuRole> & { RoleName: string; AssumeRolePolicyDocument: string }>;
  /** Custom policies with one version; `attachTo` lists role names. */
  policies?: Array<{ PolicyName: string; PolicyDocument: string; PolicyType?: 'Custom' | 'System'; attachTo?: string[] }>;
}

export interface ControlPlaneEmulatorOptions {
  host?: string;
  port?: number;
  accountId?: string;
  regionId?: string;
  accessKeys: ControlPlaneAccessKey[];
  seed?: ControlPlaneSeed;
}

export interface ControlPlaneCall {
  product: Product | 'unknown';
  action: string;
  /** Parameter names only: values may carry secrets (a client secret, a policy). */
  paramNames: string[];
  status: number;
  code?: string;
  requestId: string;
}

export interface ControlPlaneState {
  workloadIdentities: EmuWorkloadIdentity[];
  identityProviders: EmuIdentityProvider[];
  oauth2Providers: EmuOAuth2Provider[];
  roles: EmuRole[];
  policies: EmuPolicy[];
  /** `roleName → ["Custom:PolicyName", …]` */
  attachments: Record<string, string[]>;
  applications: EmuApplication[];
}

export interface ControlPlaneFault {
  action: string;
  status: number;
  code: string;
  message?: string;
  /** How many calls fail; default 1. */
  times?: number;
}

export interface ControlPlaneEmulator {
  readonly url: string;
  /** `<url>/.well-known/openid-configuration` */
  readonly discoveryUrl: string;
  readonly accountId: string;
  readonly calls: ControlPlaneCall[];
  state(): ControlPlaneState;
  /** Change state directly (seed a misconfiguration in a test). */
  mutate(fn: (state: ControlPlaneState) => void): void;
  injectFault(fault: ControlPlaneFault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

const ACTIONS: Record<Product, Set<string>> = {
  agentidentity: new Set([
    'CreateWorkloadIdentity',
    'GetWorkloadIdentity',
    'UpdateWorkloadIdentity',
    'DeleteWorkloadIdentity',
    'ListWorkloadIdentities',
    'CreateIdentityProvider',
    'GetIdentityProvider',
    'UpdateIdentityProvider',
    'DeleteIdentityProvider',
    'CreateOAuth2CredentialProvider',
    'GetOAuth2CredentialProvider',
    'DeleteOAuth2CredentialProvider',
  ]),
  ram: new Set([
    'CreateRole',
    'GetRole',
    'UpdateRole',
    'DeleteRole',
    'CreatePolicy',
    'GetPolicy',
    'CreatePolicyVersion',
    'DeletePolicy',
    'AttachPolicyToRole',
    'DetachPolicyFromRole',
    'ListPoliciesForRole',
  ]),
  sts: new Set(['GetCallerIdentity']),
  ims: new Set(['CreateApplication', 'GetApplication', 'ListApplications', 'DeleteApplication', 'CreateAppSecret']),
};

/** RAM action namespace per product; IMS OAuth applications are authorized as `ram:*` actions (Agent Identity DingTalk tutorial). */
const RAM_PREFIX: Record<Product, string> = { agentidentity: 'agentidentity', ram: 'ram', sts: 'sts', ims: 'ram' };

function isoSeconds(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function actionAllowed(allowed: string[] | '*', ramAction: string): boolean {
  if (allowed === '*') return true;
  return allowed.some((p) => p === '*' || p === ramAction || (p.endsWith(':*') && ramAction.startsWith(p.slice(0, -1))));
}

/** Remove every ClientSecret from a provider config before answering (never echo secrets). */
function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (k !== 'ClientSecret') out[k] = withoutSecrets(v);
    return out;
  }
  return value;
}

export async function startControlPlaneEmulator(options: ControlPlaneEmulatorOptions): Promise<ControlPlaneEmulator> {
  const host = options.host ?? '127.0.0.1';
  const accountId = options.accountId ?? '1234567890123456';
  const regionId = options.regionId ?? 'cn-beijing';
  const keys = new Map(options.accessKeys.map((k) => [k.accessKeyId, k]));
  const calls: ControlPlaneCall[] = [];
  let faults: Array<ControlPlaneFault & { remaining: number }> = [];
  let baseUrl = '';

  const wiArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:workloadidentitydirectory/default/workloadidentity/${name}`;
  const idpArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:identityprovider/${name}`; // format UNVERIFIED
  const providerArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:tokenvault/default/oauth2credentialprovider/${name}`;
  const roleArn = (name: string) => `acs:ram::${accountId}:role/${name.toLowerCase()}`;

  const state: ControlPlaneState = {
    workloadIdentities: [],
    identityProviders: [],
    oauth2Providers: [],
    roles: [],
    policies: [],
    attachments: {},
    applications: [],
  };

  // ---- seed ------------------------------------------------------------------------------------
  const t0 = isoSeconds();
  for (const w of options.seed?.workloadIdentities ?? []) {
    state.workloadIdentities.push({ AllowedResourceOAuth2ReturnURLs: [], WorkloadIdentityArn: wiArn(w.WorkloadIdentityName), CreateTime: t0, UpdateTime: t0, ...w });
  }
  for (const p of options.seed?.identityProviders ?? []) {
    state.identityProviders.push({ AllowedAudience: [], IdentityProviderArn: idpArn(p.IdentityProviderName), CreateTime: t0, UpdateTime: t0, ...p });
  }
  for (const p of options.seed?.oauth2Providers ?? []) {
    state.oauth2Providers.push({ CredentialProviderArn: providerArn(p.OAuth2CredentialProviderName), CreateTime: t0, UpdateTime: t0, ...p });
  }
  for (const r of options.seed?.roles ?? []) {
    state.roles.push({ RoleId: randomDigits(19), Arn: roleArn(r.RoleName), MaxSessionDuration: 3600, CreateDate: t0, UpdateDate: t0, ...r });
  }
  for (const p of options.seed?.policies ?? []) {
    state.policies.push({
      PolicyName: p.PolicyName,
      PolicyType: p.PolicyType ?? 'Custom',
      DefaultVersion: 'v1',
      versions: [{ VersionId: 'v1', PolicyDocument: p.PolicyDocument, CreateDate: t0 }],
      CreateDate: t0,
      UpdateDate: t0,
    });
    for (const role of p.attachTo ?? []) attach(role, p.PolicyType ?? 'Custom', p.PolicyName);
  }

  function attach(role: string, type: string, policy: string): void {
    const key = role.toLowerCase();
    (state.attachments[key] ??= []).push(`${type}:${policy}`);
  }

  // ---- helpers -----------------------------------------------------------------------------------


  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

  function policyDocument(params: Record<string, string>, name: string): string {
    const raw = requiredParam(params, name);
    try {
      const doc = JSON.parse(raw) as { Statement?: unknown };
      if (!isObject(doc) || !Array.isArray(doc.Statement)) throw new Error('no Statement');
    } catch {
      // MODELED code.
      throw new AcsError(400, 'MalformedPolicyDocument', `The parameter ${name} is not a valid policy document.`);
    }
    return raw;
  }

  const findWi = (name: string) => state.workloadIdentities.find((w) => w.WorkloadIdentityName === name);
  const findIdp = (name: string) => state.identityProviders.find((p) => p.IdentityProviderName === name);
  const findProvider = (name: string) => state.oauth2Providers.find((p) => p.OAuth2CredentialProviderName === name);
  // RAM names are case-insensitive.
  const findRole = (name: string) => state.roles.find((r) => r.RoleName.toLowerCase() === name.toLowerCase());
  const findPolicy = (name: string, type = 'Custom') =>
    state.policies.find((p) => p.PolicyName.toLowerCase() === name.toLowerCase() && p.PolicyType === type);
  const findApp = (id: string) => state.applications.find((a) => a.AppId === id);

  function wiOrThrow(name: string): EmuWorkloadIdentity {
    const w = findWi(name);
    if (!w) throw new AcsError(404, 'EntityNotExists.WorkloadIdentity', `The workload identity "${name}" does not exist.`);
    return w;
  }
  function idpOrThrow(name: string): EmuIdentityProvider {
    const p = findIdp(name);
    if (!p) throw new AcsError(404, 'EntityNotExists.IdentityProvider', `The identity provider "${name}" does not exist.`);
    return p;
  }
  function providerOrThrow(name: string): EmuOAuth2Provider {
    const p = findProvider(name);
    if (!p) throw new AcsError(404, 'EntityNotExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${name}" does not exist.`);
    return p;
  }
  function roleOrThrow(name: string): EmuRole {
    const r = findRole(name);
    if (!r) throw new AcsError(404, 'EntityNotExist.Role', 'The role does not exist.');
    return r;
  }
  function policyOrThrow(name: string, type = 'Custom'): EmuPolicy {
    const p = findPolicy(name, type);
    if (!p) throw new AcsError(404, 'EntityNotExist.Policy', 'The policy does not exist.');
    return p;
  }
  function appOrThrow(id: string): EmuApplication {
    const a = findApp(id);
    if (!a) throw new AcsError(404, 'EntityNotExist.Application', 'The application does not exist.');
    return a;
  }

  const roleView = (r: EmuRole) => ({ ...r });
  const policyView = (p: EmuPolicy) => {
    const { versions: _versions, ...rest } = p;
    return rest;
  };
  const providerView = (p: EmuOAuth2Provider) => ({ ...p, OAuth2ProviderConfig: withoutSecrets(p.OAuth2ProviderConfig) });
  const appView = (a: EmuApplication) => ({
    AppId: a.AppId,
    AppName: a.AppName,
    DisplayName: a.DisplayName,
    AppType: a.AppType,
    AccountId: a.AccountId,
    ProtocolVersion: a.ProtocolVersion,
    SecretRequired: a.SecretRequired,
    IsMultiTenant: false,
    AccessTokenValidity: 3600,
    RefreshTokenValidity: a.AppType === 'WebApp' ? 7776000 : 2592000,
    RedirectUris: { RedirectUri: [...a.RedirectUris] },
    DelegatedScope: {
      PredefinedScopes: { PredefinedScope: a.PredefinedScopes.map((s) => ({ Name: s, Description: s, Required: a.RequiredScopes.includes(s) })) },
    },
    CreateDate: a.CreateDate,
    UpdateDate: a.UpdateDate,
  });

  // ---- actions -----------------------------------------------------------------------------------

  type Handler = (p: Record<string, string>, caller: ControlPlaneAccessKey) => Record<string, unknown>;
  const handlers: Record<string, Handler> = {
    // AgentIdentity 2025-09-01
    CreateWorkloadIdentity(p) {
      const name = requiredParam(p, 'WorkloadIdentityName');
      if (findWi(name)) throw new AcsError(409, 'EntityAlreadyExists.WorkloadIdentity', `The workload identity "${name}" already exists.`);
      const idp = p.IdentityProviderName || undefined;
      if (idp) idpOrThrow(idp);
      const now = isoSeconds();
      const w: EmuWorkloadIdentity = {
        WorkloadIdentityName: name,
        WorkloadIdentityArn: wiArn(name),
        ...(p.RoleArn ? { RoleArn: p.RoleArn } : {}),
        ...(idp ? { IdentityProviderName: idp } : {}),
        AllowedResourceOAuth2ReturnURLs: jsonParam(p, 'AllowedResourceOAuth2ReturnURLs', isStringArray) ?? [],
        ...(p.Description ? { Description: p.Description } : {}),
        SessionBindingEnabled: p.SessionBindingEnabled === 'true',
        CreateTime: now,
        UpdateTime: now,
      };
      state.workloadIdentities.push(w);
      return { WorkloadIdentity: { ...w } };
    },
    GetWorkloadIdentity(p) {
      return { WorkloadIdentity: { ...wiOrThrow(requiredParam(p, 'WorkloadIdentityName')) } };
    },
    UpdateWorkloadIdentity(p) {
      const w = wiOrThrow(requiredParam(p, 'WorkloadIdentityName'));
      const urls = jsonParam(p, 'AllowedResourceOAuth2ReturnURLs', isStringArray);
      if (urls) w.AllowedResourceOAuth2ReturnURLs = urls;
      if (p.RoleArn) w.RoleArn = p.RoleArn;
      if (p.IdentityProviderName) {
        idpOrThrow(p.IdentityProviderName);
        w.IdentityProviderName = p.IdentityProviderName;
      }
      if (p.Description !== undefined) w.Description = p.Description;
      w.UpdateTime = isoSeconds();
      return {};
    },
    DeleteWorkloadIdentity(p) {
      const w = wiOrThrow(requiredParam(p, 'WorkloadIdentityName'));
      state.workloadIdentities = state.workloadIdentities.filter((x) => x !== w);
      return {};
    },
    ListWorkloadIdentities(p) {
      const max = Math.min(Math.max(Number(p.MaxResults ?? 20) || 20, 1), 100);
      const start = Number(p.NextToken ?? 0) || 0;
      const page = state.workloadIdentities.slice(start, start + max);
      const next = start + max < state.workloadIdentities.length ? String(start + max) : undefined;
      return { WorkloadIdentities: page.map((w) => ({ ...w })), TotalCount: state.workloadIdentities.length, MaxResults: max, ...(next ? { NextToken: next } : {}) };
    },
    CreateIdentityProvider(p) {
      const name = requiredParam(p, 'IdentityProviderName');
      if (findIdp(name)) throw new AcsError(409, 'EntityAlreadyExists.IdentityProvider', `The identity provider "${name}" already exists.`);
      const now = isoSeconds();
      const idp: EmuIdentityProvider = {
        IdentityProviderName: name,
        IdentityProviderArn: idpArn(name),
        ...(p.DiscoveryURL ? { DiscoveryURL: p.DiscoveryURL } : {}),
        AllowedAudience: jsonParam(p, 'AllowedAudience', isStringArray) ?? [],
        ...(p.Description ? { Description: p.Description } : {}),
        CreateTime: now,
        UpdateTime: now,
      };
      state.identityProviders.push(idp);
      return { IdentityProvider: { ...idp } };
    },
    GetIdentityProvider(p) {
      return { IdentityProvider: { ...idpOrThrow(requiredParam(p, 'IdentityProviderName')) } };
    },
    UpdateIdentityProvider(p) {
      const idp = idpOrThrow(requiredParam(p, 'IdentityProviderName'));
      const aud = jsonParam(p, 'AllowedAudience', isStringArray);
      if (aud) idp.AllowedAudience = aud;
      if (p.DiscoveryURL) idp.DiscoveryURL = p.DiscoveryURL;
      if (p.Description !== undefined) idp.Description = p.Description;
      idp.UpdateTime = isoSeconds();
      return {};
    },
    DeleteIdentityProvider(p) {
      const idp = idpOrThrow(requiredParam(p, 'IdentityProviderName'));
      // MODELED: a provider still bound to workload identities cannot go.
      if (state.workloadIdentities.some((w) => w.IdentityProviderName === idp.IdentityProviderName)) {
        throw new AcsError(409, 'DeleteConflict.IdentityProvider.WorkloadIdentity', 'The identity provider is still used by workload identities.');
      }
      state.identityProviders = state.identityProviders.filter((x) => x !== idp);
      return {};
    },
    CreateOAuth2CredentialProvider(p) {
      const name = requiredParam(p, 'OAuth2CredentialProviderName');
      if (findProvider(name)) throw new AcsError(409, 'EntityAlreadyExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${name}" already exists.`);
      const config = jsonParam(p, 'OAuth2ProviderConfig', isObject);
      const now = isoSeconds();
      const provider: EmuOAuth2Provider = {
        OAuth2CredentialProviderName: name,
        CredentialProviderArn: providerArn(name),
        ...(p.CredentialProviderVendor ? { CredentialProviderVendor: p.CredentialProviderVendor } : {}),
        CallbackURL: p.CallbackURL || `${baseUrl}/oauth2/callback/${randomUUID()}`,
        ...(config ? { OAuth2ProviderConfig: config } : {}),
        ...(p.OAuthType ? { OAuthType: p.OAuthType } : {}),
        ...(p.Description ? { Description: p.Description } : {}),
        CreateTime: now,
        UpdateTime: now,
      };
      state.oauth2Providers.push(provider);
      return { OAuth2CredentialProvider: providerView(provider) };
    },
    GetOAuth2CredentialProvider(p) {
      return { OAuth2CredentialProvider: providerView(providerOrThrow(requiredParam(p, 'OAuth2CredentialProviderName'))) };
    },
    DeleteOAuth2CredentialProvider(p) {
      const provider = providerOrThrow(requiredParam(p, 'OAuth2CredentialProviderName'));
      state.oauth2Providers = state.oauth2Providers.filter((x) => x !== provider);
      return {};
    },

    // RAM 2015-05-01
    CreateRole(p) {
      const name = requiredParam(p, 'RoleName');
      if (findRole(name)) throw new AcsError(409, 'EntityAlreadyExists.Role', 'The role already exists.');
      const now = isoSeconds();
      const role: EmuRole = {
        RoleName: name,
        RoleId: randomDigits(19),
        Arn: roleArn(name),
        AssumeRolePolicyDocument: policyDocument(p, 'AssumeRolePolicyDocument'),
        ...(p.Description ? { Description: p.Description } : {}),
        MaxSessionDuration: Number(p.MaxSessionDuration ?? 3600) || 3600,
        CreateDate: now,
        UpdateDate: now,
      };
      state.roles.push(role);
      return { Role: roleView(role) };
    },
    GetRole(p) {
      return { Role: roleView(roleOrThrow(requiredParam(p, 'RoleName'))) };
    },
    UpdateRole(p) {
      const role = roleOrThrow(requiredParam(p, 'RoleName'));
      if (p.NewAssumeRolePolicyDocument) role.AssumeRolePolicyDocument = policyDocument(p, 'NewAssumeRolePolicyDocument');
      if (p.NewDescription !== undefined) role.Description = p.NewDescription;
      role.UpdateDate = isoSeconds();
      return { Role: roleView(role) };
    },
    DeleteRole(p) {
      const role = roleOrThrow(requiredParam(p, 'RoleName'));
      if ((state.attachments[role.RoleName.toLowerCase()] ?? []).length > 0) {
        throw new AcsError(409, 'DeleteConflict.Role.Policy', 'The role cannot have any attached policies when you delete it.');
      }
      state.roles = state.roles.filter((x) => x !== role);
      return {};
    },
    CreatePolicy(p) {
      const name = requiredParam(p, 'PolicyName');
      if (findPolicy(name)) throw new AcsError(409, 'EntityAlreadyExists.Policy', 'The policy already exists.');
      const now = isoSeconds();
      const policy: EmuPolicy = {
        PolicyName: name,
        PolicyType: 'Custom',
        ...(p.Description ? { Description: p.Description } : {}),
        DefaultVersion: 'v1',
        versions: [{ VersionId: 'v1', PolicyDocument: policyDocument(p, 'PolicyDocument'), CreateDate: now }],
        CreateDate: now,
        UpdateDate: now,
      };
      state.policies.push(policy);
      return { Policy: policyView(policy) };
    },
    GetPolicy(p) {
      const policy = policyOrThrow(requiredParam(p, 'PolicyName'), requiredParam(p, 'PolicyType'));
      const v = policy.versions.find((x) => x.VersionId === policy.DefaultVersion)!;
      const attachmentCount = Object.values(state.attachments).filter((list) => list.includes(`${policy.PolicyType}:${policy.PolicyName}`)).length;
      return {
        Policy: { ...policyView(policy), AttachmentCount: attachmentCount },
        DefaultPolicyVersion: { ...v, IsDefaultVersion: true },
      };
    },
    CreatePolicyVersion(p) {
      const policy = policyOrThrow(requiredParam(p, 'PolicyName'));
      const doc = policyDocument(p, 'PolicyDocument');
      if (policy.versions.length >= 5) {
        if (p.RotateStrategy !== 'DeleteOldestNonDefaultVersionWhenLimitExceeded') {
          throw new AcsError(409, 'LimitExceeded.Policy.Version', 'The number of policy versions exceeds the limit.');
        }
        const oldest = policy.versions.find((v) => v.VersionId !== policy.DefaultVersion);
        policy.versions = policy.versions.filter((v) => v !== oldest);
      }
      const next = Math.max(...policy.versions.map((v) => Number(v.VersionId.slice(1)) || 0)) + 1;
      const version = { VersionId: `v${next}`, PolicyDocument: doc, CreateDate: isoSeconds() };
      policy.versions.push(version);
      if (p.SetAsDefault === 'true') policy.DefaultVersion = version.VersionId;
      policy.UpdateDate = version.CreateDate;
      return { PolicyVersion: { ...version, IsDefaultVersion: policy.DefaultVersion === version.VersionId } };
    },
    DeletePolicy(p) {
      const policy = policyOrThrow(requiredParam(p, 'PolicyName'));
      const key = `Custom:${policy.PolicyName}`;
      if (Object.values(state.attachments).some((list) => list.includes(key))) {
        throw new AcsError(409, 'DeleteConflict.Policy.Role', 'The policy is attached to a role; detach it first.');
      }
      if (policy.versions.length > 1 && p.CascadingDelete !== 'true') {
        throw new AcsError(409, 'DeleteConflict.Policy.Version', 'The policy has non-default versions; delete them first.');
      }
      state.policies = state.policies.filter((x) => x !== policy);
      return {};
    },
    AttachPolicyToRole(p) {
      const type = requiredParam(p, 'PolicyType');
      const policy = policyOrThrow(requiredParam(p, 'PolicyName'), type);
      const role = roleOrThrow(requiredParam(p, 'RoleName'));
      const list = state.attachments[role.RoleName.toLowerCase()] ?? [];
      if (list.includes(`${type}:${policy.PolicyName}`)) throw new AcsError(409, 'EntityAlreadyExists.Role.Policy', 'The policy is already attached to the role.');
      attach(role.RoleName, type, policy.PolicyName);
      return {};
    },
    DetachPolicyFromRole(p) {
      const type = requiredParam(p, 'PolicyType');
      const policyName = requiredParam(p, 'PolicyName');
      const role = roleOrThrow(requiredParam(p, 'RoleName'));
      const key = role.RoleName.toLowerCase();
      const list = state.attachments[key] ?? [];
      const entry = list.find((e) => e.toLowerCase() === `${type}:${policyName}`.toLowerCase());
      if (!entry) throw new AcsError(404, 'EntityNotExist.Role.Policy', 'The policy is not attached to the role.');
      state.attachments[key] = list.filter((e) => e !== entry);
      return {};
    },
    ListPoliciesForRole(p) {
      const role = roleOrThrow(requiredParam(p, 'RoleName'));
      const list = state.attachments[role.RoleName.toLowerCase()] ?? [];
      const policies = list.map((entry) => {
        const [type, name] = entry.split(':') as [string, string];
        const policy = findPolicy(name, type);
        return {
          PolicyName: name,
          PolicyType: type,
          DefaultVersion: policy?.DefaultVersion ?? 'v1',
          ...(policy?.Description ? { Description: policy.Description } : {}),
          AttachDate: policy?.CreateDate ?? t0,
        };
      });
      return { Policies: { Policy: policies } };
    },

    // STS 2015-04-01
    GetCallerIdentity(_p, caller) {
      const userName = caller.userName ?? 'dingtalk-mcp-admin';
      const userId = `2${randomDigitsFrom(caller.accessKeyId, 15)}`;
      return {
        AccountId: accountId,
        Arn: `acs:ram::${accountId}:user/${userName}`,
        IdentityType: 'RAMUser',
        PrincipalId: userId,
        UserId: userId,
      };
    },

    // IMS 2019-08-15
    CreateApplication(p) {
      const appName = requiredParam(p, 'AppName');
      const displayName = requiredParam(p, 'DisplayName');
      const appType = requiredParam(p, 'AppType');
      if (!['WebApp', 'NativeApp', 'ServerApp'].includes(appType)) throw new AcsError(400, 'InvalidParameter.AppType', 'The parameter AppType is invalid.');
      if (displayName.length > 24) throw new AcsError(400, 'InvalidParameter.DisplayName.Length', 'The display name can be up to 24 characters.');
      const split = (v: string | undefined) => (v ?? '').split(';').map((s) => s.trim()).filter(Boolean);
      const now = isoSeconds();
      const app: EmuApplication = {
        AppId: randomDigits(19),
        AppName: appName,
        DisplayName: displayName,
        AppType: appType,
        RedirectUris: split(p.RedirectUris),
        PredefinedScopes: split(p.PredefinedScopes),
        RequiredScopes: split(p.RequiredScopes),
        // ims-20190815 CreateApplicationRequest: "For WebApp and ServerApp … always set to true".
        SecretRequired: appType === 'NativeApp' ? p.SecretRequired === 'true' : true,
        ProtocolVersion: p.ProtocolVersion || '2.0',
        AccountId: accountId,
        CreateDate: now,
        UpdateDate: now,
        secrets: [],
      };
      state.applications.push(app);
      return { Application: appView(app) };
    },
    GetApplication(p) {
      return { Application: appView(appOrThrow(requiredParam(p, 'AppId'))) };
    },
    // ims-20190815 ListApplications: no request parameters, no paging; every application of the account.
    ListApplications() {
      return { Applications: { Application: state.applications.filter((a) => a.AccountId === accountId).map(appView) } };
    },
    DeleteApplication(p) {
      const app = appOrThrow(requiredParam(p, 'AppId'));
      state.applications = state.applications.filter((x) => x !== app);
      return {};
    },
    CreateAppSecret(p) {
      const app = appOrThrow(requiredParam(p, 'AppId'));
      if (app.secrets.length >= 2) throw new AcsError(409, 'LimitExceeded.AppSecret', 'An application can have at most two secrets.'); // MODELED
      const secret = { AppSecretId: randomUUID(), AppSecretValue: randomBytes(36).toString('base64url'), CreateDate: isoSeconds() };
      app.secrets.push(secret);
      return { AppSecret: { AppId: app.AppId, ...secret } };
    },
  };

  // ---- HTTP --------------------------------------------------------------------------------------

  const verifier = createSignatureVerifier<ControlPlaneAccessKey>((accessKeyId, securityToken) => {
    const key = keys.get(accessKeyId);
    if (!key) throw new AcsError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    if (securityToken !== undefined) throw new AcsError(400, 'InvalidSecurityToken.MismatchWithAccessKey', 'Specified SecurityToken mismatch with the AccessKey.');
    return { secret: key.accessKeySecret, principal: key };
  });

  function send(res: ServerResponse, status: number, body: Record<string, unknown>, requestId: string): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', 'content-length': Buffer.byteLength(text), 'x-acs-request-id': requestId });
    res.end(text);
  }

  async function handleRpc(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID().toUpperCase();
    const call: ControlPlaneCall = { product: 'unknown', action: '', paramNames: [], status: 200, requestId };
    try {
      const input = await readRpcInput(req, url);
      call.action = firstHeader(req, 'x-acs-action') ?? input.query.Action ?? '';
      call.paramNames = Object.keys(input.params).sort();
      if (req.method !== 'POST' && req.method !== 'GET') throw new AcsError(405, 'UnsupportedHTTPMethod', 'Specified HTTP method is not supported.');
      if (!call.action) throw new AcsError(400, 'MissingParameter.Action', 'The input parameter "Action" that is mandatory for processing this request is not supplied.');
      const version = firstHeader(req, 'x-acs-version') ?? input.query.Version;
      const product = (Object.keys(CONTROL_PLANE_VERSIONS) as Product[]).find((p) => CONTROL_PLANE_VERSIONS[p] === version);
      if (!product) throw new AcsError(400, 'InvalidVersion', `Specified parameter Version "${version ?? ''}" is not valid.`);
      call.product = product;
      if (!ACTIONS[product].has(call.action)) throw new AcsError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');

      const authorization = firstHeader(req, 'authorization');
      let caller: ControlPlaneAccessKey;
      if (authorization) caller = verifier.verifyV3(req, url.pathname, input.query, input.body, authorization);
      else if (input.query.Signature !== undefined) caller = verifier.verifyV2(req.method ?? 'POST', input.query, input.form);
      else throw new AcsError(400, 'MissingAuthorization', 'This action requires a signed request.');

      const fault = faults.find((f) => f.action === call.action || f.action === '*');
      if (fault) {
        fault.remaining -= 1;
        if (fault.remaining <= 0) faults = faults.filter((f) => f !== fault);
        throw new AcsError(fault.status, fault.code, fault.message ?? `Injected fault for ${call.action}.`);
      }
      const ramAction = `${RAM_PREFIX[product]}:${call.action}`;
      // STS GetCallerIdentity needs no permission (any valid credential may ask who it is).
      if (call.action !== 'GetCallerIdentity' && !actionAllowed(caller.allowedActions ?? '*', ramAction)) {
        throw new AcsError(403, 'NoPermission', `You are not authorized to do this operation. Action: ${ramAction}.`);
      }
      const result = handlers[call.action]!(input.params, caller);
      send(res, 200, { RequestId: requestId, ...result }, requestId);
    } catch (err) {
      const e = err instanceof AcsError ? err : new AcsError(500, 'InternalError', 'The request processing has failed due to some unknown error.');
      call.status = e.status;
      call.code = e.code;
      send(res, e.status, { RequestId: requestId, HostId: new URL(baseUrl).host, Code: e.code, Message: e.message }, requestId);
    } finally {
      calls.push(call);
    }
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', baseUrl || 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      send(
        res,
        200,
        {
          issuer: baseUrl,
          authorization_endpoint: `${baseUrl}/oauth2/v1/auth`,
          token_endpoint: `${baseUrl}/v1/token`,
          jwks_uri: `${baseUrl}/v1/keys`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
        },
        randomUUID(),
      );
      return;
    }
    if (url.pathname !== '/') {
      send(res, 404, { Code: 'NotFound', Message: 'No such page.' }, randomUUID());
      return;
    }
    handleRpc(req, res, url).catch(() => {
      if (!res.headersSent) send(res, 500, { Code: 'InternalError', Message: 'Internal error.' }, randomUUID());
      else res.destroy();
    });
  });

  baseUrl = await listen(server, host, options.port);

  const snapshot = (): ControlPlaneState => structuredClone(state);

  return {
    url: baseUrl,
    discoveryUrl: `${baseUrl}/.well-known/openid-configuration`,
    accountId,
    calls,
    state: snapshot,
    mutate(fn) {
      fn(state);
    },
    injectFault(fault) {
      faults.push({ ...fault, remaining: fault.times ?? 1 });
    },
    clearFaults() {
      faults = [];
    },
    close: () => shutdown(server),
  };
}

function randomDigits(n: number): string {
  let out = '';
  while (out.length < n) out += randomBytes(8).readBigUInt64BE().toString();
  return out.slice(0, n);
}

/** Stable digits derived from a string (the emulated user id of an AccessKey). */
function randomDigitsFrom(seed: string, n: number): string {
  let h = 0n;
  for (const c of seed) h = (h * 131n + BigInt(c.charCodeAt(0))) % 10n ** BigInt(n);
  return h.toString().padStart(n, '0');
}

