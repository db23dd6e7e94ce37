// Apart from redis.ts so that reading a URL never loads the Redis client (stdio cold start).

/** `redis[s]://host:port/db`, for logs and /healthz: never the user name or password. */
export function describeRedisUrl(url: string): { text: string; tls: boolean } {
  try {
    const u = new URL(url);
    const db = u.pathname.length > 1 ? u.pathname : '';
    return { text: `${u.protocol}//${u.hostname}:${u.port || '6379'}${db}`, tls: u.protocol === 'rediss:' };
  } catch {
    return { text: 'redis (unparseable URL)', tls: false };
  }
}

/** The password in a Redis URL, decoded, for redaction. */
export function passwordOf(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}
