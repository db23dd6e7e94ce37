/**
 * What the two Alibaba Cloud RPC clients share (src/identity/agent-identity-client.ts for the data plane,
 * src/provisioning/control-plane-client.ts for the control planes): the `@alicloud/openapi-client` `Params` of an
 * RPC action and the SDK errors that mean the endpoint was never reached. The emulators' side of the same wire
 * (signature verification) is src/sandbox/acs-rpc.ts.
 *
 * Wire facts (docs/reference/agent-identity.md §1, §1.1; the generated SDKs, aliyun/alibabacloud-typescript-sdk
 * `<product>/src/client.ts`): every action is `POST /`, RPC style, `reqBodyType: formData`, `bodyType: json`;
 * `authType: 'AK'` is signed by `callApi` → `doRequest` (V3 `ACS3-HMAC-SHA256`), `'Anonymous'` is not.
 */

// Both SDK packages are CommonJS with `exports.default = Client`. Node's ESM loader hands us `module.exports`
// (class on `.default`); bundlers/test runners with CJS interop hand us the class itself. Accept both.
export function cjsDefault<T>(mod: { default: T }): T {
  return typeof mod === 'function' ? (mod as unknown as T) : mod.default;
}

/** The fields of `new Params(…)` for one RPC action, as the generated SDKs set them. */
export function rpcParams(action: string, version: string, protocol: 'http' | 'https', authType: 'AK' | 'Anonymous' = 'AK') {
  return {
    action,
    version,
    protocol: protocol.toUpperCase(),
    pathname: '/',
    method: 'POST',
    authType,
    style: 'RPC',
    reqBodyType: 'formData',
    bodyType: 'json',
  };
}

/** The runtime options of one call: no SDK retry (callers decide), the connect timeout capped at 5 s. */
export function rpcRuntime(timeoutMs: number) {
  return { autoretry: false, readTimeout: timeoutMs, connectTimeout: Math.min(timeoutMs, 5_000) };
}

/** Error codes of Node's sockets and the SDK's own timeouts: the request never got an answer. */
export const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ReadTimeout',
  'ConnectTimeout',
  'RequestTimeout',
]);

/** An SDK failure that never reached the service: a network code on the error or its cause, or a timeout / socket message. */
export function isNetworkFailure(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: { code?: unknown } } | undefined;
  if (!e) return false;
  const codes = [e.code, e.cause?.code].filter((c): c is string => typeof c === 'string');
  if (codes.some((c) => NETWORK_CODES.has(c))) return true;
  const name = typeof e.name === 'string' ? e.name : '';
  const message = typeof e.message === 'string' ? e.message : '';
  return /Timeout|socket hang up|ECONN|ENOTFOUND|EAI_AGAIN/i.test(`${name} ${message}`);
}
