/**
 * The sandbox layout docs/architecture.md describes: one folder per emulated service (state, OpenAPI handlers
 * and consent pages as separate modules), the HTTP plumbing written once in src/sandbox/http.ts and acs-rpc.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const sandbox = fileURLToPath(new URL('../../src/sandbox', import.meta.url));
const SHARED = ['acs-rpc.ts', 'http.ts', 'index.ts'];

function modules(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name), `${prefix}${e.name}/`) : e.name.endsWith('.ts') ? [`${prefix}${e.name}`] : [],
  );
}

describe('src/sandbox layout', () => {
  it('holds one folder per emulated service, the shared services process that hosts them, and at the top only the shared plumbing and the sandbox assembly', () => {
    const top = readdirSync(sandbox, { withFileTypes: true });
    expect(top.filter((e) => e.isFile()).map((e) => e.name)).toEqual(SHARED);
    expect(top.filter((e) => e.isDirectory()).map((e) => e.name)).toEqual(['agent-identity', 'control-plane', 'dingtalk', 'oidc', 'services']);
  });

  it('splits the Agent Identity emulator by concern', () => {
    expect(modules(join(sandbox, 'agent-identity'))).toEqual(expect.arrayContaining(['state.ts', 'openapi.ts', 'consent.ts', 'index.ts']));
  });

  it('keeps every module small (at most 400 lines)', () => {
    const long = modules(sandbox)
      .map((m) => ({ m, lines: readFileSync(join(sandbox, m), 'utf8').split('\n').length }))
      .filter((x) => x.lines > 400);
    expect(long).toEqual([]);
  });

  it('reads request bodies and writes POP errors only through the shared plumbing', () => {
    for (const m of modules(sandbox).filter((m) => !SHARED.includes(m))) {
      const text = readFileSync(join(sandbox, m), 'utf8');
      expect({ m, readsBody: /\.on\('data'/.test(text), writesPopError: /HostId:/.test(text) }).toEqual({ m, readsBody: false, writesPopError: false });
    }
  });
});
