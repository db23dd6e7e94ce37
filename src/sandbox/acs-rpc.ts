/**
 * Request plumbing and signature verification shared by the emulators of Alibaba Cloud RPC APIs
 * (the Agent Identity data plane, and the control plane: AgentIdentity, RAM, STS, IMS).
 *
 * An independent implementation of the two schemes `@alicloud/openapi-client` sends:
 * - V3 `ACS3-HMAC-SHA256`: canonical request → SHA-256 → HMAC-SHA256, headers `Authorization`, `x-acs-date`,
 *   `x-acs-signature-nonce`, `x-acs-content-sha256`, `x-acs-action`, `x-acs-version`, `x-acs-security-token`;
 * - V2 RPC `HMAC-SHA1` with the `Signature` query parameter.
 * Error bodies follow the POP shape `{RequestId, HostId, Code, Message}`; codes are the usual POP names.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import querystring from 'node:querystring';
import { BodyTooLargeError, readBody as readWholeBody, sendJson } from './http.js';

/** An API error as the emulators answer it (HTTP status + POP error code). */
export class AcsError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Any failure as the service reports it: an AcsError as is, anything else the POP `InternalError` (500). */
export function toAcsError(err: unknown): AcsError {
  return err instanceof AcsError ? err : new AcsError(500, 'InternalError', 'The request processing has failed due to some unknown error.');
}

/** A POP JSON answer; the request id also goes into `x-acs-request-id`, as the gateway sends it. */
export function sendAcsJson(res: ServerResponse, status: number, body: Record<string, unknown>, requestId: string): void {
  sendJson(res, status, body, { 'x-acs-request-id': requestId });
}

/** The POP error body `{RequestId, HostId, Code, Message}`, plus whatever `extra` a product adds. */
export function sendAcsError(res: ServerResponse, err: AcsError, requestId: string, hostId: string, extra: Record<string, unknown> = {}): void {
  sendAcsJson(res, err.status, { RequestId: requestId, HostId: hostId, Code: err.code, Message: err.message, ...extra }, requestId);
}

/** V2 system parameters that are not API parameters. */
export const V2_SYSTEM_PARAMS = new Set([
  'Action',
  'Version',
  'Format',
  'Timestamp',
  'SignatureNonce',
  'SignatureMethod',
  'SignatureVersion',
  'SignatureType',
  'Signature',
  'AccessKeyId',
  'SecurityToken',
  'RegionId',
  'BearerToken',
]);

export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

/** RFC 3986 percent-encoding as Alibaba Cloud canonicalization wants it (`!'()*` encoded, `~` kept). */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

export function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function toSingleValues(parsed: querystring.ParsedUrlQuery): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? (v[0] ?? '') : v;
  }
  return out;
}

/** The request body; over the limit, the POP error `RequestEntityTooLarge` (413). */
export async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<Buffer> {
  try {
    return await readWholeBody(req, limit);
  } catch (e) {
    if (e instanceof BodyTooLargeError) throw new AcsError(413, 'RequestEntityTooLarge', 'The request body is too large.');
    throw e;
  }
}

/** The query, the form body and their merge (system parameters removed), as an RPC handler wants them. */
export interface RpcInput {
  query: Record<string, string>;
  form: Record<string, string>;
  body: Buffer;
  params: Record<string, string>;
}

export async function readRpcInput(req: IncomingMessage, url: URL): Promise<RpcInput> {
  const rawQuery = url.search.startsWith('?') ? url.search.slice(1) : url.search;
  const query = toSingleValues(querystring.parse(rawQuery));
  const body = await readBody(req);
  const contentType = (firstHeader(req, 'content-type') ?? '').toLowerCase();
  const form = body.length > 0 && contentType.startsWith('application/x-www-form-urlencoded') ? toSingleValues(querystring.parse(body.toString('utf8'))) : {};
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) if (!V2_SYSTEM_PARAMS.has(k)) params[k] = v;
  Object.assign(params, form);
  return { query, form, body, params };
}

/** Resolves an AccessKey id (plus STS token, if any) to its secret and whatever the caller calls a principal. */
export type SecretLookup<P> = (accessKeyId: string, securityToken: string | undefined) => { secret: string; principal: P };

export interface SignatureVerifier<P> {
  /** V3: ACS3-HMAC-SHA256, an independent implementation of the canonical-request algorithm. */
  verifyV3(req: IncomingMessage, pathname: string, query: Record<string, string>, body: Buffer, authorization: string): P;
  /** V2: HMAC-SHA1 over the percent-encoded, sorted query + form parameters. */
  verifyV2(method: string, query: Record<string, string>, form: Record<string, string>): P;
}

