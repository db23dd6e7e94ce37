/** The list of tools (docs/architecture.md decision 14): one module per tool, registered through `registerTool`. */
import type { McpServer } from '@modelcontextprotocol/server';
import { registerTool, type ToolDefinition, type ToolDeps } from './define-tool.js';
import { writeDingTalkDoc } from './write-dingtalk-doc.js';

export const ALL_TOOLS: ReadonlyArray<ToolDefinition> = [writeDingTalkDoc as unknown as ToolDefinition];

export function registerTools(server: McpServer, deps: ToolDeps, tools: ReadonlyArray<ToolDefinition> = ALL_TOOLS): void {
  for (const tool of tools) registerTool(server, tool, deps);
}
