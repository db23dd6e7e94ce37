/**
 * The published package, as a user gets it from `npx -y agent-identity-dingtalk-mcp --sandbox`: a copy of the
 * repository as git sees it is packed (`npm pack` runs `prepack`, which builds), the tarball is installed into an
 * empty prefix with production dependencies only (npm's cache has them after `npm ci`), and the installed
 * `dingtalk-mcp --sandbox` is driven by a real MCP client through initialize, tools/list and a consented write.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { freePort } from '../../src/sandbox/index.js';
import { textOf, waitFor } from '../helpers/stack.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string }>;
}

let work: string;
let packed: PackResult;
let prefix: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'dingtalk-mcp-pack-'));
  // A fresh clone: the files git tracks (or would track), no dist/; node_modules shared for the build.
  const clone = join(work, 'clone');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && existsSync(join(repo, f)));
  for (const f of files) {
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    cpSync(join(repo, f), join(clone, f));
  }
  symlinkSync(join(repo, 'node_modules'), join(clone, 'node_modules'), 'dir');

  const out = execFileSync(npm, ['pack', '--json', '--pack-destination', work], { cwd: clone, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  packed = (JSON.parse(out) as PackResult[])[0]!;
  // What the closing note reports.
  process.stderr.write(`package: ${packed.filename} ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.entryCount} files\n`);

  prefix = join(work, 'prefix');
  mkdirSync(prefix);
  const install = spawnSync(npm, ['install', '--prefix', prefix, '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed.filename)], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (install.status !== 0) throw new Error(`npm install of the tarball failed:\n${install.stdout}\n${install.stderr}`);
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds what runs and the docs, and nothing else', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'LICENSE', 'README.md', 'dist/src/cli.js', 'dist/src/sandbox/index.js']));
    // The bin points at a file that is there.
    const manifest = JSON.parse(readFileSync(join(prefix, 'node_modules/agent-identity-dingtalk-mcp/package.json'), 'utf8')) as Record<string, unknown>;
    expect(paths).toContain((manifest.bin as Record<string, string>)['dingtalk-mcp']);
    for (const p of paths) {
      expect(p).toMatch(/^(dist\/src\/.+\.js|docs\/.+\.md|[A-Z][A-Za-z.-]*\.md|LICENSE|package\.json)$/);
    }
    expect(manifest.private).toBeUndefined();
    expect(manifest.license).toBe('Apache-2.0');
    expect(readFileSync(join(prefix, 'node_modules/agent-identity-dingtalk-mcp/LICENSE'), 'utf8')).toContain('Apache License');
  });

  it('installs production dependencies only', () => {
    const installed = (name: string) => existsSync(join(prefix, 'node_modules', name, 'package.json'));
    expect(installed('@modelcontextprotocol/server')).toBe(true);
    for (const dev of ['typescript', 'vitest', '@modelcontextprotocol/client', '@modelcontextprotocol/sdk']) expect(installed(dev)).toBe(false);
  });
});

describe('the installed dingtalk-mcp setup', () => {
  it("prints a client configuration that starts the server with npx, not a path inside npm's cache", () => {
    const home = join(work, 'home-setup');
    mkdirSync(home, { recursive: true });
    const run = spawnSync(join(prefix, 'node_modules', '.bin', 'dingtalk-mcp'), ['setup', '--sandbox', '--no-prompt'], {
      cwd: home,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '', HOME: home },
    });
    expect(run.status, run.stderr).toBe(0);
    const config = /\{\n {2}"mcpServers"[\s\S]*?\n\}/.exec(run.stdout)?.[0];
    expect(config, run.stdout).toBeDefined();
    expect(JSON.parse(config!).mcpServers.dingtalk).toMatchObject({ command: 'npx', args: ['-y', 'agent-identity-dingtalk-mcp'] });
  });
});

describe('the installed dingtalk-mcp --sandbox', () => {
  it('answers initialize and tools/list, and completes a consented write', async () => {
    const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
    const home = join(work, 'home');
    mkdirSync(home, { recursive: true });
    const transport = new StdioClientTransport({
      command: join(prefix, 'node_modules', '.bin', 'dingtalk-mcp'),
      args: ['--sandbox'],
      cwd: home,
      stderr: 'pipe',
      env: { PATH: process.env.PATH ?? '', HOME: home, APP_REDIRECT_URI: appRedirectUri, AGENT_IDENTITY_USER_ID: 'npx-user' },
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
    const client = new Client(
      { name: 'package-test', version: '1.0.0' },
      { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'legacy' } },
    );
    try {
      await client.connect(transport);
      expect(client.getServerVersion()).toMatchObject({ name: 'agent-identity-dingtalk-mcp' });

      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('write_dingtalk_doc');

      await waitFor(() => stderr.includes('authorization pages listening'), 'the callback listener');
      const viewer = /viewer=(http:\/\/127\.0\.0\.1:\d+\/sandbox\/docs\/\S+)/.exec(stderr)?.[1];
      const documentLink = /document=(https:\/\/alidocs\.dingtalk\.com\/\S+)/.exec(stderr)?.[1];
      expect(viewer).toBeDefined();
      expect(documentLink).toBeDefined();

      let consent: Promise<unknown> | undefined;
      client.setRequestHandler('elicitation/create', async (request) => {
        const params = request.params as { mode?: string; url?: string };
        expect(params.mode).toBe('url');
        consent = followAuthorizationLink(params.url!);
        return { action: 'accept' };
      });
      const content = `# Installed from the tarball\n\n${Date.now()}`;
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: documentLink!, content } }, { timeout: 60_000 });
      await consent;
      expect(result.isError, textOf(result)).toBeFalsy();
      expect(textOf(result)).toContain('Wrote');

      const page = await (await fetch(viewer!)).text();
      expect(page).toContain('Installed from the tarball');
    } finally {
      await client.close().catch(() => {});
      // The shared sandbox services outlive the copy (docs/sandbox.md): end them with the command users have.
      spawnSync(join(prefix, 'node_modules', '.bin', 'dingtalk-mcp'), ['sandbox', 'stop'], { env: { PATH: process.env.PATH ?? '', HOME: home } });
    }
  });
});
