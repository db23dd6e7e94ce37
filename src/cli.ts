#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from './config.js';
import { usage } from './help.js';
import { createLogger } from './log.js';
import { createRuntime, secretsOf, stateStoreOptions, type RuntimeOverrides } from './runtime.js';
import type { Sandbox } from './sandbox/index.js';
import { serveStdioTransport } from './transports/stdio.js';
import { VERSION } from './version.js';

async function main(argv: string[]): Promise<void> {
  const command = argv[0];
  if (command === 'setup' || command === 'teardown' || command === 'doctor') {
    // Loaded only for these commands: serving MCP never pulls in the control-plane clients.
    const { runProvisioning } = await import('./provisioning/cli.js');
    process.exitCode = await runProvisioning(command, argv.slice(1));
    return;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage(process.stdout.columns));
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

  const logger = createLogger({ level: config.logLevel, secrets: secretsOf(config) });
  const overrides: RuntimeOverrides = { logger };
  let sandbox: Sandbox | undefined;
  if (config.sandbox) {
    // Loaded only when needed, like the HTTP transport below: stdio cold start stays lean.
    const { SANDBOX, startSandbox } = await import('./sandbox/index.js');
    const http = config.transport === 'http';
    sandbox = await startSandbox({
      callbackUrl: config.callbackUrl,
      logger,
      oidc: http ? { loginRedirectUri: `${config.appRedirectUri}/login/callback` } : undefined,
    });
    config = {
      ...config,
      agentIdentityEndpoint: sandbox.agentIdentityUrl,
      dingtalkApiBase: sandbox.dingtalkUrl,
      workloadIdentityName: sandbox.workloadIdentityName,
      providerName: sandbox.providerName,
      dingtalkClientId: sandbox.dingtalkClientId,
      appSecretProvider: sandbox.appSecretProviderName,
      ...(sandbox.oidc ? { oidcIssuer: sandbox.oidc.issuer, oidcClientId: SANDBOX.oidcClientId, oidcAudience: SANDBOX.oidcClientId } : {}),
    };
    if (sandbox.oidc) {
      logger.info('sandbox: emulated identity provider for HTTP mode', { issuer: sandbox.oidc.issuer, users: sandbox.oidc.users.map((u) => u.sub).join(',') });
    }
    overrides.credential = sandbox.credential;
    logger.info('sandbox: emulated Agent Identity and DingTalk are running; nothing leaves this machine', {
      document: sandbox.sampleDocumentLink,
      viewer: sandbox.documentViewerUrl(sandbox.sampleDocumentId),
    });
  }

  if (config.redisUrl) {
    // Loaded only when configured: the Redis client is not part of a plain start.
    const { createStateStore } = await import('./state/index.js');
    overrides.store = await createStateStore({
      redisUrl: config.redisUrl,
      stateSecret: config.stateSecret,
      redisKeyPrefix: config.redisKeyPrefix,
      logger,
      ...stateStoreOptions(config),
    });
  }
  const runtime = createRuntime(config, overrides);
  const transport = config.transport === 'http' ? await (await import('./transports/http.js')).serveHttpTransport(runtime) : serveStdioTransport(runtime);

  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { why });
    await transport.close().catch(() => {});
    await runtime.close().catch(() => {});
    await sandbox?.close().catch(() => {});
    process.exit(0);
  };
  if (config.transport === 'stdio') {
    // The client closing stdin ends the session (MCP stdio binding).
    process.stdin.once('end', () => void stop('stdin closed'));
    process.stdin.once('close', () => void stop('stdin closed'));
  }
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`dingtalk-mcp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
