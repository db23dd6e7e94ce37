/**
 * An OpenID Connect identity provider for the sandbox: the stand-in for Alibaba Cloud's own OAuth
 * (or any OIDC provider registered on the workload identity). It serves discovery (OpenID Connect
 * Discovery 1.0, and RFC 8414 for MCP clients), a JWKS with key rotation, a login page with test
 * users, the authorization-code grant with PKCE (RFC 7636, S256 only), refresh tokens, and dynamic
 * client registration (RFC 7591) so MCP clients can sign themselves in. Everything on 127.0.0.1.
 *
 * Here: the routes and their state. Signing keys are ./keys.ts, the browser pages ./pages.ts, the token
 * endpoint's grants ./token.ts.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listen, shutdown } from '../http.js';
import { newKey, sign, type SigningKey } from './keys.js';
import { json, page, readText, redirectError, signInPage } from './pages.js';
import { tokenEndpoint, type IssuedCode, type RefreshGrant } from './token.js';

export interface OidcUser {
  sub: string;
  name: string;
}

export interface OidcClient {
  clientId: string;
  /** Confidential clients authenticate at /token; public clients (PKCE only) have none. */
  clientSecret?: string;
  redirectUris: string[];
}

export interface OidcEmulatorOptions {
  host?: string;
  port?: number;
  users?: OidcUser[];
  clients?: OidcClient[];
  /** The `aud` of access tokens (the API audience the MCP server expects). */
  audience: string;
  tokenTtlSeconds?: number;
}

export interface MintOptions {
  sub: string;
  aud?: string | string[];
  iss?: string;
  /** Seconds from now; negative for an already-expired token. */
  expiresIn?: number;
  /** Sign with a key the provider does not publish. */
  foreignKey?: boolean;
  clientId?: string;
}

export interface OidcEmulator {
  issuer: string;
  users: ReadonlyArray<OidcUser>;
  /** Mint an access token directly (what a client would get after signing in). */
  mintAccessToken(options: MintOptions): Promise<string>;
  /** Publish a new signing key and sign with it from now on (the old key stays published). */
  rotateKey(): Promise<void>;
  /** Simulate an outage: while set, discovery and/or the JWKS answer 503 (as a provider behind a failing load balancer does). */
  setOutage(outage: { discovery?: boolean; jwks?: boolean }): void;
  registerClient(client: OidcClient): void;
  /** Requests by path, for tests (e.g. how often the JWKS was fetched). */
  hits: Map<string, number>;
  close(): Promise<void>;
}

export const DEFAULT_OIDC_USERS: OidcUser[] = [
  { sub: 'alice-1001', name: 'Alice (sandbox)' },
  { sub: 'bob-2002', name: 'Bob (sandbox)' },
  { sub: 'carol-3003', name: 'Carol (sandbox)' },
  { sub: 'dave-4004', name: 'Dave (sandbox)' },
];

/** The provider's state, shared by its routes. */
export interface OidcProvider {
  issuer: string;
  users: ReadonlyArray<OidcUser>;
  clients: Map<string, OidcClient>;
  ttl: number;
  codes: Map<string, IssuedCode>;
  refreshTokens: Map<string, RefreshGrant>;
  mintAccessToken(options: MintOptions): Promise<string>;
  /** Sign with the current key. */
  sign(claims: Record<string, unknown>, expiresIn: number): Promise<string>;
}

interface LoginRequest {
  clientId: string;
  redirectUri: string;
  state?: string;
  challenge: string;
  nonce?: string;
  scope: string;
  expiresAt: number;
}

