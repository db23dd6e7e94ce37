/**
 * The browser side of an authorization session: `GET /oauth2/authorize?request_uri=<SessionURI>` sends the
 * user on to the provider's consent page, and `GET /oauth2/callback/<id>` takes the provider's answer, exchanges
 * the code and returns the user to `ResourceOAuth2ReturnURL?session_uri=…&state=<CustomState>`
 * (docs/reference/agent-identity.md §1.1).
 */
import type { ServerResponse } from 'node:http';
import { escapeHtml } from '../http.js';
import { providerToken } from './provider.js';
import type { AgentIdentityState } from './state.js';

export function sendPage(res: ServerResponse, status: number, title: string, text: string): void {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) });
  res.end(html);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location, 'content-length': 0 });
  res.end();
}

export function createConsentPages(state: AgentIdentityState) {
  function authorize(res: ServerResponse, url: URL): void {
    const requestUri = url.searchParams.get('request_uri') ?? '';
    const session = state.liveSession(requestUri);
    if (session?.status !== 'IN_PROGRESS') {
      sendPage(res, 400, 'Authorization failed', 'This authorization link is invalid or has expired.');
      return;
    }
    if (session.authorizeUsed) {
      sendPage(res, 400, 'Authorization failed', 'This authorization link has already been used.');
      return;
    }
    session.authorizeUsed = true;
    const provider = state.providers.get(session.providerName)!;
    const target = new URL(provider.authorizationEndpoint);
    target.searchParams.set('client_id', provider.clientId);
    target.searchParams.set('redirect_uri', state.callbackUrlFor(provider));
    target.searchParams.set('response_type', 'code');
    target.searchParams.set('scope', session.scopes.join(' '));
    target.searchParams.set('state', session.providerState);
    target.searchParams.set('prompt', 'consent');
    for (const [k, v] of Object.entries(session.customParameters)) target.searchParams.set(k, v);
    redirect(res, target.toString());
  }

  async function callback(res: ServerResponse, url: URL, callbackId: string): Promise<void> {
    const provider = state.providersByCallback.get(callbackId);
    if (!provider) {
      sendPage(res, 404, 'Not found', 'Unknown callback.');
      return;
    }
    const session = state.sessionByProviderState(url.searchParams.get('state') ?? '');
    if (!session || session.providerName !== provider.name || !state.liveSession(session.sessionUri)) {
      sendPage(res, 400, 'Authorization failed', 'The authorization session is invalid or has expired.');
      return;
    }
    if (session.callbackReceived || session.status !== 'IN_PROGRESS') {
      sendPage(res, 400, 'Authorization failed', 'This authorization has already been processed.');
      return;
    }
    session.callbackReceived = true;
    const back = new URL(session.returnUrl);
    const error = url.searchParams.get('error');
    const code = url.searchParams.get('authCode') ?? url.searchParams.get('code');
    let failure: string | undefined;
    if (error) {
      failure = /^[a-z_]{1,64}$/.test(error) ? error : 'access_denied';
    } else if (!code) {
      failure = 'invalid_request';
    } else {
      try {
        session.token = await providerToken(state, provider, { code });
      } catch {
        failure = 'server_error';
      }
    }
    if (failure) {
      // MODELED/UNVERIFIED: how Agent Identity reports a denied/failed consent to the return URL.
      session.status = 'FAILED';
      back.searchParams.set('error', failure);
    }
    back.searchParams.set('session_uri', session.sessionUri);
    if (session.customState !== undefined) back.searchParams.set('state', session.customState);
    redirect(res, back.toString());
  }

  return { authorize, callback };
}
