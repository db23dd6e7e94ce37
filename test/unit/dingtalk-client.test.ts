import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DingTalkClient } from '../../src/dingtalk/client.js';
import type { DingTalkClientOptions } from '../../src/dingtalk/client.js';
import { DingTalkError } from '../../src/dingtalk/types.js';
import { createLogger } from '../../src/log.js';
import { startDingTalkEmulator } from '../../src/sandbox/dingtalk/index.js';
import type { DingTalkEmulator } from '../../src/sandbox/dingtalk/index.js';

const APP = { clientId: 'dingclienttest', clientSecret: 'client-test-secret', redirectUris: ['http://127.0.0.1/cb'] };
const DOC = 'DocClient_0001';

let emu: DingTalkEmulator;
let token: string;
let logLines: string[];
const clients: DingTalkClient[] = [];

function newClient(options: DingTalkClientOptions = {}): DingTalkClient {
  const c = new DingTalkClient({
    baseUrl: emu.url,
    retryBaseDelayMs: 1,
    logger: createLogger({ level: 'debug', write: (line) => logLines.push(line) }),
    ...options,
  });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<DingTalkError> {
  const e = await p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DingTalkError);
  return e as DingTalkError;
}

const overwrites = () => emu.requests.filter((r) => r.api === 'overwriteContent');

beforeEach(async () => {
  logLines = [];
  emu = await startDingTalkEmulator({ apps: [APP], documents: [{ id: DOC, content: 'before' }] });
  token = emu.issueTokens(APP.clientId, emu.users[0]!.unionId).accessToken;
});

afterEach(async () => {
  // whatever happened in the test, the token never reached a log line
  for (const line of logLines) expect(line).not.toContain(token);
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await emu.close();
});

