import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { cursorInput, isoTime, linkOf, statusOutput, titleOf } from './inputs.js';

/** storage_2_0 SearchDentries answers at most 50 per page (docs/dingtalk-api.md). */
const MAX_LIMIT = 50;

export const searchDingTalkDocs = defineTool({
  name: 'search_dingtalk_docs',
  title: 'Search DingTalk documents',
  description: [
    'Search the DingTalk documents (钉钉文档) the signed-in user can access, by keyword in the title or text. Returns id, title, link and last modification of each match, a page at a time.',
    'Use it to find a document the user names but did not link. For more results pass the nextCursor of the previous page as cursor.',
  ].join(' '),
  toolset: 'read',
  family: 'app',
  inputSchema: z
    .object({
      query: z.string().min(1, 'query is empty: pass words to search for').max(200, 'query is longer than 200 characters').describe('Words to search for.'),
      limit: z.number().int().min(1).max(MAX_LIMIT).optional().describe(`How many results per page (1–${MAX_LIMIT}, default 20).`),
      cursor: cursorInput.optional(),
    })
    .strict(),
  outputSchema: statusOutput({
    documents: z
      .array(
        z.object({
          id: z.string(),
          title: z.string(),
          link: z.string(),
          lastModified: z.string().optional().describe('ISO 8601, as DingTalk reports it.'),
          lastModifiedBy: z.string().optional(),
          creator: z.string().optional(),
        }),
      )
      .describe('Matching documents the user may read.'),
    nextCursor: z.string().optional().describe('Pass as cursor for the next page; absent on the last page.'),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  check: ({ query }) =>
    query.trim() === ''
      ? 'query is only whitespace: pass words to search for.'
      : /[\u0000-\u001f\u007f]/.test(query)
        ? 'query contains control characters.'
        : undefined,
  purpose: () => 'searching your DingTalk documents',
  pending: () => ({ status: 'ok' }),
  nothingDone: 'Nothing was searched.',
  async run({ query, limit, cursor }, call) {
    const app = await call.app();
    const page = await app.api.search(query.trim(), app, limit ?? 20, cursor);
    const documents = page.items.map((h) => ({
      id: h.dentryUuid,
      title: titleOf(h.name),
      link: linkOf(h.dentryUuid, h.url),
      ...(h.lastModifyTime !== undefined ? { lastModified: isoTime(h.lastModifyTime)! } : {}),
      ...(h.modifier ? { lastModifiedBy: h.modifier } : {}),
      ...(h.creator ? { creator: h.creator } : {}),
    }));
    const lines = documents.map(
      (d) => `- ${d.title} — ${d.link}${d.lastModified ? ` (modified ${d.lastModified}${d.lastModifiedBy ? ` by ${d.lastModifiedBy}` : ''})` : ''}`,
    );
    const text =
      documents.length === 0
        ? `No DingTalk documents you can access match "${query.trim()}"${cursor ? ' on this page' : ''}.`
        : `${documents.length} DingTalk document(s) matching "${query.trim()}":\n${lines.join('\n')}${page.nextToken ? '\nMore results: call again with the same query and cursor = nextCursor.' : ''}`;
    return {
      content: [{ type: 'text', text: page.nextToken ? `${text}\nnextCursor: ${page.nextToken}` : text }],
      structuredContent: { status: 'ok', documents, ...(page.nextToken ? { nextCursor: page.nextToken } : {}) },
    };
  },
});
