/** The list of tools (docs/architecture.md decision 14): one module per tool, registered through `registerTool`. */
import type { McpServer } from '@modelcontextprotocol/server';
import type { Toolset } from './toolsets.js';
import { registerTool, type ToolDefinition, type ToolDeps } from './define-tool.js';
import { appendDingTalkDoc } from './append-dingtalk-doc.js';
import { createDingTalkDoc } from './create-dingtalk-doc.js';
import { getDingTalkAccount } from './get-dingtalk-account.js';
import { getDingTalkDocInfo } from './get-dingtalk-doc-info.js';
import { listDingTalkFolder } from './list-dingtalk-folder.js';
import { readDingTalkDoc } from './read-dingtalk-doc.js';
import { searchDingTalkDocs } from './search-dingtalk-docs.js';
import { writeDingTalkDoc } from './write-dingtalk-doc.js';

const tool = <T>(t: T) => t as unknown as ToolDefinition;

/** Every tool, in the order clients list them. */
export const ALL_TOOLS: ReadonlyArray<ToolDefinition> = [
  tool(searchDingTalkDocs),
  tool(readDingTalkDoc),
  tool(getDingTalkDocInfo),
  tool(listDingTalkFolder),
  tool(appendDingTalkDoc),
  tool(createDingTalkDoc),
  tool(writeDingTalkDoc),
  tool(getDingTalkAccount),
];

/**
 * What a deployment exposes: the chosen toolsets, only read-only tools with `--read-only`, and the app-token
 * tools only when an app credential is configured (least privilege, docs/tools.md).
 */
export function selectTools(options: { toolsets: ReadonlyArray<Toolset>; readOnly: boolean }, appCredential: boolean): ToolDefinition[] {
  return ALL_TOOLS.filter(
    (t) => options.toolsets.includes(t.toolset) && (!options.readOnly || t.annotations.readOnlyHint === true) && (t.family === 'user' || appCredential),
  );
}

export function registerTools(server: McpServer, deps: ToolDeps, tools: ReadonlyArray<ToolDefinition>): void {
  for (const t of tools) registerTool(server, t, deps);
}