describe('error bodies with the capitalised field names (as @alicloud/gateway-dingtalk reads them)', () => {
  it('Code, Message, RequestId and AccessDeniedDetail map like their lower-case forms', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          Code: 'Forbidden.AccessDenied.AccessTokenPermissionDenied',
          Message: 'no permission',
          RequestId: 'REQ-CAPS-7',
          AccessDeniedDetail: { requiredScopes: ['Document.Document.Write'] },
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const err = await failure(newClient({ baseUrl: `http://127.0.0.1:${port}` }).overwriteDocument(DOC, 'x', token));
      expect(err.kind).toBe('permission_denied');
      expect(err.code).toBe('Forbidden.AccessDenied.AccessTokenPermissionDenied');
      expect(err.message).toContain('Document.Document.Write');
      expect(err.message).toContain('REQ-CAPS-7');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('the request on the wire (reference §3.1 (b))', () => {
  let server: Server;
  let seen: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: string } = {};

  beforeEach(async () => {
    seen = {};
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        seen = { method: req.method, url: req.url, headers: req.headers, body };
        res.writeHead(200, { 'content-type': 'application/json', 'x-acs-request-id': 'REQ-1' });
        res.end('{"data":{}}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('POSTs {content, dataType:"markdown"} with the token only in x-acs-dingtalk-access-token', async () => {
    const { port } = server.address() as AddressInfo;
    const c = newClient({ baseUrl: `http://127.0.0.1:${port}` });
    const markdown = '# 标题\n\n- a "quoted" item\n';
    const result = await c.overwriteDocument('Id_with-chars1', markdown, 'tok-wire-123456');
    expect(result).toEqual({ documentId: 'Id_with-chars1', charactersWritten: markdown.length, requestId: 'REQ-1' });
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/v2.0/doc/me/suites/documents/Id_with-chars1/overwriteContent');
    expect(seen.headers?.['x-acs-dingtalk-access-token']).toBe('tok-wire-123456');
    expect(seen.headers?.['content-type']).toBe('application/json');
    expect(seen.headers?.['authorization']).toBeUndefined();
    expect(JSON.parse(seen.body!)).toEqual({ content: markdown, dataType: 'markdown' });
  });

  it('encodes the document id into one path segment', async () => {
    const { port } = server.address() as AddressInfo;
    const c = newClient({ baseUrl: `http://127.0.0.1:${port}` });
    await c.overwriteDocument('a/../b?x', 'x', 'tok-wire-123456');
    expect(seen.url).toBe('/v2.0/doc/me/suites/documents/a%2F..%2Fb%3Fx/overwriteContent');
  });
});

describe('reading the answer', () => {
  // A raw server that answers users/me as the test says, to see how the answer is read back.
  async function answering(handler: (res: import('node:http').ServerResponse, url: string) => void): Promise<{ base: string; close: () => Promise<void> }> {
    const server = createServer((req, res) => handler(res, req.url ?? ''));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return {
      base: `http://127.0.0.1:${port}`,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  it('an answer that arrives in pieces, split inside a multi-byte character, reads whole', async () => {
    const body = Buffer.from(JSON.stringify({ unionId: 'union-pieces', nick: '张三丰' }), 'utf8');
    const cut = body.indexOf(Buffer.from('三', 'utf8')) + 1; // inside the 3-byte character
    const srv = await answering((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-acs-request-id': 'REQ-PIECES' });
      res.write(body.subarray(0, cut));
      setTimeout(() => res.end(body.subarray(cut)), 20);
    });
    try {
      await expect(newClient({ baseUrl: srv.base }).getCurrentUser(token)).resolves.toEqual({ unionId: 'union-pieces', nick: '张三丰' });
    } finally {
      await srv.close();
    }
  });

  it('an informational answer (103 Early Hints) before the real one is skipped', async () => {
    const srv = await answering((res) => {
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.writeHead(200, { 'content-type': 'application/json', 'x-acs-request-id': 'REQ-AFTER-103' });
      res.end('{"data":{}}');
    });
    try {
      const result = await newClient({ baseUrl: srv.base }).overwriteDocument(DOC, 'x', token);
      expect(result.requestId).toBe('REQ-AFTER-103');
    } finally {
      await srv.close();
    }
  });

  it('a base URL with a path keeps it in front of every request path', async () => {
    let seenUrl = '';
    const srv = await answering((res, url) => {
      seenUrl = url;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"unionId":"union-prefixed"}');
    });
    try {
      await newClient({ baseUrl: `${srv.base}/gateway/` }).getCurrentUser(token);
      expect(seenUrl).toBe('/gateway/v1.0/contact/users/me');
    } finally {
      await srv.close();
    }
  });
});

describe('overwriteDocument against the emulator', () => {
  it('replaces the document content as the token’s user', async () => {
    const c = newClient();
    const result = await c.overwriteDocument(DOC, '# Hello\n', token);
    expect(result.documentId).toBe(DOC);
    expect(result.requestId).toBeTruthy();
    const doc = emu.getDocument(DOC)!;
    expect(doc.content).toBe('# Hello\n');
    expect(doc.writes.map((w) => w.unionId)).toEqual([emu.users[0]!.unionId]);
  });

  it('QPS limit twice → retried → success, 3 requests', async () => {
    emu.injectFault({ status: 403, code: 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', times: 2, match: 'overwriteContent' });
    await newClient().overwriteDocument(DOC, 'after qps', token);
    expect(overwrites().map((r) => r.status)).toEqual([403, 403, 200]);
    expect(emu.getDocument(DOC)!.content).toBe('after qps');
    const retries = logLines.filter((l) => l.includes('retrying'));
    expect(retries).toHaveLength(2);
    expect(retries[0]).toContain('Forbidden.AccessDenied.QpsLimitForAppkeyAndApi');
    expect(retries[0]).toContain('attempt=1');
    expect(retries[0]).toMatch(/requestId=[0-9A-F-]{36}/);
  });

  it('QPS limit that does not go away → rate_limited after maxRetries+1 attempts', async () => {
    emu.injectFault({ status: 403, code: 'Forbidden.AccessDenied.QpsLimitForApi', times: Infinity });
    const err = await failure(newClient({ maxRetries: 2 }).overwriteDocument(DOC, 'x', token));
    expect(err.kind).toBe('rate_limited');
    expect(err.message).toMatch(/try again/i);
    expect(overwrites()).toHaveLength(3);
  });

  it('HTTP 429 is retried too', async () => {
    emu.injectFault({ status: 429, code: 'Throttling', times: 1 });
    await newClient().overwriteDocument(DOC, 'ok', token);
    expect(overwrites()).toHaveLength(2);
  });

  it('persistent 503 → server_error after maxRetries+1 attempts, naming attempts and requestid', async () => {
    emu.injectFault({ status: 503, code: 'ServiceUnavailable', times: Infinity, match: 'overwriteContent' });
    const err = await failure(newClient({ maxRetries: 3 }).overwriteDocument(DOC, 'x', token));
    expect(err.kind).toBe('server_error');
    expect(overwrites()).toHaveLength(4);
    expect(err.message).toContain('4 attempts');
    const lastId = overwrites()[3]!.requestId;
    expect(err.requestId).toBe(lastId);
    expect(err.message).toContain(lastId);
    expect(err.httpStatus).toBe(503);
    expect(emu.getDocument(DOC)!.content).toBe('before');
  });

  it('InvalidAuthentication → invalid_token, not retried', async () => {
    emu.revokeAccessToken(token);
    const err = await failure(newClient().overwriteDocument(DOC, 'x', token));
    expect(err.kind).toBe('invalid_token');
    expect(err.code).toBe('InvalidAuthentication');
    expect(err.message).toMatch(/authorize/i);
    expect(overwrites()).toHaveLength(1);
  });

  it('permission error names the required scope and what the admin must do; not retried', async () => {
    emu.injectFault({
      status: 403,
      code: 'Forbidden.AccessDenied.AccessTokenPermissionDenied',
      requiredScopes: ['Document.Document.Write'],
      times: 1,
    });
    const err = await failure(newClient().overwriteDocument(DOC, 'x', token));
    expect(err.kind).toBe('permission_denied');
    expect(err.message).toContain('Document.Document.Write');
    expect(err.message).toContain('open-dev.dingtalk.com');
    expect(err.message).toContain('权限管理');
    expect(err.message).toMatch(/authorize .*again/);
    expect(overwrites()).toHaveLength(1);
  });

  it('monthly quota → quota_exceeded; IP allow-list → says to add the egress IP; neither retried', async () => {
    emu.injectFault({ status: 403, code: 'Forbidden.AccessDenied.ApiCountLimitForOrg', times: 1 });
    expect((await failure(newClient().overwriteDocument(DOC, 'x', token))).kind).toBe('quota_exceeded');
    emu.injectFault({ status: 403, code: 'Forbidden.AccessDenied.IpNotInWhiteList', times: 1 });
    const ip = await failure(newClient().overwriteDocument(DOC, 'x', token));
    expect(ip.message).toMatch(/egress IP/);
    expect(ip.message).toMatch(/allow-list/);
    expect(overwrites()).toHaveLength(2);
  });

  it('unknown document → not_found telling the user to check the link', async () => {
    const err = await failure(newClient().overwriteDocument('NoSuchDocument1', 'x', token));
    expect(err.kind).toBe('not_found');
    expect(err.message).toMatch(/check the link/i);
    expect(err.message).toMatch(/edit/);
    expect(overwrites()).toHaveLength(1);
  });

  it('content over 50,000 chars → invalid_request, not retried', async () => {
    const err = await failure(newClient().overwriteDocument(DOC, 'a'.repeat(50_001), token));
    expect(err.kind).toBe('invalid_request');
    expect(err.message).toMatch(/50,000/);
    expect(overwrites()).toHaveLength(1);
  });

  it('non-JSON error bodies still map: IP-ban page and an HTML 502', async () => {
    emu.injectFault({ status: 403, code: 'x', rawBody: '{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"}', times: 1 });
    const ban = await failure(newClient().overwriteDocument(DOC, 'x', token));
    expect(ban.kind).toBe('rate_limited');
    expect(ban.message).toMatch(/5 minutes/);
    expect(overwrites()).toHaveLength(1); // a minutes-long ban is not retried within seconds

    emu.injectFault({ status: 502, code: 'x', rawBody: '<html><body>Bad Gateway</body></html>', times: Infinity });
    const html = await failure(newClient({ maxRetries: 1 }).overwriteDocument(DOC, 'x', token));
    expect(html.kind).toBe('server_error');
    expect(html.message).not.toContain('<html>');
    expect(overwrites()).toHaveLength(3);
  });

  it('an empty token fails fast as invalid_token without a request', async () => {
    const err = await failure(newClient().overwriteDocument(DOC, 'x', ''));
    expect(err.kind).toBe('invalid_token');
    expect(overwrites()).toHaveLength(0);
  });
});

describe('timeouts and cancellation', () => {
  let black: NetServer;
  const sockets = new Set<Socket>();
  beforeEach(async () => {
    black = createNetServer((s) => {
      sockets.add(s); // accept and never answer
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => black.listen(0, '127.0.0.1', r));
  });
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => black.close(() => r()));
  });

  it('a server that never answers → network error naming the host and timeout, not the path or token', async () => {
    const { port } = black.address() as AddressInfo;
    const c = newClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 100, maxRetries: 1 });
    const err = await failure(c.overwriteDocument('SecretishDocId', 'x', token));
    expect(err.kind).toBe('network');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('100 ms');
    expect(err.message).toContain('2 attempts');
    expect(err.message).not.toContain('/v2.0/doc');
    expect(err.message).not.toContain(token);
  });

  it('a slow emulator answer (delay fault) times out → network', async () => {
    emu.injectFault({ status: 200, code: 'slow', delayMs: 5_000, times: Infinity, match: 'users/me' });
    const err = await failure(newClient({ timeoutMs: 100, maxRetries: 0 }).getCurrentUser(token));
    expect(err.kind).toBe('network');
  });

  it('connection refused → network', async () => {
    const { port } = black.address() as AddressInfo;
    await new Promise<void>((r) => black.close(() => r()));
    const c = newClient({ baseUrl: `http://127.0.0.1:${port}`, maxRetries: 1 });
    const err = await failure(c.overwriteDocument(DOC, 'x', token));
    expect(err.kind).toBe('network');
    expect(err.message).toMatch(/ECONNREFUSED/);
    black = createNetServer();
    await new Promise<void>((r) => black.listen(0, '127.0.0.1', r));
  });

  it('abort during backoff stops retries immediately', async () => {
    emu.injectFault({ status: 503, code: 'ServiceUnavailable', times: Infinity });
    const controller = new AbortController();
    const c = new DingTalkClient({
      baseUrl: emu.url,
      maxRetries: 5,
      retryBaseDelayMs: 60_000, // would wait a minute if the abort were ignored
      logger: createLogger({
        level: 'debug',
        write: (line) => {
          logLines.push(line);
          if (line.includes('retrying')) controller.abort();
        },
      }),
    });
    clients.push(c);
    const err = await c.overwriteDocument(DOC, 'x', token, { signal: controller.signal }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(overwrites()).toHaveLength(1);
  });

  it('abort while the request is in flight cancels it', async () => {
    const { port } = black.address() as AddressInfo;
    const controller = new AbortController();
    const c = newClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 60_000 });
    black.once('connection', () => controller.abort());
    const err = await c.overwriteDocument(DOC, 'x', token, { signal: controller.signal }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
  });

  it('an already-aborted signal sends nothing', async () => {
    const err = await newClient()
      .overwriteDocument(DOC, 'x', token, { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(overwrites()).toHaveLength(0);
  });
});

describe('getCurrentUser (reference §2.1 step 3)', () => {
  it('returns unionId and nick of the token’s user', async () => {
    const lisi = emu.users[1]!;
    const t = emu.issueTokens(APP.clientId, lisi.unionId).accessToken;
    await expect(newClient().getCurrentUser(t)).resolves.toEqual({ unionId: lisi.unionId, nick: lisi.nick });
    expect(emu.requests.at(-1)).toMatchObject({ api: 'users/me', unionId: lisi.unionId, status: 200 });
  });

  it('missing Contact.User.Read names that scope', async () => {
    emu.injectFault({ status: 403, code: 'Forbidden.AccessDenied.AccessTokenPermissionDenied', times: 1, match: 'users/me' });
    const err = await failure(newClient().getCurrentUser(token));
    expect(err.kind).toBe('permission_denied');
    expect(err.message).toContain('Contact.User.Read');
  });
});

describe('the token never leaks', () => {
  it('not in messages even when DingTalk echoes it', async () => {
    emu.injectFault({ status: 400, code: 'InvalidParameter', message: `bad token ${token} here`, times: 1 });
    const err = await failure(newClient().overwriteDocument(DOC, 'x', token));
    expect(err.message).toContain('[redacted]');
    expect(err.message).not.toContain(token);
    expect(JSON.stringify(err)).not.toContain(token);
  });
});
