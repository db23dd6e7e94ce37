/**
 * Signing the browser user in, against the identity provider the MCP server trusts (the Python sample's 阿里云登录
 * step, done properly): authorization code + PKCE (RFC 7636, S256), `state` bound to the browser session, the ID
 * token verified (signature by JWKS, issuer, audience = our client id, nonce), and the access token kept on the
 * server to call `/mcp` as that user. The provider is found where an MCP client finds it: the server's
 * protected-resource metadata (RFC 9728), unless configured.
 *
 * Discovery, PKCE parameters and JWT verification reuse src/http/oidc.ts (the MCP server's own OIDC code); this
 * module adds what a client needs on top: the token response's access and refresh tokens, and refreshing them.
 */
import { OidcError, OidcProvider } from '../../../src/http/oidc.js';
import { createLogger } from '../../../src/log.js';

export interface SignInSettings {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  /** `<web origin>/auth/callback`, registered at the identity provider. */
  redirectUri: string;
}

export interface PendingSignIn {
  url: string;
  state: string;
  verifier: string;
  nonce: string;
}

export interface SignedInUser {
  sub: string;
  iss: string;
  name: string;
}

export interface UserTokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch ms. */
  expiresAt: number;
}

interface TokenResponse {
  access_token?: string;
  id_token?: string;
  refresh_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
}

export class SignIn {
  readonly provider: OidcProvider;

  constructor(readonly settings: SignInSettings) {
    this.provider = new OidcProvider(settings.issuer.replace(/\/+$/, ''), createLogger({ level: 'warn' }));
  }

  begin(): Promise<PendingSignIn> {
    return this.provider.beginLogin(this.settings.clientId, this.settings.redirectUri);
  }

  /** Redeem the code (with the PKCE verifier) and verify the ID token. */
  async finish(code: string, pending: PendingSignIn): Promise<{ user: SignedInUser; tokens: UserTokens }> {
    const body = await this.token({ grant_type: 'authorization_code', code, redirect_uri: this.settings.redirectUri, code_verifier: pending.verifier });
    if (!body.id_token) throw new OidcError('The identity provider returned no ID token; is the `openid` scope allowed for this client?', 'login_failed');
    if (!body.access_token) throw new OidcError('The identity provider returned no access token.', 'login_failed');
    const claims = await this.provider.verify(body.id_token, this.settings.clientId);
    if (claims.nonce !== pending.nonce) throw new OidcError('The ID token does not carry the nonce of this sign-in.', 'login_failed');
    const name = typeof claims.name === 'string' && claims.name ? claims.name : claims.sub;
    return { user: { sub: claims.sub, iss: String(claims.iss), name: name.slice(0, 200) }, tokens: tokensOf(body) };
  }

  /** A fresh access token from the refresh token (RFC 6749 §6). */
  async refresh(tokens: UserTokens): Promise<UserTokens> {
    if (!tokens.refreshToken) throw new OidcError('Your sign-in has expired. Sign in again.', 'login_failed');
    const body = await this.token({ grant_type: 'refresh_token', refresh_token: tokens.refreshToken });
    if (!body.access_token) throw new OidcError('The identity provider returned no access token.', 'login_failed');
    return { ...tokensOf(body), refreshToken: body.refresh_token ?? tokens.refreshToken };
  }

  private async token(fields: Record<string, string>): Promise<TokenResponse> {
    const metadata = await this.provider.discover();
    const form = new URLSearchParams({ ...fields, client_id: this.settings.clientId });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.settings.clientSecret) {
      // client_secret_basic (RFC 6749 §2.3.1).
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(this.settings.clientId)}:${encodeURIComponent(this.settings.clientSecret)}`).toString('base64')}`;
    }
    let res: Response;
    try {
      res = await fetch(metadata.token_endpoint, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      throw new OidcError(`The identity provider's token endpoint could not be reached (${(e as Error).message}).`, 'unavailable');
    }
    const body = (await res.json().catch(() => ({}))) as TokenResponse;
    if (!res.ok) {
      // error_description comes from elsewhere: only the registered error code is repeated.
      const code = (body.error ?? `HTTP ${res.status}`).replace(/[^\w .-]/g, '').slice(0, 60);
      throw new OidcError(`The identity provider refused the sign-in (${code}).`, 'login_failed');
    }
    return body;
  }
}

function tokensOf(body: TokenResponse): UserTokens {
  const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 300;
  return { accessToken: body.access_token!, refreshToken: body.refresh_token, expiresAt: Date.now() + ttl * 1000 };
}

/**
 * The identity provider an MCP server trusts, from its protected-resource metadata (RFC 9728 §3: the well-known path
 * inserted before the resource's path, then at the root).
 */
export async function discoverIssuer(mcpUrl: string): Promise<string> {
  const url = new URL(mcpUrl);
  const path = url.pathname.replace(/\/+$/, '');
  const candidates = [`${url.origin}/.well-known/oauth-protected-resource${path}`, `${url.origin}/.well-known/oauth-protected-resource`];
  for (const candidate of candidates) {
    try {
      const res = await fetch(candidate, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
      if (!res.ok) continue;
      const body = (await res.json()) as { authorization_servers?: unknown };
      const first = Array.isArray(body.authorization_servers) ? body.authorization_servers.find((s): s is string => typeof s === 'string') : undefined;
      if (first) return first;
    } catch {
      // try the next location
    }
  }
  throw new Error(`${mcpUrl} publishes no protected-resource metadata naming its identity provider. Pass --issuer <url>.`);
}
