/**
 * The control-plane actions provisioning uses, typed. Field names are the wire names of the generated SDKs in
 * aliyun/alibabacloud-typescript-sdk (checked in `<product>/src/client.ts` and `<product>/src/models/*`):
 *
 * AgentIdentity 2025-09-01 (agentidentity-20250901, v1.2.1):
 *   CreateWorkloadIdentity / UpdateWorkloadIdentity {WorkloadIdentityName, RoleArn, IdentityProviderName,
 *     AllowedResourceOAuth2ReturnURLs (JSON array string), Description} → {WorkloadIdentity{…, WorkloadIdentityArn}} / {}
 *   GetWorkloadIdentity / DeleteWorkloadIdentity {WorkloadIdentityName} → {WorkloadIdentity{…}} / {}
 *   Create/UpdateIdentityProvider {IdentityProviderName, DiscoveryURL, AllowedAudience (JSON array string), Description}
 *   Get/DeleteIdentityProvider {IdentityProviderName} → {IdentityProvider{…, IdentityProviderArn}}
 *   CreateOAuth2CredentialProvider {OAuth2CredentialProviderName, CredentialProviderVendor, CallbackURL,
 *     OAuth2ProviderConfig (JSON), Description} → {OAuth2CredentialProvider{…, CredentialProviderArn, CallbackURL}}
 *   Get/DeleteOAuth2CredentialProvider {OAuth2CredentialProviderName}
 *   CreateAPIKeyCredentialProvider {APIKeyCredentialProviderName, APIKey, Description} →
 *     {APIKeyCredentialProvider{APIKeyCredentialProviderName, CredentialProviderArn, CreateTime, …}} (never the key)
 *   Get/DeleteAPIKeyCredentialProvider {APIKeyCredentialProviderName}
 * RAM 2015-05-01 (ram-20150501): CreateRole {RoleName, AssumeRolePolicyDocument, Description} → {Role{Arn, …}};
 *   GetRole {RoleName}; UpdateRole {RoleName, NewAssumeRolePolicyDocument}; DeleteRole {RoleName};
 *   CreatePolicy {PolicyName, PolicyDocument, Description} → {Policy}; GetPolicy {PolicyName, PolicyType} →
 *   {Policy, DefaultPolicyVersion{PolicyDocument}}; CreatePolicyVersion {PolicyName, PolicyDocument, SetAsDefault,
 *   RotateStrategy}; DeletePolicy {PolicyName, CascadingDelete}; Attach/DetachPolicyFromRole {PolicyType, PolicyName,
 *   RoleName}; ListPoliciesForRole {RoleName} → {Policies{Policy[]}}
 * STS 2015-04-01 (sts-20150401): GetCallerIdentity → {AccountId, Arn, IdentityType, PrincipalId, UserId, RoleId}
 * IMS 2019-08-15 (ims-20190815): CreateApplication {AppName, DisplayName, AppType, RedirectUris (`;`-separated),
 *   PredefinedScopes, RequiredScopes, ProtocolVersion, SecretRequired} → {Application{AppId, …}};
 *   GetApplication / DeleteApplication {AppId}; CreateAppSecret {AppId} → {AppSecret{AppSecretId, AppSecretValue}};
 *   ListApplications (no parameters) → {Applications{Application[{AppId, AppName, CreateDate, …}]}}
 *
 * Identities that are never reused by a re-created resource of the same name (what teardown compares before
 * deleting): RAM Role `RoleId` (CreateRole/GetRole), RAM Policy `CreateDate` (CreatePolicy/GetPolicy `Policy`),
 * AgentIdentity `CreateTime` (Create/Get WorkloadIdentity, IdentityProvider, OAuth2CredentialProvider,
 * APIKeyCredentialProvider), IMS `AppId`.
 */
import { ControlPlaneError, type ControlPlaneClient } from './control-plane-client.js';

export interface WorkloadIdentity {
  name: string;
  arn?: string;
  roleArn?: string;
  identityProviderName?: string;
  returnUrls: string[];
  createTime?: string;
}
export interface IdentityProvider {
  name: string;
  arn?: string;
  discoveryUrl?: string;
  audience: string[];
  createTime?: string;
}
export interface OAuth2Provider {
  name: string;
  arn?: string;
  vendor?: string;
  callbackUrl?: string;
  createTime?: string;
}
export interface ApiKeyProvider {
  name: string;
  arn?: string;
  createTime?: string;
}
export interface Role {
  name: string;
  arn: string;
  trustPolicy: string;
  /** RoleId: unique, never reused by a re-created role of the same name. */
  id?: string;
  createDate?: string;
}
export interface Policy {
  name: string;
  type: string;
  document?: string;
  createDate?: string;
}
export interface Application {
  appId: string;
  appName?: string;
  redirectUris: string[];
  createDate?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const opt = (key: string, v: unknown): Record<string, string> => (str(v) ? { [key]: str(v)! } : {});
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** `undefined` when the entity does not exist; other errors propagate. */
async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ControlPlaneError && e.notFound) return undefined;
    throw e;
  }
}

