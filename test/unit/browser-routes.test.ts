/**
 * The browser routes (/connect/<id>, /callback) in process against the emulated Agent Identity, as both transports
 * mount them (src/http/app.ts, src/local/pages-host.ts): a link opened twice leads to a working consent page each
 * time, only the newest session completes the authorization, and the call waiting on it then completes.
 */
import type { Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { browserRoutes } from '../../src/browser/routes.js';
import { loadConfig, type Config } from '../../src/config.js';
import { SIGN_IN_EXPIRED } from '../../src/authorization/pending.js';
import { AgentIdentityError, type IdentityBroker, type UserIdentity } from '../../src/identity/types.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';

let sandbox: Sandbox;
let config: Config;
let runtime: Runtime;
let server: Server;
let base: string;
const logs: string[] = [];
/** Set by a test: how Agent Identity answers the fresh-session request of a link opened again. */
let freshSessionFault: Error | undefined;

beforeAll(async () => {
  base = `http://127.0.0.1:${await freePort()}`;
  sandbox = await startSandbox({ callbackUrl: `${base}/callback` });
  config = loadConfig({
    argv: [],
    env: { ...sandbox.serverEnv(base), DINGTALK_MCP_STATE_SECRET: 'browser-routes-test-secret-0123456789abcdef' },
    cwd: '/nonexistent',
  });
  const logger = createLogger({ level: 'debug', write: (l) => logs.push(l) });
  runtime = createRuntime(config, { credential: sandbox.credential, logger });
  const app = express();
  app.use(
    browserRoutes({
      pending: runtime.pending,
      state: runtime.state,
      broker: faultyOnFreshSession(runtime.broker),
      callbackUrl: config.callbackUrl,
      serverName: 'agent-identity-dingtalk-mcp',
      logger,
    }),
  );
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(Number(new URL(base).port), '127.0.0.1', () => resolve(s));
  });
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await runtime?.close();
  await sandbox?.close();
});

/** The runtime's broker, except that a fresh session (ForceAuthentication) fails with `freshSessionFault` when one is set. */
function faultyOnFreshSession(broker: IdentityBroker): IdentityBroker {
  return Object.assign(Object.create(broker) as IdentityBroker, {
    getDingTalkToken: (user: UserIdentity, options: Parameters<IdentityBroker['getDingTalkToken']>[1]) =>
      freshSessionFault && options.forceAuthentication ? Promise.reject(freshSessionFault) : broker.getDingTalkToken(user, options),
  });
}

/** What the ladder does when consent is needed: a session from Agent Identity, a pending entry, a call waiting on it. */
async function startAuthorization(userId: string) {
  const user: UserIdentity = { kind: 'userId', userId };
  const id = runtime.pending.newId();
  const { state, tag } = runtime.state.sign(id, Date.now() + config.authTimeoutSeconds * 1000);
  const outcome = await runtime.broker.getDingTalkToken(user, { returnUrl: config.callbackUrl, customState: state });
  if (outcome.status !== 'authorization_required') throw new Error('expected a consent to be needed');
  await runtime.pending.add(id, user, { sessionUri: outcome.sessionUri, authorizationUrl: outcome.authorizationUrl, stateTag: tag });
  return { id, user, link: `${base}/connect/${id}`, waiting: runtime.pending.wait(id, 60_000) };
}

const stopAt = () => `${base}/callback`;
const page = async (url: string) => {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, body: await res.text() };
};

