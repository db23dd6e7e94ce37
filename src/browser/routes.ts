import express, { type Request, type Response } from 'express';
import { CANCELLED_ON_PAGE, SIGN_IN_EXPIRED, type PendingAuthorization, type PendingAuthorizations } from '../authorization/pending.js';
import { newStateTag, SignedState } from '../authorization/signed-state.js';
import { jwtExpiryMs } from '../identity/broker.js';
import { AgentIdentityError, type DingTalkTokenOutcome, type IdentityBroker, type UserIdentity } from '../identity/types.js';
import { StoreUnavailableError } from '../state/types.js';
import type { Logger } from '../log.js';
import { sendPage, sendPageWithLinks, setPageSecurityHeaders } from './pages.js';

export interface BrowserRoutesDeps {
  pending: PendingAuthorizations;
  state: SignedState;
  broker: IdentityBroker;
  /** Our `<APP_REDIRECT_URI>/callback`: the return URL of a fresh session for a link opened again. */
  callbackUrl: string;
  /** Named on the page before consent: which server the user connects DingTalk to. */
  serverName: string;
  logger: Logger;
  /**
   * Same-user check for multi-user deployments (docs/architecture.md decision 5): may answer the request itself
   * (e.g. start a login) and return false. On stdio the callback listens on loopback only and the
   * pending id is unguessable and single-use, so no check is installed.
   */
  verifyBrowserUser?: (req: Request, res: Response, entry: PendingAuthorization, stage: 'connect' | 'callback') => Promise<boolean>;
}

const GONE = 'Go back to your assistant and ask it to try again: it will give you a new link.';
const SUPERSEDED = 'Finish in the newest tab, or open the link from your assistant again.';
const RETIRED = 'Open the link from your assistant again to approve in this browser.';

type FreshSession = { ok: true; authorizationUrl: string } | { ok: false; status: number; title: string; text: string; next: string };

/**
 * A new Agent Identity session for the same pending authorization and the same user: the ladder's request
 * (GetResourceOAuth2Token, USER_FEDERATION, our return URL, the entry's signed state), with ForceAuthentication so
 * a consent page is made even when the vault holds a token DingTalk refused. The entry then names the new session.
 * A failure no reload can mend (the user's sign-in expired, a refusal by Agent Identity) ends the authorization, so
 * the waiting call says what happened instead of waiting on a link that can no longer complete.
 */
async function freshSession(deps: BrowserRoutesDeps, entry: PendingAuthorization): Promise<FreshSession> {
  // HTTP mode: the user is the MCP client's JWT, and Agent Identity refuses it once expired (InvalidUserToken).
  if (signInExpired(entry.user)) return giveUp(deps, entry, SIGN_IN_EXPIRED);
  let outcome: DingTalkTokenOutcome;
  // This session's own state: its tag replaces the older session's in the record, so only this session's callback completes.
  const signed = deps.state.sign(entry.id, entry.expiresAt);
  try {
    outcome = await deps.broker.getDingTalkToken(entry.user, {
      returnUrl: deps.callbackUrl,
      customState: signed.state,
      forceAuthentication: true,
    });
  } catch (e) {
    const message = e instanceof AgentIdentityError ? e.message : 'Agent Identity could not be reached.';
    deps.logger.error('GetResourceOAuth2Token for a link opened again failed', { error: message });
    if (e instanceof AgentIdentityError && !isTransient(e)) return giveUp(deps, entry, e.code.startsWith('InvalidUserToken') ? SIGN_IN_EXPIRED : message);
    return { ok: false, status: 502, title: 'Consent page not available', text: message, next: 'Reload this page in a moment. Nothing was changed.' };
  }
  if (outcome.status !== 'authorization_required') {
    return { ok: false, status: 502, title: 'Consent page not available', text: 'Agent Identity did not start a new consent.', next: GONE };
  }
  if (!(await deps.pending.replaceSession(entry.id, outcome.sessionUri, outcome.authorizationUrl, signed.tag))) {
    return { ok: false, status: 410, title: 'Link already used', text: 'This authorization has already finished or expired.', next: GONE };
  }
  deps.logger.info('authorization link opened again: fresh session', { pending: entry.id.slice(0, 6) });
  return { ok: true, authorizationUrl: outcome.authorizationUrl };
}