/** Deletes tolerate entities already gone. Returns false when there was nothing to delete. */
async function deleted(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (e) {
    if (e instanceof ControlPlaneError && e.notFound) return false;
    throw e;
  }
}

function toWorkloadIdentity(v: unknown): WorkloadIdentity {
  const w = obj(v);
  return {
    name: str(w.WorkloadIdentityName) ?? '',
    ...opt('arn', w.WorkloadIdentityArn),
    ...opt('roleArn', w.RoleArn),
    ...opt('identityProviderName', w.IdentityProviderName),
    returnUrls: strs(w.AllowedResourceOAuth2ReturnURLs),
    ...opt('createTime', w.CreateTime),
  };
}

function toIdentityProvider(v: unknown): IdentityProvider {
  const p = obj(v);
  return {
    name: str(p.IdentityProviderName) ?? '',
    ...opt('arn', p.IdentityProviderArn),
    ...opt('discoveryUrl', p.DiscoveryURL),
    audience: strs(p.AllowedAudience),
    ...opt('createTime', p.CreateTime),
  };
}

function toProvider(v: unknown): OAuth2Provider {
  const p = obj(v);
  return {
    name: str(p.OAuth2CredentialProviderName) ?? '',
    ...opt('arn', p.CredentialProviderArn),
    ...opt('vendor', p.CredentialProviderVendor),
    ...opt('callbackUrl', p.CallbackURL),
    ...opt('createTime', p.CreateTime),
  };
}

function toApiKeyProvider(v: unknown): ApiKeyProvider {
  const p = obj(v);
  return { name: str(p.APIKeyCredentialProviderName) ?? '', ...opt('arn', p.CredentialProviderArn), ...opt('createTime', p.CreateTime) };
}

function toRole(v: unknown): Role {
  const r = obj(v);
  return {
    name: str(r.RoleName) ?? '',
    arn: str(r.Arn) ?? '',
    trustPolicy: str(r.AssumeRolePolicyDocument) ?? '',
    ...opt('id', r.RoleId),
    ...opt('createDate', r.CreateDate),
  };
}

function toApplication(v: unknown): Application {
  const a = obj(v);
  return { appId: str(a.AppId) ?? '', ...opt('appName', a.AppName), redirectUris: strs(obj(a.RedirectUris).RedirectUri), ...opt('createDate', a.CreateDate) };
}

export class Cloud {
  constructor(readonly client: ControlPlaneClient) {}

  // ---- STS ----
  async callerIdentity(): Promise<{ accountId: string; arn?: string; identityType?: string }> {
    const b = await this.client.call('sts', 'GetCallerIdentity', {});
    const accountId = str(b.AccountId);
    if (!accountId) throw new ControlPlaneError('STS GetCallerIdentity returned no AccountId.', 'sts', 'GetCallerIdentity', 'InvalidResponse');
    return { accountId, ...opt('arn', b.Arn), ...opt('identityType', b.IdentityType) };
  }

  // ---- AgentIdentity: workload identities ----
  getWorkloadIdentity(name: string): Promise<WorkloadIdentity | undefined> {
    return orUndefined(
      this.client.call('agentidentity', 'GetWorkloadIdentity', { WorkloadIdentityName: name }).then((b) => toWorkloadIdentity(b.WorkloadIdentity)),
    );
  }
  async createWorkloadIdentity(w: {
    name: string;
    roleArn: string;
    identityProviderName?: string;
    returnUrls: string[];
    description: string;
  }): Promise<WorkloadIdentity> {
    const b = await this.client.call('agentidentity', 'CreateWorkloadIdentity', {
      WorkloadIdentityName: w.name,
      RoleArn: w.roleArn,
      IdentityProviderName: w.identityProviderName,
      AllowedResourceOAuth2ReturnURLs: JSON.stringify(w.returnUrls),
      Description: w.description,
    });
    return toWorkloadIdentity(b.WorkloadIdentity);
  }
  async updateWorkloadIdentity(w: { name: string; roleArn: string; identityProviderName?: string; returnUrls: string[] }): Promise<void> {
    await this.client.call('agentidentity', 'UpdateWorkloadIdentity', {
      WorkloadIdentityName: w.name,
      RoleArn: w.roleArn,
      IdentityProviderName: w.identityProviderName,
      AllowedResourceOAuth2ReturnURLs: JSON.stringify(w.returnUrls),
    });
  }
  deleteWorkloadIdentity(name: string): Promise<boolean> {
    return deleted(this.client.call('agentidentity', 'DeleteWorkloadIdentity', { WorkloadIdentityName: name }));
  }

