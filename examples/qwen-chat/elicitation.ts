/**
 * URL elicitation, the client side (MCP 2025-11-25 client/elicitation, "Safe URL handling"; docs/reference/mcp.md §1.6):
 *
 * - show the full URL, with its host highlighted, and the server that asked;
 * - warn about punycode / non-ASCII hosts; refuse anything but https (or http to this machine) and URLs with
 *   credentials (`user@host` hides the real host);
 * - ask before opening (default No); never fetch the URL ourselves;
 * - on consent, open the system browser (or only print the link with --no-browser);
 * - then let the server finish: 2025-11-25 sends `notifications/elicitation/complete`, 2026-07-28 retries the call.
 *
 * The URL is shown to the human only: it is never added to the model's context.
 * The same consent screen serves OAuth logins to MCP servers (oauth.ts).
 */
import { spawn } from 'node:child_process';
import type { ElicitResult } from '@modelcontextprotocol/client';
import { sanitize, style, type Terminal } from './terminal.js';

/** Hands a URL to a browser; may resolve to the line to show instead of "Opened in your browser." */
export type Opener = (url: string) => Promise<void | string>;

/**
 * Whether this machine can show a browser at all: macOS and Windows always can; elsewhere only with a graphical
 * session (X11 `DISPLAY` or Wayland `WAYLAND_DISPLAY`). Over SSH or in a container there is none, and xdg-open
 * would either fail later or take over the terminal with a text browser.
 */
export function hasDisplay(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): boolean {
  if (platform === 'darwin' || platform === 'win32') return true;
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}

export interface UrlCheck {
  ok: boolean;
  url?: URL;
  /** Why it is refused (ok=false). */
  reason?: string;
  warnings: string[];
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** Decide whether a server-supplied URL may be offered to the browser, and what to warn about. */
export function checkUrl(raw: string): UrlCheck {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: 'it is not a valid URL', warnings: [] };
  }
  const warnings: string[] = [];
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    return { ok: false, url, reason: `only https links (or http to this machine) are opened, not ${url.protocol}//${url.hostname}`, warnings };
  }
  if (url.username || url.password) {
    return { ok: false, url, reason: 'the link embeds a user name or password before the host, which can disguise where it really goes', warnings };
  }
  if (url.hostname.split('.').some((label) => label.startsWith('xn--'))) {
    warnings.push(`The host is an internationalized (punycode) name: ${url.hostname}. It may imitate a familiar domain; check it letter by letter.`);
  }
  if (/[^\x20-\x7e]/.test(raw)) warnings.push('The link contains non-ASCII characters; what you see may differ from where it goes.');
  if (url.protocol === 'http:') warnings.push('Plain http to this machine: expected for a server running locally.');
  return { ok: true, url, warnings };
}

/** The full URL with the host highlighted. */
export function formatUrl(terminal: Terminal, url: URL): string {
  const rest = url.href.slice(url.protocol.length + 2 + url.host.length);
  return `${url.protocol}//${style.host(terminal, url.host)}${rest}`;
}