/** Settle the authorization as failed (the waiting call returns `reason`) and say the same on the page. */
async function giveUp(deps: BrowserRoutesDeps, entry: PendingAuthorization, reason: string): Promise<FreshSession> {
  await deps.pending.settle(entry.id, 'failed', reason);
  deps.logger.info('authorization link opened again: it can no longer complete', {
    pending: entry.id.slice(0, 6),
    why: reason === SIGN_IN_EXPIRED ? 'sign-in expired' : 'refused by Agent Identity',
  });
  if (reason === SIGN_IN_EXPIRED) {
    return {
      ok: false,
      status: 410,
      title: 'Sign-in expired',
      text: 'Your sign-in to the assistant expired before DingTalk access was approved, so this link can no longer be used. Nothing was changed.',
      next: 'Go back to your assistant and ask it to call the tool again (it may ask you to sign in again first): it will give you a new link.',
    };
  }
  return { ok: false, status: 410, title: 'Consent page not available', text: `${reason} This link can no longer be used; nothing was changed.`, next: GONE };
}

/** A JWT user whose token's `exp` has passed (no signature check: the token was verified when the call came in). */
function signInExpired(user: UserIdentity, now = Date.now()): boolean {
  if (user.kind !== 'jwt') return false;
  const exp = jwtExpiryMs(user.jwt);
  return exp !== undefined && exp <= now;
}

/** Worth a reload: the network, Agent Identity's own trouble (5xx), throttling, credentials not found this moment. */
function isTransient(e: AgentIdentityError): boolean {
  return (
    e.code === 'NetworkError' || e.code === 'CredentialsUnavailable' || e.code.startsWith('Throttling') || (e.httpStatus !== undefined && e.httpStatus >= 500)
  );
}

/**
 * The browser side of an authorization (docs/architecture.md decision 4): `/connect/:id` (our link: a page naming who
 * connects, what for and to which server), `/connect/:id/continue` (to Agent Identity's consent, a fresh session
 * when opened again), `/connect/:id/cancel` (settles it denied) and `/callback` (where Agent Identity sends the browser back).
 */
