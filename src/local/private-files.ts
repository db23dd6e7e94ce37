/**
 * The per-user local state folder of stdio copies (docs/security.md "Local state"): a directory of ours, mode 0700,
 * holding files of mode 0600 that are created exclusively and never read or written through a symbolic link, so
 * another local user can neither read them nor make us write elsewhere.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { link, open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreUnavailableError } from '../state/types.js';

/** O_NOFOLLOW where the platform has it (not on Windows, where creating symbolic links needs privileges). */
export const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** DINGTALK_MCP_STATE_DIR, else `$XDG_STATE_HOME/agent-identity-dingtalk-mcp/local` (or under `~/.local/state`). */
export function localStateDir(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (configured) return configured;
  if (process.platform === 'win32' && env.LOCALAPPDATA) return join(env.LOCALAPPDATA, 'agent-identity-dingtalk-mcp', 'local');
  return join(userStateHome(env), 'agent-identity-dingtalk-mcp', 'local');
}

/** `$XDG_STATE_HOME` when it is an absolute path, else `~/.local/state` (XDG Base Directory). */
export function userStateHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_STATE_HOME?.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
}

/** A refusal a user can act on; a StoreUnavailableError so a tool call answers it as a clear isError result. */
export class LocalStateError extends StoreUnavailableError {}

/** Why a folder cannot be ours: the caller words the refusal for its own users. */
export type PrivateDirProblem = 'not a directory' | 'owned by another user';

const localDirRefusal = (dir: string, problem: PrivateDirProblem): Error =>
  new LocalStateError(
    problem === 'not a directory'
      ? `The local state folder ${dir} is not a directory (a symbolic link?); remove it and call the tool again.`
      : `The local state folder ${dir} belongs to another user; remove it or set DINGTALK_MCP_STATE_DIR to a folder of yours.`,
  );

/** Create `dir` (0700) or check that the existing one is a real directory of ours; tighten its mode if needed. */
export function ensurePrivateDir(dir: string, refuse: (dir: string, problem: PrivateDirProblem) => Error = localDirRefusal): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (stat.isSymbolicLink() || !stat.isDirectory()) throw refuse(dir, 'not a directory');
  if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) throw refuse(dir, 'owned by another user');
  if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** The refusal for a path that is a link or not a regular file of ours. */
export function refused(path: string, why = 'it is a symbolic link or not a regular file'): LocalStateError {
  return new LocalStateError(`Refusing the local state file ${path}: ${why}. Remove it and call the tool again.`);
}

/** What a failed no-follow open means: `undefined` for a missing file, the refusal for a link, anything else as is. */
function missingOrRefused(path: string, e: unknown): undefined {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return undefined;
  if (code === 'ELOOP' || code === 'EMLINK') throw refused(path);
  throw e;
}

/** Read a file of ours without following a link; `undefined` when it does not exist. */
export function readPrivateSync(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | NOFOLLOW);
  } catch (e) {
    return missingOrRefused(path, e);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refused(path);
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) throw refused(path, 'it belongs to another user');
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) throw refused(path, 'other users can read it (its mode is not 0600)');
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** The text of a regular file, never read through a link; `undefined` when it does not exist (no owner or mode check). */
export async function readPrivate(path: string): Promise<string | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | NOFOLLOW);
  } catch (e) {
    return missingOrRefused(path, e);
  }
  try {
    if (!(await handle.stat()).isFile()) throw refused(path);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** A fresh temporary name in `dir` (`.tmp-…`: what a sweep of the folder recognises as left behind by a crash). */
export function privateTempPath(dir: string): string {
  return join(dir, `.tmp-${randomBytes(9).toString('base64url')}`);
}

/** Write `path` whole: a fresh temporary file (`wx`, 0600) renamed over the name (a rename never follows a link). */
export async function replacePrivate(path: string, dir: string, content: string): Promise<void> {
  const tmp = privateTempPath(dir);
  await writeFile(tmp, content, { flag: 'wx', mode: 0o600 });
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Create `path` with `content` only if it does not exist: written to a fresh temporary file (`wx`, 0600), then
 * hard-linked to its name, which fails if the name exists in any form (a link included). False if it existed.
 */
export async function createPrivate(path: string, dir: string, content: string): Promise<boolean> {
  const tmp = privateTempPath(dir);
  await writeFile(tmp, content, { flag: 'wx', mode: 0o600 });
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** createPrivate for synchronous callers. */
export function createPrivateSync(path: string, dir: string, content: string): boolean {
  const tmp = privateTempPath(dir);
  writeFileSync(tmp, content, { flag: 'wx', mode: 0o600 });
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * The per-user state secret every local copy and the pages host share, so a link any copy signed verifies wherever
 * it lands: 32 random bytes, made once (exclusively: two copies starting together agree on the first one written).
 */
export function persistedStateSecret(dir: string): string {
  ensurePrivateDir(dir);
  const path = join(dir, 'state-secret');
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = readPrivateSync(path)?.trim();
    if (existing && existing.length >= 32) return existing;
    if (existing !== undefined) throw refused(path, 'it does not hold a secret of ours');
    createPrivateSync(path, dir, `${randomBytes(32).toString('hex')}\n`);
  }
  throw refused(path, 'it could not be created');
}
