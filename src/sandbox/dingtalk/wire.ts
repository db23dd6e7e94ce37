/** The emulator's wire helpers: DingTalk's error shape `{code, requestid, message}` (docs/dingtalk-api.md), JSON and HTML answers. */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, escapeHtml, readBody as readBodyLimited, sendJson as sendJsonReply } from '../http.js';

const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** A DingTalk-shaped error answer. */
export class HttpError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
    readonly extra: Record<string, unknown> = {},
  ) {}
}

export function newRequestId(): string {
  // DingTalk request ids look like UUIDs in upper case (MODELED).
  return randomBytes(16)
    .toString('hex')
    .toUpperCase()
    .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
}

export function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** The body, or 413 like a gateway once it passes 4 MiB (MODELED limit). */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  try {
    return await readBodyLimited(req, MAX_BODY_BYTES);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new HttpError(413, 'RequestEntityTooLarge', 'request body too large'); // MODELED
    throw e;
  }
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = (await readBody(req)).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'InvalidParameter', 'The request body is not valid JSON.'); // MODELED
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, 'InvalidParameter', 'The request body must be a JSON object.'); // MODELED
  }
  return parsed as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonReply(res, status, body, { 'cache-control': 'no-store' });
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    // No scripts, no external assets; the form posts to our own origin and is then redirected.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(html);
}

export function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
pre{background:#f5f5f5;padding:1rem;white-space:pre-wrap;word-break:break-word}.note{color:#666;font-size:.9em}
button{margin-right:.5rem;padding:.4rem 1rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

export { escapeHtml };