export function browserRoutes(deps: BrowserRoutesDeps): express.Router {
  const router = express.Router();
  const { pending, logger } = deps;

  /** The entry when it can still be approved; otherwise the page that says why not (and undefined). */
  const open = async (req: Request, res: Response): Promise<PendingAuthorization | undefined> => {
    const entry = await pending.get(String(req.params.id));
    if (!entry) return void sendPage(res, 404, 'Link not found', 'This authorization link is unknown or has expired.', GONE);
    if (entry.settlement) return void sendPage(res, 410, 'Link already used', 'This authorization has already finished or expired.', GONE);
    if (entry.callbackConsumed) {
      return void sendPage(res, 409, 'Approval in progress', 'DingTalk access for this link is being completed right now.', nextStep(entry));
    }
    if (deps.verifyBrowserUser && !(await deps.verifyBrowserUser(req, res, entry, 'connect'))) return undefined;
    return entry;
  };

  /**
   * Continue and Cancel are reached only from our own page. A browser says where a navigation came from
   * (Sec-Fetch-Site); one started by another site, or by another port of this host (cookie tossing), is sent to the
   * page first instead, so nobody can skip it or cancel a user's authorization from elsewhere.
   */
  const fromElsewhere = (req: Request, res: Response): boolean => {
    const site = req.get('sec-fetch-site');
    if (site !== 'cross-site' && site !== 'same-site') return false;
    logger.warn('security: consent step requested from another site; showing the confirmation page', { site, step: req.path.split('/').pop() });
    setPageSecurityHeaders(res);
    res.redirect(303, `../${encodeURIComponent(String(req.params.id))}`);
    return true;
  };

  // The page before DingTalk (docs/security.md: it defends against cookie tossing): who, what for, which server.
  router.get('/connect/:id', async (req, res) => {
    // A link pasted with a trailing slash: the page's relative links (kept relative for a path prefix) need it gone.
    if (req.path.endsWith('/')) {
      setPageSecurityHeaders(res);
      return void res.redirect(302, `../${encodeURIComponent(String(req.params.id))}`);
    }
    const entry = await open(req, res);
    if (!entry) return;
    const id = encodeURIComponent(entry.id);
    sendPageWithLinks(
      res,
      200,
      'Connect DingTalk to your assistant',
      [
        `${whoIs(entry)} is connecting a DingTalk account to ${deps.serverName}${entry.client ? ` for the MCP client that calls itself "${entry.client}"` : ''}.`,
        `What for: ${entry.purpose ?? 'access to your DingTalk documents'}, acting as you with your own DingTalk permissions.`,
        'Continue only if you just asked your assistant for this. DingTalk will then ask you to sign in and approve access.',
        `The link is only for you and expires in ${remaining(entry)}.`,
      ],
      [
        { href: `${id}/continue`, text: 'Continue to DingTalk', primary: true },
        { href: `${id}/cancel`, text: 'This was not me / Cancel' },
      ],
    );
  });

  router.get('/connect/:id/continue', async (req, res) => {
    if (fromElsewhere(req, res)) return;
    const entry = await open(req, res);
    if (!entry) return;
    // Agent Identity's AuthorizationURL works once: the first visit (on any replica or process) uses the stored one,
    // every later visit (a refresh, another device, the back button) gets a fresh session for the same authorization.
    const visit = await pending.markLinkOpened(entry.id);
    if (visit === 'missing') return sendPage(res, 410, 'Link already used', 'This authorization has already finished or expired.', GONE);
    let target = entry.authorizationUrl;
    if (visit === 'again') {
      const fresh = await freshSession(deps, entry);
      if (!fresh.ok) return sendPage(res, fresh.status, fresh.title, fresh.text, fresh.next);
      target = fresh.authorizationUrl;
    }
    setPageSecurityHeaders(res);
    res.redirect(302, target);
  });

  router.get('/connect/:id/cancel', async (req, res) => {
    if (fromElsewhere(req, res)) return;
    const entry = await open(req, res);
    if (!entry) return;
    // The callback's single use, taken by Cancel: a completion racing it cannot end as "declined" with the token stored.
    if ((await pending.claimCallback(entry.id)) !== 'claimed') {
      return sendPage(res, 409, 'Too late to cancel', 'DingTalk access for this link was already approved or is being completed.', nextStep(entry));
    }
    await pending.settle(entry.id, 'denied', CANCELLED_ON_PAGE);
    logger.info('authorization cancelled on the confirmation page', { pending: entry.id.slice(0, 6) });
    sendPage(res, 200, 'Cancelled', 'Nothing was connected and nothing was done with your DingTalk documents.', afterDenial(entry));
  });

  router.get('/callback', async (req, res) => {
    const q = (name: string) => (typeof req.query[name] === 'string' ? (req.query[name] as string) : undefined);
    const state = q('state');
    if (!state) return sendPage(res, 400, 'Invalid authorization response', 'The response has no state parameter. Nothing was changed.');
    const verdict = deps.state.verify(state);
    if (!verdict.ok) {
      logger.warn('security: callback refused', { reason: `state ${verdict.reason}` });
      return verdict.reason === 'expired'
        ? sendPage(res, 410, 'Authorization expired', 'This authorization took too long and has expired. Nothing was changed.', GONE)
        : sendPage(res, 400, 'Invalid authorization response', 'The state of this response could not be verified. Nothing was changed.');
    }
    const entry = await pending.get(verdict.pendingId);
    if (!entry || entry.settlement === 'expired') {
      return sendPage(res, 410, 'Authorization expired', 'This authorization is unknown or has expired. Nothing was changed.', GONE);
    }
    const error = q('error');
    const sessionUri = q('session_uri');
    // The state of the record's current session, not one of an earlier session of the same link (signed-state.ts).
    const ownState = SignedState.sameTag(verdict.tag, entry.stateTag);
    // A refresh of the success page: the very callback that completed it (same state, the session it completed).
    if (entry.settlement === 'completed' && entry.callbackConsumed && !entry.completedBySibling && !error && ownState && sessionUri === entry.sessionUri) {
      return sendPage(res, 200, 'DingTalk access already granted', 'You approved DingTalk access already; nothing more is needed here.', nextStep(entry));
    }
    const replayed = () => {
      logger.warn('security: callback refused', { reason: 'state replayed', pending: entry.id.slice(0, 6) });
      return sendPage(res, 409, 'Authorization already used', 'This authorization response was already used. Nothing was changed.');
    };
    if (entry.callbackConsumed || entry.settlement) return replayed();
    // Only the newest session of a link opened several times completes it (its answer, Allow or Deny, included).
    // Checked before the same-user check, which spends the browser's binding cookie the newest tab still needs.
    if (entry.reissued && ((sessionUri !== undefined && sessionUri !== entry.sessionUri) || !ownState)) {
      // The current session with a state it was not given: a state replayed from another session, or a session
      // retired after its answer reached another browser. Not a tab the user left open: say so without "newer link".
      const notGiven = sessionUri === entry.sessionUri;
      if (notGiven) logger.warn('security: callback refused', { reason: 'state of another session', pending: entry.id.slice(0, 6) });
      else logger.warn('callback refused', { reason: 'superseded session', pending: entry.id.slice(0, 6) });
      return notGiven
        ? sendPage(res, 409, 'This approval cannot be used', 'This approval can no longer finish the authorization. Nothing was changed.', RETIRED)
        : sendPage(
            res,
            409,
            'A newer link was opened',
            'A newer link was opened for this authorization, so this tab cannot finish it. Nothing was changed.',
            SUPERSEDED,
          );
    }
    if (!ownState) {
      logger.warn('security: callback refused', { reason: 'state of another session', pending: entry.id.slice(0, 6) });
      return sendPage(res, 400, 'Invalid authorization response', 'This response does not belong to the authorization it claims. Nothing was changed.');
    }
    if (deps.verifyBrowserUser && !(await deps.verifyBrowserUser(req, res, entry, 'callback'))) {
      // This session's answer reached a browser that is not the user's (a consent URL handed on, or opened
      // elsewhere): its callback URL must not complete the authorization anywhere, so the session is retired. The
      // user's own browser gets a fresh one by opening the link again.
      if (sessionUri === entry.sessionUri && entry.stateTag !== undefined) {
        // The page is sent already, so a failure here would otherwise go unheard.
        const retired = await pending.replaceSession(entry.id, entry.sessionUri, entry.authorizationUrl, newStateTag()).catch((e: unknown) => {
          logger.error('security: a consent answer reached another browser, and its session could not be retired', { error: (e as Error).message });
          return false;
        });
        if (retired) logger.warn('security: a consent answer reached another browser; that session can no longer complete', { pending: entry.id.slice(0, 6) });
      }
      return;
    }

    if (error) {
      if ((await pending.claimCallback(entry.id)) !== 'claimed') return replayed();
      await pending.settle(entry.id, error === 'access_denied' ? 'denied' : 'failed', `DingTalk answered "${error.slice(0, 64)}"`);
      return sendPage(res, 200, 'Access not granted', 'You did not grant access to DingTalk, so nothing will be written.', afterDenial(entry));
    }
    if (!sessionUri || sessionUri !== entry.sessionUri) {
      logger.warn('security: callback refused', { reason: 'session_uri does not match the pending authorization' });
      return sendPage(res, 400, 'Invalid authorization response', 'This response does not belong to the authorization it claims. Nothing was changed.');
    }

    // Single use, claimed atomically (across replicas) before the upstream call to shut out races.
    if ((await pending.claimCallback(entry.id)) !== 'claimed') return replayed();
    try {
      await deps.broker.completeAuthorization(sessionUri, entry.user);
    } catch (e) {
      const message = e instanceof AgentIdentityError ? e.message : 'Agent Identity could not be reached.';
      logger.error('CompleteResourceTokenAuth failed', { error: message });
      await pending.settle(entry.id, 'failed', message);
      return sendPage(res, 502, 'Authorization could not be completed', message, 'Nothing was changed.');
    }
    await pending.settle(entry.id, 'completed');
    logger.info('authorization completed', { pending: entry.id.slice(0, 6) });
    sendPage(res, 200, 'DingTalk access granted', 'You can close this tab.', nextStep(entry));
  });

  router.use(storeUnavailablePage(logger), unexpectedErrorPage(logger));
  return router;
}

