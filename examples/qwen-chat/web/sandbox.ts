/**
 * `--sandbox` for the web chat: the terminal chat's stand-ins (DashScope emulator, billing MCP service), emulated
 * Agent Identity, DingTalk and identity provider, and this project's server in HTTP (multi-user) mode, spawned from
 * dist/ exactly as a deployment runs it. The web chat registers itself at the emulated identity provider as an OAuth
 * client, so signing in on the page is the same authorization-code + PKCE flow as against a real provider.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { startDashScopeEmulator, type DashScopeEmulator, type ScriptRule } from '../../shared/dashscope-emulator.js';
import { freePort, startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import type { OidcUser } from '../../../src/sandbox/oidc/index.js';
import type { ResolvedServer } from '../config.js';
import { startBillingStandIn, type BillingStandIn } from '../sandbox-billing-server.js';
import { DINGTALK_CLI } from '../sandbox.js';

export const WEB_CLIENT_ID = 'qwen-web-chat-sandbox';

export interface WebSandbox {
  dashscope: DashScopeEmulator;
  upstream: Sandbox;
  billing: BillingStandIn;
  /** The MCP server's base URL (`/mcp`, `/connect`, `/callback` live under it). */
  mcpBase: string;
  servers: ResolvedServer[];
  documentLink: string;
  /** Let the web chat sign people in: register its redirect URI at the emulated identity provider. */
  registerWebClient(redirectUri: string): { issuer: string; clientId: string };
  close(): Promise<void>;
}

export async function startWebSandbox(options: { users?: OidcUser[]; serverEnv?: Record<string, string>; rules?: ScriptRule[] } = {}): Promise<WebSandbox> {
  const port = await freePort();
  const mcpBase = `http://127.0.0.1:${port}`;
  const upstream = await startSandbox({ callbackUrl: `${mcpBase}/callback`, oidc: { loginRedirectUri: `${mcpBase}/login/callback`, users: options.users } });
  const started: Array<{ close(): Promise<void> }> = [upstream];
  let child: ChildProcess | undefined;
  try {
    const dashscope = await startDashScopeEmulator(options.rules ? { rules: options.rules } : {});
    started.push(dashscope);
    const billing = await startBillingStandIn();
    started.push(billing);
    child = spawn(process.execPath, [DINGTALK_CLI, '--transport', 'http', '--port', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: upstream.serverEnv(mcpBase, { DINGTALK_MCP_LOG_LEVEL: 'warn', ...options.serverEnv }),
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    await waitForHealth(mcpBase, child, () => stderr);
    const proc = child;
    let closing = false;
    // Say so if the server dies under the demo: every chat's DingTalk tools would fail from then on.
    proc.once('exit', (code, signal) => {
      if (!closing)
        process.stderr.write(`sandbox: the DingTalk MCP server (HTTP mode) stopped (${signal ?? `exit code ${code}`}): ${stderr.trim().slice(-1000)}\n`);
    });
    const redirectUris = new Set<string>();
    return {
      dashscope,
      upstream,
      billing,
      mcpBase,
      servers: [
        { name: 'dingtalk', missing: [], entry: { url: `${mcpBase}/mcp` } },
        { name: 'billing', missing: [], entry: { url: billing.url, headers: { Authorization: `Bearer ${billing.apiKey}` } } },
      ],
      documentLink: `https://alidocs.dingtalk.com/i/nodes/${upstream.sampleDocumentId}`,
      registerWebClient(redirectUri) {
        redirectUris.add(redirectUri); // several web chats may share one sandbox (tests)
        upstream.oidc!.registerClient({ clientId: WEB_CLIENT_ID, redirectUris: [...redirectUris] });
        return { issuer: upstream.oidc!.issuer, clientId: WEB_CLIENT_ID };
      },
      async close() {
        closing = true;
        await stop(proc);
        await Promise.allSettled(started.map((s) => s.close()));
      },
    };
  } catch (e) {
    if (child) await stop(child);
    await Promise.allSettled(started.map((s) => s.close()));
    throw e;
  }
}

async function waitForHealth(base: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the DingTalk MCP server (HTTP mode) exited: ${stderr().trim() || `code ${child.exitCode}`}`);
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok || res.status === 503) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the DingTalk MCP server did not start listening on ${base} within 30 s: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
