import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { documentInput, MAX_CONTENT_CHARS, refCheck, refId as docId } from './inputs.js';

const DESCRIPTION = [
  'Replace the entire content of a DingTalk document (钉钉文档) with Markdown, acting as the signed-in user with their own DingTalk permissions.',
  'Use it when the user asks to rewrite or replace a DingTalk doc. Pass the document link from the browser (https://alidocs.dingtalk.com/i/nodes/<id>) or the id, and the complete Markdown.',
  'It overwrites: anything already in the document is replaced, so include everything that should remain. When read_dingtalk_doc and append_dingtalk_doc are available, read the document first, and use append_dingtalk_doc to add to a document rather than rewriting it.',
  'The first time, the user must approve DingTalk access in a browser; the client shows the link, or the result contains it — then call again with the same arguments.',
].join(' ');

export const writeDingTalkDoc = defineTool({
  name: 'write_dingtalk_doc',
  title: 'Write DingTalk document',
  description: DESCRIPTION,
  toolset: 'write',
  family: 'user',
  inputSchema: z
    .object({
      document: documentInput(
        'The DingTalk document to overwrite: its link as shown in the browser address bar (https://alidocs.dingtalk.com/i/nodes/<id>) or the bare document id.',
      ),
      content: z
        .string()
        .min(1, 'content is empty: pass the markdown to write (DingTalk would otherwise blank the document)')
        .max(MAX_CONTENT_CHARS, `content is longer than DingTalk's limit of ${MAX_CONTENT_CHARS} characters: shorten it or split it across documents`)
        .describe(`The complete new content of the document, as Markdown (1 to ${MAX_CONTENT_CHARS} characters). It replaces everything in the document.`),
    })
    .strict(),
  outputSchema: z.object({
    status: z
      .enum(['written', 'authorization_required'])
      .describe('`written` when the document now holds the content; `authorization_required` when the user must first approve access at `authorizationUrl`.'),
    documentId: z.string().describe('The DingTalk document id (dentryUuid).'),
    charactersWritten: z.number().int().min(0).describe('Characters of Markdown written; 0 when nothing was written.'),
    authorizationUrl: z.string().optional().describe('Where the user approves DingTalk access, when status is authorization_required.'),
  }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: true },
  check: ({ document }) => refCheck(document),
  purpose: ({ document }) => `writing to DingTalk document ${docId(document)}`,
  pending: ({ document }) => ({ status: 'written', documentId: docId(document), charactersWritten: 0 }),
  nothingDone: 'Nothing was written.',
  async run({ document, content }, { userToken, signal, deps }) {
    const written = await deps.writes.run(() => deps.dingtalk.overwriteDocument(docId(document), content, userToken, { signal }));
    return {
      content: [
        {
          type: 'text',
          text: `Wrote ${written.charactersWritten} characters of Markdown to DingTalk document ${written.documentId}; its previous content was replaced.`,
        },
      ],
      structuredContent: { status: 'written', documentId: written.documentId, charactersWritten: written.charactersWritten },
    };
  },
});
