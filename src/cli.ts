#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from './config.js';
import { usage } from './help.js';
import { createLogger, flushLogs } from './log.js';
import { createRuntime, secretsOf, stateStoreOptions, type RuntimeOverrides } from './runtime.js';
import type { SandboxEndpoints } from './sandbox/index.js';
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
  if (command === '__sandbox-services') {
    // Hidden: the detached process that `--sandbox` copies share (docs/sandbox.md "Shared sandbox services").
    const { runSandboxServices } = await import('./sandbox/services/host.js');
    const level = process.env.DINGTALK_MCP_LOG_LEVEL;
    process.exitCode = await runSandboxServices(createLogger({ level: level === 'debug' || level === 'warn' || level === 'error' ? level : 'info' }));
    process.exit();
  }
  if (command === '__local-pages') {
    // Hidden: the detached pages host every local stdio copy of this user shares (docs/architecture.md decision 17).
    const { runPagesHost } = await import('./local/pages-host.js');
    process.exitCode = await runPagesHost();
    process.exit();
  }
  if (command === 'sandbox') {
    if (argv[1] !== 'stop') {
      process.stderr.write('usage: dingtalk-mcp sandbox stop   (end the shared sandbox services and forget what they hold)\n');
      process.exitCode = 2;
      return;
    }
    const { stopSandboxServices } = await import('./sandbox/services/client.js');
    const stopped = await stopSandboxServices();
    process.stdout.write(stopped ? 'dingtalk-mcp: the sandbox services are stopping.\n' : 'dingtalk-mcp: no sandbox services are running.\n');
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
  // Which file the settings came from, so a setting "missing" from a file that was never read is easy to spot.
  logger.info('configuration', { configFile: config.configFileRead ?? `none (looked for ${config.configFileLookedFor})` });
  const overrides: RuntimeOverrides = { logger };
  let sandbox: SandboxEndpoints | undefined;
  if (config.sandbox) {
    // Loaded only when needed, like the HTTP transport below: stdio cold start stays lean.
    const { SANDBOX, startSandbox } = await import('./sandbox/index.js');
    const http = config.transport === 'http';
    // stdio: the emulators live in a shared detached process, so a consent link and what was written outlive
    // this copy when a one-shot client ends it (docs/sandbox.md "Shared sandbox services").
    const shared = !http && process.env.DINGTALK_MCP_SANDBOX_DETACHED !== '0';
    const active: SandboxEndpoints = shared
      ? await (await import('./sandbox/services/client.js')).findOrStartSandboxServices({ callbackUrl: config.callbackUrl, logger })
      : await startSandbox({
          callbackUrl: config.callbackUrl,
          logger,
          oidc: http ? { loginRedirectUri: `${config.appRedirectUri}/login/callback` } : undefined,
        });
    sandbox = active;
    config = {
      ...config,
      agentIdentityEndpoint: active.agentIdentityUrl,
      dingtalkApiBase: active.dingtalkUrl,
      workloadIdentityName: active.workloadIdentityName,
      providerName: active.providerName,
      dingtalkClientId: active.dingtalkClientId,
      appSecretProvider: active.appSecretProviderName,
      ...(active.oidc ? { oidcIssuer: active.oidc.issuer, oidcClientId: SANDBOX.oidcClientId, oidcAudience: SANDBOX.oidcClientId } : {}),
    };
    if (active.oidc) {
      logger.info('sandbox: emulated identity provider for HTTP mode', { issuer: active.oidc.issuer, users: active.oidc.users.map((u) => u.sub).join(',') });
    }
    overrides.credential = active.credential;
    logger.info('sandbox: emulated Agent Identity and DingTalk are running; nothing leaves this machine', {
      document: active.sampleDocumentLink,
      viewer: active.documentViewerUrl(active.sampleDocumentId),
      ...(active.services
        ? {
            kept: `by the shared sandbox services (pid ${active.services.pid}) for ${active.services.idleSeconds >= 120 ? `${Math.round(active.services.idleSeconds / 60)} min` : `${active.services.idleSeconds} s`} after the last request and while a consent link is open; \`dingtalk-mcp sandbox stop\` ends them`,
          }
        : {}),
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
  if (config.transport === 'stdio') {
    // The per-user local state: shared pending authorizations and state secret, and the pages host all copies use.
    const { prepareLocal } = await import('./local/index.js');
    const local = await prepareLocal(config, { logger, credential: overrides.credential, store: overrides.store, storeOptions: stateStoreOptions(config) });
    config = local.config;
    Object.assign(overrides, { store: local.store, linkBase: local.linkBase, pages: local.pages });
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
  flushLogs(); // the lines logged before the failure come first
  process.stderr.write(`dingtalk-mcp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
