/**
 * The per-user state file of the shared sandbox services (docs/sandbox.md "Shared sandbox services"): where a
 * `--sandbox` copy finds the running services — pid, URLs and the sandbox's random AccessKey secret.
 *
 * The directory is the user's own (`$XDG_STATE_HOME` or `~/.local/state`, then
 * `agent-identity-dingtalk-mcp/sandbox`), mode 0700. The file is mode 0600, created exclusively and never
 * followed through a symbolic link: another local user must neither read the secret nor make us write elsewhere.
 */
import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateSync, ensurePrivateDir, userStateHome } from '../../local/private-files.js';

export interface ServicesState {
  version: 1;
  pid: number;
  /** Random per process: a reused pid cannot pass for the services. */
  instance: string;
  startedAt: string;
  /** The package version that started it: a copy of another version starts its own services. */
  serverVersion: string;
  /** Health, callback registration and stop (docs/sandbox.md). */
  controlUrl: string;
  /** Bearer for the control endpoints that change something. */
  controlToken: string;
  agentIdentityUrl: string;
  dingtalkUrl: string;
  /** Sandbox-only random secret: only these emulators accept it. */
  accessKeySecret: string;
  idleSeconds: number;
}

export class StateFileError extends Error {}

/** `$XDG_STATE_HOME/agent-identity-dingtalk-mcp/sandbox`, or under `~/.local/state`. */
export function servicesStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(userStateHome(env), 'agent-identity-dingtalk-mcp', 'sandbox');
}

export const stateFilePath = (dir: string) => join(dir, 'services.json');
export const logFilePath = (dir: string) => join(dir, 'services.log');

/** Create the directory (0700) or check the existing one is a real directory of ours, not a link. */
export function ensureStateDir(dir: string): void {
  ensurePrivateDir(
    dir,
    (_, problem) =>
      new StateFileError(
        problem === 'not a directory'
          ? `${dir} is not a directory (a symbolic link?); remove it and try again.`
          : `${dir} belongs to another user; remove it or set XDG_STATE_HOME to a directory of yours.`,
      ),
  );
}

/** The state, `undefined` when there is none, `'invalid'` for a file we cannot use (stale format, torn). */
export function readState(dir: string): ServicesState | 'invalid' | undefined {
  const path = stateFilePath(dir);
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  if (stat.isSymbolicLink() || !stat.isFile())
    throw new StateFileError(`refusing the sandbox state file ${path}: it is not a regular file (a symbolic link?). Remove it and try again.`);
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<ServicesState>;
    if (parsed.version !== 1 || typeof parsed.pid !== 'number' || typeof parsed.instance !== 'string' || typeof parsed.controlUrl !== 'string')
      return 'invalid';
    return parsed as ServicesState;
  } catch {
    return 'invalid';
  }
}

/**
 * Publish `state` only if no state file exists: written to a fresh temporary file (`wx`, 0600), then hard-linked
 * to the final name, which fails if another services process got there first (a rename would replace it).
 */
export function publishState(dir: string, state: ServicesState): boolean {
  return createPrivateSync(stateFilePath(dir), dir, `${JSON.stringify(state, null, 2)}\n`);
}

/**
 * Remove the state file if it still names `instance`, or (no instance) if it is still unusable: a copy that judged
 * a file stale must not remove the one another copy's new services published since.
 */
export function removeState(dir: string, instance?: string): void {
  try {
    const current = readState(dir);
    if (instance === undefined ? current !== 'invalid' : typeof current !== 'object' || current.instance !== instance) return;
    unlinkSync(stateFilePath(dir));
  } catch {
    // Already gone, or not ours to remove.
  }
}