/** Open a URL in the system browser without a shell (the URL is one argv element). */
export const systemBrowser: Opener = (url) =>
  new Promise((resolve, reject) => {
    const [command, args] =
      process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['rundll32', ['url.dll,FileProtocolHandler', url]] : ['xdg-open', [url]];
    const child = spawn(command, args, { stdio: 'ignore', detached: true });
    // The launchers hand the URL over and exit at once; a non-zero exit means no browser took it. One still running
    // after a few seconds is taken as a browser that started in its place.
    const timer = setTimeout(() => {
      child.unref();
      resolve();
    }, 3000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} exited with ${code}`));
    });
  });

export interface ConsentOptions {
  terminal: Terminal;
  /** Answer "yes" without asking (scripted runs; the flag is --yes). */
  autoApprove?: boolean;
  /** Open the system browser on consent (false: print the link only; the flag is --no-browser). */
  openBrowser?: boolean;
  /** How to open a link (default: the system browser). Tests and the scripted sandbox demo inject a scripted browser. */
  opener?: Opener;
  /** Whether the system browser can be shown (default {@link hasDisplay}); only consulted without an `opener`. */
  display?: boolean;
}

export interface ConsentRequest {
  /** Configured name of the MCP server that asked. */
  server: string;
  url: string;
  /** The server's message (shown sanitized). */
  message?: string;
  /** A heading such as "asks you to authorize in your browser". */
  purpose: string;
}

/**
 * Show the link, ask, and open it on consent. Resolves 'accept' once the link was handed to the browser
 * (or printed), 'decline' on a No or a refused URL, 'cancel' when nobody can answer.
 */
export async function askToOpen(options: ConsentOptions, request: ConsentRequest): Promise<ElicitResult['action']> {
  const { terminal } = options;
  const say = (s = '') => terminal.write(`${s}\n`);
  const check = checkUrl(request.url);
  say();
  say(style.bold(terminal, `🔐 Server "${sanitize(request.server)}" ${request.purpose}`));
  if (request.message) say(`   ${sanitize(request.message)}`);
  if (!check.ok || !check.url) {
    say(style.error(terminal, `   Not opening this link: ${check.reason}.`));
    say(`   ${sanitize(request.url)}`);
    return 'decline';
  }
  say(`   Site: ${style.host(terminal, check.url.host)}`);
  say(`   Link: ${formatUrl(terminal, check.url)}`);
  for (const w of check.warnings) say(style.warn(terminal, `   ⚠ ${w}`));
  // No display and no injected opener: nothing could open, so say so instead of pretending.
  const noDisplay = options.openBrowser !== false && !options.opener && !(options.display ?? hasDisplay());
  const browser = options.openBrowser !== false && !noDisplay;
  if (noDisplay)
    say(style.dim(terminal, '   No display here (an SSH session or a container?), so no browser can be started: open the link on a machine with one.'));
  let answer: string | undefined;
  if (options.autoApprove) {
    answer = 'y';
    say(style.dim(terminal, `   --yes: ${browser ? 'opening it' : 'accepting'} without asking.`));
  } else {
    answer = await terminal.ask(`   ${browser ? 'Open this link in your browser' : 'Will you open this link yourself'}? [y/N] `);
  }
  if (answer === undefined) return 'cancel';
  if (!/^y(es)?$/i.test(answer.trim())) {
    say(style.dim(terminal, '   Not opened.'));
    return 'decline';
  }
  if (!browser) {
    say(`   Open it yourself${noDisplay ? '' : ' (--no-browser)'}: ${check.url.href}`);
    return 'accept';
  }
  try {
    const shown = await (options.opener ?? systemBrowser)(check.url.href);
    say(style.dim(terminal, `   ${shown || 'Opened in your browser.'}`));
  } catch {
    say(`   Could not start a browser; open the link yourself: ${check.url.href}`);
  }
  return 'accept';
}

/**
 * One per chat: answers `elicitation/create` (mode url) for every connected server and tracks pending
 * elicitation ids so `notifications/elicitation/complete` can be reported (unknown ids are ignored).
 */
export class UrlElicitationHandler {
  private readonly pending = new Map<string, { server: string; resolve: () => void; done: Promise<void> }>();

  constructor(private readonly options: ConsentOptions) {}

  async handle(server: string, params: { url: string; message?: string; elicitationId?: string }): Promise<ElicitResult> {
    const id = params.elicitationId;
    if (id && !this.pending.has(`${server}\0${id}`)) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.pending.set(`${server}\0${id}`, { server, resolve, done });
    }
    const action = await askToOpen(this.options, { server, url: params.url, message: params.message, purpose: 'asks you to complete a step in your browser' });
    if (action === 'accept') {
      this.options.terminal.write(style.dim(this.options.terminal, '   Waiting for the server to confirm that you finished in the browser…\n'));
    } else if (id) {
      this.pending.delete(`${server}\0${id}`);
    }
    return { action };
  }

  /** `notifications/elicitation/complete` from `server`. */
  complete(server: string, elicitationId: string): void {
    const key = `${server}\0${elicitationId}`;
    const entry = this.pending.get(key);
    if (!entry) return; // unknown or already completed: ignore (spec MUST)
    this.pending.delete(key);
    this.options.terminal.write(style.accent(this.options.terminal, `   ✓ Server "${sanitize(server)}" reports the browser step is complete.\n`));
    entry.resolve();
  }

  /** Resolves true when every id completed, false on timeout or abort (e.g. the user pressed Enter). */
  async waitFor(server: string, ids: string[], timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const waits = ids.map((id) => this.pending.get(`${server}\0${id}`)?.done ?? Promise.resolve());
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      Promise.all(waits).then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      new Promise<boolean>((r) => signal?.addEventListener('abort', () => r(false), { once: true })),
    ]);
    clearTimeout(timer);
    return result;
  }
}
