import type { NextFunction, Request, Response } from 'express';
import { requireBearerAuth } from '@modelcontextprotocol/express';
import { OAuthError, OAuthErrorCode, type AuthInfo, type ServerContext } from '@modelcontextprotocol/server';
import type { UserIdentity } from '../identity/types.js';
import type { Logger } from '../log.js';
import { OidcError, type OidcProvider } from './oidc.js';

/** Where the verified user rides from the auth middleware to the tool handler. */
interface CallerExtra {
  user: UserIdentity;
}

/** The verified caller of an HTTP request, as the tools see it (`ctx.http.authInfo`). */
export function userFromContext(ctx: ServerContext): UserIdentity {
  const user = (ctx.http?.authInfo?.extra as Partial<CallerExtra> | undefined)?.user;
  // Unreachable behind the auth middleware; refuse rather than guess.
  if (!user) throw new Error('request reached a tool without a verified caller');
  return user;
}

export function userFromRequest(req: Request): UserIdentity | undefined {
  return (req.auth?.extra as Partial<CallerExtra> | undefined)?.user;
}

/**
 * `Authorization: Bearer <JWT>` from the configured identity provider: signature (JWKS),
 * issuer, audience and expiry verified; the user is the `sub`, and the JWT itself is the
 * artifact Agent Identity receives (GetWorkloadAccessTokenForJWT, CompleteResourceTokenAuth).
 * Failures answer 401 with `WWW-Authenticate: Bearer … resource_metadata="…"` (RFC 6750, RFC 9728).
 */
export function bearerAuth(oidc: OidcProvider, audience: string, resourceMetadataUrl: string, logger: Logger) {
  return requireBearerAuth({
    resourceMetadataUrl,
    verifier: {
      async verifyAccessToken(token: string): Promise<AuthInfo> {
        try {
          const claims = await oidc.verify(token, audience);
          const user: UserIdentity = { kind: 'jwt', jwt: token, subject: claims.sub, issuer: claims.iss };
          return {
            token,
            clientId: typeof claims.azp === 'string' ? claims.azp : typeof claims.client_id === 'string' ? claims.client_id : claims.sub,
            scopes: typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [],
            expiresAt: claims.exp,
            extra: { user } satisfies CallerExtra,
          };
        } catch (e) {
          const reason = e instanceof OidcError ? e.message : 'The token could not be verified.';
          logger.info('security: bearer token refused', { reason });
          throw new OAuthError(OAuthErrorCode.InvalidToken, reason);
        }
      },
    },
  });
}

/**
 * Opt-in for gateways that already authenticate: the user id comes from a header, and only when
 * the request comes from one of the configured proxy addresses. Anyone else gets 401.
 */
export function trustedProxyAuth(header: string, proxies: string[], logger: Logger) {
  const fromGateway = gatewayUser(header, proxies);
  return (req: Request, res: Response, next: NextFunction) => {
    const userId = fromGateway(req);
    if (!userId) {
      const from = normalizeAddress(req.socket.remoteAddress ?? '');
      logger.warn('security: request refused by trusted-proxy mode', { from, header: req.headers[header] ? 'present' : 'missing' });
      res.status(401).set('WWW-Authenticate', 'Bearer error="invalid_token"').json({ error: 'invalid_token', error_description: `Requests must come through the trusted gateway, which sets ${header}.` });
      return;
    }
    req.auth = {
      token: '',
      clientId: 'trusted-proxy',
      scopes: [],
      expiresAt: Math.floor(Date.now() / 1000) + 300,
      extra: { user: { kind: 'userId', userId } } satisfies CallerExtra,
    };
    next();
  };
}

/** The user id a trusted gateway vouches for: its header, only on requests from its addresses. */
export function gatewayUser(header: string, proxies: string[]): (req: Request) => string | undefined {
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
