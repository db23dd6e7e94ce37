import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import * as oauth from 'oauth4webapi';
import type { Logger } from '../log.js';
import { JwksCache, JwksUnavailableError } from './jwks-cache.js';
import { describeOidcLibraryError, OidcError } from './oidc-errors.js';

export { OidcError } from './oidc-errors.js';

/** The provider metadata we rely on (OpenID Connect Discovery 1.0 §3), as oauth4webapi returns it. */
export type OidcMetadata = oauth.AuthorizationServer & { authorization_endpoint: string; token_endpoint: string; jwks_uri: string };

/** What the browser is sent to, and what the client keeps until the callback. */
export interface AuthorizationRequest {
  url: string;
  state: string;
  verifier: string;
  nonce: string;
}

export interface OidcProviderOptions {
  /** Repeat the provider's `error_description` in refusal messages (the example web app shows the code only). */
  errorDescriptions?: boolean;
}

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const DISCOVERY_TTL_MS = 60 * 60_000;
/** After a failed discovery fetch, the last good document serves this long before we try again. */
const DISCOVERY_RETRY_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Plain http is allowed only to a loopback host (the sandbox issuer); oauth4webapi refuses it otherwise. */
export function isLoopbackUrl(url: string | URL): boolean {
  return LOOPBACK_HOSTS.has(new URL(url).hostname);
}

/** https, or plain http on loopback only: the rule for the issuer and every endpoint its discovery document names. */
export function isSecureEndpoint(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackUrl(url));
  } catch {
    return false;
  }
}

/**
 * One OpenID Connect identity provider: the one whose JWTs authorize `/mcp` and which signs the
 * browser user in on `/connect`. The protocol steps (discovery, the authorization request with PKCE
 * S256, the authorization-code and refresh grants, ID-token claim checks) are oauth4webapi's.
 * Signatures are ours: oauth4webapi does not verify an ID token's signature in the code flow over
 * TLS, and bearer tokens need our JWKS cache anyway (./jwks-cache.ts: refetched at once when a token
 * names a key it has not seen, at most once a second). An outage of discovery or JWKS keeps the last
 * good copy in use; with none, verification fails as `unavailable` (503), not as a bad token.
 */
export class OidcProvider {
  private metadata?: { value: OidcMetadata; fetchedAt: number };
  private metadataInFlight?: Promise<OidcMetadata>;
  private metadataFailedAt = Number.NEGATIVE_INFINITY;
  private readonly jwks: JwksCache;

  constructor(
    readonly issuer: string,
    private readonly logger: Logger,
    private readonly options: OidcProviderOptions = {},
  ) {
    this.jwks = new JwksCache((error) => logger.warn('identity provider keys could not be refreshed; using the last good copy', { error }));
  }

