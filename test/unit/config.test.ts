import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, settingsTable } from '../../src/config.js';

const dir = () => mkdtempSync(join(tmpdir(), 'dingtalk-mcp-config-'));

describe('configuration layering: defaults < .config.json < environment < flags', () => {
  it("uses the defaults and the kit's .config.json", () => {
    const cwd = dir();
    writeFileSync(join(cwd, '.config.json'), JSON.stringify({ workload_identity_name: 'from-file', inbound_app_id: 'ignored' }));
    const config = loadConfig({ argv: [], env: { AGENT_IDENTITY_USER_ID: 'alice' }, cwd });
    expect(config.workloadIdentityName).toBe('from-file');
    expect(config.regionId).toBe('cn-beijing');
    expect(config.providerName).toBe('test-provider-for-dingtalk');
    expect(config.scopes).toEqual(['openid', 'corpid']);
    expect(config.callbackUrl).toBe('http://localhost:8090/callback');
    expect(config.useSts).toBe(true);
    expect(config.authTimeoutSeconds).toBe(600);
  });

  it('environment beats the file, flags beat the environment', () => {
    const cwd = dir();
    writeFileSync(join(cwd, '.config.json'), JSON.stringify({ workload_identity_name: 'from-file' }));
    const env = { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'from-env', APP_REDIRECT_URI: 'http://localhost:9000/', AGENT_IDENTITY_USE_STS: 'false' };
    expect(loadConfig({ env, cwd }).workloadIdentityName).toBe('from-env');
    const config = loadConfig({ env, cwd, argv: ['--workload-identity', 'from-flag', '--use-sts', '--redirect-uri', 'https://mcp.example.com'] });
    expect(config.workloadIdentityName).toBe('from-flag');
    expect(config.useSts).toBe(true);
    expect(config.callbackUrl).toBe('https://mcp.example.com/callback');
    expect(loadConfig({ env, cwd }).callbackUrl).toBe('http://localhost:9000/callback');
  });

  it('--sandbox needs no workload identity', () => {
    expect(loadConfig({ argv: ['--sandbox'], env: {}, cwd: dir() }).sandbox).toBe(true);
  });
});

