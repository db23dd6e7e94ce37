/**
 * OAuth for MCP servers that require it (MCP authorization: a 401 with protected-resource metadata naming the
 * authorization server). The SDK client runs discovery, dynamic client registration, PKCE (S256) and the token
 * exchange; this module supplies what a CLI host must:
 *
 * - a loopback redirect (`http://127.0.0.1:<port>/callback`) answered by a listener that only accepts the request
 *   carrying this login's `state` (the SDK does not check it),
 * - consent before opening the browser (the same screen as URL elicitation),
 * - persistence: client registration, tokens and discovery state in one JSON file, mode 0600 (directory 0700),
 *   keyed by the server URL. The PKCE verifier stays in memory.
 *
 * Tokens go to the MCP server only (as the transport's Authorization header); never to the model or the screen.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type {
  OAuthClientMetadata,
  OAuthClientProvider,
  OAuthDiscoveryState,
  StoredOAuthClientInformation,
  StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import { askToOpen, type ConsentOptions } from './elicitation.js';
import { style } from './terminal.js';

export const DEFAULT_TOKEN_FILE = join(homedir(), '.config', 'qwen-chat', 'oauth.json');

interface StoredEntry {
  clientInformation?: StoredOAuthClientInformation;
  tokens?: StoredOAuthTokens;
  discoveryState?: OAuthDiscoveryState;
}

/** The token file exists but cannot be used as is: nothing is written over it. */
export class TokenFileError extends Error {}

/**
 * A JSON file readable by its owner only, keyed by server URL. A file that does not parse is never overwritten (that
 * would drop every server's tokens). Writes go to a 0600 temporary file renamed over the old one, after re-reading
 * the file so that entries another process saved meanwhile are kept.
 */
export class TokenFile {
  private warnedAboutDirectory = false;

  constructor(
    readonly path: string = DEFAULT_TOKEN_FILE,
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`qwen-chat: ${m}\n`),
  ) {}

  private readAll(): Record<string, StoredEntry> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new TokenFileError(`cannot read the OAuth token file ${this.path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TokenFileError(
        `the OAuth token file ${this.path} is not a JSON object; it was left untouched. Fix it, or delete it to sign in again (--token-file picks another file).`,
      );
    }
    return value as Record<string, StoredEntry>;
  }

  get(key: string): StoredEntry {
    return this.readAll()[key] ?? {};
  }

  update(key: string, change: (entry: StoredEntry) => StoredEntry): void {
    const next = change(this.readAll()[key] ?? {});
    this.ensureDirectory();
    // Re-read just before writing: only this key changes, whatever else is in the file now stays.
    const all = this.readAll();
    all[key] = next;
    const tmp = `${this.path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(tmp, 0o600);
      renameSync(tmp, this.path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  /** Create the directory owner-only; an existing one is left as is, with a warning if others can enter it. */
  private ensureDirectory(): void {
    const dir = dirname(this.path);
    if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) {
      chmodSync(dir, 0o700); // mkdir's mode goes through the umask; we created it, so make it exactly 0700
      return;
    }
    const mode = statSync(dir).mode & 0o777;
    if (mode & 0o077 && !this.warnedAboutDirectory) {
      this.warnedAboutDirectory = true;
      this.warn(
        `the directory of the OAuth token file, ${dir}, is accessible to other users (mode ${mode.toString(8).padStart(3, '0')}); consider chmod 700 ${dir}`,
      );
    }
  }
}

export interface OAuthSettings {
  /** A pre-registered client id (skips dynamic client registration), e.g. an Alibaba Cloud OAuth app. */
  clientId?: string;
  clientSecret?: string;
  /** Scopes to ask for (space-separated). */
  scope?: string;
  /** Fixed loopback port for the redirect (when the app registration whitelists an exact redirect URI). */
  callbackPort?: number;
}

export class LoopbackOAuthProvider implements OAuthClientProvider {
  private verifier?: string;
  private currentState?: string;
  /** Set by the SDK when a login is needed; opened only after the user agrees. */
  pendingAuthorizationUrl?: URL;
  readonly redirectUrl: string;

  constructor(
    readonly serverName: string,
    private readonly key: string,
    private readonly store: TokenFile,
    readonly callbackPort: number,
    private readonly settings: OAuthSettings = {},
  ) {
    this.redirectUrl = `http://127.0.0.1:${callbackPort}/callback`;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: `qwen-chat (${this.serverName})`,
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: this.settings.clientSecret ? 'client_secret_basic' : 'none',
      ...(this.settings.scope ? { scope: this.settings.scope } : {}),
    };
  }

  state(): string {
    this.currentState = randomBytes(24).toString('base64url');
    return this.currentState;
  }

  get expectedState(): string | undefined {
    return this.currentState;
  }

  clientInformation(): StoredOAuthClientInformation | undefined {
    if (this.settings.clientId) {
      return { client_id: this.settings.clientId, ...(this.settings.clientSecret ? { client_secret: this.settings.clientSecret } : {}) };
    }
    return this.store.get(this.key).clientInformation;
  }

  saveClientInformation(info: StoredOAuthClientInformation): void {
    this.store.update(this.key, (e) => ({ ...e, clientInformation: info }));
  }

  tokens(): StoredOAuthTokens | undefined {
    return this.store.get(this.key).tokens;
  }

  saveTokens(tokens: StoredOAuthTokens): void {
    this.store.update(this.key, (e) => ({ ...e, tokens }));
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.pendingAuthorizationUrl = authorizationUrl;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (!this.verifier) throw new Error('no PKCE code verifier: the login was not started by this process');
    return this.verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.store.update(this.key, (e) => ({ ...e, discoveryState: state }));
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.store.get(this.key).discoveryState;
  }

  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    if (scope === 'verifier' || scope === 'all') this.verifier = undefined;
    if (scope === 'verifier') return;
    this.store.update(this.key, (e) => ({
      clientInformation: scope === 'all' || scope === 'client' ? undefined : e.clientInformation,
      tokens: scope === 'all' || scope === 'tokens' ? undefined : e.tokens,
      discoveryState: scope === 'all' || scope === 'discovery' ? undefined : e.discoveryState,
    }));
  }
}

