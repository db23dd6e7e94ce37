/**
 * The local pages host (`dingtalk-mcp __local-pages`, started detached by ./pages-client.ts): serves /connect and
 * /callback for every local stdio copy of this user on APP_REDIRECT_URI's port, from the shared file store, and
 * completes the authorization with Agent Identity itself, so a link keeps working after the copy that printed it
 * exited (one-shot clients) and several copies share one port (docs/architecture.md decision 17).
 *
 * It listens on loopback only: 127.0.0.1, and [::1] too when APP_REDIRECT_URI says `localhost` (a browser may open
 * either, and no other local user must be able to take the other one). It stays up while a link can still be used
 * or an approval still lingers in the store, and exits once neither does, after a short grace.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { createHash } from 'node:crypto';
import { unlink, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import { PendingAuthorizations } from '../authorization/pending.js';
import { SignedState } from '../authorization/signed-state.js';
import { AgentIdentityClient } from '../identity/agent-identity-client.js';
import { AgentIdentityBroker } from '../identity/broker.js';
import { configureUserLabels, createLogger, type Logger } from '../log.js';
import type { StateStore } from '../state/types.js';
import { SERVER_NAME, VERSION } from '../version.js';
import { createLocalStore, type FilePendingRecords } from './file-store.js';
import {
  HOST_PATH,
  HOST_SERVICE,
  LOOPBACK_NAMES,
  fingerprintOf,
  pagesPort,
  pendingDir,
  proofOf,
  secretIdOf,
  type PagesHostSettings,
} from './pages-settings.js';
import { replacePrivate } from './private-files.js';

// A CommonJS package: Node hands us `module.exports` (class on `.default`); some loaders unwrap it already.
const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

/**
 * After the last request, once no link is live and no approval lingers: how long the host waits before it exits
 * (DINGTALK_MCP_LOCAL_PAGES_IDLE_SECONDS, default 30, read when it starts; tests shorten it).
 */
function graceMsFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.DINGTALK_MCP_LOCAL_PAGES_IDLE_SECONDS;
  const n = raw === undefined || raw === '' ? 30 : Number(raw);
  return (Number.isFinite(n) && n > 0 ? n : 30) * 1000;
}

/** What the host tells the copy that started it, as one JSON line on stdout. */
export type HostStart = { ok: true; pid: number } | { ok: false; code: string; message: string };

/** Run the host; resolves with the exit code. Its stdin carries the settings as JSON, its stdout one HostStart line. */
export async function runPagesHost(): Promise<number> {
  const settings = JSON.parse(await readStdin(256 * 1024)) as PagesHostSettings;
  const logger = createLogger(
    { level: settings.logLevel, secrets: [settings.stateSecret, settings.accessKey?.accessKeySecret ?? ''].filter(Boolean) },
    {
      component: 'local-pages',
      pid: process.pid,
    },
  );
  // The copy that started us may be gone already (a one-shot run ending): its pipe's EPIPE must not end the host.
  process.stdout.on('error', () => {});
  const reply = (start: HostStart) => {
    try {
      process.stdout.write(`${JSON.stringify(start)}\n`);
    } catch {
      // nobody is reading
    }
  };
  try {
    const host = await startPagesHost(settings, logger);
    reply({ ok: true, pid: process.pid });
    process.stdout.end();
    return await host.finished;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'ERROR';
    const message = (e as Error).message;
    logger.error('local pages host did not start', { code, error: message });
    reply({ ok: false, code, message });
    process.stdout.end();
    return 1;
  }
}

export interface PagesHost {
  finished: Promise<number>;
  stop(why: string): Promise<number>;
}

