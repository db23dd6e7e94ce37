import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { isJsonContentType } from '@modelcontextprotocol/server';

/** Why a request body was refused: the HTTP status and a JSON-RPC error that names the problem. */
export interface BodyProblem {
  status: number;
  code: number;
  message: string;
  /** Extra response headers (e.g. `Accept-Encoding` on 415 for a content coding, RFC 7694). */
  headers?: Record<string, string>;
}

export type BodyResult = { ok: true; value: unknown } | ({ ok: false } & BodyProblem);

/** JSON-RPC messages are shallow; anything deeper than this is refused before it is parsed. */
export const MAX_JSON_DEPTH = 64;

/**
 * Read and parse a POSTed JSON-RPC body, refusing before any byte is read what cannot be served
 * (wrong media type, a content coding, a charset other than UTF-8, a declared length over the
 * limit), and before parsing what would be costly or dangerous to parse (over the limit, not
 * UTF-8, nested deeper than MAX_JSON_DEPTH).
 */
export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<BodyResult> {
  const refused = refuseByHeaders(req, limitBytes);
  if (refused) return { ok: false, ...refused };
  const bytes = await readBounded(req, limitBytes);
  if (bytes === undefined) return { ok: false, ...tooLarge(limitBytes) };
  return parseJsonText(bytes);
}

function refuseByHeaders(req: IncomingMessage, limitBytes: number): BodyProblem | undefined {
  const type = req.headers['content-type'];
  if (!isJsonContentType(type)) {
    return { status: 415, code: -32000, message: 'Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json.' };
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(type ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return {
      status: 415,
      code: -32000,
      message: `Unsupported charset "${charset}": MCP messages are UTF-8; send Content-Type: application/json; charset=utf-8.`,
    };
  }
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    return {
      status: 415,
      code: -32000,
      message: `Unsupported Content-Encoding "${encoding}": send the request body uncompressed.`,
      headers: { 'Accept-Encoding': 'identity' },
    };
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) return tooLarge(limitBytes);
  return undefined;
}

function tooLarge(limitBytes: number): BodyProblem {
  return {
    status: 413,
    code: -32600,
    message: `Request body too large: the limit is ${limitBytes} bytes (DINGTALK_MCP_MAX_BODY).`,
    // The rest of the body is not read: the connection cannot be reused.
    headers: { Connection: 'close' },
  };
}

/** The whole body, or undefined as soon as it grows past the limit (the rest is never buffered). */
function readBounded(req: IncomingMessage, limitBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

export function parseJsonText(bytes: Buffer): BodyResult {
  if (!isUtf8(bytes)) return { ok: false, status: 400, code: -32700, message: 'Parse error: the body is not valid UTF-8.' };
  const text = bytes.toString('utf8');
  if (exceedsDepth(text, MAX_JSON_DEPTH)) {
    return { ok: false, status: 400, code: -32700, message: `Parse error: the JSON is nested more than ${MAX_JSON_DEPTH} levels deep.` };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, status: 400, code: -32700, message: 'Parse error: the body is not valid JSON.' };
  }
}

/**
 * Whether brackets outside strings nest deeper than `max`. Strings are skipped with indexOf, so a
 * message that is mostly one long string (a document's Markdown) costs almost nothing to check.
 */
export function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Jump to the closing quote: one not preceded by an odd number of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end === -1) return false; // unterminated: JSON.parse will refuse it
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}
