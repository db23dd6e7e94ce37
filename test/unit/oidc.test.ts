/**
 * src/http/oidc.ts's protocol steps (on oauth4webapi) against a small identity provider on 127.0.0.1 whose answers
 * each test chooses: what a sign-in refuses, and with which message.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isLoopbackUrl, OidcProvider } from '../../src/http/oidc.js';
import { silentLogger } from '../../src/log.js';

const CLIENT = 'web-client';
const REDIRECT = 'http://127.0.0.1:9/login/callback';

type Key = { privateKey: CryptoKey; jwk: JWK };
const newKey = async (kid: string): Promise<Key> => {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
};

/** The identity provider: discovery, JWKS, and a token endpoint answering with `tokenReply`. */
let server: Server;
let issuer: string;
let published: Key;
let unpublished: Key;
let discoveryIssuer: (issuer: string) => string;
/** Endpoints the discovery document names instead of its own. */
let discoveryOverrides: Record<string, string>;
let tokenReply: (form: URLSearchParams) => Promise<{ status: number; body: unknown }>;
let lastTokenForm: URLSearchParams | undefined;
let lastTokenAuthorization: string | undefined;

const idToken = (claims: Record<string, unknown>, key: Key = published, expiresIn = 300) =>
  new SignJWT({ iss: issuer, sub: 'alice-1001', aud: CLIENT, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.jwk.kid })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(key.privateKey);
const tokens = async (claims: Record<string, unknown>, key?: Key, expiresIn?: number) => ({
  status: 200,
  body: { access_token: 'at', token_type: 'Bearer', expires_in: 300, id_token: await idToken(claims, key, expiresIn) },
});

