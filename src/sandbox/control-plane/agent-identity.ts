/** AgentIdentity 2025-09-01 (agentidentity-20250901): workload identities, identity providers, OAuth2 and API-key credential providers. */
import { randomUUID } from 'node:crypto';
import { AcsError, isStringArray, jsonParam, requiredParam } from '../acs-rpc.js';
import { checkOAuth2ProviderConfig } from './oauth2-provider-config.js';
import {
  isObject,
  isoSeconds,
  type Account,
  type EmuApiKeyProvider,
  type EmuIdentityProvider,
  type EmuOAuth2Provider,
  type EmuWorkloadIdentity,
  type Handler,
} from './state.js';

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

export function agentIdentityHandlers(a: Account): Record<string, Handler> {
  const { workloadIdentities: wis, identityProviders: idps, oauth2Providers: providers } = a;
  const keyView = ({ APIKey: _key, ...rest }: EmuApiKeyProvider) => rest;
  const providerView = (p: EmuOAuth2Provider) => ({ ...p, OAuth2ProviderConfig: withoutSecrets(p.OAuth2ProviderConfig) });

  return {
    CreateWorkloadIdentity(p) {
      const name = requiredParam(p, 'WorkloadIdentityName');
      wis.assertFree(name);
      const idp = p.IdentityProviderName || undefined;
      if (idp) idps.get(idp);
      const now = isoSeconds();
      const w: EmuWorkloadIdentity = {
        WorkloadIdentityName: name,
        WorkloadIdentityArn: a.wiArn(name),
        ...(p.RoleArn ? { RoleArn: p.RoleArn } : {}),
        ...(idp ? { IdentityProviderName: idp } : {}),
        AllowedResourceOAuth2ReturnURLs: jsonParam(p, 'AllowedResourceOAuth2ReturnURLs', isStringArray) ?? [],
        ...(p.Description ? { Description: p.Description } : {}),
        SessionBindingEnabled: p.SessionBindingEnabled === 'true',
        CreateTime: now,
        UpdateTime: now,
      };
      return { WorkloadIdentity: { ...wis.add(w) } };
    },
    GetWorkloadIdentity: (p) => ({ WorkloadIdentity: { ...wis.get(requiredParam(p, 'WorkloadIdentityName')) } }),
    UpdateWorkloadIdentity(p) {
      const w = wis.get(requiredParam(p, 'WorkloadIdentityName'));
      const urls = jsonParam(p, 'AllowedResourceOAuth2ReturnURLs', isStringArray);
      if (urls) w.AllowedResourceOAuth2ReturnURLs = urls;
      if (p.RoleArn) w.RoleArn = p.RoleArn;
      if (p.IdentityProviderName) {
        idps.get(p.IdentityProviderName);
        w.IdentityProviderName = p.IdentityProviderName;
      }
      if (p.Description !== undefined) w.Description = p.Description;
      w.UpdateTime = isoSeconds();
      return {};
    },
    DeleteWorkloadIdentity(p) {
      wis.remove(wis.get(requiredParam(p, 'WorkloadIdentityName')));
      return {};
    },
    ListWorkloadIdentities(p) {
      const all = a.state.workloadIdentities;
      const max = Math.min(Math.max(Number(p.MaxResults ?? 20) || 20, 1), 100);
      const start = Number(p.NextToken ?? 0) || 0;
      const page = all.slice(start, start + max);
      const next = start + max < all.length ? String(start + max) : undefined;
      return { WorkloadIdentities: page.map((w) => ({ ...w })), TotalCount: all.length, MaxResults: max, ...(next ? { NextToken: next } : {}) };
    },
    CreateIdentityProvider(p) {
      const name = requiredParam(p, 'IdentityProviderName');
      idps.assertFree(name);
      const now = isoSeconds();
      const idp: EmuIdentityProvider = {
        IdentityProviderName: name,
        IdentityProviderArn: a.idpArn(name),
        ...(p.DiscoveryURL ? { DiscoveryURL: p.DiscoveryURL } : {}),
        AllowedAudience: jsonParam(p, 'AllowedAudience', isStringArray) ?? [],
        ...(p.Description ? { Description: p.Description } : {}),
        CreateTime: now,
        UpdateTime: now,
      };
      return { IdentityProvider: { ...idps.add(idp) } };
    },
    GetIdentityProvider: (p) => ({ IdentityProvider: { ...idps.get(requiredParam(p, 'IdentityProviderName')) } }),
    UpdateIdentityProvider(p) {
      const idp = idps.get(requiredParam(p, 'IdentityProviderName'));
      const aud = jsonParam(p, 'AllowedAudience', isStringArray);
      if (aud) idp.AllowedAudience = aud;
      if (p.DiscoveryURL) idp.DiscoveryURL = p.DiscoveryURL;
      if (p.Description !== undefined) idp.Description = p.Description;
      idp.UpdateTime = isoSeconds();
      return {};
    },
    DeleteIdentityProvider(p) {
      const idp = idps.get(requiredParam(p, 'IdentityProviderName'));
      // MODELED: a provider still bound to workload identities cannot go.
      if (a.state.workloadIdentities.some((w) => w.IdentityProviderName === idp.IdentityProviderName)) {
        throw new AcsError(409, 'DeleteConflict.IdentityProvider.WorkloadIdentity', 'The identity provider is still used by workload identities.');
      }
      idps.remove(idp);
      return {};
    },
    CreateOAuth2CredentialProvider(p) {
      const name = requiredParam(p, 'OAuth2CredentialProviderName');
      providers.assertFree(name);
      const vendor = requiredParam(p, 'CredentialProviderVendor');
      requiredParam(p, 'OAuth2ProviderConfig');
      const config = jsonParam(p, 'OAuth2ProviderConfig', isObject);
      checkOAuth2ProviderConfig(vendor, config);
      const now = isoSeconds();
      const provider: EmuOAuth2Provider = {
        OAuth2CredentialProviderName: name,
        CredentialProviderArn: a.providerArn(name),
        CredentialProviderVendor: vendor,
        CallbackURL: p.CallbackURL || `${a.baseUrl()}/oauth2/callback/${randomUUID()}`,
        ...(config ? { OAuth2ProviderConfig: config } : {}),
        ...(p.OAuthType ? { OAuthType: p.OAuthType } : {}),
        ...(p.Description ? { Description: p.Description } : {}),
        CreateTime: now,
        UpdateTime: now,
      };
      return { OAuth2CredentialProvider: providerView(providers.add(provider)) };
    },
    GetOAuth2CredentialProvider: (p) => ({ OAuth2CredentialProvider: providerView(providers.get(requiredParam(p, 'OAuth2CredentialProviderName'))) }),
    DeleteOAuth2CredentialProvider(p) {
      providers.remove(providers.get(requiredParam(p, 'OAuth2CredentialProviderName')));
      return {};
    },
    // CreateAPIKeyCredentialProvider {APIKeyCredentialProviderName, APIKey, Description, TokenVaultName}; answers never carry the key.
    CreateAPIKeyCredentialProvider(p) {
      const name = requiredParam(p, 'APIKeyCredentialProviderName');
      a.apiKeyProviders.assertFree(name);
      const now = isoSeconds();
      const provider: EmuApiKeyProvider = {
        APIKeyCredentialProviderName: name,
        CredentialProviderArn: a.apiKeyProviderArn(name),
        APIKey: requiredParam(p, 'APIKey'),
        ...(p.Description ? { Description: p.Description } : {}),
        CreateTime: now,
        UpdateTime: now,
      };
      return { APIKeyCredentialProvider: keyView(a.apiKeyProviders.add(provider)) };
    },
    GetAPIKeyCredentialProvider: (p) => ({ APIKeyCredentialProvider: keyView(a.apiKeyProviders.get(requiredParam(p, 'APIKeyCredentialProviderName'))) }),
    DeleteAPIKeyCredentialProvider(p) {
      a.apiKeyProviders.remove(a.apiKeyProviders.get(requiredParam(p, 'APIKeyCredentialProviderName')));
      return {};
    },
  };
}
