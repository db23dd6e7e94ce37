/** The identity provider's replies: the sign-in form with the test users, error pages, error redirects, JSON. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { escapeHtml as esc, readBody, sendJson } from '../http.js';

/** JSON, never cached (token responses must not be: RFC 6749 §5.1). */
export const json = (res: ServerResponse, status: number, body: unknown) => sendJson(res, status, body, { 'cache-control': 'no-store' });

/** A form or JSON request body, at most 64 KiB. */
export const readText = async (req: IncomingMessage) => (await readBody(req, 64 * 1024)).toString('utf8');

export function page(res: ServerResponse, status: number, title: string, html: string): void {
  res
    .writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    })
    .end(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${html}</body></html>`);
}

/** The sign-in page: pick a test user (the scripted browser reads `login_request` and the first `sub`). */
export function signInPage(res: ServerResponse, clientId: string, loginRequest: string, users: ReadonlyArray<{ sub: string; name: string }>): void {
  const options = users.map((u) => `<option value="${esc(u.sub)}">${esc(u.name)} (${esc(u.sub)})</option>`).join('');
  page(
    res,
    200,
    'Sign in (sandbox identity provider)',
    `<p>Signing in to <b>${esc(clientId)}</b>.</p>
<form method="post" action="/authorize/decision"><input type="hidden" name="login_request" value="${esc(loginRequest)}">
<label>Account <select name="sub">${options}</select></label> <button type="submit" name="decision" value="allow">Sign in</button></form>`,
  );
}

/** RFC 6749 §4.1.2.1: authorization errors go back to the client's redirect URI. */
export function redirectError(res: ServerResponse, redirectUri: string, error: string, state: string | null, description?: string): void {
  const to = new URL(redirectUri);
  to.searchParams.set('error', error);
  if (description) to.searchParams.set('error_description', description);
  if (state) to.searchParams.set('state', state);
  res.writeHead(302, { location: to.toString() }).end();
}
