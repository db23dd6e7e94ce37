/**
 * The bare SDK servers' tool: the same name and published shape as write_dingtalk_doc, and the
 * same one DingTalk request (undici, keep-alive pool) with a token it is given. Everything our
 * server adds (identity, caching, consent, retries, limits, logs) is absent here on purpose.
 */
import { McpServer } from '@modelcontextprotocol/server';
import type { Agent } from 'undici';
import { ALL_TOOLS } from '../../src/tools/index.js';
import { writeDingTalkDoc as tool } from '../../src/tools/write-dingtalk-doc.js';

export function createBaselineServer(dingtalkBase: string, token: () => string): McpServer {
  const server = new McpServer({ name: 'baseline', version: '0.0.0' });
  // The same tool list as ours (the sandbox configures an app credential, so every tool is listed);
  // only write_dingtalk_doc is measured, the others are there so both servers build the same list.
  for (const other of ALL_TOOLS) {
    if (other.name === tool.name) continue;
    const shape = {
      title: other.title,
      description: other.description,
      inputSchema: other.inputSchema,
      outputSchema: other.outputSchema,
      annotations: { title: other.title, ...other.annotations },
    };
    server.registerTool(other.name, shape, async () => ({ isError: true, content: [{ type: 'text' as const, text: 'not part of the baseline' }] }));
  }
  const config = {
    title: tool.title,
    description: tool.description,
    inputSchema: tool.inputSchema,
    outputSchema: tool.outputSchema,
    annotations: { title: tool.title, ...tool.annotations },
  };
  server.registerTool(tool.name, config, async ({ document, content }) => {
    const { agent, request } = await (undici ??= loadUndici());
    const res = await request(`${dingtalkBase}/v2.0/doc/me/suites/documents/${encodeURIComponent(document)}/overwriteContent`, {
      method: 'POST',
      headers: { 'x-acs-dingtalk-access-token': token(), 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ content, dataType: 'markdown' }),
      dispatcher: agent,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) return { isError: true, content: [{ type: 'text', text: `DingTalk answered ${res.statusCode}: ${text}` }] };
    return {
      content: [{ type: 'text', text: `Wrote ${content.length} characters of Markdown to DingTalk document ${document}; its previous content was replaced.` }],
      structuredContent: { status: 'written', documentId: document, charactersWritten: content.length },
    };
  });
  return server;
}

// Loaded on the first call, as our server does, so cold starts compare like with like.
let undici: Promise<{ agent: Agent; request: typeof import('undici').request }> | undefined;
const loadUndici = () => import('undici').then((m) => ({ agent: new m.Agent({ keepAliveTimeout: 30_000, connections: 32 }), request: m.request }));