/** A free loopback port. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

const DONE_PAGE = (ok: boolean) =>
  `<!doctype html><meta charset="utf-8"><title>qwen-chat</title><body style="font-family:sans-serif;margin:3em">` +
  `<h1>${ok ? 'Signed in' : 'Sign-in failed'}</h1><p>${ok ? 'You can close this tab and return to the terminal.' : 'Return to the terminal for details.'}</p></body>`;

/**
 * After `connect()` failed with UnauthorizedError: ask, open the authorization URL, receive the loopback callback,
 * check `state`, and hand the parameters to `finishAuth` (the SDK exchanges the code with the PKCE verifier).
 * Returns false when the user declined or the login failed (the reason is printed).
 */
export async function loginWithBrowser(options: {
  consent: ConsentOptions;
  provider: LoopbackOAuthProvider;
  finishAuth(params: URLSearchParams): Promise<void>;
  timeoutMs?: number;
}): Promise<boolean> {
  const { consent, provider } = options;
  const say = (s: string) => consent.terminal.write(`${s}\n`);
  const authorizationUrl = provider.pendingAuthorizationUrl;
  if (!authorizationUrl) return false;
  // Listen before the browser can come back.
  const callback = listenForCallback(provider.callbackPort, options.timeoutMs ?? 5 * 60_000, () => provider.expectedState);
  try {
    await callback.ready; // the link must not be shown before anything listens for its answer
    const action = await askToOpen(consent, {
      server: provider.serverName,
      url: authorizationUrl.href,
      purpose: 'needs you to sign in (OAuth) before it can be used',
    });
    if (action !== 'accept') {
      say(style.dim(consent.terminal, `   Skipping "${provider.serverName}": sign-in ${action === 'cancel' ? 'cancelled' : 'declined'}.`));
      return false;
    }
    say(style.dim(consent.terminal, '   Waiting for the browser to come back to this machine…'));
    const params = await callback.params;
    if (params.get('error')) {
      // error_description is attacker-controllable in mix-up attacks: do not echo it.
      say(
        style.error(
          consent.terminal,
          `   Sign-in to "${provider.serverName}" failed (${params
            .get('error')
            ?.replace(/[^\w.-]/g, '')
            .slice(0, 60)}).`,
        ),
      );
      return false;
    }
    if (!provider.expectedState || params.get('state') !== provider.expectedState) {
      say(style.error(consent.terminal, `   Sign-in to "${provider.serverName}" rejected: the state parameter does not match.`));
      return false;
    }
    await options.finishAuth(params);
    say(style.accent(consent.terminal, `   ✓ Signed in to "${provider.serverName}".`));
    return true;
  } catch (e) {
    say(style.error(consent.terminal, `   Sign-in to "${provider.serverName}" failed: ${e instanceof Error ? e.message : String(e)}`));
    return false;
  } finally {
    callback.close();
  }
}

/**
 * Waits for the browser's redirect. Only a request to /callback whose `state` is the one this login sent ends the
 * wait; any other request (another local process, a web page) gets a 400 and the listener keeps waiting.
 */
function listenForCallback(
  port: number,
  timeoutMs: number,
  expectedState: () => string | undefined,
): { ready: Promise<void>; params: Promise<URLSearchParams>; close(): void } {
  let resolveParams!: (p: URLSearchParams) => void;
  let rejectParams!: (e: Error) => void;
  const params = new Promise<URLSearchParams>((resolve, reject) => {
    resolveParams = resolve;
    rejectParams = reject;
  });
  params.catch(() => {});
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    const expected = expectedState();
    if (!expected || url.searchParams.get('state') !== expected) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('This is not the answer to the sign-in in progress (state does not match); ignored.\n');
      return;
    }
    const ok = url.searchParams.has('code') && !url.searchParams.has('error');
    res.writeHead(ok ? 200 : 400, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(DONE_PAGE(ok));
    resolveParams(url.searchParams);
  });
  const ready = new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      const error = new Error(`cannot listen on 127.0.0.1:${port} for the OAuth redirect (${e.message})`);
      rejectParams(error);
      reject(error);
    });
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const timer = setTimeout(() => rejectParams(new Error(`no answer from the browser within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
  return {
    ready,
    params,
    close() {
      clearTimeout(timer);
      server.closeAllConnections?.();
      server.close();
    },
  };
}
