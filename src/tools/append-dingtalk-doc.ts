import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { documentInput, markdownInput, refCheck, refId, statusOutput } from './inputs.js';

export const appendDingTalkDoc = defineTool({
  name: 'append_dingtalk_doc',
  title: 'Append to DingTalk document',
  description: [
    'Add Markdown at the end of a DingTalk document (钉钉文档), acting as the signed-in user: only documents they may edit in DingTalk. Everything already in the document stays as it is.',
    'Use it when the user asks to add, note down or append something to a doc. Each call adds the content again, so call it once per addition.',
  ].join(' '),
  toolset: 'write',
  family: 'app',
  inputSchema: z
    .object({
      document: documentInput('The DingTalk document: its link (https://alidocs.dingtalk.com/i/nodes/<id>) or its id.'),
      content: markdownInput('The Markdown to add at the end of the document.'),
    })
    .strict(),
  outputSchema: statusOutput({
    documentId: z.string().describe('The document id (dentryUuid).'),
    charactersAppended: z.number().int().min(0).describe('Characters of Markdown added.'),
  }),
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  check: ({ document, content }) => refCheck(document) ?? (content.trim() === '' ? 'content is only whitespace: pass the Markdown to add.' : undefined),
  purpose: ({ document }) => `adding to DingTalk document ${refId(document)}`,
  pending: ({ document }) => ({ status: 'ok', documentId: refId(document), charactersAppended: 0 }),
  nothingDone: 'Nothing was added.',
  async run({ document, content }, call) {
    const id = refId(document);
    const app = await call.app();
    await call.deps.writes.run(() => app.api.appendMarkdown(id, content, app));
    return {
      content: [
        { type: 'text', text: `Added ${content.length} characters of Markdown at the end of DingTalk document ${id}; the rest of the document is unchanged.` },
      ],
      structuredContent: { status: 'ok', documentId: id, charactersAppended: content.length },
    };
  },
});
