/**
 * DocBlocksQuery's first-level blocks → Markdown.
 *
 * The SDK types the blocks as `any[]` (doc_1_0 DocBlocksQueryResponseBodyResult.data). A third party observed
 * `{blockType:"heading", heading:{level:"heading-2", text}}` and `{blockType:"paragraph", paragraph:{text}}`
 * (docs/dingtalk-api.md). The rest — inline `children` (text and link elements), list, quote, table and code
 * blocks — is UNVERIFIED: this reader accepts those shapes, falls back to a block's `text`, and marks any block
 * it cannot render instead of dropping it silently.
 */

export interface RenderedBlock {
  index: number;
  markdown: string;
  /** Items of one list join with single line breaks. */
  list?: 'unorderedList' | 'orderedList';
}

export function renderBlocks(blocks: unknown[]): RenderedBlock[] {
  return blocks.map((raw, i) => {
    const b = record(raw) ?? {};
    const index = typeof b['index'] === 'number' ? b['index'] : i;
    const type = typeof b['blockType'] === 'string' ? b['blockType'] : 'unknown';
    const body = record(b[type]) ?? {};
    switch (type) {
      case 'heading': {
        const level = Number(/(\d)/.exec(String(body['level'] ?? ''))?.[1] ?? 1);
        return { index, markdown: `${'#'.repeat(Math.min(Math.max(level, 1), 6))} ${inline(body)}` };
      }
      case 'paragraph':
        return { index, markdown: inline(body) };
      case 'unorderedList':
      case 'orderedList': {
        const level = typeof body['level'] === 'number' && body['level'] > 0 ? Math.min(body['level'], 8) : 0;
        return { index, markdown: `${'  '.repeat(level)}${type === 'orderedList' ? '1.' : '-'} ${inline(body)}`, list: type };
      }
      case 'blockquote':
        return {
          index,
          markdown: inline(body)
            .split('\n')
            .map((l) => `> ${l}`)
            .join('\n'),
        };
      case 'code': {
        const lang = typeof body['language'] === 'string' ? body['language'] : '';
        return { index, markdown: `\`\`\`${lang}\n${text(body)}\n\`\`\`` };
      }
      case 'table':
        return { index, markdown: table(body) };
      default: {
        const fallback = text(body);
        return { index, markdown: fallback ? fallback : `<!-- a DingTalk "${type}" block that cannot be shown as Markdown -->` };
      }
    }
  });
}

/** Join rendered blocks into one Markdown text. */
export function joinBlocks(blocks: RenderedBlock[]): string {
  let out = '';
  blocks.forEach((b, i) => {
    if (i > 0) out += b.list !== undefined && b.list === blocks[i - 1]!.list ? '\n' : '\n\n';
    out += b.markdown;
  });
  return out;
}

function inline(body: Record<string, unknown>): string {
  const children = body['children'];
  if (Array.isArray(children) && children.length > 0) {
    return children
      .map((c) => {
        const el = record(c) ?? {};
        if (el['elementType'] === 'link') {
          const link = record(el['link']) ?? {};
          const url = typeof link['url'] === 'string' ? link['url'] : '';
          const label = typeof link['text'] === 'string' ? link['text'] : url;
          return url ? `[${label}](${url})` : label;
        }
        const t = record(el['text']);
        return typeof t?.['content'] === 'string' ? t['content'] : '';
      })
      .join('');
  }
  return text(body);
}

function text(body: Record<string, unknown>): string {
  return typeof body['text'] === 'string' ? body['text'] : '';
}

function table(body: Record<string, unknown>): string {
  const rows = Array.isArray(body['rows']) ? body['rows'].filter(Array.isArray) : [];
  if (rows.length === 0) return '<!-- a DingTalk table that cannot be shown as Markdown -->';
  const cell = (c: unknown) =>
    String(typeof c === 'string' ? c : (record(c)?.['text'] ?? ''))
      .replace(/\|/g, '\\|')
      .replace(/\n/g, ' ');
  const width = Math.max(...rows.map((r) => r.length));
  const line = (r: unknown[]) => `| ${Array.from({ length: width }, (_, i) => cell(r[i] ?? '')).join(' | ')} |`;
  return [line(rows[0]!), `|${' --- |'.repeat(width)}`, ...rows.slice(1).map(line)].join('\n');
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
