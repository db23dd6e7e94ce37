import express, { type Request, type Response } from 'express';
import type { PendingAuthorization, PendingAuthorizations } from '../authorization/pending.js';
import type { SignedState } from '../authorization/signed-state.js';
import { AgentIdentityError, type DingTalkTokenOutcome, type IdentityBroker } from '../identity/types.js';
import { StoreUnavailableError } from '../state/types.js';
import type { Logger } from '../log.js';
import { sendPage, setPageSecurityHeaders } from './pages.js';

export interface BrowserRoutesDeps {
  pending: PendingAuthorizations;
  state: SignedState;
  broker: IdentityBroker;
  /** Our `<APP_REDIRECT_URI>/callback`: the return URL of a fresh session for a link opened again. */
  callbackUrl: string;
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

type FreshSession = { ok: true; authorizationUrl: string } | { ok: false; status: number; title: string; text: string; next: string };

/**
 * A new Agent Identity session for the same pending authorization and the same user: the ladder's request
 * (GetResourceOAuth2Token, USER_FEDERATION, our return URL, the entry's signed state), with ForceAuthentication so
 * a consent page is made even when the vault holds a token DingTalk refused. The entry then names the new session.
 */
async function freshSession(deps: BrowserRoutesDeps, entry: PendingAuthorization): Promise<FreshSession> {
  let outcome: DingTalkTokenOutcome;
  try {
    outcome = await deps.broker.getDingTalkToken(entry.user, {
      returnUrl: deps.callbackUrl,
      customState: deps.state.sign(entry.id, entry.expiresAt),
      forceAuthentication: true,
    });
  } catch (e) {
    const message = e instanceof AgentIdentityError ? e.message : 'Agent Identity could not be reached.';
    deps.logger.error('GetResourceOAuth2Token for a link opened again failed', { error: message });
    return { ok: false, status: 502, title: 'Consent page not available', text: message, next: 'Reload this page in a moment. Nothing was changed.' };
  }
  if (outcome.status !== 'authorization_required') {
    return { ok: false, status: 502, title: 'Consent page not available', text: 'Agent Identity did not start a new consent.', next: GONE };
  }
  if (!(await deps.pending.replaceSession(entry.id, outcome.sessionUri, outcome.authorizationUrl))) {
    return { ok: false, status: 410, title: 'Link already used', text: 'This authorization has already finished or expired.', next: GONE };
  }
  deps.logger.info('authorization link opened again: fresh session', { pending: entry.id.slice(0, 6) });
  return { ok: true, authorizationUrl: outcome.authorizationUrl };
}

/** `/connect/:id` (our link, which redirects to Agent Identity) and `/callback` (where Agent Identity sends the browser back). */
export function browserRoutes(deps: BrowserRoutesDeps): express.Router {
  const router = express.Router();
  const { pending, logger } = deps;

  router.get('/connect/:id', async (req, res) => {
    const entry = await pending.get(String(req.params.id));
    if (!entry) return sendPage(res, 404, 'Link not found', 'This authorization link is unknown or has expired.', GONE);
    if (entry.settlement) return sendPage(res, 410, 'Link already used', 'This authorization has already finished or expired.', GONE);
    if (deps.verifyBrowserUser && !(await deps.verifyBrowserUser(req, res, entry, 'connect'))) return;
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
    const replayed = () => {
      logger.warn('security: callback refused', { reason: 'state replayed', pending: entry.id.slice(0, 6) });
      return sendPage(res, 409, 'Authorization already used', 'This authorization response was already used. Nothing was changed.');
    };
    if (entry.callbackConsumed || entry.settlement) return replayed();
    if (deps.verifyBrowserUser && !(await deps.verifyBrowserUser(req, res, entry, 'callback'))) return;

    const sessionUri = q('session_uri');
    // Only the newest session of a link opened several times completes it (its answer, Allow or Deny, included).
    if (sessionUri !== undefined && sessionUri !== entry.sessionUri && entry.reissued) {
      logger.warn('callback refused', { reason: 'superseded session', pending: entry.id.slice(0, 6) });
      return sendPage(
        res,
        409,
        'A newer link was opened',
        'A newer link was opened for this authorization, so this tab cannot finish it. Nothing was changed.',
        SUPERSEDED,
      );
    }
    const error = q('error');
    if (error) {
      if ((await pending.claimCallback(entry.id)) !== 'claimed') return replayed();
      await pending.settle(entry.id, error === 'access_denied' ? 'denied' : 'failed', `DingTalk answered "${error.slice(0, 64)}"`);
      return sendPage(res, 200, 'Access not granted', 'You did not grant access to DingTalk, so nothing will be written. You can close this tab.');
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
    sendPage(res, 200, 'DingTalk access granted', 'You can close this tab and return to your assistant: it will finish what it was doing.');
  });

  router.use(storeUnavailablePage(logger));
  return router;
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
