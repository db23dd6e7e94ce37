/**
 * docs/clients.md cannot rot: every fenced snippet is parsed (JSON must be valid and have the shape its client
 * reads; shell lines must be commands we know how to read), and the server is started with every command line a
 * snippet names — as the client would start it, plus `--sandbox` — and answers initialize and tools/list. Every URL
 * a snippet names is the `/mcp` endpoint of a server started with the snippet's own `--transport http` command.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/sandbox/index.js';
import { CLI, waitFor } from '../helpers/stack.js';

const sandboxStateHome = mkdtempSync(join(tmpdir(), 'snippets-sandbox-'));
afterAll(() => {
  spawnSync(process.execPath, [CLI, 'sandbox', 'stop'], { env: { ...process.env, XDG_STATE_HOME: sandboxStateHome } });
  rmSync(sandboxStateHome, { recursive: true, force: true });
});

const DOC = new URL('../../docs/clients.md', import.meta.url);
const PACKAGE = 'agent-identity-dingtalk-mcp';

interface Snippet {
  section: string;
  lang: string;
  body: string;
}

interface CommandLine {
  section: string;
  /** The server's own arguments (what follows the package name or the bin). */
  args: string[];
  env: Record<string, string>;
}

function snippets(markdown: string): Snippet[] {
  const out: Snippet[] = [];
  let section = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) section = line.slice(3).trim();
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) continue;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    out.push({ section, lang: fence[1] ?? '', body: body.join('\n') });
  }
  return out;
}

/** Words of one shell line: whitespace-separated, with '…' and "…" quoting. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) words.push(m[1] ?? m[2] ?? m[3]!);
  return words;
}

/** The server arguments of a command that starts it, or undefined when the command is not one of ours. */
function serverArgs(command: string, args: string[]): string[] | undefined {
  if (command === 'npx') {
    const at = args.indexOf(PACKAGE);
    expect(args.slice(0, at), `npx options before ${PACKAGE}`).toEqual(['-y']);
    return at >= 0 ? args.slice(at + 1) : undefined;
  }
  if (command === 'dingtalk-mcp') return args;
  return undefined;
}

interface Parsed {
  commands: CommandLine[];
  urls: Array<{ section: string; url: string }>;
}

function parse(all: Snippet[]): Parsed {
  const commands: CommandLine[] = [];
  const urls: Parsed['urls'] = [];
  const fromServerEntry = (section: string, entry: Record<string, unknown>) => {
    for (const key of ['url', 'httpUrl', 'baseUrl', 'serverUrl']) if (typeof entry[key] === 'string') urls.push({ section, url: entry[key] });
    if (typeof entry.command === 'string') {
      const args = serverArgs(entry.command, (entry.args as string[] | undefined) ?? []);
      expect(args, `${section}: a command that starts this server`).toBeDefined();
      commands.push({ section, args: args!, env: (entry.env as Record<string, string> | undefined) ?? {} });
    }
  };
  for (const s of all) {
    if (s.lang === 'json') {
      const config = JSON.parse(s.body) as Record<string, Record<string, Record<string, unknown>>>;
      // VS Code reads `servers` (with `type`); every other client reads `mcpServers`.
      const vscode = s.section.startsWith('VS Code') || 'servers' in config;
      const servers = vscode ? config.servers : config.mcpServers;
      expect(servers, `${s.section}: ${vscode ? 'servers' : 'mcpServers'}`).toBeTypeOf('object');
      expect(Object.keys(config)).toEqual([vscode ? 'servers' : 'mcpServers']);
      for (const entry of Object.values(servers!)) {
        if (vscode) expect(['stdio', 'http']).toContain(entry.type);
        fromServerEntry(s.section, entry);
      }
    } else if (s.lang === 'bash') {
      for (const line of s.body.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))) {
        const words = shellWords(line);
        if (words[0] === 'claude' || words[0] === 'qwen') {
          expect(words.slice(1, 3)).toEqual(['mcp', 'add']);
          const dashDash = words.indexOf('--');
          if (dashDash >= 0) {
            const env: Record<string, string> = {};
            words.slice(3, dashDash).forEach((w, i, list) => {
              if (w === '-e') {
                const [k, ...v] = list[i + 1]!.split('=');
                env[k!] = v.join('=');
              }
            });
            const args = serverArgs(words[dashDash + 1]!, words.slice(dashDash + 2));
            expect(args, line).toBeDefined();
            commands.push({ section: s.section, args: args!, env });
          } else {
            expect(words.slice(3, 5)).toEqual(['--transport', 'http']);
            urls.push({ section: s.section, url: words.at(-1)! });
          }
        } else if (words[0] === 'code') {
          expect(words[1]).toBe('--add-mcp');
          fromServerEntry(s.section, JSON.parse(words[2]!) as Record<string, unknown>);
        } else {
          const args = serverArgs(words[0]!, words.slice(1));
          expect(args, `${s.section}: unknown command line \`${line}\``).toBeDefined();
          commands.push({ section: s.section, args: args!, env: {} });
        }
      }
    } else {
      throw new Error(`${s.section}: a snippet in a language the test does not read (\`\`\`${s.lang})`);
    }
  }
  return { commands, urls };
}

