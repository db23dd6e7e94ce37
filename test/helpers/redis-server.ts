import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/sandbox/index.js';

/**
 * A real redis-server (Debian's package; `.ci/run` installs it) on a random loopback port, with no
 * config file: nothing persists unless `persistent` (append-only file in a temp dir, so a restart
 * keeps the data, like ApsaraDB for Redis does).
 */
export interface RedisServer {
  port: number;
  /** `redis://[user:password@]127.0.0.1:<port>` */
  url: string;
  /** A client with full rights, for inspecting keys. */
  admin(): Redis;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export async function startRedisServer(
  options: { password?: string; aclUser?: { name: string; password: string }; persistent?: boolean } = {},
): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'dtmcp-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--logfile', ''];
  args.push(...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  if (options.password) args.push('--requirepass', options.password);
  if (options.aclUser) {
    // What docs/deployment-replicas.md recommends: our key prefix and channel only, no admin commands.
    args.push('--user', options.aclUser.name, 'on', `>${options.aclUser.password}`, '~dtmcp:*', '&dtmcp:*', '+@all', '-@admin', '-@dangerous');
  }
  const auth = options.aclUser
    ? `${options.aclUser.name}:${encodeURIComponent(options.aclUser.password)}@`
    : options.password
      ? `:${encodeURIComponent(options.password)}@`
      : '';
  const url = `redis://${auth}127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const clients: Redis[] = [];

  const start = async () => {
    child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const deadline = Date.now() + 10_000;
    while (!out.includes('Ready to accept connections')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = () =>
    new Promise<void>((resolve) => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  await start();
  return {
    port,
    url,
    admin() {
      const r = new Redis(port, '127.0.0.1', { password: options.password, lazyConnect: false, maxRetriesPerRequest: 1 });
      r.on('error', () => {});
      clients.push(r);
      return r;
    },
    stop,
    start,
    async close() {
      for (const c of clients) c.disconnect();
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every key and every value Redis holds (hash fields, sorted-set members, strings), one a line: what a leak check reads. */
export async function dumpRedis(admin: Redis): Promise<{ keys: string[]; text: string }> {
  const keys = await admin.keys('*');
  const dump: string[] = [];
  for (const key of keys) {
    dump.push(key);
    const type = await admin.type(key);
    if (type === 'hash') dump.push(...Object.entries(await admin.hgetall(key)).flat());
    else if (type === 'zset') dump.push(...(await admin.zrange(key, '0', '-1')));
    else if (type === 'string') dump.push((await admin.get(key)) ?? '');
  }
  return { keys, text: dump.join('\n') };
}
