/**
 * A `--sandbox` copy's side of the shared sandbox services (./host.ts): find the live services process of this
 * user (its pid alive and its health endpoint answering with the instance id of the state file), or start one
 * detached and wait until it is ready; then allow this copy's callback URL there and keep it alive while the copy
 * runs. docs/sandbox.md "Shared sandbox services".
 */
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import type { Logger } from '../../log.js';
import { VERSION } from '../../version.js';
import { SANDBOX, type SandboxEndpoints } from '../index.js';
import { SERVICES_NAME } from './host.js';
import { ensureStateDir, logFilePath, readState, removeState, servicesStateDir, stateFilePath, type ServicesState } from './state-file.js';

// A CommonJS package: Node hands us `module.exports` (class on `.default`); some loaders unwrap it already.
const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));
const READY_TIMEOUT_MS = 20_000;

export interface FindOrStartOptions {
  /** This copy's `<APP_REDIRECT_URI>/callback`, allowed on the emulated workload identity. */
  callbackUrl: string | string[];
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

/** The live services of this user, or `undefined` (no state file, a dead pid, a process that is not ours, another version). */
export async function findSandboxServices(env: NodeJS.ProcessEnv = process.env): Promise<ServicesState | undefined> {
  const dir = servicesStateDir(env);
  ensureStateDir(dir);
  const state = readState(dir);
  if (typeof state !== 'object') return undefined;
  return (await isLive(state)) ? state : undefined;
}

export async function findOrStartSandboxServices(options: FindOrStartOptions): Promise<SandboxEndpoints> {
  const env = options.env ?? process.env;
  const dir = servicesStateDir(env);
  ensureStateDir(dir);
  const found = readState(dir);
  let state = typeof found === 'object' && (await isLive(found)) ? found : undefined;
  if (!state) {
    // A stale file (dead pid, another process on that pid, another version) would block the new one's claim.
    // Remove only the very file judged stale: another copy's new services may have published meanwhile.
    if (found !== undefined) removeState(dir, typeof found === 'object' ? found.instance : undefined);
    state = await spawnServices(dir, env);
    options.logger?.info('sandbox: started the shared sandbox services', { pid: state.pid, stateFile: stateFilePath(dir) });
  } else options.logger?.info('sandbox: using the running shared sandbox services', { pid: state.pid, stateFile: stateFilePath(dir) });

  for (const url of ([] as string[]).concat(options.callbackUrl)) await control(state, '/callbacks', { url });
  // While this copy runs it counts as a user of the services: a quiet session must not lose them.
  const heartbeat = setInterval(() => void fetch(`${state.controlUrl}/health`).catch(() => {}), Math.min(60_000, (state.idleSeconds * 1000) / 3));
  heartbeat.unref();

  const dingtalkUrl = state.dingtalkUrl;
  return {
    agentIdentityUrl: state.agentIdentityUrl,
    dingtalkUrl,
    workloadIdentityName: SANDBOX.workloadIdentityName,
    providerName: SANDBOX.providerName,
    appSecretProviderName: SANDBOX.appSecretProviderName,
    dingtalkClientId: SANDBOX.dingtalkClientId,
    accessKeyId: SANDBOX.accessKeyId,
    credential: new Credential(new CredentialConfig({ type: 'access_key', accessKeyId: SANDBOX.accessKeyId, accessKeySecret: state.accessKeySecret })),
    sampleDocumentId: SANDBOX.sampleDocumentId,
    sampleDocumentLink: `https://alidocs.dingtalk.com/i/nodes/${SANDBOX.sampleDocumentId}?utm_scene=team_space`,
    documentViewerUrl: (id) => `${dingtalkUrl}/sandbox/docs/${encodeURIComponent(id)}`,
    services: { pid: state.pid, stateFile: stateFilePath(dir), idleSeconds: state.idleSeconds },
    async close() {
      clearInterval(heartbeat);
    },
  };
}

/** `dingtalk-mcp sandbox stop`: true if a running services process was asked to stop. */
export async function stopSandboxServices(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const state = await findSandboxServices(env);
  if (!state) {
    const dir = servicesStateDir(env);
    const stale = readState(dir);
    if (stale !== undefined) removeState(dir, typeof stale === 'object' ? stale.instance : undefined);
    return false;
  }
  await control(state, '/stop', {});
  return true;
}

async function spawnServices(dir: string, env: NodeJS.ProcessEnv): Promise<ServicesState> {
  // Its log goes to a file of ours (0600, never through a link): there is no terminal once the copy is gone.
  const log = openSync(logFilePath(dir), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  let exited: string | undefined;
  try {
    const child = spawn(process.execPath, [CLI, '__sandbox-services'], { detached: true, stdio: ['ignore', 'ignore', log], env });
    child.once('exit', (code, signal) => {
      exited = `exited (${signal ?? code})`;
    });
    child.once('error', (e) => {
      exited = `could not start (${e.message})`;
    });
    child.unref();
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    // Any live instance will do: with two copies starting at once, only one services process publishes.
    const state = await findSandboxServices(env);
    if (state) return state;
    if (Date.now() > deadline || exited) throw new Error(`the sandbox services did not start${exited ? ` (${exited})` : ''}; see ${logFilePath(dir)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function isLive(state: ServicesState): Promise<boolean> {
  try {
    process.kill(state.pid, 0);
  } catch {
    // EPERM: a process of another user holds that pid now, so not ours.
    return false;
  }
  try {
    const res = await fetch(`${state.controlUrl}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { service?: string; instance?: string; version?: string };
    return res.ok && body.service === SERVICES_NAME && body.instance === state.instance && body.version === VERSION;
  } catch {
    return false;
  }
}

async function control(state: ServicesState, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${state.controlUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${state.controlToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`the sandbox services refused ${path} (HTTP ${res.status})`);
}