  // ---- AgentIdentity: identity providers ----
  getIdentityProvider(name: string): Promise<IdentityProvider | undefined> {
    return orUndefined(
      this.client.call('agentidentity', 'GetIdentityProvider', { IdentityProviderName: name }).then((b) => toIdentityProvider(b.IdentityProvider)),
    );
  }
  async createIdentityProvider(p: { name: string; discoveryUrl: string; audience: string[]; description: string }): Promise<IdentityProvider> {
    const b = await this.client.call('agentidentity', 'CreateIdentityProvider', {
      IdentityProviderName: p.name,
      DiscoveryURL: p.discoveryUrl,
      AllowedAudience: JSON.stringify(p.audience),
      Description: p.description,
    });
    return toIdentityProvider(b.IdentityProvider);
  }
  async updateIdentityProvider(p: { name: string; discoveryUrl: string; audience: string[] }): Promise<void> {
    await this.client.call('agentidentity', 'UpdateIdentityProvider', {
      IdentityProviderName: p.name,
      DiscoveryURL: p.discoveryUrl,
      AllowedAudience: JSON.stringify(p.audience),
    });
  }
  deleteIdentityProvider(name: string): Promise<boolean> {
    return deleted(this.client.call('agentidentity', 'DeleteIdentityProvider', { IdentityProviderName: name }));
  }

  // ---- AgentIdentity: OAuth2 credential providers ----
  getOAuth2Provider(name: string): Promise<OAuth2Provider | undefined> {
    return orUndefined(
      this.client
        .call('agentidentity', 'GetOAuth2CredentialProvider', { OAuth2CredentialProviderName: name })
        .then((b) => toProvider(b.OAuth2CredentialProvider)),
    );
  }
  async createOAuth2Provider(p: {
    name: string;
    vendor: string;
    callbackUrl: string;
    config: Record<string, unknown>;
    clientSecret: string;
    description: string;
  }): Promise<OAuth2Provider> {
    const b = await this.client.call(
      'agentidentity',
      'CreateOAuth2CredentialProvider',
      {
        OAuth2CredentialProviderName: p.name,
        CredentialProviderVendor: p.vendor,
        CallbackURL: p.callbackUrl,
        OAuth2ProviderConfig: JSON.stringify(p.config),
        Description: p.description,
      },
      [p.clientSecret],
    );
    return toProvider(b.OAuth2CredentialProvider);
  }
  deleteOAuth2Provider(name: string): Promise<boolean> {
    return deleted(this.client.call('agentidentity', 'DeleteOAuth2CredentialProvider', { OAuth2CredentialProviderName: name }));
  }

  // ---- AgentIdentity: API-key credential providers (the DingTalk app secret) ----
  getApiKeyProvider(name: string): Promise<ApiKeyProvider | undefined> {
    return orUndefined(
      this.client
        .call('agentidentity', 'GetAPIKeyCredentialProvider', { APIKeyCredentialProviderName: name })
        .then((b) => toApiKeyProvider(b.APIKeyCredentialProvider)),
    );
  }
  async createApiKeyProvider(p: { name: string; apiKey: string; description: string }): Promise<ApiKeyProvider> {
    const b = await this.client.call(
      'agentidentity',
      'CreateAPIKeyCredentialProvider',
      { APIKeyCredentialProviderName: p.name, APIKey: p.apiKey, Description: p.description },
      [p.apiKey],
    );
    return toApiKeyProvider(b.APIKeyCredentialProvider);
  }
  deleteApiKeyProvider(name: string): Promise<boolean> {
    return deleted(this.client.call('agentidentity', 'DeleteAPIKeyCredentialProvider', { APIKeyCredentialProviderName: name }));
  }

