/**
 * The shared sandbox services process (`dingtalk-mcp __sandbox-services`, started detached by ./client.ts): the
 * Agent Identity and DingTalk emulators of `--sandbox`, outliving the `dingtalk-mcp` copies that use them, so a
 * consent link still works after a one-shot client ended its server, and the next run finds the granted token and
 * the documents written (docs/sandbox.md "Shared sandbox services"). State lives in memory only, as long as this
 * process does: until the latest consent link it issued has expired and nothing has asked anything for the idle
 * grace (DINGTALK_MCP_SANDBOX_IDLE_SECONDS). Then it exits and removes its state file.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';
import { VERSION } from '../../version.js';
import { lastEmulatorRequestAt, listen, readBody, sendJson, shutdown } from '../http.js';
import { startSandbox } from '../index.js';
import { ensureStateDir, publishState, readState, removeState, servicesStateDir, stateFilePath, type ServicesState } from './state-file.js';

export const SERVICES_NAME = 'dingtalk-mcp-sandbox-services';
const DEFAULT_IDLE_SECONDS = 15 * 60;
/** A copy registers its own callback URL; a bound keeps a confused caller from growing the list forever. */
const MAX_CALLBACK_URLS = 64;

export function idleSecondsFrom(env: NodeJS.ProcessEnv): number {
  const raw = env.DINGTALK_MCP_SANDBOX_IDLE_SECONDS;
  const n = raw === undefined || raw === '' ? DEFAULT_IDLE_SECONDS : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_IDLE_SECONDS;
}

/** Run the services until idle; resolves with the exit code. */
export async function runSandboxServices(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const dir = servicesStateDir(env);
  ensureStateDir(dir);
  const idleMs = idleSecondsFrom(env) * 1000;
  const instance = randomBytes(16).toString('hex');
  const controlToken = randomBytes(24).toString('base64url');
  const sandbox = await startSandbox({ callbackUrl: [], logger });

  let stopping: Promise<number> | undefined;
  const control = createServer((req, res) => {
    void handleControl(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 400, { error: 'bad request' });
    });
  });
  const authorized = (req: IncomingMessage) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    const expected = Buffer.from(`Bearer ${controlToken}`);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  async function handleControl(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (req.method === 'GET' && path === '/health') return sendJson(res, 200, { service: SERVICES_NAME, instance, pid: process.pid, version: VERSION });
    if (req.method !== 'POST' || (path !== '/callbacks' && path !== '/stop')) return sendJson(res, 404, { error: 'not found' });
    if (!authorized(req)) return sendJson(res, 401, { error: 'the control token is missing or wrong' });
    if (path === '/stop') {
      sendJson(res, 200, { stopping: true });
      void stop('stop requested');
      return;
    }
    const body = JSON.parse((await readBody(req, 4096)).toString('utf8')) as { url?: unknown };
    const url = typeof body.url === 'string' ? new URL(body.url) : undefined;
    if (!url || !['http:', 'https:'].includes(url.protocol)) return sendJson(res, 400, { error: 'url must be an http(s) URL' });
    if (allowed.size >= MAX_CALLBACK_URLS && !allowed.has(body.url as string)) return sendJson(res, 400, { error: 'too many callback URLs' });
    allowed.add(body.url as string);
    sandbox.allowCallbackUrl(body.url as string);
    sendJson(res, 200, { allowed: true });
  }
  const allowed = new Set<string>();
  const controlUrl = await listen(control);

  const state: ServicesState = {
    version: 1,
    pid: process.pid,
    instance,
    startedAt: new Date().toISOString(),
    serverVersion: VERSION,
    controlUrl,
    controlToken,
    agentIdentityUrl: sandbox.agentIdentityUrl,
    dingtalkUrl: sandbox.dingtalkUrl,
    accessKeySecret: sandbox.accessKeySecret,
    idleSeconds: idleMs / 1000,
  };
  if (!publishState(dir, state)) {
    // Another copy's services got there first (two copies started at once); theirs is the one everyone uses.
    logger.info('sandbox services: another instance already published its state; exiting', { stateFile: stateFilePath(dir) });
    await Promise.allSettled([shutdown(control), sandbox.close()]);
    return 0;
  }
  logger.info('sandbox services ready', {
    pid: process.pid,
    agentIdentity: sandbox.agentIdentityUrl,
    dingtalk: sandbox.dingtalkUrl,
    idleSeconds: idleMs / 1000,
  });

  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    done = resolve;
  });
  function stop(why: string): Promise<number> {
    stopping ??= (async () => {
      clearInterval(timer);
      removeState(dir, instance);
      logger.info('sandbox services exiting', { why });
      await Promise.allSettled([shutdown(control), sandbox.close()]);
      done(0);
      return 0;
    })();
    return stopping;
  }
  // Alive while a consent link it issued can still be opened, and for the idle grace after the last request.
  const check = () => {
    const latestLink = Math.max(0, ...sandbox.agentIdentity.sessions().map((s) => s.expiresAt));
    const keepUntil = Math.max(lastEmulatorRequestAt() + idleMs, latestLink);
    if (Date.now() >= keepUntil) void stop('idle and no consent link pending');
    // Someone removed or replaced our state file: copies can no longer find us, so nothing new will come.
    else if ((readStateSafe(dir)?.instance ?? '') !== instance) void stop('state file removed or replaced');
  };
  const timer = setInterval(check, Math.min(5000, Math.max(200, idleMs / 4)));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  return finished;
}

function readStateSafe(dir: string): ServicesState | undefined {
  try {
    const s = readState(dir);
    return typeof s === 'object' ? s : undefined;
  } catch {
    return undefined;
  }
}
