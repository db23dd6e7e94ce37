import { describe, expect, it } from 'vitest';
import { joinBlocks, renderBlocks } from '../../src/dingtalk/blocks.js';
import { markdownToBlocks } from '../../src/sandbox/dingtalk/markdown.js';

describe('DocBlocksQuery blocks → Markdown', () => {
  it('renders the third-party-observed shapes', () => {
    const md = joinBlocks(
      renderBlocks([
        { blockType: 'heading', heading: { level: 'heading-2', text: 'Title' }, index: 0, id: 'a' },
        { blockType: 'paragraph', paragraph: { text: 'Hello' }, index: 1, id: 'b' },
      ]),
    );
    expect(md).toBe('## Title\n\nHello');
  });
  it('round-trips headings, paragraphs with links, lists, quotes, tables and code through the emulator model', () => {
    const source =
      '# H1\n\nText with [a link](https://example.com/a?b=1).\n\n- one\n- two\n  - nested\n\n1. first\n\n> quoted\n\n| A | B |\n| --- | --- |\n| 1 | 2 |\n\n```ts\nconst x = 1;\n```';
    expect(joinBlocks(renderBlocks(markdownToBlocks(source, 'doc')))).toBe(source);
  });
  it('marks a block it cannot render instead of dropping it, and survives junk', () => {
    const md = joinBlocks(renderBlocks([{ blockType: 'mindmap', mindmap: {} }, null, 42, { blockType: 'paragraph' }]));
    expect(md).toContain('"mindmap" block');
    expect(md).toContain('"unknown" block');
  });
});
