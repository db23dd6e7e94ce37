import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { configureUserLabels, createLogger, hashUserId } from '../../src/log.js';
import { createRuntime } from '../../src/runtime.js';

describe('user labels in logs', () => {
  it('are keyed: nobody holding only the log can recompute a label from a guessed user id', () => {
    const id = 'uid:alice@example.com';
    const label = hashUserId(id);
    expect(label).toMatch(/^[0-9a-f]{12}$/);
    expect(label).not.toBe(createHash('sha256').update(id).digest('hex').slice(0, 12));
    expect(hashUserId(id)).toBe(label); // stable within a process
  });

  it('agree across replicas that share the state secret, and differ otherwise', () => {
    const runtimeWith = (secret: string) =>
      createRuntime(
        loadConfig({
          env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w', AGENT_IDENTITY_USER_ID: 'alice', DINGTALK_MCP_STATE_SECRET: secret },
          cwd: '/nonexistent',
        }),
      );
    const shared = 'replica-shared-state-secret-0123456789abcdef';
    const a = runtimeWith(shared);
    const first = hashUserId('uid:alice');
    const b = runtimeWith(shared);
    expect(hashUserId('uid:alice')).toBe(first);
    const c = runtimeWith('another-deployment-secret-0123456789abcdef');
    expect(hashUserId('uid:alice')).not.toBe(first);
    for (const r of [a, b, c]) void r.close();
    configureUserLabels(new Uint8Array(32));
  });
});

describe('logger', () => {
  it('still scrubs JWTs, configured secrets and secret-named fields', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), secrets: ['s3cr3t-value'] }, { component: 'test' });
    log.info('token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl seen; key s3cr3t-value', { accessToken: 'abc', user: 'label', count: 2 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('[redacted-jwt]');
    expect(lines[0]).not.toContain('s3cr3t-value');
    expect(lines[0]).toContain('component=test accessToken=[redacted] user=label count=2');
  });
});

describe('the default destination (stderr)', () => {
  const LOG = fileURLToPath(new URL('../../dist/src/log.js', import.meta.url));

  // A process of its own, so its stderr is what a user (or the MCP client's log window) sees.
  it('keeps every line in order, writes a warning at once and the rest even when the process exits right after', () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOG)});
      const log = createLogger({}, { component: 'test' });
      log.info('first');
      log.warn('second');
      process.stderr.write('written-directly\\n');
      log.info('third');
      process.exit(0);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status).toBe(0);
    const lines = child.stderr.trim().split('\n');
    expect(lines.map((l) => l.replace(/^\d\S+ /, ''))).toEqual([
      'INFO first component=test',
      'WARN second component=test',
      'written-directly',
      'INFO third component=test',
    ]);
    const before = Date.now();
    for (const line of lines.filter((l) => l.includes('component'))) {
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
      const at = Date.parse(line.slice(0, 24));
      expect(at).toBeLessThanOrEqual(before);
      expect(before - at).toBeLessThan(60_000);
    }
  });
});