/** One verifier per emulator: it owns the nonce cache that rejects replays. */
export function createSignatureVerifier<P>(lookup: SecretLookup<P>): SignatureVerifier<P> {
  const seenNonces = new Map<string, number>();

  function checkNonce(nonce: string | undefined): void {
    if (!nonce) throw new AcsError(400, 'MissingSignatureNonce', 'SignatureNonce is mandatory for this action.');
    const t = Date.now();
    for (const [n, at] of seenNonces) if (t - at > MAX_CLOCK_SKEW_MS) seenNonces.delete(n);
    if (seenNonces.has(nonce)) throw new AcsError(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
    seenNonces.set(nonce, t);
  }

  function checkTimestamp(value: string | undefined): void {
    const t = value ? Date.parse(value) : NaN;
    if (!value || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(value) || !Number.isFinite(t)) {
      throw new AcsError(400, 'InvalidTimeStamp.Format', 'Specified time stamp or date value is not well formatted.');
    }
    // Clock skew is checked against the wall clock (not an emulator's `now`, which tests move to expire tokens).
    if (Math.abs(Date.now() - t) > MAX_CLOCK_SKEW_MS) {
      throw new AcsError(400, 'InvalidTimeStamp.Expired', 'Specified time stamp or date value is expired.');
    }
  }

  function verifyV3(req: IncomingMessage, pathname: string, query: Record<string, string>, body: Buffer, authorization: string): P {
    const m = /^ACS3-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$/.exec(authorization);
    if (!m) throw new AcsError(400, 'IncompleteSignature', 'The request signature does not conform to Aliyun standards.');
    const [, accessKeyId, signedHeaderList, signature] = m as unknown as [string, string, string, string];
    const securityToken = firstHeader(req, 'x-acs-security-token');
    const { secret, principal } = lookup(accessKeyId, securityToken);

    const signedHeaders = signedHeaderList.split(';');
    const sortedUnique = [...new Set(signedHeaders)].sort();
    if (sortedUnique.join(';') !== signedHeaderList) {
      throw new AcsError(400, 'IncompleteSignature', 'SignedHeaders must be lower-case, sorted and unique.');
    }
    // Every x-acs-* header sent, and host, must be signed.
    const mustSign = ['host', ...Object.keys(req.headers).filter((h) => h.startsWith('x-acs-'))];
    for (const h of mustSign) {
      if (!signedHeaders.includes(h)) throw new AcsError(400, 'IncompleteSignature', `The header ${h} must be signed.`);
    }
    for (const h of ['x-acs-date', 'x-acs-signature-nonce', 'x-acs-content-sha256']) {
      if (firstHeader(req, h) === undefined) throw new AcsError(400, 'IncompleteSignature', `The header ${h} is required.`);
    }
    checkTimestamp(firstHeader(req, 'x-acs-date'));

    const payloadHash = firstHeader(req, 'x-acs-content-sha256') ?? '';
    if (payloadHash !== sha256Hex(body)) {
      throw new AcsError(400, 'SignatureDoesNotMatch', 'The request body does not match x-acs-content-sha256.');
    }

    const canonicalQuery = Object.keys(query)
      .sort()
      .map((k) => `${percentEncode(k)}=${percentEncode(query[k] ?? '')}`)
      .join('&');
    const canonicalHeaders = signedHeaders
      .map((h) => {
        const raw = req.headers[h];
        const value = Array.isArray(raw)
          ? raw
              .map((v) => v.trim())
              .sort()
              .join(',')
          : (raw ?? '').trim();
        return `${h}:${value}\n`;
      })
      .join('');
    const canonicalUri = pathname
      .split('/')
      .map((seg) => percentEncode(decodeURIComponent(seg)))
      .join('/');
    const canonicalRequest = [req.method ?? 'POST', canonicalUri || '/', canonicalQuery, canonicalHeaders, signedHeaderList, payloadHash].join('\n');
    const stringToSign = `ACS3-HMAC-SHA256\n${sha256Hex(canonicalRequest)}`;
    const expected = createHmac('sha256', secret).update(stringToSign).digest('hex');
    if (!safeEqual(expected, signature.toLowerCase())) {
      throw new AcsError(400, 'SignatureDoesNotMatch', 'Specified signature does not match our calculation.');
    }
    checkNonce(firstHeader(req, 'x-acs-signature-nonce'));
    return principal;
  }

  function verifyV2(method: string, query: Record<string, string>, form: Record<string, string>): P {
    if (query.SignatureMethod !== 'HMAC-SHA1') {
      throw new AcsError(400, 'InvalidSignatureMethod', 'Specified signature method is not supported.');
    }
    if (query.SignatureVersion !== '1.0') {
      throw new AcsError(400, 'InvalidSignatureVersion', 'Specified signature version is not supported.');
    }
    const accessKeyId = query.AccessKeyId;
    if (!accessKeyId) throw new AcsError(400, 'MissingAccessKeyId', 'AccessKeyId is mandatory for this action.');
    const { secret, principal } = lookup(accessKeyId, query.SecurityToken);
    checkTimestamp(query.Timestamp);
    const all: Record<string, string> = { ...query, ...form };
    delete all.Signature;
    const canonical = Object.keys(all)
      .sort()
      .map((k) => `${percentEncode(k)}=${percentEncode(all[k] ?? '')}`)
      .join('&');
    const stringToSign = `${method}&${percentEncode('/')}&${percentEncode(canonical)}`;
    const expected = createHmac('sha1', `${secret}&`).update(stringToSign).digest('base64');
    if (!safeEqual(expected, query.Signature ?? '')) {
      throw new AcsError(400, 'SignatureDoesNotMatch', 'Specified signature does not match our calculation.');
    }
    checkNonce(query.SignatureNonce);
    return principal;
  }

  return { verifyV3, verifyV2 };
}

/** A required RPC parameter, or the service's MissingParameter error. */
export function requiredParam(params: Record<string, string>, name: string): string {
  const v = params[name];
  if (v === undefined || v === '') {
    throw new AcsError(400, `MissingParameter.${name}`, `The input parameter "${name}" that is mandatory for processing this request is not supplied.`);
  }
  return v;
}

/** A JSON-string parameter (docs/reference/agent-identity.md §1: structured params travel as JSON strings). */
export function jsonParam<T>(params: Record<string, string>, name: string, check: (v: unknown) => v is T): T | undefined {
  const raw = params[name];
  if (raw === undefined || raw === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new AcsError(400, `InvalidParameter.${name}`, `The parameter ${name} is not valid JSON.`);
  }
  if (!check(value)) throw new AcsError(400, `InvalidParameter.${name}`, `The parameter ${name} has an invalid shape.`);
  return value;
}

export const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
