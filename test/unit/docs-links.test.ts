/**
 * The docs stay navigable: every relative link in the READMEs, the top-level guides and docs/ points at a file in
 * the repository (and at a heading that exists, for `#anchors`), and every comment in the code that cites a
 * document cites one that is in the repository.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

function files(dir: string, ext: RegExp): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' ? [] : files(path, ext);
    return ext.test(e.name) ? [path] : [];
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return out;
}

const markdown = [
  'README.md',
  'README.zh-CN.md',
  'CONTRIBUTING.md',
  'SECURITY.md',
  'CHANGELOG.md',
  ...files('docs', /\.md$/),
  ...files('examples', /\.md$/),
].filter((f) => existsSync(join(root, f)));

describe('links in the docs', () => {
  it.each(markdown)('%s links only to what exists', (file) => {
    const text = readFileSync(join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const resolved = path ? join(dirname(file), path) : file;
      if (!existsSync(join(root, resolved))) {
        broken.push(target);
        continue;
      }
      if (anchor && resolved.endsWith('.md') && !anchors(readFileSync(join(root, resolved), 'utf8')).has(decodeURIComponent(anchor))) broken.push(target);
    }
    expect(broken).toEqual([]);
  });
});

describe('documents cited in code comments', () => {
  const code = ['src', 'examples', 'bench', 'test'].flatMap((d) => files(d, /\.ts$/));
  it('are files of this repository', () => {
    const missing: string[] = [];
    for (const file of code) {
      // Comment lines only: a test may name a missing file on purpose.
      const text = readFileSync(join(root, file), 'utf8')
        .split('\n')
        .filter((line) => /^\s*(\/\/|\/?\*)/.test(line) || /\s\/\/\s/.test(line))
        .join('\n');
      for (const m of text.matchAll(/\b((?:docs|examples|src)\/[\w./-]+\.md)\b/g)) {
        if (!existsSync(join(root, m[1]!))) missing.push(`${relative(root, join(root, file))}: ${m[1]}`);
      }
      for (const m of text.matchAll(/(?<![\w/])reference\/[\w-]+\.md/g)) missing.push(`${file}: ${m[0]} (the notes are docs/reference/)`);
      for (const m of text.matchAll(/\b(DESIGN(?:\.md)? decision|shared\/reference)/g)) missing.push(`${file}: ${m[1]} (not in the repository)`);
    }
    expect(missing).toEqual([]);
  });
});
