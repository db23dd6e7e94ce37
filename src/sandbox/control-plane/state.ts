/**
 * The control-plane emulator's state: the resources of one account (field names as the generated SDKs answer
 * them), the seed, ARNs, lookups that answer the services' not-found errors, and the views the APIs return.
 */
import { randomBytes } from 'node:crypto';
import { AcsError } from '../acs-rpc.js';

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

/** The key itself is kept only for the data plane's sake; no control-plane answer ever contains it. */
export interface EmuApiKeyProvider {
  APIKeyCredentialProviderName: string;
  CredentialProviderArn: string;
  APIKey: string;
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

export interface ControlPlaneState {
  workloadIdentities: EmuWorkloadIdentity[];
  identityProviders: EmuIdentityProvider[];
  oauth2Providers: EmuOAuth2Provider[];
  apiKeyProviders: EmuApiKeyProvider[];
  roles: EmuRole[];
  policies: EmuPolicy[];
  /** `roleName → ["Custom:PolicyName", …]` */
  attachments: Record<string, string[]>;
  applications: EmuApplication[];
}

/** The resource arrays of the state (tests may replace them through `mutate`, so collections read them each time). */
type ListKey = Exclude<keyof ControlPlaneState, 'attachments'>;
type ItemOf<K extends ListKey> = ControlPlaneState[K][number];

/** One kind of resource: find by name, get or the service's not-found error, add after checking the name is free, remove. */
export interface Collection<T> {
  find(name: string): T | undefined;
  get(name: string): T;
  /** Throws the service's already-exists error when the name is taken. */
  assertFree(name: string): void;
  add(item: T): T;
  remove(item: T): void;
}

export function collection<K extends ListKey>(
  state: ControlPlaneState,
  key: K,
  spec: { name: (item: ItemOf<K>) => string; caseInsensitive?: boolean; notFound: (name: string) => AcsError; exists?: (name: string) => AcsError },
): Collection<ItemOf<K>> {
  const norm = (s: string) => (spec.caseInsensitive ? s.toLowerCase() : s);
  const list = () => state[key] as Array<ItemOf<K>>;
  const find = (name: string) => list().find((item) => norm(spec.name(item)) === norm(name));
  return {
    find,
    get(name) {
      const item = find(name);
      if (!item) throw spec.notFound(name);
      return item;
    },
    assertFree(name) {
      if (find(name) && spec.exists) throw spec.exists(name);
    },
    add(item) {
      list().push(item);
      return item;
    },
    remove(item) {
      (state as unknown as Record<ListKey, Array<ItemOf<K>>>)[key] = list().filter((x) => x !== item);
    },
  };
}

/** Who signed the call (an AccessKey of the emulated account). */
export interface Caller {
  accessKeyId: string;
  userName?: string;
}

/** One API action: the request's parameters in, the response fields (beside `RequestId`) out. */
export type Handler = (params: Record<string, string>, caller: Caller) => Record<string, unknown>;

/** Everything the product handlers share: the state, its collections, ARNs and the clock format. */
export interface Account {
  accountId: string;
  regionId: string;
  state: ControlPlaneState;
  /** The emulator's own base URL (the default provider callback lives under it). */
  baseUrl(): string;
  /** When the emulator started (seeded resources' dates). */
  t0: string;
  workloadIdentities: Collection<EmuWorkloadIdentity>;
  identityProviders: Collection<EmuIdentityProvider>;
  oauth2Providers: Collection<EmuOAuth2Provider>;
  apiKeyProviders: Collection<EmuApiKeyProvider>;
  roles: Collection<EmuRole>;
  applications: Collection<EmuApplication>;
  findPolicy(name: string, type?: string): EmuPolicy | undefined;
  policyOrThrow(name: string, type?: string): EmuPolicy;
  attach(role: string, type: string, policy: string): void;
  wiArn(name: string): string;
  idpArn(name: string): string;
  providerArn(name: string): string;
  apiKeyProviderArn(name: string): string;
  roleArn(name: string): string;
}

export function isoSeconds(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function randomDigits(n: number): string {
  let out = '';
  while (out.length < n) out += randomBytes(8).readBigUInt64BE().toString();
  return out.slice(0, n);
}

/** Stable digits derived from a string (the emulated user id of an AccessKey). */
export function randomDigitsFrom(seed: string, n: number): string {
  let h = 0n;
  for (const c of seed) h = (h * 131n + BigInt(c.charCodeAt(0))) % 10n ** BigInt(n);
  return h.toString().padStart(n, '0');
}

export const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A fresh account holding the seed. */
export function createAccount(accountId: string, regionId: string, baseUrl: () => string, seed: ControlPlaneSeed = {}): Account {
  const state: ControlPlaneState = {
    workloadIdentities: [],
    identityProviders: [],
    oauth2Providers: [],
    apiKeyProviders: [],
    roles: [],
    policies: [],
    attachments: {},
    applications: [],
  };
  const wiArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:workloadidentitydirectory/default/workloadidentity/${name}`;
  const idpArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:identityprovider/${name}`; // format UNVERIFIED
  const providerArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:tokenvault/default/oauth2credentialprovider/${name}`;
  const apiKeyProviderArn = (name: string) => `acs:agentidentity:${regionId}:${accountId}:tokenvault/default/apikeycredentialprovider/${name}`;
  const roleArn = (name: string) => `acs:ram::${accountId}:role/${name.toLowerCase()}`;

  const findPolicy = (name: string, type = 'Custom') => state.policies.find((p) => p.PolicyName.toLowerCase() === name.toLowerCase() && p.PolicyType === type);
  const attach = (role: string, type: string, policy: string) => {
    (state.attachments[role.toLowerCase()] ??= []).push(`${type}:${policy}`);
  };

  const t0 = isoSeconds();
  for (const w of seed.workloadIdentities ?? []) {
    state.workloadIdentities.push({
      AllowedResourceOAuth2ReturnURLs: [],
      WorkloadIdentityArn: wiArn(w.WorkloadIdentityName),
      CreateTime: t0,
      UpdateTime: t0,
      ...w,
    });
  }
  for (const p of seed.identityProviders ?? []) {
    state.identityProviders.push({ AllowedAudience: [], IdentityProviderArn: idpArn(p.IdentityProviderName), CreateTime: t0, UpdateTime: t0, ...p });
  }
  for (const p of seed.oauth2Providers ?? []) {
    state.oauth2Providers.push({ CredentialProviderArn: providerArn(p.OAuth2CredentialProviderName), CreateTime: t0, UpdateTime: t0, ...p });
  }
  for (const r of seed.roles ?? []) {
    state.roles.push({ RoleId: randomDigits(19), Arn: roleArn(r.RoleName), MaxSessionDuration: 3600, CreateDate: t0, UpdateDate: t0, ...r });
  }
  for (const p of seed.policies ?? []) {
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

  return {
    accountId,
    regionId,
    state,
    baseUrl,
    t0,
    workloadIdentities: collection(state, 'workloadIdentities', {
      name: (w) => w.WorkloadIdentityName,
      notFound: (name) => new AcsError(404, 'EntityNotExists.WorkloadIdentity', `The workload identity "${name}" does not exist.`),
      exists: (name) => new AcsError(409, 'EntityAlreadyExists.WorkloadIdentity', `The workload identity "${name}" already exists.`),
    }),
    identityProviders: collection(state, 'identityProviders', {
      name: (p) => p.IdentityProviderName,
      notFound: (name) => new AcsError(404, 'EntityNotExists.IdentityProvider', `The identity provider "${name}" does not exist.`),
      exists: (name) => new AcsError(409, 'EntityAlreadyExists.IdentityProvider', `The identity provider "${name}" already exists.`),
    }),
    oauth2Providers: collection(state, 'oauth2Providers', {
      name: (p) => p.OAuth2CredentialProviderName,
      notFound: (name) => new AcsError(404, 'EntityNotExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${name}" does not exist.`),
      exists: (name) => new AcsError(409, 'EntityAlreadyExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${name}" already exists.`),
    }),
    apiKeyProviders: collection(state, 'apiKeyProviders', {
      name: (p) => p.APIKeyCredentialProviderName,
      notFound: (name) => new AcsError(404, 'EntityNotExists.APIKeyCredentialProvider', `The API key credential provider "${name}" does not exist.`),
      exists: (name) => new AcsError(409, 'EntityAlreadyExists.APIKeyCredentialProvider', `The API key credential provider "${name}" already exists.`),
    }),
    // RAM names are case-insensitive.
    roles: collection(state, 'roles', {
      name: (r) => r.RoleName,
      caseInsensitive: true,
      notFound: () => new AcsError(404, 'EntityNotExist.Role', 'The role does not exist.'),
      exists: () => new AcsError(409, 'EntityAlreadyExists.Role', 'The role already exists.'),
    }),
    applications: collection(state, 'applications', {
      name: (a) => a.AppId,
      notFound: () => new AcsError(404, 'EntityNotExist.Application', 'The application does not exist.'),
    }),
    findPolicy,
    policyOrThrow(name, type = 'Custom') {
      const p = findPolicy(name, type);
      if (!p) throw new AcsError(404, 'EntityNotExist.Policy', 'The policy does not exist.');
      return p;
    },
    attach,
    wiArn,
    idpArn,
    providerArn,
    apiKeyProviderArn,
    roleArn,
  };
}
