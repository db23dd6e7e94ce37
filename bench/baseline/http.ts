/**
 * Bare SDK server over streamable HTTP (bench baseline), written the way the SDK documents it:
 * node:http; the SDK's Host/Origin guards; a bearer JWT verified with jose on every request;
 * 2026-07-28 through createMcpHandler (stateless, a server per request) and 2025-11-25 through
 * sessions of NodeStreamableHTTPServerTransport, routed with isLegacyRequest.
 * Env: BENCH_PORT, BENCH_ISSUER, BENCH_JWKS, BENCH_AUDIENCE, BENCH_DINGTALK_BASE, BENCH_DINGTALK_TOKEN.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { hostHeaderValidation, NodeStreamableHTTPServerTransport, originValidation, toWebRequest } from '@modelcontextprotocol/node';
import { createMcpHandler, isLegacyRequest, type AuthInfo } from '@modelcontextprotocol/server';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createBaselineServer } from './tool.js';

const env = (name: string) => process.env[name] ?? '';
const dingtalkToken = env('BENCH_DINGTALK_TOKEN');
const factory = () => createBaselineServer(env('BENCH_DINGTALK_BASE'), () => dingtalkToken);
const jwks = createRemoteJWKSet(new URL(env('BENCH_JWKS')));
const hosts = ['127.0.0.1', 'localhost', '[::1]'];
const checkHost = hostHeaderValidation(hosts);
const checkOrigin = originValidation(hosts);
const modern = createMcpHandler(factory, { legacy: 'reject' });
const sessions = new Map<string, NodeStreamableHTTPServerTransport>();

async function authenticate(req: IncomingMessage): Promise<AuthInfo | undefined> {
  const [type, token] = (req.headers.authorization ?? '').split(' ');
  if (type?.toLowerCase() !== 'bearer' || !token) return undefined;
  try {
    const { payload } = await jwtVerify(token, jwks, { issuer: env('BENCH_ISSUER'), audience: env('BENCH_AUDIENCE') });
    return { token, clientId: String(payload.client_id ?? payload.sub), scopes: [], expiresAt: payload.exp, extra: { sub: payload.sub } };
  } catch {
    return undefined;
  }
}

async function handle(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse): Promise<void> {
  if (!checkHost(req, res) || !checkOrigin(req, res)) return;
  const auth = await authenticate(req);
  if (!auth) {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
    return;
  }
  req.auth = auth;
  const sid = req.headers['mcp-session-id'];
  if (typeof sid === 'string') {
    const transport = sessions.get(sid);
    if (!transport) return void res.writeHead(404).end();
    return transport.handleRequest(req, res);
  }
  const request = await toWebRequest(req);
  if (await isLegacyRequest(request)) {
    const body: unknown = await request.json();
    const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await factory().connect(transport);
    return transport.handleRequest(req, res, body);
  }
  const response = await modern.fetch(request, { authInfo: auth });
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => {
    headers[k] = v;
  });
  res.writeHead(response.status, headers);
  if (response.body) for await (const chunk of response.body) res.write(chunk);
  res.end();
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.listen(Number(env('BENCH_PORT')), '127.0.0.1', () => process.stderr.write('baseline listening\n'));
process.once('SIGTERM', () => process.exit(0));
