/** Inputs and outputs several tools share, so their wording and limits stay the same everywhere. */
import * as z from 'zod/v4';
import { parseDocumentRef } from '../dingtalk/document-ref.js';

/** DingTalk's documented limit for one write's content (docs/dingtalk-api.md; assumed for InsertContent too). */
export const MAX_CONTENT_CHARS = 50_000;

/** A DingTalk document (or folder) as a link or an id; `parseDocumentRef` decides which shapes are accepted. */
export function documentInput(description: string) {
  return z
    .string()
    .min(1, 'document is empty: pass a DingTalk document link (https://alidocs.dingtalk.com/i/nodes/<id>) or its id')
    .max(2048, 'document is too long to be a DingTalk link or id')
    .describe(description);
}

/** Markdown to add, bounded by DingTalk's limit. */
export function markdownInput(description: string) {
  return z
    .string()
    .min(1, 'content is empty: pass the Markdown to add')
    .max(MAX_CONTENT_CHARS, `content is longer than DingTalk's limit of ${MAX_CONTENT_CHARS} characters: split it into several calls`)
    .describe(description);
}

/** An opaque paging cursor from a previous result. */
export const cursorInput = z
  .string()
  .min(1)
  .max(1024, 'cursor is too long: pass the nextCursor of the previous result unchanged')
  .regex(/^[\x21-\x7e]+$/, 'cursor must be the nextCursor of the previous result, unchanged')
  .describe('To get the next page: the `nextCursor` of the previous result, unchanged.');

/**
 * The output of the app-token tools: `status` plus the tool's own fields, which are absent while the user still
 * has to authorize at `authorizationUrl`.
 */
export function statusOutput<S extends z.ZodRawShape>(shape: S) {
  return z.object({
    status: z
      .enum(['ok', 'authorization_required'])
      .describe('`ok` when the call did its work; `authorization_required` when the user must first approve DingTalk access at `authorizationUrl`.'),
    authorizationUrl: z.string().optional().describe('Where the user approves DingTalk access, when status is authorization_required.'),
    ...(Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, (v as z.ZodType).optional()])) as unknown as { [K in keyof S]: z.ZodOptional<S[K]> }),
  });
}

// A call parses its document reference several times (check, purpose, pending, run): the last answer is kept.
let lastRef: { input: string; result: ReturnType<typeof parseDocumentRef> } | undefined;
function parsedRef(document: string): ReturnType<typeof parseDocumentRef> {
  if (lastRef?.input !== document) lastRef = { input: document, result: parseDocumentRef(document) };
  return lastRef.result;
}

/** The id of a reference the tool's `check` accepted (or the input itself, which `check` then refuses). */
export function refId(document: string): string {
  const ref = parsedRef(document);
  return ref.ok ? ref.documentId : document;
}

export function refCheck(document: string | undefined, what = 'document'): string | undefined {
  if (document === undefined) return undefined;
  const ref = parsedRef(document);
  return ref.ok ? undefined : what === 'document' ? ref.message : ref.message.replace(/\bdocument\b/g, what);
}

/** A document's link when DingTalk gave none (the /i/nodes/ shape, docs/dingtalk-api.md). */
export function linkOf(id: string, url?: string): string {
  return url ?? `https://alidocs.dingtalk.com/i/nodes/${encodeURIComponent(id)}`;
}

/** The wiki APIs name documents with their ".adoc" suffix (third-party observation, docs/dingtalk-api.md). */
export function titleOf(name: string): string {
  return name.replace(/\.adoc$/i, '');
}

/** Times as DingTalk reports them, normalised to ISO 8601 when they parse. */
export function isoTime(v: string | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  const ms = typeof v === 'number' ? v : Date.parse(v);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(v);
}