beforeAll(async () => {
  [published, unpublished] = await Promise.all([newKey('k1'), newKey('k2')]);
  server = createServer(async (req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/.well-known/openid-configuration')
      return reply(200, {
        issuer: discoveryIssuer(issuer),
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        ...discoveryOverrides,
      });
    if (req.url === '/jwks') return reply(200, { keys: [published.jwk] });
    if (req.url === '/token') {
      let text = '';
      for await (const chunk of req) text += chunk;
      lastTokenForm = new URLSearchParams(text);
      lastTokenAuthorization = req.headers.authorization;
      const { status, body } = await tokenReply(lastTokenForm);
      return reply(status, body);
    }
    reply(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));
beforeEach(() => {
  discoveryIssuer = (i) => i;
  discoveryOverrides = {};
  tokenReply = () => tokens({ nonce: 'n-1' });
  lastTokenForm = undefined;
  lastTokenAuthorization = undefined;
});

/** A sign-in started by `authorizationRequest`, finished with `overrides`. */
async function signIn(overrides: { state?: string; iss?: string; nonce?: string; clientSecret?: string } = {}) {
  const provider = new OidcProvider(issuer, silentLogger);
  const started = await provider.authorizationRequest(CLIENT, REDIRECT);
  const callback = new URLSearchParams({ code: 'code-1', state: overrides.state ?? started.state });
  if (overrides.iss) callback.set('iss', overrides.iss);
  return provider.authorizationCodeGrant({
    callback,
    expectedState: started.state,
    verifier: started.verifier,
    nonce: overrides.nonce ?? 'n-1',
    clientId: CLIENT,
    clientSecret: overrides.clientSecret,
    redirectUri: REDIRECT,
  });
}

describe('discovery', () => {
  it('plain http is refused for an issuer that is not loopback, with a message naming the fix', async () => {
    const provider = new OidcProvider('http://idp.example.com', silentLogger);
    await expect(provider.discover()).rejects.toMatchObject({
      name: 'OidcError',
      reason: 'unavailable',
      message:
        "The identity provider's issuer http://idp.example.com/.well-known/openid-configuration uses plain http, which is allowed only on loopback (127.0.0.1, ::1, localhost). Use its https:// URL.",
    });
  });

  it('loopback hosts are the only ones allowed plain http', () => {
    for (const url of ['http://127.0.0.1:8080', 'http://[::1]:8080', 'http://localhost:8080']) expect(isLoopbackUrl(url)).toBe(true);
    for (const url of ['http://idp.example.com', 'http://127.0.0.1.nip.io', 'http://[::2]', 'http://10.0.0.1']) expect(isLoopbackUrl(url)).toBe(false);
  });

  it('a document naming another issuer is refused (OpenID Connect Discovery §4.3)', async () => {
    discoveryIssuer = () => 'https://evil.example.com';
    await expect(new OidcProvider(issuer, silentLogger).discover()).rejects.toThrow(
      `The discovery document at ${issuer}/.well-known/openid-configuration names issuer "https://evil.example.com", not "${issuer}". Fix OIDC_ISSUER.`,
    );
  });

  it("a document naming a plain-http endpoint off loopback is refused: keys read in clear text could be an attacker's", async () => {
    for (const [name, value] of [
      ['jwks_uri', 'http://keys.example.com/jwks'],
      ['token_endpoint', 'http://idp.example.com/token'],
      ['authorization_endpoint', 'not a url'],
    ] as const) {
      discoveryOverrides = { [name]: value };
      await expect(new OidcProvider(issuer, silentLogger).discover()).rejects.toMatchObject({
        reason: 'unavailable',
        message: `The discovery document at ${issuer}/.well-known/openid-configuration names ${name} ${value}, which is not https (plain http is allowed only on loopback). Fix the identity provider's configuration.`,
      });
    }
    discoveryOverrides = { jwks_uri: 'https://keys.example.com/jwks', token_endpoint: `http://localhost:9/token` };
    await expect(new OidcProvider(issuer, silentLogger).discover()).resolves.toMatchObject({ jwks_uri: 'https://keys.example.com/jwks' });
  });

  it('an unreachable provider is `unavailable`, not a bad token', async () => {
    const provider = new OidcProvider('http://127.0.0.1:9', silentLogger);
    await expect(provider.discover()).rejects.toMatchObject({ reason: 'unavailable', message: expect.stringContaining('could not be read') });
  });
});

describe('authorization request', () => {
  it('sends PKCE S256 (the challenge is the verifier hashed), state, nonce and the openid scope', async () => {
    const started = await new OidcProvider(issuer, silentLogger).authorizationRequest(CLIENT, REDIRECT);
    const url = new URL(started.url);
    expect(`${url.origin}${url.pathname}`).toBe(`${issuer}/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      client_id: CLIENT,
      redirect_uri: REDIRECT,
      scope: 'openid',
      state: started.state,
      nonce: started.nonce,
      code_challenge: createHash('sha256').update(started.verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    expect(started.verifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
  });
});

describe('authorization-code grant', () => {
  it('redeems the code with the PKCE verifier and returns the verified claims', async () => {
    const { claims, tokens } = await signIn();
    expect(claims).toMatchObject({ sub: 'alice-1001', iss: issuer, aud: CLIENT, nonce: 'n-1' });
    expect(tokens.access_token).toBe('at');
    expect(Object.fromEntries(lastTokenForm!)).toMatchObject({ grant_type: 'authorization_code', code: 'code-1', redirect_uri: REDIRECT, client_id: CLIENT });
    expect(lastTokenForm!.get('code_verifier')).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
  });

  it('a callback whose state is not this sign-in’s is refused before the code is redeemed', async () => {
    await expect(signIn({ state: 'someone-elses' })).rejects.toThrow('This sign-in response does not belong to the sign-in started in this browser');
    expect(lastTokenForm).toBeUndefined();
  });

  it('a callback naming another issuer (RFC 9207) is refused', async () => {
    await expect(signIn({ iss: 'https://evil.example.com' })).rejects.toThrow('state or issuer mismatch');
    expect(lastTokenForm).toBeUndefined();
  });

  it('an ID token without this sign-in’s nonce is refused', async () => {
    await expect(signIn({ nonce: 'another' })).rejects.toThrow('The ID token does not carry the nonce of this sign-in.');
  });

  it('an ID token for another client (audience) is refused', async () => {
    tokenReply = () => tokens({ nonce: 'n-1', aud: 'other-client' });
    await expect(signIn()).rejects.toThrow('The ID token is not meant for this client (audience mismatch).');
  });

  it('an ID token from another issuer is refused', async () => {
    tokenReply = () => tokens({ nonce: 'n-1', iss: 'https://evil.example.com' });
    await expect(signIn()).rejects.toThrow('The ID token was issued by another identity provider.');
  });

  it('an expired ID token is refused', async () => {
    tokenReply = () => tokens({ nonce: 'n-1' }, published, -120);
    await expect(signIn()).rejects.toThrow('The ID token has expired.');
  });

  it('an ID token signed by a key the provider does not publish is refused: signatures are checked by our JWKS cache', async () => {
    // Every claim is right; oauth4webapi alone would accept it (no signature check in the code flow over TLS).
    tokenReply = () => tokens({ nonce: 'n-1' }, unpublished);
    await expect(signIn()).rejects.toMatchObject({
      reason: 'invalid_token',
      message: 'The token is signed with a key the identity provider does not publish.',
    });
  });

  it('a refusal by the token endpoint carries its error code and description', async () => {
    tokenReply = async () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'PKCE verification failed' } });
    await expect(signIn()).rejects.toMatchObject({
      reason: 'login_failed',
      message: 'The identity provider refused the sign-in (invalid_grant: PKCE verification failed).',
    });
  });

  it('a token response without an ID token says what to check', async () => {
    tokenReply = async () => ({ status: 200, body: { access_token: 'at', token_type: 'Bearer' } });
    await expect(signIn()).rejects.toThrow('The identity provider returned no ID token; is the `openid` scope allowed for this client?');
  });

  it('a confidential client authenticates with client_secret_basic', async () => {
    await signIn({ clientSecret: 's3cret' });
    // RFC 6749 §2.3.1: id and secret form-encoded, then base64; what the provider decodes is ours.
    const [id, secret] = Buffer.from(/^Basic (.+)$/.exec(lastTokenAuthorization ?? '')![1]!, 'base64')
      .toString()
      .split(':');
    expect([decodeURIComponent(id!), decodeURIComponent(secret!)]).toEqual([CLIENT, 's3cret']);
    expect(lastTokenForm!.get('client_secret')).toBeNull();
  });
});