export async function startPagesHost(settings: PagesHostSettings, logger: Logger): Promise<PagesHost> {
  const fingerprint = fingerprintOf(settings);
  const port = pagesPort(settings.appRedirectUri);
  const state = new SignedState(settings.stateSecret);
  configureUserLabels(createHash('sha256').update(state.keyBytes).update('log-user-label').digest());
  const store = await openStore(settings, logger);
  const pending = new PendingAuthorizations(store.pending, { ttlMs: settings.authTimeoutSeconds * 1000 });
  const credential = settings.accessKey
    ? new Credential(new CredentialConfig({ type: settings.accessKey.securityToken ? 'sts' : 'access_key', ...settings.accessKey }))
    : undefined;
  const broker = new AgentIdentityBroker({
    client: new AgentIdentityClient({ regionId: settings.regionId, endpoint: settings.agentIdentityEndpoint, credential, logger }),
    workloadIdentityName: settings.workloadIdentityName,
    providerName: settings.providerName,
    scopes: settings.scopes,
    useSts: settings.useSts,
    logger,
  });

  const [{ default: express }, { hostHeaderValidation, originValidation }, { browserRoutes }] = await Promise.all([
    import('express'),
    import('@modelcontextprotocol/express'),
    import('../browser/routes.js'),
  ]);
  const graceMs = graceMsFrom(process.env);
  // A copy that just checked for the host is about to store a link: the host waits for it at least this long.
  const holdMs = 2 * graceMs;
  let lastRequestAt = Date.now();
  let holdUntil = Date.now() + holdMs;
  const app = express();
  app.disable('x-powered-by');
  app.use((_req, _res, next) => {
    lastRequestAt = Date.now();
    next();
  });
  // DNS rebinding: a web page must not reach these loopback pages under another name.
  app.use(hostHeaderValidation(LOOPBACK_NAMES), originValidation(LOOPBACK_NAMES));
  app.get(HOST_PATH, (req, res) => {
    const nonce = typeof req.query.nonce === 'string' ? req.query.nonce.slice(0, 128) : '';
    if (req.query.hold === '1') holdUntil = Math.max(holdUntil, Date.now() + holdMs);
    res.set('Cache-Control', 'no-store');
    res.json({
      service: HOST_SERVICE,
      version: VERSION,
      pid: process.pid,
      fingerprint,
      secretId: secretIdOf(settings.stateSecret),
      proof: proofOf(settings.stateSecret, nonce, fingerprint, process.pid),
    });
  });
  app.use(browserRoutes({ pending, state, broker, callbackUrl: settings.callbackUrl, serverName: SERVER_NAME, logger }));

  const listeners = await listenLoopback(app, port, new URL(settings.appRedirectUri).hostname, logger);
  const marker = join(settings.stateDir, `pages-host-${port}.json`);
  await writeMarker(marker, settings.stateDir);
  logger.info('local pages host listening', { callback: settings.callbackUrl, bound: listeners.map((l) => l.bound).join(','), version: VERSION });

  let stopping: Promise<number> | undefined;
  let resolveFinished: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    resolveFinished = resolve;
  });
  const stop = (why: string): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(timer);
      logger.info('local pages host exiting', { why });
      await Promise.all(
        listeners.map(
          (l) =>
            new Promise<void>((resolve) => {
              l.server.close(() => resolve());
              l.server.closeAllConnections();
            }),
        ),
      );
      await removeMarker(marker);
      pending.close();
      await store.close().catch(() => {});
      resolveFinished(0);
      return 0;
    })();
    return stopping;
  };

  // Alive while a link can still be used (or a copy just asked), while an approval lingers in the store (a refresh of
  // its success page answers "already granted"), and for the grace after the last request; also gone when a
  // loopback Agent Identity (the sandbox's, a test's emulator) is gone, since nothing can complete then.
  const loopbackUpstream = loopbackTarget(settings.agentIdentityEndpoint);
  let upstreamMisses = 0;
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void (async () => {
      try {
        if (loopbackUpstream) {
          upstreamMisses = (await reachable(loopbackUpstream)) ? 0 : upstreamMisses + 1;
          if (upstreamMisses >= 3) return void stop(`Agent Identity at ${settings.agentIdentityEndpoint} is gone`);
        }
        const now = Date.now();
        if (now < holdUntil || now < lastRequestAt + graceMs) return;
        if ((await liveCount(store)) === 0 && (await grantedCount(store)) === 0) void stop('no authorization link is live or lingering');
      } catch (e) {
        logger.warn('local pages host: check failed', { error: (e as Error).message });
      } finally {
        checking = false;
      }
    })();
  }, 1000);
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  return { finished, stop };
}

