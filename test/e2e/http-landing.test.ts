/** `GET /` in HTTP mode tells a person (or a probing client) what the server is and how to connect; no secrets. */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/sandbox/index.js';
import { CLI, STATE_SECRET, waitFor } from '../helpers/stack.js';

let child: ChildProcess;
let base: string;
let stderr = '';

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [CLI, '--transport', 'http', '--sandbox', '--port', String(port)], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', APP_REDIRECT_URI: base, DINGTALK_MCP_STATE_SECRET: STATE_SECRET },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (c: Buffer) => void (stderr += c.toString()));
  await waitFor(() => /listening/i.test(stderr) && stderr.includes(String(port)), 'the HTTP server', 15_000);
});
afterAll(() => {
  child?.kill('SIGTERM');
});

describe('GET / in HTTP mode', () => {
  it('a browser gets a page naming the server, the /mcp endpoint and how to add it to a client', async () => {
    const res = await fetch(`${base}/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const page = await res.text();
    expect(page).toContain('agent-identity-dingtalk-mcp');
    expect(page).toContain(`${base}/mcp`);
    expect(page).toContain(`claude mcp add --transport http dingtalk ${base}/mcp`);
    expect(page).toContain(`${base}/.well-known/oauth-protected-resource/mcp`);
    // No secret and no client id: the state key, the sandbox's OAuth client.
    expect(page).not.toContain(STATE_SECRET);
    expect(page).not.toContain('dingtalk-mcp-sandbox');
  });

  it('a client asking for JSON gets the same facts as JSON', async () => {
    const res = await fetch(`${base}/`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { mcp: { url: string }; authentication: { type: string; issuer?: string } };
    expect(body.mcp).toEqual({ url: `${base}/mcp`, transport: 'streamable-http' });
    expect(body.authentication.type).toBe('oauth');
    expect(body.authentication.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('still refuses a foreign Host (DNS rebinding)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
