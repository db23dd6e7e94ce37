/**
 * HTTP plumbing shared by the emulators: listening on loopback, reading bounded bodies, JSON and HTML
 * replies, and the fault queue tests use to make the next calls fail.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

let lastRequestAt = Date.now();
/** When any emulator of this process last got a request: the shared services exit after an idle grace (./services/). */
export const lastEmulatorRequestAt = () => lastRequestAt;

/** Start an emulator's server and return its base URL (`http://127.0.0.1:<port>`). */
export async function listen(server: Server, host = '127.0.0.1', port = 0): Promise<string> {
  server.on('request', () => {
    lastRequestAt = Date.now();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}

/** Stop an emulator's server, dropping open keep-alive connections so tests end promptly. */
export function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A request body above the emulator's limit; the connection is dropped. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super('The request body is too large.');
  }
}

/** The whole request body, or a {@link BodyTooLargeError} once it passes `limit` bytes. */
export function readBody(req: IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new BodyTooLargeError(limit));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A JSON reply with its length set; `headers` adds to (or overrides) the defaults. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A fault a test injects: the next `times` matching calls fail with it (default once; `Infinity` until cleared). */
export interface Fault {
  times?: number;
}

/** Injected faults, first in first out; each one is spent after its `times` matching calls. */
export class FaultQueue<F extends Fault> {
  private faults: Array<{ fault: F; remaining: number }> = [];

  inject(fault: F): void {
    const times = fault.times ?? 1;
    if (!(times > 0)) throw new Error('fault.times must be > 0 (or Infinity)');
    this.faults.push({ fault, remaining: times });
  }

  /** The first fault that `matches`, counted as spent once; undefined when none applies. */
  take(matches: (fault: F) => boolean): F | undefined {
    const entry = this.faults.find((f) => matches(f.fault));
    if (!entry) return undefined;
    entry.remaining -= 1;
    if (entry.remaining <= 0) this.faults = this.faults.filter((f) => f !== entry);
    return entry.fault;
  }

  clear(): void {
    this.faults = [];
  }
}
