#!/usr/bin/env node
/**
 * The folder rules of docs/architecture.md ("Rules between folders"), checked on every import of src/ (static,
 * type-only, re-exports and dynamic import()):
 *   1. only the CLI entry points (src/cli.ts, src/provisioning/cli.ts) load src/sandbox/;
 *   2. tools (src/tools/) never import a transport (src/transports/, src/http/);
 *   3. src/ never imports examples/, bench/ or test/;
 *   4. the browser pages (src/browser/) serve both transports, so they import neither (src/transports/, src/http/).
 * Usage: node scripts/check-boundaries.mjs [repository root]. Exit 1 with one line per violation.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const DOC = 'docs/architecture.md#rules-between-folders';
const SANDBOX_LOADERS = new Set(['src/cli.ts', 'src/provisioning/cli.ts']);

const RULES = [
  {
    applies: (file) => !file.startsWith('src/sandbox/') && !SANDBOX_LOADERS.has(file),
    forbidden: (target) => target.startsWith('src/sandbox/') || target === 'src/sandbox',
    why: 'only the CLI entry points (src/cli.ts, src/provisioning/cli.ts) load src/sandbox/',
  },
  {
    applies: (file) => file.startsWith('src/tools/'),
    forbidden: (target) => /^src\/(transports|http)(\/|$)/.test(target),
    why: 'tools never import a transport (src/transports/, src/http/): a tool works the same over stdio and HTTP',
  },
  {
    applies: (file) => file.startsWith('src/'),
    forbidden: (target) => /^(examples|bench|test)(\/|$)/.test(target),
    why: 'the product (src/) never imports examples/, bench/ or test/',
  },
  {
    applies: (file) => file.startsWith('src/browser/'),
    forbidden: (target) => /^src\/(transports|http)(\/|$)/.test(target),
    why: 'the browser pages (src/browser/) serve both transports, so they import neither (src/transports/, src/http/)',
  },
];

const IMPORT = /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

function tsFiles(dir) {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

const violations = [];
for (const file of tsFiles('src')) {
  const text = readFileSync(join(root, file), 'utf8');
  for (const match of text.matchAll(IMPORT)) {
    const specifier = match[1] ?? match[2];
    if (!specifier.startsWith('.')) continue;
    const target = relative(root, resolve(join(root, dirname(file)), specifier))
      .split(sep)
      .join('/');
    for (const rule of RULES) {
      if (rule.applies(file) && rule.forbidden(target)) {
        const line = text.slice(0, match.index).split('\n').length;
        violations.push(`${file}:${line}: imports ${specifier}: ${rule.why} (${DOC})`);
      }
    }
  }
}

if (violations.length > 0) {
  process.stderr.write(`${violations.join('\n')}\n${violations.length} import${violations.length === 1 ? '' : 's'} break the folder rules.\n`);
  process.exit(1);
}
