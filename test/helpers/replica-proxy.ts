import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A load balancer for tests: round-robin over the replicas, sticky by `Mcp-Session-Id` (what
 * docs/deployment-replicas.md asks of SLB/ALB and nginx for 2025-era clients). A session whose
 * replica is gone goes to another one, which answers the spec's 404. `route` lets a test choose
 * the replica of a request (e.g. /connect on replica 2, /callback on replica 3).
 */
export interface ReplicaProxy {
  url: string;
  /** Every request: which replica served it, and its status. */
  log: Array<{ method: string; path: string; replica: number; status: number; session?: string }>;
  /** Return a replica index to force one; undefined for the normal rule. */
  route: ((req: IncomingMessage) => number | undefined) | undefined;
  /** Take a replica out of rotation (it was killed) or put it back. */
  setUp(index: number, up: boolean): void;
  close(): Promise<void>;
}

export async function startReplicaProxy(backends: () => string[]): Promise<ReplicaProxy> {
  const sessions = new Map<string, number>();
  const down = new Set<number>();
  let next = 0;
  const proxy: ReplicaProxy = {
    url: '',
    log: [],
    route: undefined,
    setUp(index, up) {
      if (up) down.delete(index);
      else down.add(index);
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };

  const pick = (req: IncomingMessage): number => {
    const forced = proxy.route?.(req);
    if (forced !== undefined) return forced;
    const all = backends();
    const session = req.headers['mcp-session-id'];
    const sticky = typeof session === 'string' ? sessions.get(session) : undefined;
    if (sticky !== undefined && !down.has(sticky)) return sticky;
    for (let i = 0; i < all.length; i++) {
      const candidate = next++ % all.length;
      if (!down.has(candidate)) return candidate;
    }
    return 0;
  };

  const server: Server = createServer((req, res) => {
    const replica = pick(req);
    const target = new URL(req.url ?? '/', backends()[replica]);
    const upstream = request(target, { method: req.method, headers: req.headers }, (answer) => {
      const session = answer.headers['mcp-session-id'];
      if (typeof session === 'string') sessions.set(session, replica);
      proxy.log.push({
        method: req.method ?? '',
        path: (req.url ?? '').split('?')[0]!,
        replica,
        status: answer.statusCode ?? 0,
        session: typeof session === 'string' ? session : (req.headers['mcp-session-id'] as string | undefined),
      });
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      proxy.log.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, replica, status: 502 });
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('replica unreachable');
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
