/**
 * Hostile input on /mcp and behaviour during shutdown (issue 9, part 2: "HTTP input", "Shutdown").
 * The HTTP transport runs in-process against the sandbox; requests are raw HTTP, so the test sees
 * exactly the bytes a client would.
 */
import { request as httpRequest } from 'node:http';
import { Client as UndiciClient } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { freePort, SANDBOX, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { serveInProcess, type Served } from '../helpers/in-process-http.js';

const ALICE = 'alice-1001';
const BOB = 'bob-2002';
const DOC = 'HardeningDoc0001';

let sandbox: Sandbox;
let served: Served;

/** Ports reserved at start: the emulated workload identity and sign-in client allow exactly their callbacks. */
let ports: number[] = [];

async function serve(env: Record<string, string> = {}, port?: number): Promise<Served> {
  port ??= await freePort();
  return serveInProcess(sandbox, `http://127.0.0.1:${port}`, ['--port', String(port)], {
    DINGTALK_MCP_RATE_LIMIT: '10000',
    DINGTALK_RETRY_BASE_DELAY_MS: '5',
    ...env,
  });
}

beforeAll(async () => {
  ports = [await freePort(), await freePort(), await freePort()];
  const bases = ports.map((p) => `http://127.0.0.1:${p}`);
  sandbox = await startSandbox({ callbackUrl: bases.map((b) => `${b}/callback`), oidc: { loginRedirectUri: `${bases[0]}/login/callback` } });
  sandbox.oidc!.registerClient({ clientId: SANDBOX.oidcClientId, redirectUris: bases.map((b) => `${b}/login/callback`) });
  sandbox.dingtalk.seedDocument(DOC, { title: 'Hardening', content: '' });
  served = await serve({}, ports[0]);
});
afterAll(async () => {
  await served?.close();
  await sandbox?.close();
});

const bearer = async (sub: string) => `Bearer ${await sandbox.oidc!.mintAccessToken({ sub })}`;

/** A raw POST to /mcp with exactly these headers and bytes. */
async function rawPost(base: string, body: string | Buffer, headers: Record<string, string>) {
  const res = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as { error?: { code: number; message: string } } };
}

/** A POST whose headers and first chunk are sent and the rest never: the answer the server gives before the body ends. */
function postUnfinished(url: string, headers: Record<string, string>, firstChunk: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.write(firstChunk);
  });
}

const modernCall = (sub: string, args: Record<string, unknown>, id = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: {
    name: 'write_dingtalk_doc',
    arguments: args,
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: `raw-${sub}`, version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
});
const modernHeaders = {
  'content-type': 'application/json',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'write_dingtalk_doc',
};

