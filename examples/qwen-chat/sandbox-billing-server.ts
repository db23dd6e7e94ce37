/**
 * A stand-in for an Alibaba Cloud MCP service in the sandbox: a Streamable HTTP MCP server that requires
 * `Authorization: Bearer <key>` (like Bailian's MCP marketplace) and answers one read-only tool with fixed,
 * obviously-fake ECS cost figures. It exists so the sandbox demo and the tests can show two servers working together
 * ("write last month's ECS costs into this doc") without a cloud account. It is NOT a model of any real service's tools.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod/v4';

export interface BillingStandIn {
  url: string;
  apiKey: string;
  /** Tool calls received (with the month asked for). */
  calls: Array<{ tool: string; month: string }>;
  /** HTTP requests refused for a missing or wrong key. */
  unauthorized: number;
  close(): Promise<void>;
}

export function lastMonth(now = new Date()): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

export async function startBillingStandIn(options: { apiKey?: string; port?: number } = {}): Promise<BillingStandIn> {
  const apiKey = options.apiKey ?? `sk-sandbox-billing-${Math.random().toString(36).slice(2, 12)}`;
  const calls: BillingStandIn['calls'] = [];
  const state = { unauthorized: 0 };
  const factory = () => {
    const server = new McpServer({ name: 'sandbox-billing', version: '0.1.0', title: 'Sandbox stand-in for an Alibaba Cloud billing MCP service' });
    server.registerTool(
      'query_monthly_costs',
      {
        title: 'Monthly ECS costs (sandbox)',
        description: 'Costs of ECS instances per region for one month (sandbox data, not real). month: YYYY-MM, default last month.',
        inputSchema: z.object({
          month: z
            .string()
            .regex(/^\d{4}-\d{2}$/)
            .optional(),
        }),
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      async ({ month }) => {
        const m = month ?? lastMonth();
        calls.push({ tool: 'query_monthly_costs', month: m });
        const rows = [
          ['cn-beijing', '1,234.56'],
          ['cn-hangzhou', '789.00'],
          ['ap-southeast-1', '312.40'],
        ];
        const table = ['| Region | ECS cost (CNY) |', '|---|---|', ...rows.map(([r, c]) => `| ${r} | ${c} |`), '| **Total** | **2,335.96** |'].join('\n');
        return { content: [{ type: 'text', text: `ECS costs for ${m} (sandbox data):\n\n${table}` }] };
      },
    );
    return server;
  };
  const mcp = toNodeHandler(createMcpHandler(factory));
  const http = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      state.unauthorized += 1;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'InvalidApiKey', message: 'Invalid API-key provided.' }));
      return;
    }
    void mcp(req, res);
  });
  await new Promise<void>((resolve) => http.listen(options.port ?? 0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    apiKey,
    calls,
    get unauthorized() {
      return state.unauthorized;
    },
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections?.();
        http.close(() => resolve());
      }),
  };
}
