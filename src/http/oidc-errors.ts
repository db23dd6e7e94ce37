import * as oauth from 'oauth4webapi';

export class OidcError extends Error {
  constructor(
    message: string,
    readonly reason: 'invalid_token' | 'unavailable' | 'login_failed',
  ) {
    super(message);
    this.name = 'OidcError';
  }
}

type Step = { step: 'discovery'; url: string; issuer: string } | { step: 'token'; url: string; errorDescriptions: boolean };

/**
 * oauth4webapi's errors, as an OidcError a user can act on. Its own messages name its arguments
 * (`"response" body "issuer" property does not match…`), so each case gets ours.
 */
export function describeOidcLibraryError(e: unknown, at: Step): OidcError {
  if (e instanceof OidcError) return e;
  if (e instanceof oauth.OperationProcessingError && e.code === oauth.HTTP_REQUEST_FORBIDDEN) {
    return new OidcError(
      `The identity provider's ${at.step === 'discovery' ? 'issuer' : 'token endpoint'} ${at.url} uses plain http, which is allowed only on loopback (127.0.0.1, ::1, localhost). Use its https:// URL.`,
      'unavailable',
    );
  }
  return at.step === 'discovery' ? discoveryError(e, at.url, at.issuer) : tokenEndpointError(e, at.errorDescriptions);
}

function discoveryError(e: unknown, url: string, issuer: string): OidcError {
  if (e instanceof oauth.OperationProcessingError && e.code === oauth.JSON_ATTRIBUTE_COMPARISON) {
    const named = (e.cause as { body?: { issuer?: unknown } } | undefined)?.body?.issuer;
    return new OidcError(`The discovery document at ${url} names issuer "${String(named)}", not "${issuer}". Fix OIDC_ISSUER.`, 'unavailable');
  }
  const why = e instanceof oauth.OperationProcessingError && e.cause instanceof Response ? `HTTP ${e.cause.status}` : (e as Error).message;
  return new OidcError(`The identity provider's discovery document ${url} could not be read (${why}). Check OIDC_ISSUER and the network.`, 'unavailable');
}

function tokenEndpointError(e: unknown, errorDescriptions: boolean): OidcError {
  if (e instanceof oauth.ResponseBodyError) return refused(e.error, errorDescriptions ? e.error_description : undefined);
  if (e instanceof oauth.WWWAuthenticateChallengeError) return refused(e.cause[0]?.parameters.error ?? `HTTP ${e.status}`, undefined);
  if (e instanceof oauth.AuthorizationResponseError) return refused(e.error, errorDescriptions ? e.error_description : undefined);
  if (e instanceof oauth.OperationProcessingError) {
    const cause = e.cause as { claim?: string; parameters?: unknown; body?: Record<string, unknown> } | Response | undefined;
    if (cause instanceof Response) return refused(`HTTP ${cause.status}`, undefined);
    if (e.code === oauth.INVALID_RESPONSE && typeof cause?.body?.access_token === 'string' && cause.body.id_token === undefined) {
      // A nonce was sent, so oauth4webapi requires an ID token.
      return new OidcError('The identity provider returned no ID token; is the `openid` scope allowed for this client?', 'login_failed');
    }
    if (e.code === oauth.JWT_CLAIM_COMPARISON) {
      if (cause?.claim === 'nonce') return new OidcError('The ID token does not carry the nonce of this sign-in.', 'login_failed');
      if (cause?.claim === 'iss') return new OidcError('The ID token was issued by another identity provider.', 'login_failed');
      if (cause?.claim === 'aud' || cause?.claim === 'azp')
        return new OidcError('The ID token is not meant for this client (audience mismatch).', 'login_failed');
    }
    if (e.code === oauth.JWT_TIMESTAMP_CHECK) return new OidcError('The ID token has expired.', 'login_failed');
    if (e.code === oauth.INVALID_RESPONSE && cause && 'parameters' in cause) {
      // validateAuthResponse: the callback's state (or iss) is not this sign-in's.
      return new OidcError('This sign-in response does not belong to the sign-in started in this browser (state or issuer mismatch).', 'login_failed');
    }
    return new OidcError(`The identity provider's token response is not acceptable (${e.message}).`, 'login_failed');
  }
  if (e instanceof oauth.UnsupportedOperationError)
    return new OidcError(`The identity provider's token response is not supported (${e.message}).`, 'login_failed');
  return new OidcError(`The identity provider's token endpoint could not be reached (${(e as Error).message}).`, 'unavailable');
}

function refused(code: string, description: string | undefined): OidcError {
  // Text from the provider: printable, bounded.
  const clean = (s: string, n: number) => s.replace(/[^\w .,:;'()/-]/g, '').slice(0, n);
  return new OidcError(`The identity provider refused the sign-in (${clean(code, 60)}${description ? `: ${clean(description, 200)}` : ''}).`, 'login_failed');
}
