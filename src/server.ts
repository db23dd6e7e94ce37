import { McpServer } from '@modelcontextprotocol/server';
import type { ToolDeps } from './tools/define-tool.js';
import { registerTools } from './tools/index.js';
import { SERVER_NAME, VERSION } from './version.js';

export { SERVER_NAME };

const INSTRUCTIONS =
  'Writes DingTalk documents as the signed-in user, with their own DingTalk permissions. ' +
  'The user may be asked once to approve DingTalk access in a browser; follow the tool result if it returns a link.';

/** One factory for every transport and both protocol eras (the SDK pins an instance per connection). */
export function createServer(deps: ToolDeps): McpServer {
  const server = new McpServer(
    { name: SERVER_NAME, version: VERSION, title: 'DingTalk documents via Alibaba Cloud Agent Identity' },
    {
      instructions: INSTRUCTIONS,
      // 2026-07-28 retries echo our requestState; tampered or expired state never reaches a handler.
      requestState: { verify: deps.ladder.requestStateCodec.verify },
    },
  );
  registerTools(server, deps, deps.tools);
  return server;
}
