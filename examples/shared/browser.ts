/**
 * A scripted browser for the sandbox: follows an authorization link through our /connect page,
 * Agent Identity's redirect, DingTalk's consent page (submitting Allow or Deny as a person would),
 * Agent Identity's callback and finally our /callback page. Used by the tests and `npm run demo -- --yes`.
 * Only for the emulators: it refuses to leave loopback.
 */
export interface BrowserVisit {
  /** Every URL the browser landed on, in order. */
  trail: Array<{ url: string; status: number }>;
  /** The final page. */
  status: number;
  body: string;
  finalUrl: string;
}

export interface FollowOptions {
  decision?: 'allow' | 'deny';
  /** Which emulated DingTalk account is "signed in" in this browser. */
  unionId?: string;
  /** HTTP mode: which account to choose on the emulated identity provider's sign-in page. */
  oidcSub?: string;
  /** Cookies to send (issue 3's same-user check uses a cookie); filled in as the browser goes. */
  cookies?: Map<string, string>;
  /** On our page before DingTalk: 'continue' (default) or 'cancel' ("This was not me / Cancel"). */
  interstitial?: 'continue' | 'cancel';
  /** Stop before visiting a URL that starts with this (tests: hold a callback in hand). */
  stopAt?: string;
  maxHops?: number;
}

export async function followAuthorizationLink(link: string, options: FollowOptions = {}): Promise<BrowserVisit> {
  const cookies = options.cookies ?? new Map<string, string>();
  const trail: BrowserVisit['trail'] = [];
  let url = link;
  let init: RequestInit = { method: 'GET' };
  for (let hop = 0; hop < (options.maxHops ?? 20); hop++) {
    assertLoopback(url);
    if (options.stopAt && url.startsWith(options.stopAt)) return { trail, status: 0, body: '', finalUrl: url };
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), ...cookieHeader(cookies) } });
    remember(cookies, res);
    trail.push({ url, status: res.status });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      url = new URL(location, url).toString();
      init = { method: 'GET' };
      continue;
    }
    const body = await res.text();
    const login = signInForm(body, url);
    if (login && res.status === 200) {
      const fields = new URLSearchParams({ login_request: login.loginRequest, decision: 'allow', sub: options.oidcSub ?? login.firstSub ?? '' });
      url = login.action;
      init = { method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      continue;
    }
    // Our page before DingTalk: click "Continue to DingTalk" (or Cancel), as a person would.
    const step = interstitialLink(body, url, options.interstitial ?? 'continue');
    if (step && res.status === 200) {
      url = step;
      init = { method: 'GET' };
      continue;
    }
    const form = consentForm(body, url);
    if (form && res.status === 200) {
      const fields = new URLSearchParams({ consent_request: form.consentRequest, decision: options.decision ?? 'allow' });
      fields.set('unionId', options.unionId ?? form.firstUnionId ?? '');
      url = form.action;
      init = { method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      continue;
    }
    return { trail, status: res.status, body, finalUrl: url };
  }
  throw new Error(`more than ${options.maxHops ?? 20} hops following ${link}`);
}

/** The link to follow on our interstitial page (/connect/<id>), if this page is one. */
function interstitialLink(html: string, pageUrl: string, choice: 'continue' | 'cancel'): string | undefined {
  const text = choice === 'continue' ? 'Continue to DingTalk' : 'This was not me / Cancel';
  const href = new RegExp(`<a href="([^"]+)"[^>]*>${text}</a>`).exec(html)?.[1];
  return href ? new URL(decodeEntities(href), pageUrl).toString() : undefined;
}

/** The emulated DingTalk consent form, if this page is one. */
function consentForm(html: string, pageUrl: string): { action: string; consentRequest: string; firstUnionId?: string } | undefined {
  const action = /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(html)?.[1];
  const consentRequest = /name="consent_request" value="([^"]+)"/.exec(html)?.[1];
  if (!action || !consentRequest) return undefined;
  const firstUnionId = /<select name="unionId">\s*<option value="([^"]+)"/.exec(html)?.[1];
  return {
    action: new URL(decodeEntities(action), pageUrl).toString(),
    consentRequest: decodeEntities(consentRequest),
    firstUnionId: firstUnionId && decodeEntities(firstUnionId),
  };
}

/** The emulated identity provider's sign-in form, if this page is one. */
function signInForm(html: string, pageUrl: string): { action: string; loginRequest: string; firstSub?: string } | undefined {
  const action = /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(html)?.[1];
  const loginRequest = /name="login_request" value="([^"]+)"/.exec(html)?.[1];
  if (!action || !loginRequest) return undefined;
  const firstSub = /<select name="sub">\s*<option value="([^"]+)"/.exec(html)?.[1];
  return {
    action: new URL(decodeEntities(action), pageUrl).toString(),
    loginRequest: decodeEntities(loginRequest),
    firstSub: firstSub && decodeEntities(firstSub),
  };
}

function decodeEntities(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
    throw new Error(`the scripted browser only visits loopback addresses, not ${host}`);
  }
}

function cookieHeader(cookies: Map<string, string>): Record<string, string> {
  if (cookies.size === 0) return {};
  return { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
}

function remember(cookies: Map<string, string>, res: Response): void {
  for (const line of res.headers.getSetCookie?.() ?? []) {
    const [pair] = line.split(';');
    const eq = pair?.indexOf('=') ?? -1;
    if (pair && eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
}
