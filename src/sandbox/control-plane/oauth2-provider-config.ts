/**
 * CreateOAuth2CredentialProvider's `CredentialProviderVendor` and `OAuth2ProviderConfig`, checked against the
 * generated models (agentidentity-20250901 OAuth2ProviderConfig, IncludedOAuth2ProviderConfig,
 * CustomOAuth2ProviderConfig, OAuth2Discovery, AuthorizationServerMetadata; docs/reference/agent-identity.md §1.2).
 * A config is one of the two variants, with only the fields those models have (wire key `TokenRequest`, not the
 * generated type's misspelling). MODELED: which vendor goes with which variant (`AliyunOAuth2` is the preset the
 * kit uses with IncludedOAuth2ProviderConfig; `CustomOAuth2` is what setup sends with CustomOAuth2ProviderConfig),
 * and the codes `InvalidParameter.OAuth2ProviderConfig` / `InvalidParameter.CredentialProviderVendor`.
 */
import { AcsError } from '../acs-rpc.js';

/** Vendor → the config variant it takes. */
const VENDORS: Record<string, 'IncludedOAuth2ProviderConfig' | 'CustomOAuth2ProviderConfig'> = {
  AliyunOAuth2: 'IncludedOAuth2ProviderConfig',
  CustomOAuth2: 'CustomOAuth2ProviderConfig',
};

const bad = (why: string) => new AcsError(400, 'InvalidParameter.OAuth2ProviderConfig', `The parameter OAuth2ProviderConfig is invalid: ${why}.`);

function record(value: unknown, path: string, allowed: string[]): Record<string, unknown> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw bad(`${path} must be an object`);
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw bad(`${path} has no field ${unknown.join(', ')} (it takes ${allowed.join(', ')})`);
  return value as Record<string, unknown>;
}

function text(obj: Record<string, unknown>, key: string, path: string, required: boolean): void {
  const v = obj[key];
  if (v === undefined && !required) return;
  if (typeof v !== 'string' || !v.trim()) throw bad(`${path} > ${key} must be a non-empty string`);
}

function url(obj: Record<string, unknown>, key: string, path: string): void {
  text(obj, key, path, true);
  if (!URL.canParse(obj[key] as string)) throw bad(`${path} > ${key} must be a URL`);
}

function checkDiscovery(value: unknown, path: string): void {
  const d = record(value, path, ['DiscoveryURL', 'AuthorizationServerMetadata']);
  const hasUrl = d.DiscoveryURL !== undefined;
  if (hasUrl === (d.AuthorizationServerMetadata !== undefined)) throw bad(`${path} takes exactly one of DiscoveryURL and AuthorizationServerMetadata`);
  if (hasUrl) {
    url(d, 'DiscoveryURL', path);
    return;
  }
  const m = record(d.AuthorizationServerMetadata, `${path} > AuthorizationServerMetadata`, ['Issuer', 'AuthorizationRequest', 'TokenRequest', 'PKCE']);
  const mPath = `${path} > AuthorizationServerMetadata`;
  text(m, 'Issuer', mPath, true);
  url(record(m.AuthorizationRequest, `${mPath} > AuthorizationRequest`, ['Endpoint']), 'Endpoint', `${mPath} > AuthorizationRequest`);
  url(record(m.TokenRequest, `${mPath} > TokenRequest`, ['Endpoint']), 'Endpoint', `${mPath} > TokenRequest`);
  if (m.PKCE !== undefined) {
    const pkce = record(m.PKCE, `${mPath} > PKCE`, ['Enabled']);
    if (pkce.Enabled !== undefined && typeof pkce.Enabled !== 'boolean') throw bad(`${mPath} > PKCE > Enabled must be true or false`);
  }
}

/** Refuses a vendor or config the service would not take; returns nothing when both fit. */
export function checkOAuth2ProviderConfig(vendor: string, config: unknown): void {
  const variant = VENDORS[vendor];
  if (!variant) {
    throw new AcsError(
      400,
      'InvalidParameter.CredentialProviderVendor',
      `The CredentialProviderVendor "${vendor}" is not supported (${Object.keys(VENDORS).join(', ')}).`,
    );
  }
  const top = record(config, 'OAuth2ProviderConfig', ['IncludedOAuth2ProviderConfig', 'CustomOAuth2ProviderConfig']);
  const given = Object.keys(top);
  if (given.length !== 1) throw bad('it takes exactly one of IncludedOAuth2ProviderConfig and CustomOAuth2ProviderConfig');
  if (given[0] !== variant) throw bad(`the vendor ${vendor} takes ${variant}, not ${given[0]}`);
  if (variant === 'IncludedOAuth2ProviderConfig') {
    const c = record(top[variant], variant, ['ClientId', 'ClientSecret', 'AuthorizationEndpoint', 'TokenEndpoint']);
    text(c, 'ClientId', variant, true);
    text(c, 'ClientSecret', variant, false);
    if (c.AuthorizationEndpoint !== undefined) url(c, 'AuthorizationEndpoint', variant);
    if (c.TokenEndpoint !== undefined) url(c, 'TokenEndpoint', variant);
    return;
  }
  const c = record(top[variant], variant, ['ClientId', 'ClientSecret', 'OAuth2Discovery']);
  text(c, 'ClientId', variant, true);
  text(c, 'ClientSecret', variant, false);
  checkDiscovery(c.OAuth2Discovery, `${variant} > OAuth2Discovery`);
}
