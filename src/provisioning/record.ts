/**
 * `.config.json`: the Python kit's keys (`workload_identity_name`, `role_arn`, `identity_provider_name`,
 * `inbound_app_id`, `inbound_app_name`; reference §4) plus `dingtalk_provider_name` (read by the server) and
 * `dingtalk_mcp_setup`, the record of what `setup` created, so `teardown` deletes exactly that.
 *
 * Every resource is recorded as `pending` just before its create call and `created` (with its ARN and `identity`,
 * see identity.ts) right after: a crash in between leaves `pending`, which a re-run resolves (exists → ours, its
 * identity recorded; missing → create). A create refused because the name was taken meanwhile drops `pending`:
 * that resource is someone else's. Resources found already there are recorded as `adopted` and never deleted.
 * Teardown deletes a resource only when its current identity equals the recorded one.
 * Writes are atomic (temp file + rename) and keep every key the file already had.
 *
 * Secrets never go into this file. The one secret setup itself obtains — the IMS app secret in HTTP mode — goes to
 * a separate file (`.dingtalk-mcp.secrets.json`, mode 0600) beside it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export type ResourceType =
  | 'ims_application'
  | 'ims_app_secret'
  | 'identity_provider'
  | 'ram_role'
  | 'ram_policy'
  | 'ram_policy_attachment'
  | 'workload_identity'
  | 'oauth2_credential_provider'
  | 'apikey_credential_provider';

export type ResourceStatus = 'pending' | 'created' | 'adopted';

export interface ResourceRecord {
  type: ResourceType;
  /** Name, or id for IMS entities; `<role>/<policy>` for an attachment. */
  name: string;
  status: ResourceStatus;
  arn?: string;
  /** IMS application (of an app secret). */
  appId?: string;
  /** What a re-created resource of the same name never shares (identity.ts); set for created resources. */
  identity?: string;
  at: string;
}

export interface SetupRecord {
  version: 1;
  /** Random suffix of generated names, fixed at the first run so re-runs reuse the same names. */
  suffix: string;
  mode: 'stdio' | 'http';
  regionId: string;
  accountId?: string;
  resources: ResourceRecord[];
}

export const RECORD_KEY = 'dingtalk_mcp_setup';
export const SECRETS_FILE = '.dingtalk-mcp.secrets.json';

export class ConfigFile {
  readonly path: string;
  data: Record<string, unknown>;

  constructor(path: string) {
    this.path = resolve(path);
    this.data = {};
    if (existsSync(this.path)) {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as unknown;
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${this.path} is not a JSON object; fix or move it away`);
      this.data = parsed as Record<string, unknown>;
    }
  }

  get secretsPath(): string {
    return join(dirname(this.path), SECRETS_FILE);
  }

  string(key: string): string | undefined {
    const v = this.data[key];
    return typeof v === 'string' && v !== '' ? v : undefined;
  }

  get record(): SetupRecord | undefined {
    const r = this.data[RECORD_KEY];
    if (!r || typeof r !== 'object' || !Array.isArray((r as SetupRecord).resources)) return undefined;
    return r as SetupRecord;
  }

  set record(r: SetupRecord | undefined) {
    if (r) this.data[RECORD_KEY] = r;
    else delete this.data[RECORD_KEY];
  }

  find(type: ResourceType, name?: string): ResourceRecord | undefined {
    return this.record?.resources.find((x) => x.type === type && (name === undefined || x.name === name));
  }

  /** Record (or replace) one resource's entry and save at once. */
  track(entry: Omit<ResourceRecord, 'at'>): void {
    const record = this.record;
    if (!record) throw new Error('no setup record to track resources in');
    const at = new Date().toISOString();
    const i = record.resources.findIndex((x) => x.type === entry.type && x.name === entry.name);
    if (i >= 0) record.resources[i] = { ...entry, at };
    else record.resources.push({ ...entry, at });
    this.save();
  }

  forget(type: ResourceType, name: string): void {
    const record = this.record;
    if (!record) return;
    record.resources = record.resources.filter((x) => !(x.type === type && x.name === name));
    this.save();
  }

  save(): void {
    replaceFile(this.path, JSON.stringify(this.data, null, 2) + '\n');
  }

  // ---- secrets file ----

  readSecret(key: string): string | undefined {
    if (!existsSync(this.secretsPath)) return undefined;
    try {
      const v = (JSON.parse(readFileSync(this.secretsPath, 'utf8')) as Record<string, unknown>)[key];
      return typeof v === 'string' && v !== '' ? v : undefined;
    } catch {
      return undefined;
    }
  }

  writeSecret(key: string, value: string | undefined): void {
    let all: Record<string, unknown> = {};
    if (existsSync(this.secretsPath)) {
      try {
        all = JSON.parse(readFileSync(this.secretsPath, 'utf8')) as Record<string, unknown>;
      } catch {
        all = {};
      }
    }
    if (value === undefined) delete all[key];
    else all[key] = value;
    if (Object.keys(all).length === 0) {
      rmSync(this.secretsPath, { force: true });
      return;
    }
    replaceFile(this.secretsPath, JSON.stringify(all, null, 2) + '\n');
  }
}

/**
 * Write `path` whole, atomically: a temporary file next to it, created exclusively (`wx`: O_CREAT|O_EXCL, so a
 * symlink or file planted at that name is never followed or reused) with mode 0600 from the start, then renamed
 * over `path`. A taken temporary name is skipped for a random one; a write that still fails removes its own
 * temporary file and says which file could not be written.
 */
export function replaceFile(path: string, text: string): void {
  const candidates = [`${path}.${process.pid}.tmp`, ...[0, 1, 2].map(() => `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)];
  for (const tmp of candidates) {
    try {
      writeFileSync(tmp, text, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new Error(`Could not write ${path}: ${(e as Error).message}`);
    }
    try {
      renameSync(tmp, path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new Error(`Could not write ${path}: ${(e as Error).message}`);
    }
    return;
  }
  throw new Error(`Could not write ${path}: its temporary files (${path}.${process.pid}.*.tmp) already exist; remove them and run again.`);
}
