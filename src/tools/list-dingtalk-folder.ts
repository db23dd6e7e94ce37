import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { cursorInput, documentInput, isoTime, linkOf, refCheck, refId, statusOutput, titleOf } from './inputs.js';

const PAGE_SIZE = 50;

export const listDingTalkFolder = defineTool({
  name: 'list_dingtalk_folder',
  title: 'List DingTalk folder',
  description: [
    "List the documents and folders in a DingTalk folder the signed-in user may read, a page at a time. Without folder: the root of the user's 我的文档 (My Docs).",
    'Use it to browse; for more pass the nextCursor of the previous page as cursor.',
  ].join(' '),
  toolset: 'read',
  family: 'app',
  inputSchema: z
    .object({
      folder: documentInput('The folder: its link (https://alidocs.dingtalk.com/i/nodes/<id>) or id. Default: the root of 我的文档.').optional(),
      cursor: cursorInput.optional(),
    })
    .strict(),
  outputSchema: statusOutput({
    folderId: z.string(),
    items: z.array(
      z.object({
        id: z.string(),
        title: z.string(),
        link: z.string(),
        type: z.string().optional().describe('FILE or FOLDER.'),
        hasChildren: z.boolean().optional(),
        lastModified: z.string().optional(),
      }),
    ),
    nextCursor: z.string().optional().describe('Pass as cursor for the next page; absent on the last page.'),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  check: ({ folder }) => refCheck(folder, 'folder'),
  purpose: ({ folder }) => (folder ? `listing DingTalk folder ${refId(folder)}` : 'listing your 我的文档 (My Docs)'),
  pending: ({ folder }) => (folder ? { status: 'ok', folderId: refId(folder) } : { status: 'ok' }),
  nothingDone: 'Nothing was listed.',
  async run({ folder, cursor }, call) {
    const app = await call.app();
    const folderId = folder !== undefined ? refId(folder) : (await app.mine.get(app)).rootNodeId;
    const page = await app.api.listNodes(folderId, app, PAGE_SIZE, cursor);
    const items = page.items.map((n) => ({
      id: n.nodeId,
      title: titleOf(n.name),
      link: linkOf(n.nodeId, n.url),
      ...(n.type ? { type: n.type } : {}),
      ...(n.hasChildren !== undefined ? { hasChildren: n.hasChildren } : {}),
      ...(n.modifiedTime ? { lastModified: isoTime(n.modifiedTime)! } : {}),
    }));
    const where = folder !== undefined ? `folder ${folderId}` : '我的文档 (My Docs)';
    const lines = items.map((i) => `- ${i.type === 'FOLDER' ? '[folder] ' : ''}${i.title} — ${i.link}`);
    const text = items.length === 0 ? `${where} is empty.` : `${items.length} item(s) in ${where}:\n${lines.join('\n')}`;
    return {
      content: [{ type: 'text', text: page.nextToken ? `${text}\nMore: call again with cursor = ${page.nextToken}` : text }],
      structuredContent: { status: 'ok', folderId, items, ...(page.nextToken ? { nextCursor: page.nextToken } : {}) },
    };
  },
});