async function openStore(settings: PagesHostSettings, logger: Logger): Promise<StateStore> {
  if (settings.redisUrl) {
    const { createStateStore } = await import('../state/index.js');
    return createStateStore({
      redisUrl: settings.redisUrl,
      stateSecret: settings.stateSecret,
      redisKeyPrefix: settings.redisKeyPrefix,
      logger,
      lingerMs: settings.lingerMs,
      maxPerUser: settings.maxPerUser,
    });
  }
  // This process settles what it serves itself: it needs no watch for other processes' settlements.
  return createLocalStore({
    dir: pendingDir(settings.stateDir),
    secret: settings.stateSecret,
    lingerMs: settings.lingerMs,
    maxPerUser: settings.maxPerUser,
    watch: false,
  });
}

async function liveCount(store: StateStore): Promise<number> {
  const records = store.pending as Partial<FilePendingRecords>;
  return typeof records.liveCount === 'function' ? records.liveCount() : store.pending.count();
}

/** Redis: count() above already holds every record until the store forgets it, lingering ones included. */
async function grantedCount(store: StateStore): Promise<number> {
  const records = store.pending as Partial<FilePendingRecords>;
  return typeof records.grantedCount === 'function' ? records.grantedCount() : 0;
}

interface Bound {
  server: Server;
  bound: string;
}

/**
 * 127.0.0.1:port, and [::1]:port when the browser may resolve the redirect's name to either. A [::1] held by someone
 * else refuses the start (a browser could be sent there); a machine without IPv6 loopback has no [::1] to take.
 */
async function listenLoopback(app: Parameters<typeof createHttpServer>[1], port: number, hostname: string, logger: Logger): Promise<Bound[]> {
  const addresses = hostname === '[::1]' ? ['::1'] : hostname === 'localhost' ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  const bound: Bound[] = [];
  for (const address of addresses) {
    const server = createHttpServer(app);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: address, ipv6Only: address === '::1' }, () => resolve());
      });
      bound.push({ server, bound: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (address === '::1' && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) {
        logger.debug('no IPv6 loopback here: listening on 127.0.0.1 only');
        continue;
      }
      for (const b of bound) b.server.close();
      const error = new Error(`${address.includes(':') ? `[${address}]` : address}:${port}: ${code ?? (e as Error).message}`) as NodeJS.ErrnoException;
      error.code = code === 'EADDRINUSE' && address === '::1' ? 'EADDRINUSE_IPV6' : code;
      throw error;
    }
  }
  return bound;
}

function loopbackTarget(endpoint: string | undefined): { host: string; port: number } | undefined {
  if (!endpoint || !/^https?:\/\//.test(endpoint)) return undefined;
  const u = new URL(endpoint);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) return undefined;
  return { host, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
}

function reachable(target: { host: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `pages-host-<port>.json`: which process serves the port (for tools and tests that end it); 0600, never through a link. */
function writeMarker(path: string, dir: string): Promise<void> {
  return replacePrivate(path, dir, `${JSON.stringify({ pid: process.pid, version: VERSION, startedAt: new Date().toISOString() })}\n`);
}

async function removeMarker(path: string): Promise<void> {
  try {
    const current = JSON.parse(await readFile(path, 'utf8')) as { pid?: number };
    if (current.pid === process.pid) await unlink(path);
  } catch {
    // gone already, or another host's now
  }
}

function readStdin(limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    process.stdin.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) reject(new Error('settings too large'));
      else chunks.push(chunk);
    });
    process.stdin.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.once('error', reject);
  });
}
