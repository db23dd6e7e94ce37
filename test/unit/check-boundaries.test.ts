/** scripts/check-boundaries.mjs (run by `npm run lint`): it passes on this repository and names each broken rule. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/check-boundaries.mjs', import.meta.url));
const repo = fileURLToPath(new URL('../..', import.meta.url));
const fixtures: string[] = [];
afterAll(() => {
  for (const dir of fixtures) rmSync(dir, { recursive: true, force: true });
});

function check(root: string) {
  return spawnSync(process.execPath, [script, root], { encoding: 'utf8' });
}

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'boundaries-'));
  fixtures.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('the folder rules', () => {
  it('hold in this repository', () => {
    const run = check(repo);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('allow the CLI entry points to load the sandbox, and tools to use their own modules', () => {
    const run = check(
      tree({
        'src/cli.ts': "const { startSandbox } = await import('./sandbox/index.js');\n",
        'src/provisioning/cli.ts': "import { start } from '../sandbox/control-plane/index.js';\n",
        'src/sandbox/index.ts': "import { listen } from './http.js';\n",
        'src/tools/a.ts': "import { defineTool } from './define-tool.js';\nimport { z } from 'zod';\n",
      }),
    );
    expect(run.status).toBe(0);
  });

  it('name each import that breaks one, with its line', () => {
    const run = check(
      tree({
        'src/runtime.ts': "import type { Sandbox } from './sandbox/index.js';\n",
        'src/tools/b.ts': "\nimport { serveHttpTransport } from '../transports/http.js';\nexport { x } from '../http/app.js';\n",
        'src/server.ts': "const m = await import('../examples/shared/browser.js');\n",
        'src/browser/routes.ts': "import { sendPage } from './pages.js';\nimport type { App } from '../http/app.js';\n",
      }),
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('src/runtime.ts:1: imports ./sandbox/index.js: only the CLI entry points');
    expect(run.stderr).toContain('src/tools/b.ts:2: imports ../transports/http.js: tools never import a transport');
    expect(run.stderr).toContain('src/tools/b.ts:3: imports ../http/app.js: tools never import a transport');
    expect(run.stderr).toContain('src/server.ts:1: imports ../examples/shared/browser.js: the product (src/) never imports examples/');
    expect(run.stderr).toContain('src/browser/routes.ts:2: imports ../http/app.js: the browser pages (src/browser/) serve both transports');
    expect(run.stderr).toContain('5 imports break the folder rules.');
  });
});
