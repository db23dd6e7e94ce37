/**
 * Everything the chat needs, on 127.0.0.1, with no cloud account: the DashScope emulator (scripted "Qwen"),
 * emulated Agent Identity + DingTalk, this project's server over stdio configured against them (as examples/demo.ts
 * does), and a stand-in billing MCP service over HTTP with a Bearer key.
 */
import { fileURLToPath } from 'node:url';
import { startDashScopeEmulator, type DashScopeEmulator, type ScriptRule } from '../shared/dashscope-emulator.js';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import type { ResolvedServer } from './config.js';
import { startBillingStandIn, type BillingStandIn } from './sandbox-billing-server.js';

/** The built server: next to this file under dist/, or dist/src/cli.js when this module runs from source (tests). */
export const DINGTALK_CLI = fileURLToPath(new URL(/\/dist\/examples\//.test(import.meta.url) ? '../../src/cli.js' : '../../dist/src/cli.js', import.meta.url));

export interface ChatSandbox {
  dashscope: DashScopeEmulator;
  upstream: Sandbox;
  billing: BillingStandIn;
  /** The `mcpServers` entries: "dingtalk" (stdio) and "billing" (HTTP + Bearer). */
  servers: ResolvedServer[];
  documentLink: string;
  close(): Promise<void>;
}

export interface ChatSandboxOptions {
  /** The end user the DingTalk server acts for (default "sandbox-user"). */
  userId?: string;
  rules?: ScriptRule[];
  /** Extra environment for the DingTalk server (e.g. a log level). */
  serverEnv?: Record<string, string>;
}

export async function startChatSandbox(options: ChatSandboxOptions = {}): Promise<ChatSandbox> {
  const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
  const upstream = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  const dashscope = await startDashScopeEmulator(options.rules ? { rules: options.rules } : {});
  const billing = await startBillingStandIn();
  const servers: ResolvedServer[] = [
    {
      name: 'dingtalk',
      missing: [],
      entry: {
        command: process.execPath,
        args: [DINGTALK_CLI],
        env: upstream.serverEnv(appRedirectUri, { AGENT_IDENTITY_USER_ID: options.userId ?? 'sandbox-user', ...options.serverEnv }),
      },
    },
    { name: 'billing', missing: [], entry: { url: billing.url, headers: { Authorization: `Bearer ${billing.apiKey}` } } },
  ];
  return {
    dashscope,
    upstream,
    billing,
    servers,
    documentLink: `https://alidocs.dingtalk.com/i/nodes/${upstream.sampleDocumentId}`,
    async close() {
      await Promise.allSettled([dashscope.close(), billing.close(), upstream.close()]);
    },
  };
}