describe('hostile input on /mcp', () => {
  it('JSON nested 5,000 levels deep → 400 with a JSON-RPC parse error, not 500', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const res = await rawPost(served.base, deep, { authorization: await bearer(ALICE), 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringContaining('nested more than') } });
    expect(served.logs.join('\n')).not.toContain('Maximum call stack');
  });

  it('Content-Encoding: gzip on a plain body → 415 naming the coding, with Accept-Encoding: identity', async () => {
    const res = await rawPost(served.base, JSON.stringify(modernCall(ALICE, { document: DOC, content: 'x' })), {
      ...modernHeaders,
      authorization: await bearer(ALICE),
      'content-encoding': 'gzip',
    });
    expect(res.status).toBe(415);
    expect(res.headers.get('accept-encoding')).toBe('identity');
    expect(res.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000, message: expect.stringContaining('Content-Encoding "gzip"') } });
  });

  it('a charset other than UTF-8 → 415 naming the charset', async () => {
    const res = await rawPost(served.base, JSON.stringify(modernCall(ALICE, { document: DOC, content: 'x' })), {
      ...modernHeaders,
      authorization: await bearer(ALICE),
      'content-type': 'application/json; charset=iso-8859-1',
    });
    expect(res.status).toBe(415);
    expect(res.json()).toMatchObject({ error: { message: expect.stringContaining('charset "iso-8859-1"') } });
  });

  it('bytes that are not UTF-8 → 400 parse error naming UTF-8', async () => {
    const body = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}}')]);
    const res = await rawPost(served.base, body, { authorization: await bearer(ALICE), 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: -32700, message: expect.stringContaining('UTF-8') } });
  });

  it.each(['PUT', 'PATCH', 'OPTIONS'])('%s /mcp → 405 with Allow and a JSON-RPC error (not an HTML page)', async (method) => {
    const res = await fetch(`${served.base}/mcp`, {
      method,
      headers: { authorization: await bearer(ALICE), 'content-type': 'application/json' },
      body: method === 'OPTIONS' ? undefined : '{}',
    });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST, DELETE');
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(await res.json()).toMatchObject({ jsonrpc: '2.0', error: { message: expect.stringContaining(`Method ${method} is not allowed`) } });
  });

  it('a body that is not JSON is refused as soon as the headers arrive, never buffered', async () => {
    const small = await serve({ DINGTALK_MCP_MAX_BODY: '1kb' });
    try {
      const auth = await bearer(ALICE);
      // Headers and a first chunk of a huge text/plain body; the rest is never sent.
      const answer = await postUnfinished(
        `${small.base}/mcp`,
        { authorization: auth, 'content-type': 'text/plain', 'content-length': String(50 * 1024 * 1024) },
        'x'.repeat(64 * 1024),
      );
      expect(answer.status).toBe(415);
      expect(answer.body).toContain('Content-Type: application/json');
    } finally {
      await small.close();
    }
  });

  it('a chunked JSON body is cut off at DINGTALK_MCP_MAX_BODY with 413, before it ends', async () => {
    const small = await serve({ DINGTALK_MCP_MAX_BODY: '1kb' });
    try {
      const auth = await bearer(ALICE);
      const answer = await postUnfinished(
        `${small.base}/mcp`,
        { authorization: auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + 'x'.repeat(4096),
      );
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toMatchObject({ error: { message: expect.stringContaining('the limit is 1024 bytes') } });
    } finally {
      await small.close();
    }
  });

  it('authentication comes before the body: without a token a deep or huge body gets 401', async () => {
    const res = await rawPost(served.base, '['.repeat(5000), { 'content-type': 'application/json' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('resource_metadata=');
  });
});

describe('shutdown', () => {
  it('after shutdown begins, a kept-alive connection gets 503 + Connection: close; nothing is written and no authorization starts', async () => {
    const own = await serve({}, ports[1]);
    const origin = own.base;
    // Alice has a DingTalk token; Bob has none (his call would need consent).
    const auth = await bearer(ALICE);
    const first = await rawPost(origin, JSON.stringify(modernCall(ALICE, { document: DOC, content: 'before' })), { ...modernHeaders, authorization: auth });
    const link = (JSON.parse(first.text) as { result: { structuredContent: { authorizationUrl: string } } }).result.structuredContent.authorizationUrl;
    await followAuthorizationLink(link, { oidcSub: ALICE });

    // Pipelined, as HTTP/1.1 allows: the next request is already on the wire when shutdown begins.
    const connection = new UndiciClient(origin, { pipelining: 2 });
    const call = (sub: string, content: string, authorization: string) =>
      connection.request({
        path: '/mcp',
        method: 'POST',
        headers: { ...modernHeaders, authorization, accept: 'application/json, text/event-stream' },
        body: JSON.stringify(modernCall(sub, { document: DOC, content })),
      });
    const warm = await call(ALICE, 'kept alive', auth);
    expect(warm.statusCode).toBe(200);
    await warm.body.text();
    expect(sandbox.dingtalk.getDocument(DOC)?.content).toBe('kept alive');

    // A slow write in flight on the kept-alive connection when shutdown begins; the client then
    // sends its next request on the same connection.
    sandbox.dingtalk.injectFault({ status: 503, code: 'ServiceUnavailable', times: 1, match: 'overwriteContent', delayMs: 800 });
    const inflight = call(ALICE, 'in flight', auth);
    await new Promise((r) => setTimeout(r, 200));
    const closing = own.close();
    const grants = sandbox.agentIdentity.calls.filter((c) => c.action === 'GetResourceOAuth2Token').length;
    const late = call(ALICE, 'after shutdown', auth);

    // The write that arrived before shutdown still completes.
    const done = await inflight;
    expect(done.statusCode).toBe(200);
    await done.body.text();
    expect(sandbox.dingtalk.getDocument(DOC)?.content).toBe('in flight');

    const refused = await late;
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['connection']).toBe('close');
    expect(await refused.body.json()).toMatchObject({ error: { message: expect.stringContaining('shutting down') } });
    expect(sandbox.dingtalk.getDocument(DOC)?.content).toBe('in flight');

    const bob = await new UndiciClient(origin)
      .request({
        path: '/mcp',
        method: 'POST',
        headers: { ...modernHeaders, authorization: await bearer(BOB) },
        body: JSON.stringify(modernCall(BOB, { document: DOC, content: 'x' })),
      })
      .catch((e: Error) => e);
    // Either refused at the door (503) or the listener is already closed: never a new authorization.
    if (!(bob instanceof Error)) expect(bob.statusCode).toBe(503);
    expect(sandbox.agentIdentity.calls.filter((c) => c.action === 'GetResourceOAuth2Token').length).toBe(grants);

    await closing;
    await connection.close().catch(() => {});
  });

  it('a call already running that needs a new consent after shutdown began ends at once, without a link', async () => {
    const own = await serve({}, ports[2]);
    const auth = await bearer(BOB);
    const first = await rawPost(own.base, JSON.stringify(modernCall(BOB, { document: DOC, content: 'x' })), { ...modernHeaders, authorization: auth });
    const link = (JSON.parse(first.text) as { result: { structuredContent: { authorizationUrl: string } } }).result.structuredContent.authorizationUrl;
    await followAuthorizationLink(link, { oidcSub: BOB });
    const pendingBefore = await own.runtime.pending.count();

    // DingTalk refuses Bob's token after a delay; Agent Identity still hands out the same token, so
    // the tool must ask for a new consent — but by then shutdown has begun.
    sandbox.dingtalk.injectFault({ status: 401, code: 'InvalidAuthentication', times: 2, match: 'overwriteContent', delayMs: 600 });
    const running = rawPost(own.base, JSON.stringify(modernCall(BOB, { document: DOC, content: 'during shutdown' })), {
      ...modernHeaders,
      authorization: auth,
    });
    await new Promise((r) => setTimeout(r, 200));
    const closing = own.close();
    const res = await running;
    const result = (
      JSON.parse(res.text) as { result: { isError?: boolean; content: Array<{ text: string }>; structuredContent?: { authorizationUrl?: string } } }
    ).result;
    expect(result.isError).toBe(true);
    expect(result.content[0]!.text).toContain('shutting down');
    expect(result.structuredContent?.authorizationUrl).toBeUndefined();
    expect(await own.runtime.pending.count()).toBe(pendingBefore);
    await closing;
    sandbox.dingtalk.clearFaults();
  });
});
