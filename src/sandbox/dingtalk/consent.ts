/**
 * DingTalk's user OAuth, as the emulator plays it (docs/dingtalk-api.md):
 *   - login.dingtalk.com GET /oauth2/auth: the consent page (the real one is an interactive login, not a
 *     public contract; POST /oauth2/auth/decision is the emulator's own form target);
 *   - api.dingtalk.com POST /v1.0/oauth2/userAccessToken (oauth2_1_0 GetUserToken).
 * Choices marked MODELED are not documented by DingTalk.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EmulatorState, UserTokenRecord } from './state.js';
import { escapeHtml, HttpError, page, readBody, readJson, sendHtml } from './wire.js';

const CONSENT_TTL_MS = 10 * 60_000; // MODELED
const AUTH_CODE_TTL_MS = 5 * 60_000; // MODELED: DingTalk's authCode lifetime is not documented

interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state: string | undefined;
  expiresAt: number;
}
interface AuthCode {
  clientId: string;
  redirectUri: string;
  unionId: string;
  scopes: string[];
  expiresAt: number;
}

export function createConsent(st: EmulatorState) {
  const consentRequests = new Map<string, ConsentRequest>();
  const authCodes = new Map<string, AuthCode>();
  const now = () => st.now();
  const apps = st.apps;
  const users = st.users;
  const refreshTokens = st.refreshTokens;
  const corpId = st.corpId;
  const issueTokens = (clientId: string, unionId: string, scopes: string[]) => st.issueUserTokens(clientId, unionId, scopes);
  type AccessTokenRecord = UserTokenRecord;

  /** docs/dingtalk-api.md step 2. Error codes other than invalidClientIdOrSecret are MODELED. */
  async function tokenEndpoint(req: IncomingMessage): Promise<Record<string, unknown>> {
    const body = await readJson(req);
    const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : undefined);
    const clientId = str('clientId');
    const clientSecret = str('clientSecret');
    const grantType = str('grantType');
    const app = clientId ? apps.get(clientId) : undefined;
    if (!app || clientSecret !== app.clientSecret) {
      throw new HttpError(400, 'invalidClientIdOrSecret', '无效的clientId或者clientSecret');
    }
    let record: AccessTokenRecord;
    if (grantType === 'authorization_code') {
      const code = str('code');
      if (!code) throw new HttpError(400, 'MissingParameter', '缺少参数：code'); // MODELED
      const entry = authCodes.get(code);
      authCodes.delete(code); // single use, even when it is rejected below
      if (!entry || entry.expiresAt <= now() || entry.clientId !== app.clientId) {
        throw new HttpError(400, 'invalidAuthCode', '不合法的临时授权码'); // MODELED
      }
      record = { clientId: entry.clientId, unionId: entry.unionId, scopes: entry.scopes, expiresAt: 0 };
    } else if (grantType === 'refresh_token') {
      const refreshToken = str('refreshToken');
      if (!refreshToken) throw new HttpError(400, 'MissingParameter', '缺少参数：refreshToken'); // MODELED
      const entry = refreshTokens.get(refreshToken);
      if (!entry || entry.expiresAt <= now() || entry.clientId !== app.clientId) {
        throw new HttpError(400, 'invalidRefreshToken', '不合法的refreshToken'); // MODELED
      }
      refreshTokens.delete(refreshToken); // rotation (docs/dingtalk-api.md: appears to rotate; UNVERIFIED)
      record = entry;
    } else {
      throw new HttpError(400, 'invalidGrantType', 'grantType must be authorization_code or refresh_token'); // MODELED
    }
    const tokens = issueTokens(record.clientId, record.unionId, record.scopes);
    const out: Record<string, unknown> = { ...tokens };
    if (record.scopes.includes('corpid')) out['corpId'] = corpId;
    return out;
  }

  /** docs/dingtalk-api.md step 1. Invalid requests never redirect (the redirect_uri is not trusted yet): 400 page. */
  function authorizePage(res: ServerResponse, url: URL): number {
    const q = url.searchParams;
    const clientId = q.get('client_id');
    const redirectUri = q.get('redirect_uri');
    const bad = (msg: string) => {
      sendHtml(res, 400, page('授权请求无效 · Invalid authorization request', `<p>${escapeHtml(msg)}</p>`));
      return 400;
    };
    if (!clientId) return bad('Missing client_id.');
    const app = apps.get(clientId);
    if (!app) return bad(`Unknown client_id "${clientId}": no such DingTalk app.`);
    if (!redirectUri) return bad('Missing redirect_uri.');
    if (!app.redirectUris.includes(redirectUri)) {
      return bad(`redirect_uri "${redirectUri}" is not registered for this app (安全设置 → 重定向URL; exact match).`);
    }
    if (q.get('response_type') !== 'code') return bad('response_type must be "code".');
    const scopes = (q.get('scope') ?? '').split(/[\s,]+/).filter(Boolean);
    if (!scopes.includes('openid')) return bad('scope must contain "openid".');
    if (q.get('prompt') !== 'consent') return bad('prompt must be "consent" (固定填写 consent).');

    const id = randomBytes(18).toString('base64url');
    const state = q.get('state') ?? undefined;
    consentRequests.set(id, { clientId, redirectUri, scopes, state, expiresAt: now() + CONSENT_TTL_MS });

    const options = [...users.values()]
      .map((u) => `<option value="${escapeHtml(u.unionId)}">${escapeHtml(u.nick)} (${escapeHtml(u.unionId)})</option>`)
      .join('');
    const body = `
<p>应用 <strong>${escapeHtml(app.name ?? app.clientId)}</strong> 申请访问你的钉钉账号<br>
The app <strong>${escapeHtml(app.name ?? app.clientId)}</strong> asks to access your DingTalk account.</p>
<p>Requested scopes:</p>
<ul>${scopes.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('')}</ul>
<form method="post" action="/oauth2/auth/decision">
  <input type="hidden" name="consent_request" value="${escapeHtml(id)}">
  <label>Which DingTalk account is signed in in this browser:
    <select name="unionId">${options}</select>
  </label>
  <p>
    <button type="submit" name="decision" value="allow">同意授权 · Allow</button>
    <button type="submit" name="decision" value="deny">拒绝 · Deny</button>
  </p>
</form>
<p class="note">DingTalk emulator (sandbox). Redirects to ${escapeHtml(redirectUri)}</p>`;
    sendHtml(res, 200, page('钉钉授权 · DingTalk authorization (emulator)', body));
    return 200;
  }

  async function decision(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const bad = (msg: string) => {
      sendHtml(res, 400, page('授权请求无效 · Invalid authorization request', `<p>${escapeHtml(msg)}</p>`));
      return 400;
    };
    let form: URLSearchParams;
    try {
      form = new URLSearchParams((await readBody(req)).toString('utf8'));
    } catch {
      return bad('Could not read the form.');
    }
    const id = form.get('consent_request') ?? '';
    const consent = consentRequests.get(id);
    consentRequests.delete(id); // single use
    if (!consent || consent.expiresAt <= now()) {
      return bad('This authorization request is unknown, was already answered, or has expired. Start again from the app.');
    }
    const choice = form.get('decision');
    const target = new URL(consent.redirectUri);
    if (choice === 'deny') {
      target.searchParams.set('error', 'access_denied');
    } else if (choice === 'allow') {
      const unionId = form.get('unionId') ?? '';
      if (!users.has(unionId)) return bad('Unknown DingTalk account.');
      const code = randomBytes(16).toString('hex');
      authCodes.set(code, {
        clientId: consent.clientId,
        redirectUri: consent.redirectUri,
        unionId,
        scopes: consent.scopes,
        expiresAt: now() + AUTH_CODE_TTL_MS,
      });
      target.searchParams.set('authCode', code); // docs/dingtalk-api.md: the parameter is `authCode`
    } else {
      return bad('decision must be "allow" or "deny".');
    }
    if (consent.state !== undefined) target.searchParams.set('state', consent.state);
    res.writeHead(302, { location: target.toString(), 'cache-control': 'no-store', 'content-length': '0' });
    res.end();
    return 302;
  }
  return { authorizePage, decision, tokenEndpoint };
}
