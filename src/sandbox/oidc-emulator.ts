/**
 * An OpenID Connect identity provider for the sandbox: the stand-in for Alibaba Cloud's own OAuth
 * (or any OIDC provider registered on the workload identity). It serves discovery (OpenID Connect
 * Discovery 1.0, and RFC 8414 for MCP clients), a JWKS with key rotation, a login page with test
 * users, the authorization-code grant with PKCE (RFC 7636, S256 only), refresh tokens, and dynamic
 * client registration (RFC 7591) so MCP clients can sign themselves in. Everything on 127.0.0.1.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { listen, shutdown } from './http.js';

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

interface SigningKey {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  jwk: JWK;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomBytes(8).toString('hex');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

export async function startOidcEmulator(options: OidcEmulatorOptions): Promise<OidcEmulator> {
  const users = options.users ?? DEFAULT_OIDC_USERS;
  const clients = new Map((options.clients ?? []).map((c) => [c.clientId, c]));
  const ttl = options.tokenTtlSeconds ?? 3600;
  const keys: SigningKey[] = [await newKey()];
  const foreign = await newKey();
  const loginRequests = new Map<string, { clientId: string; redirectUri: string; state?: string; challenge: string; nonce?: string; scope: string; expiresAt: number }>();
  const codes = new Map<string, { clientId: string; redirectUri: string; challenge: string; nonce?: string; sub: string; scope: string; expiresAt: number }>();
  const refreshTokens = new Map<string, { clientId: string; sub: string; scope: string }>();
  const hits = new Map<string, number>();
  let issuer = '';

  const sign = (claims: Record<string, unknown>, key: SigningKey, expiresIn: number) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
      .sign(key.privateKey);

  const current = () => keys[keys.length - 1]!;

  const mintAccessToken = (m: MintOptions) =>
    sign(
      { iss: m.iss ?? issuer, sub: m.sub, aud: m.aud ?? options.audience, scope: 'openid', client_id: m.clientId ?? 'sandbox-client', jti: randomBytes(8).toString('hex') },
      m.foreignKey ? foreign : current(),
      m.expiresIn ?? ttl,
    );

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => json(res, 500, { error: 'server_error', error_description: (e as Error).message }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer);
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    if (req.method === 'GET' && (url.pathname === '/.well-known/openid-configuration' || url.pathname === '/.well-known/oauth-authorization-server')) {
      return json(res, 200, {
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
    if (req.method === 'GET' && url.pathname === '/jwks') return json(res, 200, { keys: keys.map((k) => k.jwk) });
    if (req.method === 'POST' && url.pathname === '/register') {
      const body = JSON.parse((await readBody(req)) || '{}') as { redirect_uris?: unknown };
      const redirectUris = Array.isArray(body.redirect_uris) ? body.redirect_uris.filter((u): u is string => typeof u === 'string') : [];
      if (redirectUris.length === 0) return json(res, 400, { error: 'invalid_redirect_uri', error_description: 'redirect_uris is required' });
      const clientId = `dcr-${randomBytes(8).toString('hex')}`;
      clients.set(clientId, { clientId, redirectUris });
      return json(res, 201, { ...body, client_id: clientId, client_id_issued_at: Math.floor(Date.now() / 1000), token_endpoint_auth_method: 'none', redirect_uris: redirectUris });
    }
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const q = url.searchParams;
      const client = clients.get(q.get('client_id') ?? '');
      const redirectUri = q.get('redirect_uri') ?? '';
      if (!client || !client.redirectUris.includes(redirectUri)) return page(res, 400, 'Invalid request', '<p>Unknown client or unregistered redirect_uri.</p>');
      if (q.get('response_type') !== 'code') return redirectError(res, redirectUri, 'unsupported_response_type', q.get('state'));
      if (!q.get('code_challenge') || q.get('code_challenge_method') !== 'S256') return redirectError(res, redirectUri, 'invalid_request', q.get('state'), 'PKCE with S256 is required');
      const id = randomBytes(12).toString('base64url');
      loginRequests.set(id, { clientId: client.clientId, redirectUri, state: q.get('state') ?? undefined, challenge: q.get('code_challenge')!, nonce: q.get('nonce') ?? undefined, scope: q.get('scope') ?? 'openid', expiresAt: Date.now() + 600_000 });
      const options = users.map((u) => `<option value="${esc(u.sub)}">${esc(u.name)} (${esc(u.sub)})</option>`).join('');
      return page(res, 200, 'Sign in (sandbox identity provider)', `<p>Signing in to <b>${esc(client.clientId)}</b>.</p>
<form method="post" action="/authorize/decision"><input type="hidden" name="login_request" value="${esc(id)}">
<label>Account <select name="sub">${options}</select></label> <button type="submit" name="decision" value="allow">Sign in</button></form>`);
    }
    if (req.method === 'POST' && url.pathname === '/authorize/decision') {
      const form = new URLSearchParams(await readBody(req));
      const request = loginRequests.get(form.get('login_request') ?? '');
      loginRequests.delete(form.get('login_request') ?? '');
      if (!request || request.expiresAt < Date.now()) return page(res, 400, 'Sign-in expired', '<p>Start again.</p>');
      const user = users.find((u) => u.sub === form.get('sub'));
      if (!user) return page(res, 400, 'Unknown account', '<p>Choose one of the listed accounts.</p>');
      const code = randomBytes(16).toString('base64url');
      codes.set(code, { clientId: request.clientId, redirectUri: request.redirectUri, challenge: request.challenge, nonce: request.nonce, sub: user.sub, scope: request.scope, expiresAt: Date.now() + 120_000 });
      const to = new URL(request.redirectUri);
      to.searchParams.set('code', code);
      if (request.state) to.searchParams.set('state', request.state);
      res.writeHead(302, { location: to.toString() }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(await readBody(req));
      const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const [basicId, basicSecret] = basic ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent) : [];
      const clientId = basicId ?? form.get('client_id') ?? '';
      const client = clients.get(clientId);
      const secret = basicSecret ?? form.get('client_secret') ?? undefined;
      if (!client || (client.clientSecret !== undefined && client.clientSecret !== secret)) return json(res, 401, { error: 'invalid_client' });
      const grant = form.get('grant_type');
      let sub: string;
      let scope: string;
      let nonce: string | undefined;
      if (grant === 'authorization_code') {
        const code = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        if (!code || code.expiresAt < Date.now() || code.clientId !== clientId || code.redirectUri !== form.get('redirect_uri')) return json(res, 400, { error: 'invalid_grant' });
        const verifier = form.get('code_verifier') ?? '';
        if (createHash('sha256').update(verifier).digest('base64url') !== code.challenge) return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
        ({ sub, scope, nonce } = code);
      } else if (grant === 'refresh_token') {
        const stored = refreshTokens.get(form.get('refresh_token') ?? '');
        refreshTokens.delete(form.get('refresh_token') ?? '');
        if (!stored || stored.clientId !== clientId) return json(res, 400, { error: 'invalid_grant' });
        ({ sub, scope } = stored);
      } else {
        return json(res, 400, { error: 'unsupported_grant_type' });
      }
      const refresh = randomBytes(24).toString('base64url');
      refreshTokens.set(refresh, { clientId, sub, scope });
      return json(res, 200, {
        access_token: await mintAccessToken({ sub, clientId }),
        id_token: await sign({ iss: issuer, sub, aud: clientId, ...(nonce ? { nonce } : {}), name: users.find((u) => u.sub === sub)?.name }, current(), ttl),
        token_type: 'Bearer',
        expires_in: ttl,
        refresh_token: refresh,
        scope,
      });
    }
    json(res, 404, { error: 'not_found' });
  }

  issuer = await listen(server, options.host, options.port);

  return {
    get issuer() {
      return issuer;
    },
    users,
    mintAccessToken,
    async rotateKey() {
      keys.push(await newKey());
    },
    registerClient: (client) => void clients.set(client.clientId, client),
    hits,
    close: () => shutdown(server),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

function page(res: ServerResponse, status: number, title: string, html: string): void {
  res
    .writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" })
    .end(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${html}</body></html>`);
}

function redirectError(res: ServerResponse, redirectUri: string, error: string, state: string | null, description?: string): void {
  const to = new URL(redirectUri);
  to.searchParams.set('error', error);
  if (description) to.searchParams.set('error_description', description);
  if (state) to.searchParams.set('state', state);
  res.writeHead(302, { location: to.toString() }).end();
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
