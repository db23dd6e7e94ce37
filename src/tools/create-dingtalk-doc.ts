import * as z from 'zod/v4';
import { DingTalkError } from '../dingtalk/types.js';
import { defineTool, errorResult } from './define-tool.js';
import { documentInput, linkOf, markdownInput, refCheck, refId, statusOutput } from './inputs.js';

/** MODELED: DingTalk does not document a title limit; longer titles are refused here rather than cut. */
export const MAX_TITLE_CHARS = 200;

export const createDingTalkDoc = defineTool({
  name: 'create_dingtalk_doc',
  title: 'Create DingTalk document',
  description: [
    'Create a new DingTalk document (钉钉文档) owned by the signed-in user, in their 我的文档 (My Docs) or in a folder they may edit, optionally with initial Markdown. Returns its id and link.',
    'Use it when the user asks for a new doc. Pass folder (a folder link or id) only when the user names one.',
  ].join(' '),
  toolset: 'write',
  family: 'app',
  inputSchema: z
    .object({
      title: z
        .string()
        .min(1, 'title is empty: give the new document a title')
        .max(MAX_TITLE_CHARS, `title is longer than ${MAX_TITLE_CHARS} characters`)
        .describe("The new document's title."),
      content: markdownInput('Initial content as Markdown (optional).').optional(),
      folder: documentInput('Where to create it: a folder link (https://alidocs.dingtalk.com/i/nodes/<id>) or id. Default: the root of 我的文档.').optional(),
    })
    .strict(),
  outputSchema: statusOutput({
    documentId: z.string().describe("The new document's id (dentryUuid)."),
    link: z.string().describe("The new document's link."),
    title: z.string().describe('Its title.'),
    charactersWritten: z.number().int().min(0).describe('Characters of initial Markdown written.'),
  }),
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  check: ({ title, folder }) => {
    if (title.trim() === '') return 'title is only whitespace: give the new document a title.';
    if (/[\u0000-\u001f\u007f]/.test(title)) return 'title contains line breaks or control characters: use a single line of text.';
    return refCheck(folder, 'folder');
  },
  purpose: ({ title }) => `creating the DingTalk document "${title.trim()}"`,
  pending: ({ title }) => ({ status: 'ok', title: title.trim(), charactersWritten: 0 }),
  nothingDone: 'No document was created.',
  async run({ title, content, folder }, call) {
    const name = title.trim();
    const app = await call.app();
    let workspaceId: string;
    let parentNodeId: string | undefined;
    if (folder !== undefined) {
      const node = await app.api.getNode(refId(folder), app);
      if (node.type !== undefined && node.type !== 'FOLDER')
        return errorResult(
          `"${refId(folder)}" is a document, not a folder: pass a folder link or id, or leave folder out to use 我的文档. No document was created.`,
        );
      if (!node.workspaceId) return errorResult(`DingTalk did not say which space folder "${refId(folder)}" belongs to, so no document was created there.`);
      workspaceId = node.workspaceId;
      parentNodeId = node.nodeId;
    } else {
      ({ workspaceId } = await app.mine.get(app));
    }
    const created = await call.deps.writes.run(() => app.api.createDocument(workspaceId, name, parentNodeId, app));
    const link = linkOf(created.nodeId, created.url);
    let written = 0;
    if (content !== undefined && content.trim() !== '') {
      try {
        await call.deps.writes.run(() => app.api.appendMarkdown(created.nodeId, content, app));
        written = content.length;
      } catch (e) {
        if (!(e instanceof DingTalkError)) throw e;
        // The document exists: say so, or the model creates a second one.
        return errorResult(
          `Created the DingTalk document "${name}" (${link}), but its content could not be added: ${e.message} Add it with append_dingtalk_doc; do not create the document again.`,
        );
      }
    }
    return {
      content: [
        {
          type: 'text',
          text: `Created the DingTalk document "${name}" (id ${created.nodeId}): ${link}${written ? ` with ${written} characters of Markdown` : ''}.`,
        },
      ],
      structuredContent: { status: 'ok', documentId: created.nodeId, link, title: name, charactersWritten: written },
    };
  },
});
