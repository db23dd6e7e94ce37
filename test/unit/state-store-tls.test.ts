/**
 * `rediss://` as docs/deployment-replicas.md describes it: the server verifies the certificate; a
 * private CA (ApsaraDB's, downloaded from its console) is added with NODE_EXTRA_CA_CERTS.
 * A real redis-server with TLS on a random loopback port, certificates made here with openssl.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/sandbox/index.js';

const SECRET = 'tls-test-state-secret-0123456789abcdef';
const STATE_INDEX = fileURLToPath(new URL('../../dist/src/state/index.js', import.meta.url));
let dir: string;
let redis: ChildProcess;
let url: string;

beforeAll(async () => {
  if (spawnSync('openssl', ['version']).status !== 0) throw new Error('openssl is needed for this test');
  dir = mkdtempSync(join(tmpdir(), 'dtmcp-redis-tls-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=dtmcp test CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext');
  const port = await freePort();
  url = `rediss://127.0.0.1:${port}`;
  redis = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      'server.pem',
      '--tls-key-file',
      'server.key',
      '--tls-ca-cert-file',
      'ca.pem',
      '--tls-auth-clients',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  redis.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('Ready to accept connections')) {
    if (redis.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server (TLS) did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
});
afterAll(() => {
  redis?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('rediss://', () => {
  it('refuses a certificate it cannot verify, and /healthz says why', () => {
    // In a child process, like the next case: a reconnect attempt still in its TLS handshake when the
    // store closes can fail after the client let go of it, and that must not land in the test runner.
    const script = `
      const { createStateStore } = await import(${JSON.stringify(STATE_INDEX)});
      const { silentLogger } = await import(${JSON.stringify(STATE_INDEX.replace(/state[\\/]index\.js$/, 'log.js'))});
      const store = await createStateStore({ redisUrl: ${JSON.stringify(url)}, stateSecret: ${JSON.stringify(SECRET)}, redisKeyPrefix: 'dtmcp:', logger: silentLogger, lingerMs: 1000, maxPerUser: 5, connectWaitMs: 2000 });
      const health = store.health();
      let refusal = '';
      try { await store.rateLimits.take('k', 1, 5, 60000); } catch (e) { refusal = e.message; }
      process.stdout.write(JSON.stringify({ health, refusal }));
      await store.close();
      process.exit(0);
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const { health, refusal } = JSON.parse(run.stdout);
    expect(health).toMatchObject({
      backend: 'redis',
      status: 'unavailable',
      endpoint: url,
      tls: true,
      problem: expect.stringMatching(/certificate/),
    });
    expect(refusal).toMatch(/The shared state store \(Redis at rediss:\/\/127\.0\.0\.1:\d+\) is unavailable: .*Try again in a few seconds/);
  });

  it("works with the instance's CA added through NODE_EXTRA_CA_CERTS", () => {
    const script = `
      const { createStateStore } = await import(${JSON.stringify(STATE_INDEX)});
      const { silentLogger } = await import(${JSON.stringify(STATE_INDEX.replace(/state[\\/]index\.js$/, 'log.js'))});
      const store = await createStateStore({ redisUrl: ${JSON.stringify(url)}, stateSecret: ${JSON.stringify(SECRET)}, redisKeyPrefix: 'dtmcp:', logger: silentLogger, lingerMs: 1000, maxPerUser: 5, connectWaitMs: 5000 });
      const now = Date.now();
      await store.pending.insert({ id: 'tls-record-1', user: { kind: 'userId', userId: 'u' }, sessionUri: 's', authorizationUrl: 'https://a.example.com', createdAt: now, expiresAt: now + 60000 });
      const got = await store.pending.get('tls-record-1');
      process.stdout.write(JSON.stringify({ health: store.health(), sessionUri: got && got.sessionUri }));
      await store.close();
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
      timeout: 20_000,
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ health: { backend: 'redis', status: 'ready', endpoint: url, tls: true }, sessionUri: 's' });
  });
});
