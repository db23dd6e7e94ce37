/**
 * stdio's local pieces (docs/architecture.md decision 17): the per-user state folder with its shared state secret,
 * the file store every local copy shares, and the pages host that serves /connect and /callback for all of them.
 */
import type { Config } from '../config.js';
import type { AlibabaCloudCredential } from '../identity/agent-identity-client.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../state/types.js';
import { createLocalStore } from './file-store.js';
import { LocalPages } from './pages-client.js';
import { hostSettings, linkBase, pendingDir } from './pages-settings.js';
import { ensurePrivateDir, localStateDir, persistedStateSecret } from './private-files.js';

export interface LocalPieces {
  /** The configuration with its state secret: DINGTALK_MCP_STATE_SECRET, else the persisted per-user one. */
  config: Config;
  store: StateStore;
  /** Where the links we print point (the literal 127.0.0.1 for `localhost`). */
  linkBase: string;
  pages: LocalPages;
  stateDir: string;
}

export async function prepareLocal(
  config: Config,
  options: { logger: Logger; credential?: AlibabaCloudCredential; store?: StateStore; storeOptions: { lingerMs: number; maxPerUser: number } },
): Promise<LocalPieces> {
  const stateDir = localStateDir(config.localStateDir);
  ensurePrivateDir(stateDir);
  const withSecret: Config = config.stateSecret ? config : { ...config, stateSecret: persistedStateSecret(stateDir) };
  const store = options.store ?? createLocalStore({ dir: pendingDir(stateDir), secret: withSecret.stateSecret as string, ...options.storeOptions });
  // A fixed credential (the sandbox's AccessKey) goes to the host too; otherwise it uses the chain of the environment it inherits.
  let accessKey: { accessKeyId: string; accessKeySecret: string; securityToken?: string } | undefined;
  if (options.credential) {
    const c = await options.credential.getCredential();
    if (c.accessKeyId && c.accessKeySecret)
      accessKey = { accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, ...(c.securityToken ? { securityToken: c.securityToken } : {}) };
  }
  const pages = new LocalPages(hostSettings(withSecret, stateDir, options.storeOptions, accessKey), options.logger);
  return { config: withSecret, store, linkBase: linkBase(config.appRedirectUri), pages, stateDir };
}
