/**
 * How the emulator turns a document's Markdown into DocBlocksQuery's first-level blocks.
 *
 * The SDK types `result.data` as `any[]` (doc_1_0 DocBlocksQueryResponseBodyResult). Observed by a third party
 * (docs/dingtalk-api.md): `{blockType:"heading", heading:{level:"heading-2", text}, index, id}` and
 * `{blockType:"paragraph", paragraph:{text}}`, `"unknown"` for unsupported types. Everything else here —
 * `children` inline elements with links, list, quote, table and code blocks — is MODELED (UNVERIFIED).
 */
import { createHash } from 'node:crypto';

export type Inline = { elementType: 'text'; text: { content: string } } | { elementType: 'link'; link: { text: string; url: string } };

export type Block = { id: string; index: number; blockType: string } & Record<string, unknown>;

export function markdownToBlocks(markdown: string, docId: string): Block[] {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const out: Array<Record<string, unknown> & { blockType: string }> = [];
  let paragraph: string[] = [];
  const flush = () => {
    if (paragraph.length) out.push({ blockType: 'paragraph', paragraph: textBody(paragraph.join('\n')) });
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = /^```\s*([\w+-]*)\s*$/.exec(line);
    if (fence) {
      flush();
      const body: string[] = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
      out.push({ blockType: 'code', code: { language: fence[1] ?? '', text: body.join('\n') } });
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      out.push({ blockType: 'heading', heading: { level: `heading-${heading[1]!.length}`, ...textBody(heading[2]!.trim()) } });
      continue;
    }
    const bullet = /^(\s*)[-*+]\s+(.*)$/.exec(line);
    const ordered = /^(\s*)\d+[.)]\s+(.*)$/.exec(line);
    if (bullet || ordered) {
      flush();
      const m = (bullet ?? ordered)!;
      const type = bullet ? 'unorderedList' : 'orderedList';
      out.push({ blockType: type, [type]: { level: Math.floor(m[1]!.replace(/\t/g, '  ').length / 2), ...textBody(m[2]!) } });
      continue;
    }
    if (/^>\s?/.test(line)) {
      flush();
      const quote: string[] = [];
      for (; i < lines.length && /^>\s?/.test(lines[i]!); i++) quote.push(lines[i]!.replace(/^>\s?/, ''));
      i--;
      out.push({ blockType: 'blockquote', blockquote: textBody(quote.join('\n')) });
      continue;
    }
    if (line.trim().startsWith('|') && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1] ?? '')) {
      flush();
      const rows: string[][] = [cells(line)];
      for (i += 2; i < lines.length && lines[i]!.trim().startsWith('|'); i++) rows.push(cells(lines[i]!));
      i--;
      out.push({ blockType: 'table', table: { rowSize: rows.length, colSize: rows[0]!.length, rows } });
      continue;
    }
    paragraph.push(line);
  }
  flush();
  return out.map((b, index) => ({ id: blockId(docId, index, b), index, ...b }));
}

function textBody(text: string): { text: string; children: Inline[] } {
  const children: Inline[] = [];
  let plain = '';
  let last = 0;
  for (const m of text.matchAll(/\[([^\]]*)\]\(([^)\s]+)\)/g)) {
    if (m.index > last) children.push({ elementType: 'text', text: { content: text.slice(last, m.index) } });
    children.push({ elementType: 'link', link: { text: m[1]!, url: m[2]! } });
    last = m.index + m[0].length;
  }
  if (last < text.length) children.push({ elementType: 'text', text: { content: text.slice(last) } });
  for (const c of children) plain += c.elementType === 'text' ? c.text.content : c.link.text;
  return { text: plain, children };
}

function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());
}

function blockId(docId: string, index: number, block: unknown): string {
  return createHash('sha256')
    .update(`${docId}:${index}:${JSON.stringify(block)}`)
    .digest('hex')
    .slice(0, 16);
}
