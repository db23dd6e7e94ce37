/**
 * The one shape every tool has (docs/architecture.md decision 14, after playwright-mcp's `defineTool`).
 *
 * A tool module declares its schemas, annotations, toolset and token family, checks its input without
 * touching the network, and makes its DingTalk calls. Everything else lives here, once:
 *   - who the caller is, and their DingTalk user token through the authorization ladder;
 *   - for app-token tools, the app token and the caller's own `operatorId` (their unionId, from
 *     GET /v1.0/contact/users/me with *their* token — never from tool input);
 *   - the single retry when DingTalk rejects a token (the user token: dropped and re-fetched, a new
 *     consent if Agent Identity hands back the same one; the app token: re-fetched once);
 *   - mapping errors to `isError` results that say what to do, and the per-call log line.
 */
import type { CallToolResult, InputRequiredResult, McpServer, ServerContext, ToolAnnotations } from '@modelcontextprotocol/server';
import type * as z from 'zod/v4';
import { acquireDingTalkToken, type LadderDeps } from '../authorization/ladder.js';
import type { AppCallContext, DingTalkAppApi } from '../dingtalk/app-api.js';
import type { AppTokenSource } from '../dingtalk/app-token.js';
import type { DingTalkClient } from '../dingtalk/client.js';
import type { MineWorkspaces } from '../dingtalk/mine-workspace.js';
import type { DingTalkAccount, OperatorDirectory } from '../dingtalk/operator.js';
import { DingTalkError } from '../dingtalk/types.js';
import { AgentIdentityError, userKey, type UserIdentity } from '../identity/types.js';
import type { InFlight } from '../in-flight.js';
import { withCachedJsonSchema } from '../json-schema-cache.js';
import { hashUserId, type Logger } from '../log.js';

import type { Toolset } from './toolsets.js';

/**
 * Which DingTalk token the tool's calls carry (docs/architecture.md decision 12). `user`: only the user's own token.
 * `app`: the app token plus `operatorId` = the caller's unionId; needs an app credential.
 */
export type TokenFamily = 'user' | 'app';

export interface ToolDeps {
  ladder: LadderDeps;
  dingtalk: DingTalkClient;
  /** Who is calling: the configured user on stdio, the verified bearer token's subject over HTTP. */
  resolveUser: (ctx: ServerContext) => UserIdentity;
  logger: Logger;
  /** Graceful shutdown waits for writes already sent to DingTalk. */
  writes: InFlight;
  /** The caller's own DingTalk account (users/me), per user token. */
  operators: OperatorDirectory;
  /** The app-token family; absent without an app credential (then only user-token tools are listed). */
  app?: { api: DingTalkAppApi; tokens: AppTokenSource; mine: MineWorkspaces };
  /** The tools this server lists (toolsets, read-only mode, app credential). */
  tools: ReadonlyArray<ToolDefinition>;
}

/** What a tool's `run` gets: the caller, their DingTalk user token, and the shared dependencies. */
export interface ToolCall {
  user: UserIdentity;
  /** The caller's DingTalk user access token (from Agent Identity). Never log or return it. */
  userToken: string;
  signal: AbortSignal;
  deps: ToolDeps;
  /** The caller's DingTalk account, learnt from their own token (cached). */
  account(): Promise<DingTalkAccount>;
  /** App token + operatorId = the caller's own unionId, for the app-token APIs. */
  app(): Promise<AppCallContext & { api: DingTalkAppApi; mine: MineWorkspaces }>;
}

export interface ToolDefinition<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  toolset: Toolset;
  family: TokenFamily;
  inputSchema: I;
  outputSchema: O;
  annotations: Omit<ToolAnnotations, 'title'>;
  /** Checks that need no network; a message refuses the call before anything is sent. */
  check?: (input: z.output<I>) => string | undefined;
  /** What the user authorizes, for the consent message: "writing to DingTalk document X". */
  purpose: (input: z.output<I>) => string;
  /** Structured output while the user still has to authorize (the rest of the fields `outputSchema` requires). */
  pending: (input: z.output<I>) => Record<string, unknown>;
  /** Ask the user for a fresh consent even when Agent Identity holds a token (switching accounts). */
  forceConsent?: (input: z.output<I>) => boolean;
  /** Appended to failures so the user knows the state of their data: "Nothing was written." */
  nothingDone: string;
  run: (input: z.output<I>, call: ToolCall) => Promise<CallToolResult>;
}

