/**
 * Signing the browser user in, against the identity provider the MCP server trusts (the Python sample's 阿里云登录
 * step, done properly): authorization code + PKCE (RFC 7636, S256), `state` bound to the browser session, the ID
 * token verified (signature by JWKS, issuer, audience = our client id, nonce), and the access token kept on the
 * server to call `/mcp` as that user. The provider is found where an MCP client finds it: the server's
 * protected-resource metadata (RFC 9728), unless configured.
 *
 * Discovery, the authorization request (PKCE), the code and refresh grants and ID-token checks reuse src/http/oidc.ts
 * (the MCP server's own OIDC steps, on oauth4webapi); this module keeps what a client needs on top: the access and
 * refresh tokens, and when they expire.
 */
import type { TokenEndpointResponse } from 'oauth4webapi';
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

export class SignIn {
  readonly provider: OidcProvider;

  constructor(readonly settings: SignInSettings) {
    // error_description comes from elsewhere: refusals repeat only the registered error code.
    this.provider = new OidcProvider(settings.issuer.replace(/\/+$/, ''), createLogger({ level: 'warn' }), { errorDescriptions: false });
  }

  begin(): Promise<PendingSignIn> {
    return this.provider.authorizationRequest(this.settings.clientId, this.settings.redirectUri);
  }

  /** Redeem the code (with the PKCE verifier) and verify the ID token. */
  async finish(code: string, pending: PendingSignIn): Promise<{ user: SignedInUser; tokens: UserTokens }> {
    const { claims, tokens } = await this.provider.authorizationCodeGrant({
      callback: new URLSearchParams({ code, state: pending.state }),
      expectedState: pending.state,
      verifier: pending.verifier,
      nonce: pending.nonce,
      clientId: this.settings.clientId,
      clientSecret: this.settings.clientSecret,
      redirectUri: this.settings.redirectUri,
    });
    const name = typeof claims.name === 'string' && claims.name ? claims.name : claims.sub;
    return { user: { sub: claims.sub, iss: String(claims.iss), name: name.slice(0, 200) }, tokens: tokensOf(tokens) };
  }

  /** A fresh access token from the refresh token (RFC 6749 §6). */
  async refresh(tokens: UserTokens): Promise<UserTokens> {
    if (!tokens.refreshToken) throw new OidcError('Your sign-in has expired. Sign in again.', 'login_failed');
    const body = await this.provider.refreshTokenGrant({
      refreshToken: tokens.refreshToken,
      clientId: this.settings.clientId,
      clientSecret: this.settings.clientSecret,
    });
    return { ...tokensOf(body), refreshToken: body.refresh_token ?? tokens.refreshToken };
  }
}

/** oauth4webapi has checked that access_token is a non-empty string. */
function tokensOf(body: TokenEndpointResponse): UserTokens {
  const ttl = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 300;
  return { accessToken: body.access_token, refreshToken: body.refresh_token, expiresAt: Date.now() + ttl * 1000 };
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
