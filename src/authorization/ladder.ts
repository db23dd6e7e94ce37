import { createHash, randomUUID } from 'node:crypto';
import {
  inputRequired,
  inputResponse,
  type CallToolResult,
  type ClientCapabilities,
  type InputRequiredResult,
  type McpServer,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server';
import type { IdentityBroker, UserIdentity } from '../identity/types.js';
import { userKey } from '../identity/types.js';
import type { Logger } from '../log.js';
import { StoreUnavailableError } from '../state/types.js';
import { MAX_WAITING_PER_USER, type PendingAuthorization, type PendingAuthorizations, type Settlement } from './pending.js';
import type { SignedState } from './signed-state.js';
import { CANCELLED_ON_PAGE, SIGN_IN_EXPIRED } from './pending.js';

/** The key of our URL elicitation inside a 2026-07-28 `inputRequests` map. */
export const AUTH_INPUT_KEY = 'dingtalk_authorization';

/** What the 2026-07-28 `requestState` carries between rounds (signed, not encrypted: no secrets). */
export interface AuthRequestState {
  /** pending authorization id */
  pid: string;
  /** hash of the user key: a retry by someone else is refused */
  u: string;
}

export interface LadderDeps {
  broker: IdentityBroker;
  pending: PendingAuthorizations;
  state: SignedState;
  requestStateCodec: RequestStateCodec<AuthRequestState>;
  callbackUrl: string;
  connectUrl: (pendingId: string) => string;
  authTimeoutMs: number;
  /**
   * How long one tool call waits for the browser consent before answering "still pending, call again" (default 40 s):
   * the official SDK clients give up on a request after 60 s, while the authorization itself lives authTimeoutMs.
   */
  consentWaitMs?: number;
  /** Undefined when the browser pages are reachable; otherwise why not (e.g. the port is taken). */
  callbackProblem: () => string | undefined | Promise<string | undefined>;
  /** stdio rung 3 (optional): open the link in the local browser when the client can't show it. */
  openBrowser?: (url: string) => void;
  logger: Logger;
}

/** The ladder either yields a DingTalk token or a result to hand back to the client instead. */
export type LadderOutcome = { kind: 'token'; accessToken: string } | { kind: 'result'; result: CallToolResult | InputRequiredResult; outcome: string };

export interface LadderRequest {
  ctx: ServerContext;
  server: McpServer;
  user: UserIdentity;
  /** The token DingTalk just rejected: if Agent Identity hands back the same one, force a new consent. */
  rejectedToken?: string;
  /** Structured output for results that are not a finished write. */
  structured: (extra: Record<string, unknown>) => Record<string, unknown>;
  /** What the user is authorizing, for messages: "write to DingTalk document X". */
  purpose: string;
  /** The tool to call again after authorizing (default write_dingtalk_doc). */
  toolName?: string;
  /** Ask for a fresh consent even when Agent Identity holds a token (switching DingTalk accounts). */
  forceAuthentication?: boolean;
  /** What did not happen, for messages: "nothing was read" (default "nothing was written"). */
  nothingDone?: string;
}

const userHash = (user: UserIdentity) => createHash('sha256').update(userKey(user)).digest('base64url').slice(0, 22);

/**
 * The authorization ladder (docs/architecture.md decision 3): a token from Agent Identity if it has one; otherwise
 * URL elicitation when the client declared it (2026-07-28: input_required + retry; 2025-11-25:
 * elicitation/create + wait for our callback + completion notification); otherwise a normal result
 * carrying the link and "authorize, then call again".
 */
export async function acquireDingTalkToken(deps: LadderDeps, req: LadderRequest): Promise<LadderOutcome> {
  try {
    return await climbLadder(deps, req);
  } catch (e) {
    // Redis down or restarting: a clear tool error; nothing was written, and a link already given stays valid.
    if (e instanceof StoreUnavailableError) {
      deps.logger.warn('state store unavailable during a tool call', { error: e.message });
      return fail(`${e.message} ${cap(nothing(req))}; call the tool again in a moment.`, 'state_store_unavailable', req);
    }
    throw e;
  }
}

async function climbLadder(deps: LadderDeps, req: LadderRequest): Promise<LadderOutcome> {
  const { ctx, user } = req;

  // A 2026-07-28 retry: the client echoes our signed requestState (already verified by the SDK hook).
  const carried = ctx.mcpReq.requestState<AuthRequestState>();
  if (carried) {
    if (carried.u !== userHash(user)) {
      return fail('This authorization was started by a different user; call the tool again to start your own.', 'authorization_wrong_user', req);
    }
    const response = inputResponse(ctx.mcpReq.inputResponses, AUTH_INPUT_KEY);
    const entry = await deps.pending.get(carried.pid);
    if (response.kind === 'elicit' && response.action !== 'accept') {
      if (entry) await deps.pending.settle(entry.id, 'failed', 'declined');
      return declined(response.action === 'decline' ? 'decline' : 'cancel', req);
    }
    if (entry && entry.settlement !== 'expired') return finish(deps, req, entry, await waitFor(deps, req, entry));
    // The link is gone (expired or this process restarted): start over with a fresh one.
  }

  // The pending id (random bytes) and its signed state (HMAC) are made only when Agent Identity is actually asked:
  // a steady-state call answered from the broker's token cache never reads `customState`, so it pays for neither
  // (docs/architecture.md decision 8, caching to the physical minimum).
  const authorization = lazyAuthorization(deps);
  const first = await deps.broker.getDingTalkToken(user, {
    returnUrl: deps.callbackUrl,
    get customState() {
      return authorization().state;
    },
    ...(req.forceAuthentication ? { forceAuthentication: true } : {}),
    signal: ctx.mcpReq.signal,
  });
  let outcome = first;
  if (first.status === 'token' && req.rejectedToken !== undefined && first.accessToken === req.rejectedToken) {
    // Agent Identity still holds the token DingTalk refused: ask the user to consent again.
    outcome = await deps.broker.getDingTalkToken(user, {
      returnUrl: deps.callbackUrl,
      customState: authorization().state,
      forceAuthentication: true,
      signal: ctx.mcpReq.signal,
    });
  }
  if (outcome.status === 'token') return { kind: 'token', accessToken: outcome.accessToken };

  const problem = await deps.callbackProblem();
  if (problem) {
    return fail(
      `DingTalk access must be authorized in a browser, but this server cannot receive the authorization: ${problem}`,
      'authorization_unavailable',
      req,
    );
  }

  const caps = clientCapabilities(ctx, req.server);
  const modern = ctx.mcpReq.envelope !== undefined;
  // What the interstitial page and the success page tell the user (src/browser/routes.ts): no secrets.
  const client = req.server.server.getClientVersion?.()?.name;
  const { pendingId, tag } = authorization();
  const entry = await deps.pending.add(
    pendingId,
    user,
    { sessionUri: outcome.sessionUri, authorizationUrl: outcome.authorizationUrl, stateTag: tag },
    {
      purpose: req.purpose,
      rung: caps?.elicitation?.url ? 'elicitation' : 'link',
      ...(client ? { client: client.slice(0, 100) } : {}),
    },
  );
  const url = deps.connectUrl(entry.id);
  const lifetime = formatDuration(deps.authTimeoutMs);
  // Every visit while pending leads to a working consent (a fresh Agent Identity session if needed), so no "works once".
  const message = `Authorize ${req.purpose}: sign in to DingTalk and approve access for your account. The link is only for you and expires in ${lifetime}.`;

  if (!caps?.elicitation?.url) {
    deps.openBrowser?.(url);
    return textFallback(url, lifetime, req, deps.openBrowser !== undefined);
  }

  if (modern) {
    return {
      kind: 'result',
      outcome: 'authorization_requested',
      result: inputRequired({
        inputRequests: { [AUTH_INPUT_KEY]: inputRequired.elicitUrl({ message, url }) },
        requestState: await deps.requestStateCodec.mint({ pid: entry.id, u: userHash(user) }),
      }),
    };
  }
  return legacyElicitation(deps, req, entry, url, message);
}

/** A pending id and the state that names it (with the state's tag), made on first use and then the same on every use. */
function lazyAuthorization(deps: LadderDeps): () => { pendingId: string; state: string; tag: string } {
  let made: { pendingId: string; state: string; tag: string } | undefined;
  return () => {
    if (!made) {
      const pendingId = deps.pending.newId();
      made = { pendingId, ...deps.state.sign(pendingId, Date.now() + deps.authTimeoutMs) };
    }
    return made;
  };
}

/** 2025-11-25: elicitation/create inside the call, then wait for our callback. */
async function legacyElicitation(deps: LadderDeps, req: LadderRequest, entry: PendingAuthorization, url: string, message: string): Promise<LadderOutcome> {
  const { ctx, server } = req;
  const elicitationId = randomUUID();
  const notifyComplete = server.server.createElicitationCompletionNotifier(elicitationId, { relatedRequestId: ctx.mcpReq.id });
  // Notify as soon as the callback settles: some clients hold their elicitation answer until then.
  const unsubscribe = deps.pending.onSettled(entry.id, (s) => {
    if (s === 'completed' || s === 'denied') notifyComplete().catch((e) => deps.logger.debug('completion notification not sent', { error: String(e) }));
  });
  const controller = new AbortController();
  const onAbort = () => controller.abort(ctx.mcpReq.signal.reason);
  ctx.mcpReq.signal.addEventListener('abort', onAbort, { once: true });
  // This call answers by the deadline (before the client's request timeout), answered elicitation or not.
  const deadline = deadlineFor(deps, entry);
  let stopSettled = () => {};
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = ctx.mcpReq
      .elicitInput({ mode: 'url', message, url, elicitationId }, { timeout: deps.authTimeoutMs, signal: controller.signal })
      .then((r) => ({ type: 'answer' as const, action: r.action }))
      .catch((e: unknown) => ({ type: 'answer' as const, action: 'cancel' as const, error: e }));
    const settled = new Promise<{ type: 'settled' }>((resolve) => {
      stopSettled = deps.pending.onSettled(entry.id, () => resolve({ type: 'settled' }));
    });
    const outOfTime = new Promise<{ type: 'deadline' }>((resolve) => {
      timer = setTimeout(() => resolve({ type: 'deadline' }), Math.max(0, deadline - Date.now()));
    });
    const first = await Promise.race([answer, settled, outOfTime]);
    if (ctx.mcpReq.signal.aborted) throw ctx.mcpReq.signal.reason ?? new Error('cancelled');
    if (first.type === 'answer' && first.action !== 'accept') {
      await deps.pending.settle(entry.id, 'failed', 'declined');
      return declined(first.action === 'decline' ? 'decline' : 'cancel', req);
    }
    return finish(deps, req, entry, await waitFor(deps, req, entry, deadline));
  } finally {
    clearTimeout(timer);
    stopSettled();
    unsubscribe();
    controller.abort();
    ctx.mcpReq.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Wait (bounded, cancellable) for the browser flow, sending progress so patient clients keep waiting. 'pending' when
 * this call's share of the wait ran out while the authorization is still open: the caller answers "call again".
 */
async function waitFor(
  deps: LadderDeps,
  req: LadderRequest,
  entry: PendingAuthorization,
  deadline = deadlineFor(deps, entry),
): Promise<Settlement | 'pending' | 'superseded' | 'too_many'> {
  const { ctx } = req;
  const progressToken = ctx.mcpReq._meta?.progressToken;
  let ticks = 0;
  const timer =
    progressToken !== undefined
      ? setInterval(() => {
          ticks += 1;
          ctx.mcpReq
            .notify({
              method: 'notifications/progress',
              params: { progressToken, progress: ticks, message: 'Waiting for you to authorize DingTalk access in the browser…' },
            })
            .catch(() => {});
        }, 15_000)
      : undefined;
  try {
    const settlement = await deps.pending.wait(entry.id, Math.max(0, deadline - Date.now()), ctx.mcpReq.signal);
    if (settlement !== 'expired') return settlement;

    const now = await deps.pending.get(entry.id);
    return now && !now.settlement ? 'pending' : settlement;
  } finally {
    if (timer) clearInterval(timer);
  }
}

/** When this call stops waiting: after its bounded wait, or at the link's expiry when that comes first (or soon after). */
function deadlineFor(deps: LadderDeps, entry: PendingAuthorization): number {
  const bounded = Date.now() + (deps.consentWaitMs ?? 40_000);
  return bounded >= entry.expiresAt - 1000 ? entry.expiresAt : bounded;
}

async function finish(
  deps: LadderDeps,
  req: LadderRequest,
  started: PendingAuthorization,
  settlement: Settlement | 'pending' | 'superseded' | 'too_many',
): Promise<LadderOutcome> {
  if (settlement === 'pending') return stillPending(deps, req, started);
  if (settlement === 'too_many') {
    return fail(
      `Too many calls are in progress for you (${MAX_WAITING_PER_USER} waiting for a DingTalk approval), so ${nothing(req)}. Wait for one to finish, then call again.`,
      'too_many_waiting_calls',
      req,
    );
  }
  if (settlement === 'superseded') {
    return fail(
      `A newer call for this same authorization took over the wait, so this call stops here and ${nothing(req)} by it. The newer call finishes once you approve in the browser.`,
      'authorization_superseded',
      req,
    );
  }
  // How it ended may have been written by another replica: read the record again.
  const stored = await deps.pending.get(started.id);
  const entry = stored ?? started;
  switch (settlement) {
    case 'denied':
      await deps.pending.delete(entry.id);
      // "This was not me / Cancel" on our page before DingTalk (src/browser/routes.ts).
      if (entry.failureMessage === CANCELLED_ON_PAGE) return declined('decline', req);
      return fail(
        `Access was denied on the DingTalk consent page, so ${nothing(req)}. If that was a mistake, call the tool again and choose Allow.`,
        'authorization_denied',
        req,
      );
    case 'failed':
      await deps.pending.delete(entry.id);
      if (entry.failureMessage === 'declined') return declined('decline', req);
      // The link was opened again after the user's sign-in (HTTP mode: this call's JWT) expired (src/browser/routes.ts).
      if (entry.failureMessage === SIGN_IN_EXPIRED) {
        return fail(
          `Your sign-in to this assistant expired before DingTalk access was approved, so the authorization link can no longer complete and ${nothing(req)}. Call the tool again to get a new link (your client may ask you to sign in again first).`,
          'authorization_sign_in_expired',
          req,
        );
      }
      return fail(
        `The authorization did not complete: ${(entry.failureMessage ?? 'unknown error').replace(/\.$/, '')}. ${cap(nothing(req))}; call the tool again to retry.`,
        'authorization_failed',
        req,
      );
    case 'expired':
      // Expired before its time: the store retired it because the user opened more links than it keeps (pending.ts).
      if (stored && stored.expiresAt > Date.now() + 1000) {
        return fail(
          `A newer authorization for your account replaced this one (only a few links are kept open per user at a time), so ${nothing(req)}. Use the newest link you were given, or call the tool again for a new one.`,
          'authorization_replaced',
          req,
        );
      }
      return fail(
        `No authorization arrived within ${formatDuration(deps.authTimeoutMs)}, so ${nothing(req)}. Call the tool again for a new link.`,
        'authorization_timeout',
        req,
      );
    case 'completed': {
      const outcome = await deps.broker.getDingTalkToken(req.user, {
        returnUrl: deps.callbackUrl,
        customState: deps.state.sign(entry.id, entry.expiresAt).state,
        // Completed through another link of this user: the token is in the vault, not on this session.
        sessionUri: entry.completedBySibling ? undefined : entry.sessionUri,
        signal: req.ctx.mcpReq.signal,
      });
      // Not deleted: the completed record lingers until the store forgets it (its lifetime plus the linger), so a
      // refresh of the success page after this call wrote still answers "already granted", not "unknown or expired".
      if (outcome.status === 'token') return { kind: 'token', accessToken: outcome.accessToken };
      return fail(
        'The authorization completed, but Agent Identity has not released the DingTalk token yet. Call the tool again in a moment.',
        'authorization_incomplete',
        req,
      );
    }
  }
}

function declined(action: 'decline' | 'cancel', req: LadderRequest): LadderOutcome {
  return action === 'decline'
    ? fail(`You declined to authorize DingTalk access, so ${nothing(req)}. Call the tool again if you change your mind.`, 'authorization_declined', req)
    : fail(`The authorization was cancelled before it finished, so ${nothing(req)}. Call the tool again to retry.`, 'authorization_cancelled', req);
}

const nothing = (req: LadderRequest) => req.nothingDone ?? 'nothing was written';
const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function fail(text: string, outcome: string, _req: LadderRequest): LadderOutcome {
  return { kind: 'result', outcome, result: { isError: true, content: [{ type: 'text', text }] } };
}

/**
 * The consent is still open when this call must answer (before the client's request timeout). A normal result, not
 * isError: clients show it to the model as the tool's answer, and the model relays the link and calls again, while an
 * error reads as a failure to give up on. The authorization stays open, so a consent given later still completes and
 * the next call finds the token.
 */
function stillPending(deps: LadderDeps, req: LadderRequest, entry: PendingAuthorization): LadderOutcome {
  const url = deps.connectUrl(entry.id);
  const text = [
    `Still waiting for your DingTalk approval for ${req.purpose}, so ${nothing(req)} yet.`,
    `If you have not approved yet, open this link in your browser and choose Allow: ${url}`,
    `The link stays valid for ${formatDuration(roundUpToMinute(Math.max(0, entry.expiresAt - Date.now())))}.`,
    'Once you have approved in the browser, call this tool again with the same arguments.',
  ].join('\n');
  return {
    kind: 'result',
    outcome: 'authorization_pending',
    result: { content: [{ type: 'text', text }], structuredContent: req.structured({ status: 'authorization_required', authorizationUrl: url }) },
  };
}

function textFallback(url: string, lifetime: string, req: LadderRequest, opened: boolean): LadderOutcome {
  const text = [
    `Authorization needed for ${req.purpose} as you: this server needs your DingTalk consent.`,
    `Open this link in your browser and choose Allow: ${url}`,
    `The link is only for you and expires in ${lifetime}.${opened ? ' It was also opened in your browser.' : ''}`,
    // Not the tool's name: clients rename tools (e.g. mcp__dingtalk__write_dingtalk_doc).
    'After authorizing, call this tool again with the same arguments.',
    '(Your MCP client did not declare support for URL elicitation, so the link is shown here instead.)',
  ].join('\n');
  return {
    kind: 'result',
    outcome: 'authorization_link_returned',
    result: {
      content: [{ type: 'text', text }],
      structuredContent: req.structured({ status: 'authorization_required', authorizationUrl: url }),
    },
  };
}

/** Capabilities the client declared: per request on 2026-07-28, from `initialize` on 2025-11-25. */
function clientCapabilities(ctx: ServerContext, server: McpServer): ClientCapabilities | undefined {
  const fromEnvelope = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.['io.modelcontextprotocol/clientCapabilities'];
  if (fromEnvelope) return fromEnvelope as ClientCapabilities;
  return server.server.getClientCapabilities();
}

/** "9 minutes" rather than "599 seconds" for what is left of a link's life. */
const roundUpToMinute = (ms: number) => (ms > 60_000 ? Math.ceil(ms / 60_000) * 60_000 : ms);

/** "10 minutes", "90 seconds": for messages people read. */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const [n, unit] = seconds % 60 === 0 && seconds >= 60 ? [seconds / 60, 'minute'] : [seconds, 'second'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}
