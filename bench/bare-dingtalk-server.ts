/**
 * The baseline for bench/doc-tools: the same MCP SDK serving stdio with one tool that sends the given DingTalk
 * requests (concurrently) with tokens it is handed — no identity, no authorization, no checks, no caching: the
 * least any server doing the same DingTalk work can do.
 */
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { Agent, request as send } from 'undici';
import * as z from 'zod/v4';

const base = process.env.DINGTALK_API_BASE ?? '';
const tokens = { app: process.env.BENCH_APP_TOKEN ?? '', user: process.env.BENCH_USER_TOKEN ?? '' };
// The same HTTP client and pool settings as ours (src/dingtalk/client.ts), so only the server differs.
const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000, connections: 32 });
const request = z.object({ family: z.enum(['app', 'user']), method: z.enum(['GET', 'POST']), path: z.string(), body: z.string().optional() });

serveStdio(() => {
  const server = new McpServer({ name: 'bare-dingtalk', version: '0.0.0' });
  server.registerTool('dingtalk_requests', { inputSchema: z.object({ requests: z.array(request) }) }, async ({ requests }) => {
    const answers = await Promise.all(
      requests.map(async (r) => {
        const res = await send(base + r.path, {
          method: r.method,
          dispatcher: agent,
          headers: { 'x-acs-dingtalk-access-token': tokens[r.family], accept: 'application/json', ...(r.body ? { 'content-type': 'application/json' } : {}) },
          ...(r.body ? { body: r.body } : {}),
        });
        const text = await res.body.text();
        return { ok: res.statusCode >= 200 && res.statusCode < 300, text };
      }),
    );
    return { content: answers.map((a) => ({ type: 'text' as const, text: a.text })), isError: answers.some((a) => !a.ok) };
  });
  return server;
});