const parsed = parse(snippets(readFileSync(DOC, 'utf8')));
const stdioCommands = parsed.commands.filter((c) => !c.args.includes('--transport'));
const httpCommands = parsed.commands.filter((c) => c.args.includes('--transport'));

describe('docs/clients.md', () => {
  it('has a section with a snippet for every client the docs promise', () => {
    const sections = new Set([...parsed.commands, ...parsed.urls].map((x) => x.section));
    for (const client of [
      'Claude Desktop',
      'Claude Code',
      'Cursor',
      'VS Code (GitHub Copilot)',
      'Cline',
      'Cherry Studio',
      'Qwen Code',
      'Gemini CLI',
      '通义灵码 (Lingma)',
    ]) {
      expect(sections, client).toContain(client);
    }
    expect(parsed.urls.length).toBeGreaterThanOrEqual(6);
    expect(httpCommands.length).toBeGreaterThanOrEqual(1);
  });

  // One server per distinct command line (several clients share one).
  const distinct = [...new Map(stdioCommands.map((c) => [JSON.stringify([c.args, c.env]), c])).values()];
  it.each(distinct.map((c) => [c.args.join(' ') + (Object.keys(c.env).length ? ` (env ${Object.keys(c.env).join(', ')})` : ''), c] as const))(
    'the server starts with `%s` and lists its tools',
    async (_name, c) => {
      const args = c.args.includes('--sandbox') ? c.args : [...c.args, '--sandbox'];
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [CLI, ...args],
        stderr: 'pipe',
        env: {
          ...c.env,
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          APP_REDIRECT_URI: `http://127.0.0.1:${await freePort()}`,
          // The shared sandbox services of this file, not the user's (stopped in afterAll).
          XDG_STATE_HOME: sandboxStateHome,
        },
      });
      let stderr = '';
      transport.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
      const client = new Client({ name: 'snippet-test', version: '1.0.0' });
      try {
        await client.connect(transport);
        const { tools } = await client.listTools();
        expect(
          tools.map((t) => t.name),
          stderr,
        ).toContain('write_dingtalk_doc');
      } finally {
        await client.close().catch(() => {});
      }
    },
  );

  it('every URL is the /mcp endpoint that the snippet’s own HTTP command serves', async () => {
    for (const { url } of parsed.urls) expect(new URL(url).pathname).toBe('/mcp');
    const local = parsed.urls.map((u) => new URL(u.url)).filter((u) => u.hostname === 'localhost');
    expect(local.length).toBeGreaterThan(0);
    // The documented defaults are port 8090 on localhost; a test must not bind a fixed port, so it moves the port.
    for (const u of local) expect(u.port).toBe('8090');
    for (const c of httpCommands) {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const child = spawn(process.execPath, [CLI, ...c.args, '--port', String(port)], {
        env: { ...c.env, PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', APP_REDIRECT_URI: base },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
      try {
        await waitFor(() => /listening/i.test(stderr) && stderr.includes(String(port)), 'the HTTP server', 15_000);
        const res = await fetch(`${base}${local[0]!.pathname}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
          }),
        });
        // An MCP endpoint that asks the client to sign in: what OAuth-capable clients follow.
        expect(res.status, stderr).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp"/);
      } finally {
        child.kill('SIGTERM');
      }
    }
  });
});