  /** OpenID Connect Discovery, cached for an hour; an outage serves the last good document. */
  async discover(): Promise<OidcMetadata> {
    const known = this.metadata;
    if (known && (Date.now() - known.fetchedAt < DISCOVERY_TTL_MS || Date.now() - this.metadataFailedAt < DISCOVERY_RETRY_MS)) return known.value;
    this.metadataInFlight ??= this.discoveryRequest().finally(() => (this.metadataInFlight = undefined));
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

  private async discoveryRequest(): Promise<OidcMetadata> {
    const url = `${this.issuer}/.well-known/openid-configuration`;
    let body: oauth.AuthorizationServer;
    try {
      // Discovery §4.3: processDiscoveryResponse refuses a document naming another issuer.
      const issuer = new URL(this.issuer);
      body = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, this.requestOptions(issuer)));
    } catch (e) {
      throw describeOidcLibraryError(e, { step: 'discovery', url, issuer: this.issuer });
    }
    if (!body.jwks_uri || !body.authorization_endpoint || !body.token_endpoint) {
      throw new OidcError(`The discovery document at ${url} lacks jwks_uri, authorization_endpoint or token_endpoint.`, 'unavailable');
    }
    const insecure = (['jwks_uri', 'authorization_endpoint', 'token_endpoint'] as const).find((name) => !isSecureEndpoint(body[name] as string));
    if (insecure) {
      // The issuer's own rule for what it names: keys read in clear text could be swapped for an attacker's.
      throw new OidcError(
        `The discovery document at ${url} names ${insecure} ${body[insecure]}, which is not https (plain http is allowed only on loopback). Fix the identity provider's configuration.`,
        'unavailable',
      );
    }
    const value = body as OidcMetadata;
    this.metadata = { value, fetchedAt: Date.now() };
    return value;
  }

  /** Verify a JWT (bearer or ID token): signature by our JWKS cache with jose, issuer, audience and expiry. */
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

  /** The authorization request (OpenID Connect Core §3.1.2.1) with PKCE S256 (RFC 7636), `state` and `nonce`. */
  async authorizationRequest(clientId: string, redirectUri: string): Promise<AuthorizationRequest> {
    const metadata = await this.discover();
    const state = oauth.generateRandomState();
    const verifier = oauth.generateRandomCodeVerifier();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(metadata.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('scope', 'openid');
    url.searchParams.set('state', state);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    return { url: url.toString(), state, verifier, nonce };
  }

  /**
   * The authorization-code grant (RFC 6749 §4.1.3, with the PKCE verifier): checks the callback's
   * `state` (and `iss`, RFC 9207), redeems the code, and checks the ID token — claims (issuer,
   * audience = our client id, expiry, nonce) by oauth4webapi, signature by `verify` (our JWKS).
   */
  async authorizationCodeGrant(args: {
    /** The callback's query: `code`, `state`, perhaps `iss`. */
    callback: URLSearchParams;
    expectedState: string;
    verifier: string;
    nonce: string;
    clientId: string;
    clientSecret?: string;
    redirectUri: string;
  }): Promise<{ claims: JWTPayload & { sub: string }; tokens: oauth.TokenEndpointResponse }> {
    const metadata = await this.discover();
    const client: oauth.Client = { client_id: args.clientId };
    let tokens: oauth.TokenEndpointResponse;
    try {
      const callback = oauth.validateAuthResponse(metadata, client, args.callback, args.expectedState);
      const response = await oauth.authorizationCodeGrantRequest(
        metadata,
        client,
        clientAuthentication(args.clientSecret),
        callback,
        args.redirectUri,
        args.verifier,
        this.requestOptions(metadata.token_endpoint),
      );
      tokens = await oauth.processAuthorizationCodeResponse(metadata, client, response, { expectedNonce: args.nonce });
    } catch (e) {
      throw describeOidcLibraryError(e, { step: 'token', url: metadata.token_endpoint, errorDescriptions: this.options.errorDescriptions ?? true });
    }
    if (!tokens.id_token) throw new OidcError('The identity provider returned no ID token; is the `openid` scope allowed for this client?', 'login_failed');
    return { claims: await this.verify(tokens.id_token, args.clientId), tokens };
  }

  /** The refresh-token grant (RFC 6749 §6): a fresh access token. */
  async refreshTokenGrant(args: { refreshToken: string; clientId: string; clientSecret?: string }): Promise<oauth.TokenEndpointResponse> {
    const metadata = await this.discover();
    const client: oauth.Client = { client_id: args.clientId };
    try {
      const response = await oauth.refreshTokenGrantRequest(
        metadata,
        client,
        clientAuthentication(args.clientSecret),
        args.refreshToken,
        this.requestOptions(metadata.token_endpoint),
      );
      return await oauth.processRefreshTokenResponse(metadata, client, response);
    } catch (e) {
      throw describeOidcLibraryError(e, { step: 'token', url: metadata.token_endpoint, errorDescriptions: this.options.errorDescriptions ?? true });
    }
  }

  private requestOptions(target: string | URL): { signal: () => AbortSignal; [oauth.allowInsecureRequests]?: boolean } {
    return {
      signal: () => AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      // Only the sandbox issuer on 127.0.0.1 is plain http; anywhere else oauth4webapi's https-only rule stands.
      ...(isLoopbackUrl(target) ? { [oauth.allowInsecureRequests]: true } : {}),
    };
  }
}

/** client_secret_basic (RFC 6749 §2.3.1) for a confidential client; `none` (client_id in the form) for a public one. */
function clientAuthentication(clientSecret: string | undefined): oauth.ClientAuth {
  return clientSecret ? oauth.ClientSecretBasic(clientSecret) : oauth.None();
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