/** Anything else that went wrong (a file the stdio store cannot read, …): a plain page, never Express's stack trace. */
function unexpectedErrorPage(logger: Logger) {
  return (err: unknown, _req: Request, res: Response, next: (e?: unknown) => void) => {
    if (res.headersSent) return next(err);
    logger.error('browser page failed', { error: err instanceof Error ? err.message : String(err) });
    sendPage(
      res,
      500,
      'Something went wrong',
      'This server could not handle the page.',
      "Reload it in a moment; if it keeps failing, the server's log says why.",
    );
  };
}

/** Who the pending authorization is for, as the page names them (escaped by the page). */
function whoIs(entry: PendingAuthorization): string {
  if (entry.user.kind === 'userId') return `User ${entry.user.userId}`;
  let issuer = '';
  try {
    issuer = entry.user.issuer ? ` (signed in at ${new URL(entry.user.issuer).host})` : '';
  } catch {
    issuer = ` (signed in at ${entry.user.issuer})`;
  }
  return `User ${entry.user.subject}${issuer}`;
}

/**
 * The true next step after an approval. On the elicitation rung a tool call waits for this authorization and
 * carries on by itself (unless it already answered "still pending", past the client's patience); on the text-link
 * rung the call has ended and the user must ask for the tool again.
 */
