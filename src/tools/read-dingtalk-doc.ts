import * as z from 'zod/v4';
import { joinBlocks, renderBlocks } from '../dingtalk/blocks.js';
import { defineTool } from './define-tool.js';
import { documentInput, linkOf, refCheck, refId, statusOutput, titleOf } from './inputs.js';

/** Bounded output: a model's context is not a dump (cut at a block boundary, with a note how to go on). */
export const MAX_READ_CHARS = 30_000;

export const readDingTalkDoc = defineTool({
  name: 'read_dingtalk_doc',
  title: 'Read DingTalk document',
  description: [
    'Read a DingTalk document (钉钉文档) as Markdown, with its title and id, acting as the signed-in user: only documents they may read in DingTalk.',
    'Use it when the user asks what a document says, before changing a document, or to summarise it. Pass the link (https://alidocs.dingtalk.com/i/nodes/<id>) or the id.',
    `Long documents come in parts of about ${MAX_READ_CHARS.toLocaleString('en-US')} characters: the result says which block to pass as startBlock for the rest.`,
  ].join(' '),
  toolset: 'read',
  family: 'app',
  inputSchema: z
    .object({
      document: documentInput('The DingTalk document: its link as shown in the browser address bar (https://alidocs.dingtalk.com/i/nodes/<id>) or its id.'),
      startBlock: z
        .number()
        .int()
        .min(0)
        .max(100_000)
        .optional()
        .describe('Read from this block (0-based) on; use the nextStartBlock of a previous, cut-off result.'),
    })
    .strict(),
  outputSchema: statusOutput({
    documentId: z.string().describe('The document id (dentryUuid).'),
    title: z.string().describe('The document title.'),
    link: z.string().describe('The document link.'),
    markdown: z.string().describe('The content (from startBlock on) as Markdown.'),
    truncated: z.boolean().describe('True when the content was cut; read on from nextStartBlock.'),
    nextStartBlock: z.number().int().optional().describe('Where to continue reading, when truncated.'),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  check: ({ document }) => refCheck(document),
  purpose: ({ document }) => `reading DingTalk document ${refId(document)}`,
  pending: ({ document }) => ({ status: 'ok', documentId: refId(document) }),
  nothingDone: 'Nothing was read.',
  async run({ document, startBlock }, call) {
    const id = refId(document);
    const app = await call.app();
    // Title and content are two APIs (wiki_2_0 GetNode, doc_1_0 DocBlocksQuery): asked at once.
    const [node, blocks] = await Promise.all([app.api.getNode(id, app), app.api.queryBlocks(id, app, startBlock)]);
    const title = titleOf(node.name);
    const rendered = renderBlocks(blocks);
    let taken = 0;
    let size = 0;
    for (const b of rendered) {
      const next = size + b.markdown.length + 2;
      if (next > MAX_READ_CHARS && taken > 0) break;
      size = next;
      taken++;
    }
    const shown = rendered.slice(0, taken);
    let markdown = joinBlocks(shown);
    if (markdown.length > MAX_READ_CHARS) markdown = `${markdown.slice(0, MAX_READ_CHARS)}…`; // one giant block
    const truncated = taken < rendered.length;
    const nextStartBlock = truncated ? rendered[taken]!.index : undefined;
    const from = startBlock ? ` from block ${startBlock}` : '';
    const note = truncated
      ? `\n\n[Cut here: showing ${taken} of ${rendered.length} blocks${from}. Call read_dingtalk_doc again with startBlock: ${nextStartBlock} for the rest.]`
      : '';
    const empty = rendered.length === 0 ? (startBlock ? `(no blocks from block ${startBlock} on)` : '(the document is empty)') : '';
    return {
      content: [{ type: 'text', text: `# ${title}\n(DingTalk document ${id}, ${linkOf(id, node.url)})\n\n${markdown || empty}${note}` }],
      structuredContent: {
        status: 'ok',
        documentId: id,
        title,
        link: linkOf(id, node.url),
        markdown,
        truncated,
        ...(nextStartBlock !== undefined ? { nextStartBlock } : {}),
      },
    };
  },
});
