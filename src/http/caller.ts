import type { IncomingMessage } from 'node:http';
import { bearerAuthChallengeResponse, OAuthError, OAuthErrorCode, verifyBearerToken, type AuthInfo, type ServerContext } from '@modelcontextprotocol/server';
import type { UserIdentity } from '../identity/types.js';
import type { Logger } from '../log.js';
import { OidcError, type OidcProvider } from './oidc.js';
import { VerifiedTokens } from './verified-tokens.js';

/** Where the verified user rides from the auth step to the tool handler. */
interface CallerExtra {
  user: UserIdentity;
}

/** A request the authentication step has vouched for. */
export type AuthenticatedRequest = IncomingMessage & { auth?: AuthInfo };

/** The verified caller, or the complete refusal to send (status, headers, JSON body). */
export type AuthOutcome = { ok: true; auth: AuthInfo } | { ok: false; status: number; headers: Record<string, string>; body: unknown };

export type Authenticate = (req: IncomingMessage) => Promise<AuthOutcome>;

/** The verified caller of an HTTP request, as the tools see it (`ctx.http.authInfo`). */
export function userFromContext(ctx: ServerContext): UserIdentity {
  const user = (ctx.http?.authInfo?.extra as Partial<CallerExtra> | undefined)?.user;
  // Unreachable behind the auth step; refuse rather than guess.
  if (!user) throw new Error('request reached a tool without a verified caller');
  return user;
}

export function userFromRequest(req: AuthenticatedRequest): UserIdentity | undefined {
  return (req.auth?.extra as Partial<CallerExtra> | undefined)?.user;
}

/**
 * `Authorization: Bearer <JWT>` from the configured identity provider: signature (JWKS),
 * issuer, audience and expiry verified; the user is the `sub`, and the JWT itself is the
 * artifact Agent Identity receives (GetWorkloadAccessTokenForJWT, CompleteResourceTokenAuth).
 * Failures answer 401 with `WWW-Authenticate: Bearer … resource_metadata="…"` (RFC 6750, RFC 9728),
 * built by the SDK (verifyBearerToken, bearerAuthChallengeResponse); with no Authorization header
 * at all, the bare challenge (RFC 6750 §3.1). An identity provider we cannot reach (and of which we
 * hold no usable copy) answers 503 + Retry-After: the token may well be good.
 *
 * A token that verified is remembered until it expires (at most a few minutes, see
 * VerifiedTokens), so a client's steady stream of calls pays for one signature check.
 */
const UNAVAILABLE_RETRY_AFTER_S = 5;

export function bearerAuth(oidc: OidcProvider, audience: string, resourceMetadataUrl: string, logger: Logger): Authenticate {
  const verified = new VerifiedTokens<AuthInfo>();
  const options = {
    resourceMetadataUrl,
    verifier: {
      async verifyAccessToken(token: string): Promise<AuthInfo> {
        const known = verified.get(token);
        if (known) return known;
        try {
          const claims = await oidc.verify(token, audience);
          const user: UserIdentity = { kind: 'jwt', jwt: token, subject: claims.sub, issuer: claims.iss };
          const auth: AuthInfo = {
            token,
            clientId: typeof claims.azp === 'string' ? claims.azp : typeof claims.client_id === 'string' ? claims.client_id : claims.sub,
            scopes: typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [],
            expiresAt: claims.exp,
            extra: { user } satisfies CallerExtra,
          };
          verified.set(token, auth, (claims.exp ?? 0) * 1000);
          return auth;
        } catch (e) {
          // The provider being down says nothing about the token: not a 401 (clients would discard it).
          if (e instanceof OidcError && e.reason === 'unavailable') throw e;
          const reason = e instanceof OidcError ? e.message : 'The token could not be verified.';
          logger.info('security: bearer token refused', { reason });
          throw new OAuthError(OAuthErrorCode.InvalidToken, reason);
        }
      },
    },
  };
  return async (req) => {
    // RFC 6750 §3.1: a request with no credentials at all gets the bare challenge, without an error code.
    if (!req.headers.authorization) {
      return {
        ok: false,
        status: 401,
        headers: { 'WWW-Authenticate': `Bearer resource_metadata="${resourceMetadataUrl}"` },
        body: {
          error: 'unauthorized',
          error_description: 'This endpoint needs Authorization: Bearer <token>; the resource metadata names the identity provider.',
        },
      };
    }
    try {
      return { ok: true, auth: await verifyBearerToken(req.headers.authorization, options) };
    } catch (error) {
      if (error instanceof OidcError && error.reason === 'unavailable') {
        logger.warn('identity provider unreachable: /mcp answered 503', { error: error.message });
        return {
          ok: false,
          status: 503,
          headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_S) },
          body: {
            error: 'temporarily_unavailable',
            error_description: `The identity provider is unreachable, so the token cannot be checked now; it was not refused. Retry in ${UNAVAILABLE_RETRY_AFTER_S} seconds.`,
          },
        };
      }
      const response = bearerAuthChallengeResponse(error, options);
      const challenge = response.headers.get('WWW-Authenticate');
      const body = error instanceof OAuthError ? error : new OAuthError(OAuthErrorCode.ServerError, 'Internal Server Error');
      const headers: Record<string, string> = challenge ? { 'WWW-Authenticate': challenge } : {};
      return { ok: false, status: response.status, headers, body: body.toResponseObject() };
    }
  };
}

/**
 * Opt-in for gateways that already authenticate: the user id comes from a header, and only when
 * the request comes from one of the configured proxy addresses. Anyone else gets 401.
 */
export function trustedProxyAuth(header: string, proxies: string[], logger: Logger): Authenticate {
  const fromGateway = gatewayUser(header, proxies);
  return async (req) => {
    const userId = fromGateway(req);
    if (!userId) {
      const from = normalizeAddress(req.socket.remoteAddress ?? '');
      logger.warn('security: request refused by trusted-proxy mode', { from, header: req.headers[header] ? 'present' : 'missing' });
      return {
        ok: false,
        status: 401,
        headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
        body: { error: 'invalid_token', error_description: `Requests must come through the trusted gateway, which sets ${header}.` },
      };
    }
    return {
      ok: true,
      auth: {
        token: '',
        clientId: 'trusted-proxy',
        scopes: [],
        expiresAt: Math.floor(Date.now() / 1000) + 300,
        extra: { user: { kind: 'userId', userId } } satisfies CallerExtra,
      },
    };
  };
}

/** The user id a trusted gateway vouches for: its header, only on requests from its addresses. */
export function gatewayUser(header: string, proxies: string[]): (req: IncomingMessage) => string | undefined {
  const allowed = new Set(proxies.map(normalizeAddress));
  return (req) => {
    if (!allowed.has(normalizeAddress(req.socket.remoteAddress ?? ''))) return undefined;
    const value = req.headers[header];
    const userId = typeof value === 'string' ? value.trim() : '';
    return userId && userId.length <= 256 ? userId : undefined;
  };
}

/** The peer address as configured by people: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
