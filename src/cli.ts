#!/usr/bin/env node
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { ConfigError, loadConfig, settingsTable, type Config } from './config.js';
import { createLogger } from './log.js';
import { createRuntime, type RuntimeOverrides } from './runtime.js';
import { startSandbox, type Sandbox } from './sandbox/index.js';
import { createServer } from './server.js';
import { VERSION } from './version.js';

const USAGE = `dingtalk-mcp ${VERSION}: an MCP server that writes DingTalk documents as the user,
with the user's DingTalk token held by Alibaba Cloud Agent Identity.

Usage:
  dingtalk-mcp [flags]             serve MCP over stdio
  dingtalk-mcp --sandbox           the same, against embedded emulators (no cloud account)

Settings (flags override environment, which overrides .config.json):
${settingsTable()}
`;

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }

  let config: Config;
  try {
    config = loadConfig({ argv });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`dingtalk-mcp: ${e.message}\nRun dingtalk-mcp --help for every setting.\n`);
      process.exit(2);
    }
    throw e;
  }

  const logger = createLogger({ level: config.logLevel });
  const overrides: RuntimeOverrides = { logger };
  let sandbox: Sandbox | undefined;
  if (config.sandbox) {
    sandbox = await startSandbox({ callbackUrl: config.callbackUrl, logger });
    config = {
      ...config,
      agentIdentityEndpoint: sandbox.agentIdentityUrl,
      dingtalkApiBase: sandbox.dingtalkUrl,
      workloadIdentityName: sandbox.workloadIdentityName,
      providerName: sandbox.providerName,
    };
    overrides.credential = sandbox.credential;
    logger.info('sandbox: emulated Agent Identity and DingTalk are running; nothing leaves this machine', {
      document: sandbox.sampleDocumentLink,
      viewer: sandbox.documentViewerUrl(sandbox.sampleDocumentId),
    });
  }

  const runtime = createRuntime(config, overrides);
  const connection = serveStdio(() => createServer(runtime.toolDeps), {
    onerror: (error) => logger.warn('stdio transport error', { error: error.message }),
  });
  logger.info('serving MCP over stdio', { version: VERSION, user: config.userJwt ? 'from AGENT_IDENTITY_USER_JWT' : 'from AGENT_IDENTITY_USER_ID' });

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { why });
    await connection.close().catch(() => {});
    await runtime.close().catch(() => {});
    await sandbox?.close().catch(() => {});
    process.exit(0);
  };
  // The client closing stdin ends the session (MCP stdio binding).
  process.stdin.once('end', () => void stop('stdin closed'));
  process.stdin.once('close', () => void stop('stdin closed'));
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`dingtalk-mcp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