function nextStep(entry: PendingAuthorization): string {
  const what = entry.purpose ?? 'what you asked for';
  if (entry.rung === 'link') return `Return to your assistant and ask it to call the tool again: it will then finish ${what}.`;
  return `Return to your assistant: it will finish ${what}. If it already told you the approval is still pending, ask it to call the tool again.`;
}

function afterDenial(entry: PendingAuthorization): string {
  return entry.rung === 'link'
    ? 'If that was a mistake, ask your assistant to call the tool again for a new link. You can close this tab.'
    : 'Your assistant will be told that access was not granted. You can close this tab.';
}

/** "9 minutes" (rounded up) of what is left of a link's life. */
function remaining(entry: PendingAuthorization): string {
  const ms = Math.max(0, entry.expiresAt - Date.now());
  if (ms > 60_000) {
    const minutes = Math.ceil(ms / 60_000);
    return `${minutes} minute${minutes === 1 ? '' : 's'}`;
  }
  const seconds = Math.max(1, Math.round(ms / 1000));
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}

/** Error handler for browser pages: the shared store is down or restarting, so say so and let the browser retry (the callback's state stays valid). */
export function storeUnavailablePage(logger: Logger) {
  return (err: unknown, _req: Request, res: Response, next: (e?: unknown) => void) => {
    if (!(err instanceof StoreUnavailableError) || res.headersSent) return next(err);
    logger.warn('browser page: state store unavailable', { error: err.message });
    res.set('Retry-After', String(err.retryAfterSeconds));
    sendPage(
      res,
      503,
      'Temporarily unavailable',
      'This server cannot reach its shared state store right now. Nothing was changed.',
      `Reload this page in ${err.retryAfterSeconds} seconds.`,
    );
  };
}