describe('invalid settings fail with one message naming every problem and its fix', () => {
  it('collects all problems', () => {
    let error: unknown;
    try {
      loadConfig({
        argv: ['--dingtalk-max-retries', 'lots'],
        env: { APP_REDIRECT_URI: 'ftp://x', DINGTALK_MCP_LOG_LEVEL: 'chatty', DINGTALK_MCP_STATE_SECRET: 'short' },
        cwd: dir(),
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain('APP_REDIRECT_URI / --redirect-uri: must be an absolute http(s) URL');
    expect(message).toContain('DINGTALK_MAX_RETRIES / --dingtalk-max-retries: must be a whole number');
    expect(message).toContain('DINGTALK_MCP_LOG_LEVEL / --log-level');
    expect(message).toContain('DINGTALK_MCP_STATE_SECRET');
    expect(message).toContain('AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME / --workload-identity: is required; set AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME');
    expect(message).not.toContain('short'); // the secret's value is never echoed
    expect((error as ConfigError).problems).toHaveLength(5);
  });

  it('an unknown flag is named', () => {
    expect(() => loadConfig({ argv: ['--colour'], env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w' }, cwd: dir() })).toThrow(/--colour/);
  });

  it('a broken or missing explicit config file is named', () => {
    const cwd = dir();
    writeFileSync(join(cwd, 'broken.json'), '{ not json');
    expect(() => loadConfig({ argv: ['--config', 'broken.json'], env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w' }, cwd })).toThrow(
      /broken\.json is not valid JSON/,
    );
    expect(() => loadConfig({ argv: ['--config', 'nope.json'], env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w' }, cwd })).toThrow(
      /nope\.json does not exist/,
    );
  });
});

describe('shared state in Redis', () => {
  const env = { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w', AGENT_IDENTITY_USER_ID: 'alice' };
  it('takes a redis:// or rediss:// URL from the environment or --redis-url', () => {
    expect(
      loadConfig({
        env: { ...env, DINGTALK_MCP_REDIS_URL: 'rediss://dtmcp:pw@r-bp1.redis.rds.aliyuncs.com:6379/0', DINGTALK_MCP_STATE_SECRET: 'x'.repeat(32) },
        cwd: dir(),
      }).redisUrl,
    ).toBe('rediss://dtmcp:pw@r-bp1.redis.rds.aliyuncs.com:6379/0');
    const config = loadConfig({ argv: ['--redis-url', 'redis://127.0.0.1:6380'], env: { ...env, DINGTALK_MCP_STATE_SECRET: 'x'.repeat(32) }, cwd: dir() });
    expect(config.redisUrl).toBe('redis://127.0.0.1:6380');
    expect(config.redisKeyPrefix).toBe('dtmcp:');
    expect(loadConfig({ env, cwd: dir() }).redisUrl).toBeUndefined();
  });

  it('refuses to start without a shared state secret, saying why and how to make one', () => {
    expect(() => loadConfig({ argv: ['--redis-url', 'redis://127.0.0.1:6380'], env, cwd: dir() })).toThrow(
      /DINGTALK_MCP_STATE_SECRET is required with DINGTALK_MCP_REDIS_URL: every replica must verify.*openssl rand -hex 32/,
    );
  });

  it.each(['http://127.0.0.1:6379', 'redis://', 'not a url', 'redis://host:6379/zero'])('refuses %s as a Redis URL', (url) => {
    expect(() => loadConfig({ env: { ...env, DINGTALK_MCP_REDIS_URL: url, DINGTALK_MCP_STATE_SECRET: 'x'.repeat(32) }, cwd: dir() })).toThrow(
      /DINGTALK_MCP_REDIS_URL \/ --redis-url: must be a redis:\/\/ or rediss:\/\/ URL with a host; use redis:\/\/\[user:password@\]host:port/,
    );
  });

  it('an invalid Redis URL is never echoed (it may carry a password)', () => {
    const error = (() => {
      try {
        loadConfig({ env: { ...env, DINGTALK_MCP_REDIS_URL: 'http://user:hunter2-secret@host', DINGTALK_MCP_STATE_SECRET: 'x'.repeat(32) }, cwd: dir() });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).not.toContain('hunter2-secret');
  });
});

describe('docs stay true', () => {
  it('the settings table in docs/settings.md is exactly the one the code defines', () => {
    const doc = readFileSync(new URL('../../docs/settings.md', import.meta.url), 'utf8');
    const between = /<!-- settings:start -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(doc)?.[1];
    expect(between).toBe(settingsTable());
  });
});

describe('the mistakes a new user makes are named at start', () => {
  const problemsOf = (env: Record<string, string>, cwd = dir(), argv: string[] = []) => {
    try {
      loadConfig({ argv, env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'w', ...env }, cwd });
    } catch (e) {
      if (e instanceof ConfigError) return e.message;
      throw e;
    }
    return '';
  };

  it('APP_REDIRECT_URI copied with /callback is refused, naming the base URL to use', () => {
    const message = problemsOf({ APP_REDIRECT_URI: 'http://localhost:8090/callback' });
    expect(message).toContain('APP_REDIRECT_URI / --redirect-uri: "http://localhost:8090/callback" ends in /callback');
    expect(message).toContain('the return URL would be http://localhost:8090/callback/callback');
    expect(message).toContain('set it to http://localhost:8090');
    expect(problemsOf({ APP_REDIRECT_URI: 'https://mcp.example.com/dingtalk/callback/' })).toContain('set it to https://mcp.example.com/dingtalk');
    expect(problemsOf({ APP_REDIRECT_URI: 'https://mcp.example.com/dingtalk' })).toBe('');
  });

  it('a region that does not exist, or has stray spaces, is named', () => {
    const typo = problemsOf({ AGENT_IDENTITY_REGION_ID: 'cn-beijng' });
    expect(typo).toContain('AGENT_IDENTITY_REGION_ID / --region: "cn-beijng" is not an Alibaba Cloud region; did you mean "cn-beijing"?');
    expect(problemsOf({ AGENT_IDENTITY_REGION_ID: ' cn-beijing ' })).toContain('" cn-beijing " has spaces around it; use "cn-beijing"');
    expect(problemsOf({ AGENT_IDENTITY_REGION_ID: 'cn-hangzhou' })).toBe('');
  });

  it('says which config file was read, or where it was looked for', () => {
    const cwd = dir();
    const missing = problemsOf({ AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: '' }, cwd);
    expect(missing).toContain('AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME / --workload-identity: is required');
    expect(missing).toContain(`No config file was read (looked for ${join(cwd, '.config.json')}`);
    writeFileSync(join(cwd, '.config.json'), JSON.stringify({ region_id: 'cn-beijng' }));
    expect(problemsOf({}, cwd)).toContain(`Settings were also read from ${join(cwd, '.config.json')}.`);
    writeFileSync(join(cwd, '.config.json'), JSON.stringify({ workload_identity_name: 'w' }));
    const config = loadConfig({ env: {}, cwd });
    expect({ read: config.configFileRead, looked: config.configFileLookedFor }).toEqual({ read: join(cwd, '.config.json'), looked: join(cwd, '.config.json') });
  });
});