/** A tool module's export: its definition, typed by its own schemas. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject>(definition: ToolDefinition<I, O>): ToolDefinition<I, O> {
  return definition;
}

export function errorResult(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}

// One published shape per tool for the life of the process: on 2026-07-28 a server is built per
// request, and the SDK would otherwise convert the schemas to JSON Schema every time.
interface PublishedShape {
  title: string;
  description: string;
  inputSchema: z.ZodObject;
  outputSchema: z.ZodObject;
  annotations: ToolAnnotations;
}
const shapes = new WeakMap<object, PublishedShape>();
function publishedShape<I extends z.ZodObject, O extends z.ZodObject>(tool: ToolDefinition<I, O>): PublishedShape {
  let shape = shapes.get(tool);
  if (!shape) {
    shape = {
      title: tool.title,
      description: tool.description,
      // Clients see the strict schema (additionalProperties: false), but a call carrying keys it does not
      // know (Gemini CLI adds `wait_for_previous` to every call) is accepted without them: every documented
      // check still applies. The names of the dropped keys (never their values) are logged at debug.
      inputSchema: withCachedJsonSchema(tool.inputSchema, ignoringUnknownKeys(tool)),
      outputSchema: withCachedJsonSchema(tool.outputSchema),
      annotations: { title: tool.title, ...tool.annotations },
    };
    shapes.set(tool, shape);
  }
  return shape;
}

// "Nothing was read." → "nothing was read", for the ladder's sentences; once per tool, not per call.
const nothingDoneLower = new WeakMap<object, string>();
function lowerNothingDone(tool: ToolDefinition<z.ZodObject, z.ZodObject>): string {
  let text = nothingDoneLower.get(tool);
  if (text === undefined) nothingDoneLower.set(tool, (text = tool.nothingDone.replace(/\.$/, '').replace(/^./, (c) => c.toLowerCase())));
  return text;
}

/** The process logger, for the debug line about ignored argument keys (set when tools are registered). */
let argumentLogger: Logger | undefined;

/** Validates like the tool's schema, minus the refusal of keys it does not define (those are dropped). */
function ignoringUnknownKeys(tool: ToolDefinition): { '~standard': { validate: (value: unknown) => unknown } } {
  const lenient = tool.inputSchema.strip();
  return {
    '~standard': {
      validate: (value: unknown) => {
        if (value && typeof value === 'object' && !Array.isArray(value)) {
          const ignored = Object.keys(value).filter((key) => !Object.hasOwn(tool.inputSchema.shape, key));
          if (ignored.length > 0) argumentLogger?.debug('ignored arguments the tool does not define', { tool: tool.name, keys: ignored.join(',') });
        }
        return lenient['~standard'].validate(value);
      },
    },
  };
}

/** Register one tool on a server, wrapped in the shared concerns above. */
export function registerTool<I extends z.ZodObject, O extends z.ZodObject>(server: McpServer, tool: ToolDefinition<I, O>, deps: ToolDeps): void {
  argumentLogger = deps.logger;
  server.registerTool(
    tool.name,
    publishedShape(tool),
    // The SDK validated `input` against inputSchema already.
    (async (input: z.output<I>, ctx: ServerContext) => runTool(server, tool, deps, input, ctx)) as never,
  );
}

