/**
 * HTTP-mode security defects from issue 9, part 2 ("Cookie tossing", "Identity provider", "Redirect
 * target") and part 1 point 4 (a --port that differs from APP_REDIRECT_URI). The HTTP transport runs
 * in-process against the sandbox; requests are raw HTTP, so the test sees what a browser or client would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { freePort, SANDBOX, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { serveHttpTransport } from '../../src/transports/http.js';

interface Served {
  base: string;
  runtime: Runtime;
  logs: string[];
  close(): Promise<void>;
}

let sandbox: Sandbox;
let served: Served;

/** Start the HTTP transport with these flags and environment on top of the sandbox's. */
async function serve(argv: string[], env: Record<string, string>): Promise<Served> {
  const config = loadConfig({
    argv: ['--transport', 'http', ...argv],
    env: { ...sandbox.serverEnv(env.APP_REDIRECT_URI ?? 'http://127.0.0.1:1'), OIDC_AUDIENCE: SANDBOX.oidcClientId, ...env },
    cwd: '/nonexistent',
  });
  const logs: string[] = [];
  const runtime = createRuntime(config, { credential: sandbox.credential, logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }) });
  try {
    const transport = await serveHttpTransport(runtime);
    return {
      base: config.appRedirectUri,
      runtime,
      logs,
      close: async () => {
        await transport.close();
        await runtime.close();
      },
    };
  } catch (e) {
    await runtime.close();
    throw e;
  }
}

beforeAll(async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  sandbox = await startSandbox({ callbackUrl: [`${base}/callback`], oidc: { loginRedirectUri: `${base}/login/callback` } });
  served = await serve(['--port', String(port)], { APP_REDIRECT_URI: base });
});
afterAll(async () => {
  await served?.close();
  await sandbox?.close();
});

describe('cookie tossing', () => {
  it.each(['/callback?state=abc', '/login/callback?state=abc&code=x'])(
    '%s with one of our cookies twice → 400 page, a security warning without values',
    async (path) => {
      const res = await fetch(`${served.base}${path}`, {
        headers: { cookie: 'dtmcp_bind_p1=planted-by-attacker-1; other=1; dtmcp_bind_p1=victims-own-2' },
        redirect: 'manual',
      });
      expect(res.status).toBe(400);
      const page = await res.text();
      expect(page).toContain('Conflicting cookies');
      expect(page).toContain('Nothing was changed.');
      const logs = served.logs.join('\n');
      expect(logs).toContain('cookie tossing');
      expect(logs).toContain('dtmcp_bind_p1');
      expect(logs).not.toContain('planted-by-attacker-1');
      expect(logs).not.toContain('victims-own-2');
    },
  );

  it('a cookie of another application twice is not our concern: the callback goes on to its own checks', async () => {
    const res = await fetch(`${served.base}/callback?state=abc`, { headers: { cookie: '_ga=1; _ga=2' } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('could not be verified');
  });
});

describe('where HTTP mode listens', () => {
  it('a non-loopback address with an http:// APP_REDIRECT_URI is refused, naming the fix', async () => {
    const port = await freePort();
    await expect(serve(['--host', '0.0.0.0', '--port', String(port)], { APP_REDIRECT_URI: `http://10.1.2.3:${port}` })).rejects.toThrow(
      /refusing to serve on 0\.0\.0\.0 without TLS.*https:\/\/.*DINGTALK_MCP_ALLOW_INSECURE_HTTP=1/,
    );
  });

  it('DINGTALK_MCP_ALLOW_INSECURE_HTTP=1 serves anyway, with the loud warning', async () => {
    const port = await freePort();
    const own = await serve(['--host', '0.0.0.0', '--port', String(port)], {
      APP_REDIRECT_URI: `http://10.1.2.3:${port}`,
      DINGTALK_MCP_ALLOW_INSECURE_HTTP: '1',
    });
    try {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBeLessThan(500);
      expect(own.logs.join('\n')).toContain('without TLS');
    } finally {
      await own.close();
    }
  });

  it('an https public URL in front of a non-loopback bind is the normal deployment', async () => {
    const port = await freePort();
    const own = await serve(['--host', '0.0.0.0', '--port', String(port)], { APP_REDIRECT_URI: 'https://mcp.example.com' });
    await own.close();
  });

  it('a loopback APP_REDIRECT_URI on another port than --port is refused, naming both and the fixes', async () => {
    const [listen, other] = [await freePort(), await freePort()];
    const attempt = serve(['--port', String(listen)], { APP_REDIRECT_URI: `http://127.0.0.1:${other}` });
    await expect(attempt).rejects.toThrow(`APP_REDIRECT_URI is http://127.0.0.1:${other} (port ${other}) but --port is ${listen}`);
    await expect(attempt).rejects.toThrow(`Use --port ${other}, or set APP_REDIRECT_URI=http://127.0.0.1:${listen}`);
    await expect(attempt).rejects.toThrow('DINGTALK_MCP_PUBLIC_URL_PROXIED=1');
  });

  it('a local proxy in front (DINGTALK_MCP_PUBLIC_URL_PROXIED=1) may use another port', async () => {
    const [listen, other] = [await freePort(), await freePort()];
    const own = await serve(['--port', String(listen)], { APP_REDIRECT_URI: `http://127.0.0.1:${other}`, DINGTALK_MCP_PUBLIC_URL_PROXIED: '1' });
    await own.close();
  });

  it('without APP_REDIRECT_URI, the advertised URL follows --port', async () => {
    const port = await freePort();
    const config = loadConfig({ argv: ['--transport', 'http', '--port', String(port), '--sandbox'], env: {}, cwd: '/nonexistent' });
    expect(config.appRedirectUri).toBe(`http://localhost:${port}`);
    expect(config.callbackUrl).toBe(`http://localhost:${port}/callback`);
  });
});