describe('a link pasted with a trailing slash', () => {
  it('is sent to the link itself, whose Continue then works', async () => {
    const { link, id } = await startAuthorization('trailing-slash-user');
    const res = await fetch(`${link}/`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(new URL(res.headers.get('location')!, `${link}/`).toString()).toBe(link);
    const visit = await followAuthorizationLink(`${link}/`, { stopAt: stopAt() });
    expect(visit.trail.map((hop) => new URL(hop.url).pathname)).toContain(`/connect/${id}/continue`);
    expect(new URL(visit.finalUrl).pathname).toBe('/callback');
  });
});

describe("a consent answer reaching a browser that is not the user's", () => {
  /** The same routes with a same-user check that refuses every callback, as HTTP mode does for a stranger's browser. */
  async function refusingRoutes(): Promise<{ url: string; close: () => Promise<void> }> {
    const app = express();
    app.use(
      browserRoutes({
        pending: runtime.pending,
        state: runtime.state,
        broker: runtime.broker,
        callbackUrl: config.callbackUrl,
        serverName: 'agent-identity-dingtalk-mcp',
        logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
        verifyBrowserUser: async (_req, res, _entry, stage) => {
          if (stage === 'connect') return true;
          res.status(403).send('not this browser');
          return false;
        },
      }),
    );
    const other = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const address = other.address() as { port: number };
    return { url: `http://127.0.0.1:${address.port}`, close: () => new Promise((r) => other.close(() => r())) };
  }

  it('retires that session: its callback then completes nothing, and a fresh visit of the link does', async () => {
    const stranger = await refusingRoutes();
    try {
      const { link } = await startAuthorization('retired-session-user');
      const answered = new URL((await followAuthorizationLink(link, { stopAt: stopAt() })).finalUrl);
      expect((await fetch(`${stranger.url}${answered.pathname}${answered.search}`)).status).toBe(403);
      expect(logs.join('\n')).toContain('a consent answer reached another browser; that session can no longer complete');
      const own = await page(answered.toString());
      expect(own.status).toBe(409);
      const again = await followAuthorizationLink(link);
      expect(again.body).toContain('DingTalk access granted');
    } finally {
      await stranger.close();
    }
  });

  it('a failure to retire it is logged (the refusal page is sent already)', async () => {
    const stranger = await refusingRoutes();
    const replace = runtime.pending.replaceSession.bind(runtime.pending);
    try {
      const { link } = await startAuthorization('retire-fails-user');
      const answered = new URL((await followAuthorizationLink(link, { stopAt: stopAt() })).finalUrl);
      runtime.pending.replaceSession = async () => {
        throw new Error('store blip');
      };
      expect((await fetch(`${stranger.url}${answered.pathname}${answered.search}`)).status).toBe(403);
      await new Promise((r) => setTimeout(r, 50));
      expect(logs.join('\n')).toContain('its session could not be retired');
    } finally {
      runtime.pending.replaceSession = replace;
      await stranger.close();
    }
  });
});

describe('Cancel racing a completion', () => {
  it('once a callback has claimed the authorization, Cancel says it is too late and does not end it as declined', async () => {
    const { link, id } = await startAuthorization('cancel-race-user');
    await new Promise((r) => setTimeout(r, 100)); // the waiting call's own first read is done
    // Cancel reads the authorization unclaimed; just then the approval's callback claims it (and is completing it).
    const get = runtime.pending.get.bind(runtime.pending);
    let claimed: string | undefined;
    runtime.pending.get = async (which: string) => {
      const entry = await get(which);
      if (which === id && claimed === undefined) {
        claimed = 'claiming';
        claimed = await runtime.pending.claimCallback(id);
      }
      return entry;
    };
    try {
      const res = await fetch(`${link}/cancel`);
      const body = await res.text();
      expect(claimed).toBe('claimed');
      expect(res.status).toBe(409);
      expect(body).toContain('Too late to cancel');
    } finally {
      runtime.pending.get = get;
    }
    expect((await runtime.pending.get(id))?.settlement).toBeUndefined();
  });
});

describe('an unexpected failure behind a page', () => {
  it('answers a plain 500 page, without a stack trace or the error text, and logs the error', async () => {
    const { link, id } = await startAuthorization('failing-page-user');
    await new Promise((r) => setTimeout(r, 100)); // the waiting call's own first read is done
    const get = runtime.pending.get.bind(runtime.pending);
    runtime.pending.get = async (which: string) => {
      if (which === id) throw new Error('EACCES: permission denied, open /home/someone/.local/state/x.rec');
      return get(which);
    };
    try {
      const res = await fetch(link);
      const body = await res.text();
      expect(res.status).toBe(500);
      expect(body).toContain('Something went wrong');
      expect(body).not.toContain('EACCES');
      expect(body).not.toMatch(/\bat .*\.(js|ts):\d+/);
      expect(logs.join('\n')).toContain('browser page failed');
      expect(logs.join('\n')).toContain('EACCES');
    } finally {
      runtime.pending.get = get;
    }
  });
});

describe('a link opened twice', () => {
  it('both visits reach a working DingTalk consent page; the older tab is refused clearly, the newest approval completes the waiting call', async () => {
    const auth = await startAuthorization('twice-user');
    // The first tab gets as far as DingTalk and the user chooses Deny there; Agent Identity sends that tab back to us…
    const first = await followAuthorizationLink(auth.link, { decision: 'deny', stopAt: stopAt() });
    expect(first.finalUrl.startsWith(`${base}/callback?`)).toBe(true);
    // …but meanwhile the same link was opened again (a refresh, another device): a fresh consent, not "already been used".
    const second = await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    expect(second.finalUrl.startsWith(`${base}/callback?`)).toBe(true);
    const sessionOf = (u: string) => new URL(u).searchParams.get('session_uri');
    expect(sessionOf(second.finalUrl)).not.toBe(sessionOf(first.finalUrl));

    // The older tab's answer belongs to a superseded session: refused, and it does not end the authorization.
    const stale = await page(first.finalUrl);
    expect(stale.status).toBe(409);
    expect(stale.body).toContain('A newer link was opened');
    expect(stale.body).toContain('Finish in the newest tab, or open the link from your assistant again.');
    expect((await runtime.pending.get(auth.id))?.settlement).toBeUndefined();

    const newest = await page(second.finalUrl);
    expect(newest.status).toBe(200);
    expect(newest.body).toContain('DingTalk access granted');
    expect(await auth.waiting).toBe('completed');
    const entry = await runtime.pending.get(auth.id);
    expect(entry?.sessionUri).toBe(sessionOf(second.finalUrl));
    const token = await runtime.broker.getDingTalkToken(auth.user, { returnUrl: config.callbackUrl, customState: 'x', sessionUri: entry!.sessionUri });
    expect(token.status).toBe('token');
    expect(sandbox.agentIdentity.vault.get('uid:twice-user')).toBeDefined();
  });

  it('a third visit works too, and once the authorization has finished the link says so', async () => {
    const auth = await startAuthorization('thrice-user');
    await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    const third = await followAuthorizationLink(auth.link);
    expect(third.status).toBe(200);
    expect(third.body).toContain('DingTalk access granted');
    expect(await auth.waiting).toBe('completed');
    const after = await page(auth.link);
    expect(after.status).toBe(410);
    expect(after.body).toContain('This authorization has already finished or expired.');
  });

  it('the fresh session is never logged with its URL or session', async () => {
    const auth = await startAuthorization('quiet-user');
    await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    const second = await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    const session = new URL(second.finalUrl).searchParams.get('session_uri')!;
    expect(logs.join('\n')).toContain('authorization link opened again: fresh session');
    expect(logs.join('\n')).not.toContain(session);
    expect(logs.join('\n')).not.toContain(auth.id);
  });
});

describe('a link opened again when Agent Identity cannot start a fresh session', () => {
  const refusal = (code: string, httpStatus?: number) =>
    new AgentIdentityError(`Agent Identity GetWorkloadAccessTokenForJWT failed: ${code}.`, code, 'GetWorkloadAccessTokenForJWT', 'req-1', httpStatus);
  const openAgain = async (userId: string, fault: Error) => {
    const auth = await startAuthorization(userId);
    await followAuthorizationLink(auth.link, { stopAt: stopAt() });
    freshSessionFault = fault;
    try {
      return { auth, again: await followAuthorizationLink(auth.link) };
    } finally {
      freshSessionFault = undefined;
    }
  };

  it("the user's token refused (InvalidUserToken): 410 saying the sign-in expired, and the waiting call ends at once", async () => {
    const { auth, again } = await openAgain('refused-token-user', refusal('InvalidUserToken.Expired', 400));
    expect(again.status).toBe(410);
    expect(again.body).toContain('Your sign-in to the assistant expired before DingTalk access was approved');
    expect(again.body).not.toContain('Reload this page');
    expect(await auth.waiting).toBe('failed');
    expect((await runtime.pending.get(auth.id))?.failureMessage).toBe(SIGN_IN_EXPIRED);
  });

  it('another refusal (403): 410 with what Agent Identity said; the waiting call ends with the same message', async () => {
    const { auth, again } = await openAgain('refused-user', refusal('Forbidden.NoPermission', 403));
    expect(again.status).toBe(410);
    expect(again.body).toContain('Agent Identity GetWorkloadAccessTokenForJWT failed: Forbidden.NoPermission. This link can no longer be used');
    expect(again.body).not.toContain('Reload this page');
    expect(await auth.waiting).toBe('failed');
    expect((await runtime.pending.get(auth.id))?.failureMessage).toContain('Forbidden.NoPermission');
  });

  it('a transient failure (503, throttling, the network): 502 "reload in a moment", and the authorization stays open', async () => {
    for (const [n, fault] of [
      refusal('ServiceUnavailable', 503),
      refusal('Throttling.User', 400),
      refusal('NetworkError'),
      new Error('socket hang up'),
    ].entries()) {
      const { auth, again } = await openAgain(`transient-user-${n}`, fault);
      expect(again.status).toBe(502);
      expect(again.body).toContain('Reload this page in a moment. Nothing was changed.');
      expect((await runtime.pending.get(auth.id))?.settlement).toBeUndefined();
      // The reload, once Agent Identity answers again, reaches a working consent and completes the waiting call.
      const reload = await followAuthorizationLink(auth.link);
      expect(reload.body).toContain('DingTalk access granted');
      expect(await auth.waiting).toBe('completed');
    }
  });
});