  // ---- RAM ----
  getRole(name: string): Promise<Role | undefined> {
    return orUndefined(this.client.call('ram', 'GetRole', { RoleName: name }).then((b) => toRole(b.Role)));
  }
  async createRole(r: { name: string; trustPolicy: string; description: string }): Promise<Role> {
    const b = await this.client.call('ram', 'CreateRole', { RoleName: r.name, AssumeRolePolicyDocument: r.trustPolicy, Description: r.description });
    return toRole(b.Role);
  }
  async updateRoleTrust(name: string, trustPolicy: string): Promise<void> {
    await this.client.call('ram', 'UpdateRole', { RoleName: name, NewAssumeRolePolicyDocument: trustPolicy });
  }
  deleteRole(name: string): Promise<boolean> {
    return deleted(this.client.call('ram', 'DeleteRole', { RoleName: name }));
  }
  getPolicy(name: string, type = 'Custom'): Promise<Policy | undefined> {
    return orUndefined(
      this.client.call('ram', 'GetPolicy', { PolicyName: name, PolicyType: type }).then((b) => {
        const doc = str(obj(b.DefaultPolicyVersion).PolicyDocument);
        const p = obj(b.Policy);
        return { name: str(p.PolicyName) ?? name, type: str(p.PolicyType) ?? type, ...(doc ? { document: doc } : {}), ...opt('createDate', p.CreateDate) };
      }),
    );
  }
  async createPolicy(p: { name: string; document: string; description: string }): Promise<Policy> {
    const b = await this.client.call('ram', 'CreatePolicy', { PolicyName: p.name, PolicyDocument: p.document, Description: p.description });
    const policy = obj(b.Policy);
    return { name: str(policy.PolicyName) ?? p.name, type: 'Custom', document: p.document, ...opt('createDate', policy.CreateDate) };
  }
  /** A new default version; the oldest non-default one is rotated out when RAM's version limit is reached. */
  async setPolicyDocument(name: string, document: string): Promise<void> {
    await this.client.call('ram', 'CreatePolicyVersion', {
      PolicyName: name,
      PolicyDocument: document,
      SetAsDefault: true,
      RotateStrategy: 'DeleteOldestNonDefaultVersionWhenLimitExceeded',
    });
  }
  deletePolicy(name: string): Promise<boolean> {
    return deleted(this.client.call('ram', 'DeletePolicy', { PolicyName: name, CascadingDelete: true }));
  }
  /** Errors propagate, `EntityAlreadyExists.*` included: an attachment someone else made is not setup's. */
  async attachPolicyToRole(policyName: string, roleName: string, type = 'Custom'): Promise<void> {
    await this.client.call('ram', 'AttachPolicyToRole', { PolicyType: type, PolicyName: policyName, RoleName: roleName });
  }
  detachPolicyFromRole(policyName: string, roleName: string, type = 'Custom'): Promise<boolean> {
    return deleted(this.client.call('ram', 'DetachPolicyFromRole', { PolicyType: type, PolicyName: policyName, RoleName: roleName }));
  }
  async listPoliciesForRole(roleName: string): Promise<Array<{ name: string; type: string }>> {
    const b = await this.client.call('ram', 'ListPoliciesForRole', { RoleName: roleName });
    const list = obj(b.Policies).Policy;
    return (Array.isArray(list) ? list : []).map((p) => ({ name: str(obj(p).PolicyName) ?? '', type: str(obj(p).PolicyType) ?? 'Custom' }));
  }

  // ---- IMS (OAuth applications) ----
  getApplication(appId: string): Promise<Application | undefined> {
    return orUndefined(this.client.call('ims', 'GetApplication', { AppId: appId }).then((b) => toApplication(b.Application)));
  }
  async createWebApplication(a: { appName: string; displayName: string; redirectUris: string[]; scopes: string[] }): Promise<Application> {
    const b = await this.client.call('ims', 'CreateApplication', {
      AppName: a.appName,
      DisplayName: a.displayName,
      AppType: 'WebApp',
      RedirectUris: a.redirectUris.join(';'),
      PredefinedScopes: a.scopes.join(';'),
      RequiredScopes: a.scopes.join(';'),
      ProtocolVersion: '2.1',
      // ims-20190815 CreateApplicationRequest: for WebApp "this parameter is required and is always set to true".
      SecretRequired: true,
    });
    return toApplication(b.Application);
  }
  /** Every OAuth application of the account (IMS ListApplications takes no parameters and does not page). */
  async listApplications(): Promise<Application[]> {
    const b = await this.client.call('ims', 'ListApplications', {});
    const list = obj(b.Applications).Application;
    return (Array.isArray(list) ? list : []).map(toApplication);
  }
  deleteApplication(appId: string): Promise<boolean> {
    return deleted(this.client.call('ims', 'DeleteApplication', { AppId: appId }));
  }
  /** The secret value is returned once; the caller stores it (never in .config.json) and never prints it. */
  async createAppSecret(appId: string): Promise<{ secretId: string; secret: string }> {
    const b = await this.client.call('ims', 'CreateAppSecret', { AppId: appId });
    const s = obj(b.AppSecret);
    const secretId = str(s.AppSecretId);
    const secret = str(s.AppSecretValue);
    if (!secretId || !secret) throw new ControlPlaneError('IMS CreateAppSecret returned no secret.', 'ims', 'CreateAppSecret', 'InvalidResponse');
    return { secretId, secret };
  }
}
