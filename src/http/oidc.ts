import { createHash, randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from '../log.js';
import { JwksCache, JwksUnavailableError } from './jwks-cache.js';

/** The parts of an OpenID Provider's discovery document we use (OpenID Connect Discovery 1.0 §3). */
export interface OidcMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  code_challenge_methods_supported?: string[];
}

export class OidcError extends Error {
  constructor(
    message: string,
    readonly reason: 'invalid_token' | 'unavailable' | 'login_failed',
  ) {
    super(message);
    this.name = 'OidcError';
  }
}

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const DISCOVERY_TTL_MS = 60 * 60_000;
/** After a failed discovery fetch, the last good document serves this long before we try again. */
const DISCOVERY_RETRY_MS = 5_000;

/**
 * One OpenID Connect identity provider: the one whose JWTs authorize `/mcp` and which signs the
 * browser user in on `/connect`. Keys come from its JWKS (./jwks-cache.ts: refetched at once when a
 * token names a key it has not seen, at most once a second). An outage of discovery or JWKS keeps the
 * last good copy in use; with none, verification fails as `unavailable` (503), not as a bad token.
 */
export class OidcProvider {
  private metadata?: { value: OidcMetadata; fetchedAt: number };
  private metadataInFlight?: Promise<OidcMetadata>;
  private metadataFailedAt = Number.NEGATIVE_INFINITY;
  private readonly jwks: JwksCache;

  constructor(
    readonly issuer: string,
    private readonly logger: Logger,
  ) {
    this.jwks = new JwksCache((error) => logger.warn('identity provider keys could not be refreshed; using the last good copy', { error }));
  }

  async discover(): Promise<OidcMetadata> {
    const known = this.metadata;
    if (known && (Date.now() - known.fetchedAt < DISCOVERY_TTL_MS || Date.now() - this.metadataFailedAt < DISCOVERY_RETRY_MS)) return known.value;
    this.metadataInFlight ??= this.fetchMetadata().finally(() => (this.metadataInFlight = undefined));
    try {
      return await this.metadataInFlight;
    } catch (e) {
      this.metadataFailedAt = Date.now();
      // An outage must not turn valid tokens away: the last good document still names the right keys.
      if (!known) throw e;
      this.logger.warn('identity provider discovery failed; using the last good copy', { error: (e as Error).message });
      return known.value;
    }
  }

  private async fetchMetadata(): Promise<OidcMetadata> {
    const url = `${this.issuer}/.well-known/openid-configuration`;
    let body: Partial<OidcMetadata>;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000), headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = (await res.json()) as Partial<OidcMetadata>;
    } catch (e) {
      throw new OidcError(
        `The identity provider's discovery document ${url} could not be read (${(e as Error).message}). Check OIDC_ISSUER and the network.`,
        'unavailable',
      );
    }
    // OpenID Connect Discovery §4.3: the issuer in the document must equal the configured one.
    if (body.issuer?.replace(/\/+$/, '') !== this.issuer) {
      throw new OidcError(`The discovery document at ${url} names issuer "${body.issuer}", not "${this.issuer}". Fix OIDC_ISSUER.`, 'unavailable');
    }
    if (!body.jwks_uri || !body.authorization_endpoint || !body.token_endpoint) {
      throw new OidcError(`The discovery document at ${url} lacks jwks_uri, authorization_endpoint or token_endpoint.`, 'unavailable');
    }
    const value = body as OidcMetadata;
    this.metadata = { value, fetchedAt: Date.now() };
    return value;
  }

  /** Verify signature (JWKS), issuer, audience and expiry. */
  async verify(token: string, audience: string): Promise<JWTPayload & { sub: string }> {
    const metadata = await this.discover();
    try {
      const { payload } = await jwtVerify(token, this.jwks.resolver(metadata.jwks_uri), {
        issuer: metadata.issuer,
        audience,
        algorithms: ALGORITHMS,
        clockTolerance: 30,
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') throw new OidcError('The token has no subject (sub).', 'invalid_token');
      if (typeof payload.exp !== 'number') throw new OidcError('The token has no expiry (exp).', 'invalid_token');
      return payload as JWTPayload & { sub: string };
    } catch (e) {
      if (e instanceof OidcError) throw e;
      if (e instanceof JwksUnavailableError) throw new OidcError(`The identity provider is unreachable: ${e.message}.`, 'unavailable');
      throw new OidcError(describeJoseError(e), 'invalid_token');
    }
  }

  /** Start an authorization-code + PKCE login (RFC 7636): the URL to send the browser to, and what to keep. */
  async beginLogin(clientId: string, redirectUri: string): Promise<{ url: string; state: string; verifier: string; nonce: string }> {
    const metadata = await this.discover();
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const nonce = randomBytes(16).toString('base64url');
    const url = new URL(metadata.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('scope', 'openid');
    url.searchParams.set('state', state);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
    url.searchParams.set('code_challenge_method', 'S256');
    return { url: url.toString(), state, verifier, nonce };
  }

  /** Redeem the code for an ID token and verify it (audience = our client id, the nonce we sent). */
  async finishLogin(args: {
    code: string;
    verifier: string;
    nonce: string;
    clientId: string;
    clientSecret?: string;
    redirectUri: string;
  }): Promise<JWTPayload & { sub: string }> {
    const metadata = await this.discover();
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code: args.code,
      redirect_uri: args.redirectUri,
      client_id: args.clientId,
      code_verifier: args.verifier,
    });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (args.clientSecret) {
      // client_secret_basic (RFC 6749 §2.3.1): the form-encoded id and secret, base64'd.
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(args.clientId)}:${encodeURIComponent(args.clientSecret)}`).toString('base64')}`;
    }
    let body: { id_token?: string; error?: string; error_description?: string };
    try {
      const res = await fetch(metadata.token_endpoint, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(10_000) });
      body = (await res.json()) as typeof body;
      if (!res.ok)
        throw new OidcError(
          `The identity provider refused the sign-in (${body.error ?? res.status}${body.error_description ? `: ${body.error_description}` : ''}).`,
          'login_failed',
        );
    } catch (e) {
      if (e instanceof OidcError) throw e;
      throw new OidcError(`The identity provider's token endpoint could not be reached (${(e as Error).message}).`, 'unavailable');
    }
    if (!body.id_token) throw new OidcError('The identity provider returned no ID token; is the `openid` scope allowed for this client?', 'login_failed');
    const claims = await this.verify(body.id_token, args.clientId);
    if (claims.nonce !== args.nonce) throw new OidcError('The ID token does not carry the nonce of this sign-in.', 'login_failed');
    return claims;
  }
}

function describeJoseError(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return 'The token has expired.';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'iss') return 'The token was issued by another identity provider.';
    if (e.claim === 'aud') return 'The token is not meant for this server (audience mismatch).';
    return `The token's "${e.claim}" claim is not acceptable.`;
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is not valid.';
  if (e instanceof joseErrors.JWKSNoMatchingKey) return 'The token is signed with a key the identity provider does not publish.';
  if (e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JWSInvalid) return 'The token is not a well-formed JWT.';
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return 'The token uses a signing algorithm this server does not accept.';
  return 'The token could not be verified.';
}
