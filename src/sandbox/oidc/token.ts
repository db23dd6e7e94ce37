/**
 * The token endpoint (RFC 6749 §3.2): client authentication (basic or post; none for public clients), the
 * authorization-code grant with PKCE verification (RFC 7636, S256) and refresh tokens (rotated on each use).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OidcProvider } from './index.js';
import { json, readText } from './pages.js';

export interface IssuedCode {
  clientId: string;
  redirectUri: string;
  challenge: string;
  nonce?: string;
  sub: string;
  scope: string;
  expiresAt: number;
}

export interface RefreshGrant {
  clientId: string;
  sub: string;
  scope: string;
}

export async function tokenEndpoint(provider: OidcProvider, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = new URLSearchParams(await readText(req));
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
  const [basicId, basicSecret] = basic ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent) : [];
  const clientId = basicId ?? form.get('client_id') ?? '';
  const client = provider.clients.get(clientId);
  const secret = basicSecret ?? form.get('client_secret') ?? undefined;
  if (!client || (client.clientSecret !== undefined && client.clientSecret !== secret)) return json(res, 401, { error: 'invalid_client' });
  const grant = form.get('grant_type');
  let sub: string;
  let scope: string;
  let nonce: string | undefined;
  if (grant === 'authorization_code') {
    const code = provider.codes.get(form.get('code') ?? '');
    provider.codes.delete(form.get('code') ?? '');
    if (!code || code.expiresAt < Date.now() || code.clientId !== clientId || code.redirectUri !== form.get('redirect_uri'))
      return json(res, 400, { error: 'invalid_grant' });
    const verifier = form.get('code_verifier') ?? '';
    if (createHash('sha256').update(verifier).digest('base64url') !== code.challenge)
      return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
    ({ sub, scope, nonce } = code);
  } else if (grant === 'refresh_token') {
    const stored = provider.refreshTokens.get(form.get('refresh_token') ?? '');
    provider.refreshTokens.delete(form.get('refresh_token') ?? '');
    if (!stored || stored.clientId !== clientId) return json(res, 400, { error: 'invalid_grant' });
    ({ sub, scope } = stored);
  } else {
    return json(res, 400, { error: 'unsupported_grant_type' });
  }
  const refresh = randomBytes(24).toString('base64url');
  provider.refreshTokens.set(refresh, { clientId, sub, scope });
  json(res, 200, {
    access_token: await provider.mintAccessToken({ sub, clientId }),
    id_token: await provider.sign(
      { iss: provider.issuer, sub, aud: clientId, ...(nonce ? { nonce } : {}), name: provider.users.find((u) => u.sub === sub)?.name },
      provider.ttl,
    ),
    token_type: 'Bearer',
    expires_in: provider.ttl,
    refresh_token: refresh,
    scope,
  });
}
