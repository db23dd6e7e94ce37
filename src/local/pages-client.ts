/**
 * A local copy's side of the pages host (./pages-host.ts): before a link is printed, find this user's host on
 * APP_REDIRECT_URI's port (it proves it holds our state secret and names its settings by fingerprint), or start one
 * detached and wait until it listens. Either the link will work, or the call gets a message saying what holds the
 * port and what to change (docs/troubleshooting.md "Port in use").
 */
import { spawn } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import type { HostStart } from './pages-host.js';
import {
  HOST_PATH,
  HOST_SERVICE,
  fingerprintOf,
  hostLogPath,
  pagesPort,
  proofOf,
  secretIdOf,
  type HostIdentity,
  type PagesHostSettings,
} from './pages-settings.js';
import { NOFOLLOW } from './private-files.js';

const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;

type Found =
  | { kind: 'ours'; pid: number }
  | { kind: 'other-settings'; pid: number }
  | { kind: 'other-secret'; pid: number }
  | { kind: 'foreign' }
  | { kind: 'none' };

export class LocalPages {
  private readonly port: number;
  private readonly fingerprint: string;
  private inflight: Promise<string | undefined> | undefined;
  /** The host's pid, once found or started (for the start log). */
  pid: number | undefined;

  constructor(
    private readonly settings: PagesHostSettings,
    private readonly logger: Logger,
  ) {
    this.port = pagesPort(settings.appRedirectUri);
    this.fingerprint = fingerprintOf(settings);
  }

  /** Undefined once a host of ours serves the port (found or started); otherwise why the links cannot work. */
  ensure(): Promise<string | undefined> {
    this.inflight ??= this.findOrStart().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async findOrStart(): Promise<string | undefined> {
    let found = await this.identify();
    if (found.kind === 'none') {
      const started = await this.start();
      if (started.ok) {
        this.logger.info('started the local pages host', { pid: started.pid, log: hostLogPath(this.settings.stateDir) });
        this.pid = started.pid;
        return undefined;
      }
      // Another copy's host may have taken the port a moment before ours: look again.
      if (started.code === 'EADDRINUSE') found = await this.identify();
      else if (started.code === 'EADDRINUSE_IPV6') return this.ipv6Taken();
      else return `the authorization pages could not start (${started.message}); see ${hostLogPath(this.settings.stateDir)}.`;
    }
    switch (found.kind) {
      case 'ours':
        this.pid = found.pid;
        return undefined;
      case 'other-settings':
        return `port ${this.port} is used by another copy of this server with other settings (pid ${found.pid}). ${this.moveHint()}`;
      case 'other-secret':
        return `port ${this.port} is used by another copy of this server (pid ${found.pid}) that has another DINGTALK_MCP_STATE_SECRET, or by another user's copy. ${this.moveHint()}`;
      default:
        return `port ${this.port} on 127.0.0.1 is already in use by another program. Stop it, or: ${this.moveHint()}`;
    }
  }

  private moveHint(): string {
    const next = new URL(this.settings.appRedirectUri);
    next.port = String(this.port === 65_535 ? 8091 : this.port + 1);
    const base = next.toString().replace(/\/+$/, '');
    return `Set APP_REDIRECT_URI to another port (e.g. ${base}) and allow ${base}/callback on the workload identity (this copy's callback URL is now ${this.settings.callbackUrl}).`;
  }

  private ipv6Taken(): string {
    return (
      `port ${this.port} on [::1] is held by another program, and a browser opening localhost:${this.port} may reach it instead of this server. ` +
      `Stop it, or set APP_REDIRECT_URI to http://127.0.0.1:${this.port} and allow http://127.0.0.1:${this.port}/callback on the workload identity.`
    );
  }

  /** Who answers on the port: our host (with our secret and settings), a copy with others, something else, or nothing. */
  private identify(): Promise<Found> {
    const nonce = randomBytes(16).toString('base64url');
    return new Promise((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.port,
          path: `${HOST_PATH}?nonce=${nonce}&hold=1`,
          method: 'GET',
          timeout: 3000,
          headers: { accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 8192) chunks.push(c);
          });
          res.on('end', () => resolve(this.judge(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), nonce)));
          res.on('error', () => resolve({ kind: 'foreign' }));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED' ? { kind: 'none' } : { kind: 'foreign' }));
      req.end();
    });
  }

  private judge(status: number, body: string, nonce: string): Found {
    let id: Partial<HostIdentity>;
    try {
      id = JSON.parse(body) as Partial<HostIdentity>;
    } catch {
      return { kind: 'foreign' };
    }
    if (status !== 200 || id.service !== HOST_SERVICE || typeof id.pid !== 'number' || typeof id.fingerprint !== 'string') return { kind: 'foreign' };
    const expected = Buffer.from(proofOf(this.settings.stateSecret, nonce, id.fingerprint, id.pid));
    const given = Buffer.from(String(id.proof ?? ''));
    if (id.secretId !== secretIdOf(this.settings.stateSecret) || expected.length !== given.length || !timingSafeEqual(expected, given)) {
      return { kind: 'other-secret', pid: id.pid };
    }
    return id.fingerprint === this.fingerprint ? { kind: 'ours', pid: id.pid } : { kind: 'other-settings', pid: id.pid };
  }

  /** Start a host detached (it outlives this copy), its settings on stdin, and wait for its one-line answer. */
  private start(): Promise<HostStart> {
    // Its log: a file of ours (0600, never through a link), kept short; there is no terminal once this copy is gone.
    const log = openSync(hostLogPath(this.settings.stateDir), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | NOFOLLOW, 0o600);
    try {
      if (fstatSync(log).size > 1024 * 1024) ftruncateSync(log, 0);
    } catch {
      // keep appending
    }
    return new Promise<HostStart>((resolve) => {
      let settled = false;
      const finish = (start: HostStart) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.stdout?.destroy();
        child.unref();
        resolve(start);
      };
      const child = spawn(process.execPath, [CLI, '__local-pages'], {
        detached: true,
        stdio: ['pipe', 'pipe', log],
        env: process.env,
        windowsHide: true,
      });
      closeSync(log);
      const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT', message: 'it did not answer within 15 seconds' }), START_TIMEOUT_MS);
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) {
          try {
            finish(JSON.parse(line) as HostStart);
          } catch {
            finish({ ok: false, code: 'EPROTO', message: 'it answered something unexpected' });
          }
        }
      });
      child.once('error', (e) => finish({ ok: false, code: 'ESPAWN', message: e.message }));
      child.once('exit', (code, signal) => finish({ ok: false, code: 'EEXIT', message: `it exited (${signal ?? code})` }));
      child.stdin?.on('error', () => {});
      child.stdin?.end(JSON.stringify(this.settings));
    });
  }
}
