import type { CallToolResult, InputRequiredResult, McpServer, ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod/v4';
import { acquireDingTalkToken, type LadderDeps } from '../authorization/ladder.js';
import type { DingTalkClient } from '../dingtalk/client.js';
import { parseDocumentRef } from '../dingtalk/document-ref.js';
import { DingTalkError } from '../dingtalk/types.js';
import { AgentIdentityError, userKey, type UserIdentity } from '../identity/types.js';
import type { InFlight } from '../in-flight.js';
import { hashUserId, type Logger } from '../log.js';

export const WRITE_DINGTALK_DOC = 'write_dingtalk_doc';

/** DingTalk's documented limit for overwriteContent (reference/dingtalk.md §3.1, §5). */
export const MAX_CONTENT_CHARS = 50_000;

export interface ToolDeps {
  ladder: LadderDeps;
  dingtalk: DingTalkClient;
  /** Who is calling: the configured user on stdio, the verified bearer token's subject over HTTP. */
  resolveUser: (ctx: ServerContext) => UserIdentity;
  logger: Logger;
  /** Graceful shutdown waits for writes already sent to DingTalk. */
  writes: InFlight;
}

const inputSchema = z
  .object({
    document: z
      .string()
      .min(1, 'document is empty: pass a DingTalk document link (https://alidocs.dingtalk.com/i/nodes/<id>) or its id')
      .max(2048, 'document is too long to be a DingTalk link or id')
      .describe('The DingTalk document to overwrite: its link as shown in the browser address bar (https://alidocs.dingtalk.com/i/nodes/<id>) or the bare document id.'),
    content: z
      .string()
      .min(1, 'content is empty: pass the markdown to write (DingTalk would otherwise blank the document)')
      .max(MAX_CONTENT_CHARS, `content is longer than DingTalk's limit of ${MAX_CONTENT_CHARS} characters: shorten it or split it across documents`)
      .describe(`The complete new content of the document, as Markdown (1 to ${MAX_CONTENT_CHARS} characters). It replaces everything in the document.`),
  })
  .strict();

const outputSchema = z.object({
  status: z.enum(['written', 'authorization_required']).describe('`written` when the document now holds the content; `authorization_required` when the user must first approve access at `authorizationUrl`.'),
  documentId: z.string().describe('The DingTalk document id (dentryUuid).'),
  charactersWritten: z.number().int().min(0).describe('Characters of Markdown written; 0 when nothing was written.'),
  authorizationUrl: z.string().optional().describe('Where the user approves DingTalk access, when status is authorization_required.'),
});

const DESCRIPTION = [
  'Replace the entire content of a DingTalk document (钉钉文档) with Markdown, acting as the signed-in user with their own DingTalk permissions.',
  'Use it when the user asks to write, save or put text into a DingTalk doc. Pass the document link from the browser (https://alidocs.dingtalk.com/i/nodes/<id>) or the id, and the complete Markdown.',
  'It overwrites: anything already in the document is replaced, so include everything that should remain.',
  'The first time, the user must approve DingTalk access in a browser; the client shows the link, or the result contains it — then call again with the same arguments.',
].join(' ');

export function registerWriteDingTalkDoc(server: McpServer, deps: ToolDeps): void {
  server.registerTool(
    WRITE_DINGTALK_DOC,
    {
      title: 'Write DingTalk document',
      description: DESCRIPTION,
      inputSchema,
      outputSchema,
      annotations: { title: 'Write DingTalk document', readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
    },
    async ({ document, content }, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const started = Date.now();
      let outcome = 'error';
      let user: UserIdentity | undefined;
      try {
        const ref = parseDocumentRef(document);
        if (!ref.ok) {
          outcome = 'invalid_document';
          return errorResult(ref.message);
        }
        user = deps.resolveUser(ctx);
        const structured = (extra: Record<string, unknown>) => ({ status: 'written', documentId: ref.documentId, charactersWritten: 0, ...extra });
        const ladderRequest = { ctx, server, user, structured, purpose: `writing to DingTalk document ${ref.documentId}` };

        let rejectedToken: string | undefined;
        // At most two writes: a token DingTalk refuses is dropped and replaced once.
        for (let attempt = 0; attempt < 2; attempt++) {
          const got = await acquireDingTalkToken(deps.ladder, { ...ladderRequest, rejectedToken });
          if (got.kind === 'result') {
            outcome = got.outcome;
            return got.result;
          }
          try {
            const token = got.accessToken;
            const written = await deps.writes.run(() => deps.dingtalk.overwriteDocument(ref.documentId, content, token, { signal: ctx.mcpReq.signal }));
            outcome = 'written';
            return {
              content: [{ type: 'text', text: `Wrote ${written.charactersWritten} characters of Markdown to DingTalk document ${written.documentId}; its previous content was replaced.` }],
              structuredContent: { status: 'written', documentId: written.documentId, charactersWritten: written.charactersWritten },
            };
          } catch (e) {
            if (!(e instanceof DingTalkError) || e.kind !== 'invalid_token' || attempt > 0) throw e;
            deps.ladder.broker.dropDingTalkToken(user);
            rejectedToken = got.accessToken;
          }
        }
        throw new Error('unreachable');
      } catch (e) {
        if (e instanceof DingTalkError) {
          outcome = `dingtalk_${e.kind}`;
          const text = e.kind === 'invalid_token'
            ? 'DingTalk rejected the access token Agent Identity issued even after a fresh one was fetched. Ask an administrator to check the DingTalk credential provider in Agent Identity; nothing was written.'
            : `${e.message} Nothing was written.`;
          return errorResult(text);
        }
        if (e instanceof AgentIdentityError) {
          outcome = `agent_identity_${e.code}`;
          return errorResult(`${e.message} Nothing was written.`);
        }
        if (ctx.mcpReq.signal.aborted) {
          outcome = 'cancelled';
          throw e;
        }
        deps.logger.error('unexpected error in write_dingtalk_doc', { error: e instanceof Error ? e.message : String(e) });
        return errorResult('An unexpected error stopped the write; nothing was written. The server log has details.');
      } finally {
        deps.logger.info('tool call', {
          tool: WRITE_DINGTALK_DOC,
          user: user ? hashUserId(userKey(user)) : undefined,
          outcome,
          durationMs: Date.now() - started,
        });
      }
    },
  );
}

function errorResult(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }] };
}
