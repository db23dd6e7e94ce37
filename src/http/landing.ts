/**
 * `GET /` in HTTP mode: what this server is and how to connect an MCP client to it, for a person who opened the
 * base URL in a browser (or a client probing it). Public facts only: the endpoint, how callers authenticate and
 * where the identity provider is (both already public in the RFC 9728 metadata) — never a secret, a client id or
 * any state of the server.
 */
import type { Request, Response } from 'express';
import { setPageSecurityHeaders } from '../browser/pages.js';

export interface LandingInfo {
  version: string;
  /** `<APP_REDIRECT_URI>/mcp` */
  mcpUrl: string;
  metadataUrl: string;
  /** The OpenID Connect issuer bearer tokens come from; absent behind a trusted gateway. */
  issuer?: string;
  sandbox: boolean;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

const DOCS = 'https://www.npmjs.com/package/agent-identity-dingtalk-mcp';

export function sendLanding(req: Request, res: Response, info: LandingInfo): void {
  const auth = info.issuer
    ? `Clients sign the user in with OAuth: a request without a token gets 401 pointing at ${info.metadataUrl}, which names the identity provider ${info.issuer}.`
    : 'Callers are authenticated by the gateway in front of this server.';
  if (req.accepts(['html', 'json']) === 'json') {
    res.set('Cache-Control', 'no-store').json({
      name: 'agent-identity-dingtalk-mcp',
      version: info.version,
      description: 'MCP server for DingTalk documents, acting as the signed-in user through Alibaba Cloud Agent Identity',
      mcp: { url: info.mcpUrl, transport: 'streamable-http' },
      authentication: info.issuer ? { type: 'oauth', protectedResourceMetadata: info.metadataUrl, issuer: info.issuer } : { type: 'gateway' },
      docs: DOCS,
    });
    return;
  }
  const claude = `claude mcp add --transport http dingtalk ${info.mcpUrl}`;
  const json = JSON.stringify({ mcpServers: { dingtalk: { url: info.mcpUrl } } }, null, 2);
  const vscode = JSON.stringify({ servers: { dingtalk: { type: 'http', url: info.mcpUrl } } }, null, 2);
  setPageSecurityHeaders(res);
  res
    .status(200)
    .type('html')
    .send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>agent-identity-dingtalk-mcp</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1f2328}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}pre,code{font:14px/1.4 ui-monospace,monospace;background:#f6f8fa}pre{padding:.75rem;overflow:auto}</style>
</head><body>
<h1>agent-identity-dingtalk-mcp ${escapeHtml(info.version)}${info.sandbox ? ' (sandbox)' : ''}</h1>
<p>An MCP server that lets an AI agent work in your DingTalk documents as you. Your DingTalk token stays with Alibaba Cloud Agent Identity; the agent and its client never see it. The first time, you approve access in your browser.</p>
<h2>Connect an MCP client</h2>
<p>MCP endpoint (streamable HTTP): <code>${escapeHtml(info.mcpUrl)}</code></p>
<p>${escapeHtml(auth)}</p>
<p>Claude Code:</p><pre>${escapeHtml(claude)}</pre>
<p>Cursor, Cline and most clients (<code>mcpServers</code>):</p><pre>${escapeHtml(json)}</pre>
<p>VS Code (<code>.vscode/mcp.json</code>):</p><pre>${escapeHtml(vscode)}</pre>
<p>Every client, and running it yourself: <code>docs/clients.md</code> in the package (<a href="${DOCS}">${DOCS}</a>).</p>
</body></html>
`);
}