type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export async function startOidcEmulator(options: OidcEmulatorOptions): Promise<OidcEmulator> {
  const keys: SigningKey[] = [await newKey()];
  const foreign = await newKey();
  const current = () => keys[keys.length - 1]!;
  const loginRequests = new Map<string, LoginRequest>();
  const hits = new Map<string, number>();
  let outage: { discovery?: boolean; jwks?: boolean } = {};
  const down =
    (part: 'discovery' | 'jwks', route: Route): Route =>
    (req, res, url) =>
      outage[part]
        ? json(res, 503, { error: 'temporarily_unavailable', error_description: 'the identity provider is down (sandbox outage)' })
        : route(req, res, url);

  const provider: OidcProvider = {
    issuer: '',
    users: options.users ?? DEFAULT_OIDC_USERS,
    clients: new Map((options.clients ?? []).map((c) => [c.clientId, c])),
    ttl: options.tokenTtlSeconds ?? 3600,
    codes: new Map(),
    refreshTokens: new Map(),
    sign: (claims, expiresIn) => sign(claims, current(), expiresIn),
    mintAccessToken: (m) =>
      sign(
        {
          iss: m.iss ?? provider.issuer,
          sub: m.sub,
          aud: m.aud ?? options.audience,
          scope: 'openid',
          client_id: m.clientId ?? 'sandbox-client',
          jti: randomBytes(8).toString('hex'),
        },
        m.foreignKey ? foreign : current(),
        m.expiresIn ?? provider.ttl,
      ),
  };

  function discovery(_req: IncomingMessage, res: ServerResponse): void {
    const { issuer } = provider;
    json(res, 200, {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      registration_endpoint: `${issuer}/register`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post'],
      scopes_supported: ['openid', 'profile'],
    });
  }

  /** RFC 7591 dynamic client registration: public clients only. */
  async function register(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = JSON.parse((await readText(req)) || '{}') as { redirect_uris?: unknown };
    const redirectUris = Array.isArray(body.redirect_uris) ? body.redirect_uris.filter((u): u is string => typeof u === 'string') : [];
    if (redirectUris.length === 0) return json(res, 400, { error: 'invalid_redirect_uri', error_description: 'redirect_uris is required' });
    const clientId = `dcr-${randomBytes(8).toString('hex')}`;
    provider.clients.set(clientId, { clientId, redirectUris });
    json(res, 201, {
      ...body,
      client_id: clientId,
      client_id_issued_at: Math.floor(Date.now() / 1000),
      token_endpoint_auth_method: 'none',
      redirect_uris: redirectUris,
    });
  }

  function authorize(_req: IncomingMessage, res: ServerResponse, url: URL): void {
    const q = url.searchParams;
    const client = provider.clients.get(q.get('client_id') ?? '');
    const redirectUri = q.get('redirect_uri') ?? '';
    if (!client?.redirectUris.includes(redirectUri)) {
      page(res, 400, 'Invalid request', '<p>Unknown client or unregistered redirect_uri.</p>');
      return;
    }
    if (q.get('response_type') !== 'code') {
      redirectError(res, redirectUri, 'unsupported_response_type', q.get('state'));
      return;
    }
    if (!q.get('code_challenge') || q.get('code_challenge_method') !== 'S256') {
      redirectError(res, redirectUri, 'invalid_request', q.get('state'), 'PKCE with S256 is required');
      return;
    }
    const id = randomBytes(12).toString('base64url');
    loginRequests.set(id, {
      clientId: client.clientId,
      redirectUri,
      state: q.get('state') ?? undefined,
      challenge: q.get('code_challenge')!,
      nonce: q.get('nonce') ?? undefined,
      scope: q.get('scope') ?? 'openid',
      expiresAt: Date.now() + 600_000,
    });
    signInPage(res, client.clientId, id, provider.users);
  }

  /** The sign-in form's answer: a one-time code back to the client. */
  async function decision(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readText(req));
    const request = loginRequests.get(form.get('login_request') ?? '');
    loginRequests.delete(form.get('login_request') ?? '');
    if (!request || request.expiresAt < Date.now()) return page(res, 400, 'Sign-in expired', '<p>Start again.</p>');
    const user = provider.users.find((u) => u.sub === form.get('sub'));
    if (!user) return page(res, 400, 'Unknown account', '<p>Choose one of the listed accounts.</p>');
    const code = randomBytes(16).toString('base64url');
    provider.codes.set(code, {
      clientId: request.clientId,
      redirectUri: request.redirectUri,
      challenge: request.challenge,
      nonce: request.nonce,
      sub: user.sub,
      scope: request.scope,
      expiresAt: Date.now() + 120_000,
    });
    const to = new URL(request.redirectUri);
    to.searchParams.set('code', code);
    if (request.state) to.searchParams.set('state', request.state);
    res.writeHead(302, { location: to.toString() }).end();
  }

  const routes: Record<string, Route> = {
    'GET /.well-known/openid-configuration': down('discovery', discovery),
    'GET /.well-known/oauth-authorization-server': down('discovery', discovery),
    'GET /jwks': down('jwks', (_req, res) => json(res, 200, { keys: keys.map((k) => k.jwk) })),
    'POST /register': register,
    'GET /authorize': authorize,
    'POST /authorize/decision': decision,
    'POST /token': (req, res) => tokenEndpoint(provider, req, res),
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', provider.issuer);
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const route = Object.hasOwn(routes, `${req.method} ${url.pathname}`) ? routes[`${req.method} ${url.pathname}`] : undefined;
    if (route) await route(req, res, url);
    else json(res, 404, { error: 'not_found' });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => json(res, 500, { error: 'server_error', error_description: (e as Error).message }));
  });

  provider.issuer = await listen(server, options.host, options.port);

  return {
    get issuer() {
      return provider.issuer;
    },
    users: provider.users,
    mintAccessToken: provider.mintAccessToken,
    async rotateKey() {
      keys.push(await newKey());
    },
    setOutage: (o) => void (outage = { ...o }),
    registerClient: (client) => void provider.clients.set(client.clientId, client),
    hits,
    close: () => shutdown(server),
  };
}
