/**
 * Agent Identity's side of the OAuth provider (IdP): the code exchange after consent and the refresh of a
 * vaulted token, in the DingTalk JSON dialect (docs/dingtalk-api.md), since DingTalk is the provider emulated.
 */
import type { AgentIdentityState, EmulatorOAuth2Provider, ProviderToken, VaultEntry } from './state.js';

export async function providerToken(
  state: AgentIdentityState,
  provider: EmulatorOAuth2Provider,
  grant: { code: string } | { refreshToken: string },
): Promise<ProviderToken> {
  const body =
    'code' in grant
      ? { clientId: provider.clientId, clientSecret: provider.clientSecret, code: grant.code, grantType: 'authorization_code' }
      : { clientId: provider.clientId, clientSecret: provider.clientSecret, refreshToken: grant.refreshToken, grantType: 'refresh_token' };
  const res = await fetch(provider.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof json.accessToken !== 'string') {
    throw new Error(`token endpoint answered HTTP ${res.status}`);
  }
  const expireIn = typeof json.expireIn === 'number' ? json.expireIn : Number(json.expireIn ?? 7200);
  return {
    accessToken: json.accessToken,
    ...(typeof json.refreshToken === 'string' ? { refreshToken: json.refreshToken } : {}),
    expiresAt: state.now() + (Number.isFinite(expireIn) ? expireIn : 7200) * 1000,
    ...(typeof json.corpId === 'string' ? { corpId: json.corpId } : {}),
  };
}

/** A vaulted token that is still valid, refreshed through the provider if it expired; undefined (and dropped) if it cannot be. */
export async function vaultedToken(state: AgentIdentityState, entry: VaultEntry, key: string): Promise<VaultEntry | undefined> {
  if (entry.expiresAt > state.now()) return entry;
  const provider = state.providers.get(entry.providerName);
  if (!provider || !entry.refreshToken) {
    state.vault.delete(key);
    return undefined;
  }
  try {
    const t = await providerToken(state, provider, { refreshToken: entry.refreshToken });
    const updated: VaultEntry = {
      ...entry,
      accessToken: t.accessToken,
      refreshToken: t.refreshToken ?? entry.refreshToken,
      expiresAt: t.expiresAt,
      ...(t.corpId ? { corpId: t.corpId } : {}),
    };
    state.vault.set(key, updated);
    return updated;
  } catch {
    state.vault.delete(key);
    return undefined;
  }
}
