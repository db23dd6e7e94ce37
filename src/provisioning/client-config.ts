/**
 * The configuration `setup` ends with: an MCP client entry to paste (stdio), or how to start the HTTP server and
 * the URL entry (HTTP mode). Only names and placeholders: no secret is ever printed.
 */
import { fileURLToPath } from 'node:url';
import type { Context, Names } from './context.js';
import { issuerOf } from './context.js';

/** dist/src/provisioning/client-config.js → dist/src/cli.js */
export function cliPath(): string {
  return fileURLToPath(new URL('../cli.js', import.meta.url));
}

/**
 * How an MCP client should start this server: `npx -y <package>` when it runs as an installed package (npx keeps
 * its copy in a cache that may be cleaned, so its path is no use in a config), else node and this clone's cli.js.
 */
export function serverCommand(path = cliPath()): { command: string; args: string[] } {
  if (/[\\/]node_modules[\\/]/.test(path)) return { command: 'npx', args: ['-y', 'agent-identity-dingtalk-mcp'] };
  return { command: process.execPath.endsWith('node') ? 'node' : process.execPath, args: [path] };
}

export function printClientConfig(ctx: Context, n: Names, extra: { http: boolean; appId?: string }): void {
  const { io, file } = ctx;
  const env: Record<string, string> = {
    AGENT_IDENTITY_REGION_ID: n.regionId,
    AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: n.workloadIdentity,
    AGENT_IDENTITY_DINGTALK_PROVIDER: n.provider,
    APP_REDIRECT_URI: n.appRedirectUri,
    AGENT_IDENTITY_USER_ID: '<your user id, e.g. alice@example.com>',
    ALIBABA_CLOUD_ACCESS_KEY_ID: '<your AccessKey ID>',
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: '<your AccessKey secret>',
  };
  io.out('MCP client configuration (stdio) — paste into your client (e.g. claude_desktop_config.json / .cursor/mcp.json; every client: docs/clients.md):');
  io.out(JSON.stringify({ mcpServers: { dingtalk: { ...serverCommand(), env } } }, null, 2));
  io.out('The server signs its own calls with the same credential chain as this command: keep the two ALIBABA_CLOUD_ACCESS_KEY_* lines');
  io.out('(with your values) if you use AccessKeys, or delete them if a profile, RAM role or STS source provides the credentials.');
  io.out('Its RAM identity needs AliyunAgentIdentityDataFullAccess (workload tokens) and AliyunAgentIdentityDataCompleteAuthAccess.');
  io.out('AGENT_IDENTITY_USER_ID names you in Agent Identity, which keeps your DingTalk consent under it: set the same id in every');
  io.out('client and on every machine (without it the OS user name is used, so each machine asks for consent again).');
  if (!extra.http) return;

  const clientId = extra.appId ?? '<inbound_app_id>';
  io.out('');
  io.out('HTTP mode — start the server with these settings (OIDC_CLIENT_SECRET is in a file only you can read):');
  io.out(`  DINGTALK_MCP_TRANSPORT=http`);
  io.out(`  OIDC_ISSUER=${issuerOf(n.discoveryUrl)}`);
  io.out(`  OIDC_AUDIENCE=${clientId}`);
  io.out(`  OIDC_CLIENT_ID=${clientId}`);
  io.out(`  OIDC_CLIENT_SECRET=<the "oidc_client_secret" value in ${file.secretsPath}>`);
  io.out('and give MCP clients:');
  io.out(JSON.stringify({ mcpServers: { dingtalk: { type: 'http', url: `${n.appRedirectUri}/mcp` } } }, null, 2));
}