async function runTool<I extends z.ZodObject, O extends z.ZodObject>(
  server: McpServer,
  tool: ToolDefinition<I, O>,
  deps: ToolDeps,
  input: z.output<I>,
  ctx: ServerContext,
): Promise<CallToolResult | InputRequiredResult> {
  const started = Date.now();
  let outcome = 'error';
  let user: UserIdentity | undefined;
  let account: DingTalkAccount | undefined;
  try {
    const refused = tool.check?.(input);
    if (refused !== undefined) {
      outcome = 'invalid_input';
      return errorResult(refused);
    }
    user = deps.resolveUser(ctx);
    const pending = tool.pending(input);
    const ladderRequest = {
      ctx,
      server,
      user,
      toolName: tool.name,
      structured: (extra: Record<string, unknown>) => ({ ...pending, ...extra }),
      purpose: tool.purpose(input),
      forceAuthentication: tool.forceConsent?.(input) ?? false,
      nothingDone: lowerNothingDone(tool),
    };
    const who = user;
    if (ladderRequest.forceAuthentication) {
      deps.ladder.broker.dropDingTalkToken(who);
      deps.operators.drop(userKey(who));
    }

    let rejectedToken: string | undefined;
    // At most two attempts: a token DingTalk refuses is dropped and replaced once.
    for (let attempt = 0; attempt < 2; attempt++) {
      const got = await acquireDingTalkToken(deps.ladder, { ...ladderRequest, rejectedToken });
      if (got.kind === 'result') {
        outcome = got.outcome;
        return got.result;
      }
      const userToken = got.accessToken;
      const signal = ctx.mcpReq.signal;
      let appToken: string | undefined;
      const resolveAccount = async () => (account = await deps.operators.resolve(userKey(who), userToken, signal));
      const call: ToolCall = {
        user: who,
        userToken,
        signal,
        deps,
        account: resolveAccount,
        async app() {
          if (!deps.app) throw new Error(`${tool.name} needs the DingTalk app credential, which is not configured`);
          // The operator first: a user token DingTalk refuses is found before the app token is spent.
          const { unionId } = await resolveAccount();
          appToken = await deps.app.tokens.get(who, signal);
          return { appToken, operatorId: unionId, signal, api: deps.app.api, mine: deps.app.mine };
        },
      };
      try {
        const result = await tool.run(input, call);
        outcome = result.isError ? 'refused' : 'ok';
        return result;
      } catch (e) {
        if (!(e instanceof DingTalkError) || e.kind !== 'invalid_token' || attempt > 0) throw e;
        if (e.tokenFamily === 'app' && appToken !== undefined) {
          // DingTalk refused the app token: nothing happened, fetch a fresh one and go again.
          deps.app?.tokens.invalidate(appToken);
          continue;
        }
        deps.ladder.broker.dropDingTalkToken(who);
        deps.operators.drop(userKey(who));
        rejectedToken = userToken;
      }
    }
    throw new Error('unreachable');
  } catch (e) {
    if (e instanceof DingTalkError) {
      outcome = `dingtalk_${e.kind}`;
      const signedIn =
        account && (e.kind === 'permission_denied' || e.kind === 'not_found')
          ? ` You are signed in to DingTalk as ${account.nick ?? account.unionId}; if that is the wrong account, call get_dingtalk_account with switch: true.`
          : '';
      const text =
        e.kind === 'invalid_token' && e.tokenFamily === 'app'
          ? `DingTalk rejected the app access token even after a fresh one was fetched. Ask an administrator to check DINGTALK_CLIENT_ID and the app secret. ${tool.nothingDone}`
          : e.kind === 'invalid_token'
            ? `DingTalk rejected the access token Agent Identity issued even after a fresh one was fetched. Ask an administrator to check the DingTalk credential provider in Agent Identity. ${tool.nothingDone}`
            : `${e.message}${signedIn} ${tool.nothingDone}`;
      return errorResult(text);
    }
    if (e instanceof AgentIdentityError) {
      outcome = `agent_identity_${e.code}`;
      return errorResult(`${e.message} ${tool.nothingDone}`);
    }
    if (ctx.mcpReq.signal.aborted) {
      outcome = 'cancelled';
      throw e;
    }
    deps.logger.error(`unexpected error in ${tool.name}`, { error: e instanceof Error ? e.message : String(e) });
    return errorResult(`An unexpected error stopped ${tool.name}. ${tool.nothingDone} The server log has details.`);
  } finally {
    deps.logger.info('tool call', {
      tool: tool.name,
      user: user ? hashUserId(userKey(user)) : undefined,
      outcome,
      durationMs: Date.now() - started,
    });
  }
}
