import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { documentInput, isoTime, linkOf, refCheck, refId, statusOutput, titleOf } from './inputs.js';

export const getDingTalkDocInfo = defineTool({
  name: 'get_dingtalk_doc_info',
  title: 'DingTalk document info',
  description: [
    "Look up a DingTalk document or folder by link or id, as the signed-in user: its id, title, link, type, creator, last modification and the user's own role on it (reader, editor, owner), as DingTalk reports them.",
    'Use it to check what a link points at, or whether the user may edit it, before reading or writing.',
  ].join(' '),
  toolset: 'read',
  family: 'app',
  inputSchema: z
    .object({ document: documentInput('The DingTalk document or folder: its link (https://alidocs.dingtalk.com/i/nodes/<id>) or its id.') })
    .strict(),
  outputSchema: statusOutput({
    documentId: z.string(),
    title: z.string(),
    link: z.string(),
    type: z.string().optional().describe('FILE or FOLDER, as DingTalk reports it.'),
    extension: z.string().optional().describe('e.g. adoc for an online document.'),
    workspaceId: z.string().optional(),
    creatorId: z.string().optional().describe("The creator's DingTalk user id, as DingTalk reports it."),
    created: z.string().optional(),
    lastModified: z.string().optional(),
    lastModifiedById: z.string().optional(),
    yourRole: z.string().optional().describe("The signed-in user's role on it (e.g. READER, EDITOR, OWNER)."),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  check: ({ document }) => refCheck(document),
  purpose: ({ document }) => `looking up DingTalk document ${refId(document)}`,
  pending: ({ document }) => ({ status: 'ok', documentId: refId(document) }),
  nothingDone: 'Nothing was looked up.',
  async run({ document }, call) {
    const id = refId(document);
    const app = await call.app();
    const node = await app.api.getNode(id, app);
    const info = {
      documentId: node.nodeId,
      title: titleOf(node.name),
      link: linkOf(node.nodeId, node.url),
      ...(node.type ? { type: node.type } : {}),
      ...(node.extension ? { extension: node.extension } : {}),
      ...(node.workspaceId ? { workspaceId: node.workspaceId } : {}),
      ...(node.creatorId ? { creatorId: node.creatorId } : {}),
      ...(node.createTime ? { created: isoTime(node.createTime)! } : {}),
      ...(node.modifiedTime ? { lastModified: isoTime(node.modifiedTime)! } : {}),
      ...(node.modifierId ? { lastModifiedById: node.modifierId } : {}),
      ...(node.permissionRole ? { yourRole: node.permissionRole } : {}),
    };
    const lines = Object.entries(info).map(([k, v]) => `${k}: ${v}`);
    return { content: [{ type: 'text', text: lines.join('\n') }], structuredContent: { status: 'ok', ...info } };
  },
});
