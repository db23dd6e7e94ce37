import { describe, expect, it } from 'vitest';
import type { DingTalkAppApi } from '../../src/dingtalk/app-api.js';
import { AgentIdentityAppSecret, AppTokenSource, EnvironmentAppSecret } from '../../src/dingtalk/app-token.js';
import { DingTalkError } from '../../src/dingtalk/types.js';

const user = { kind: 'userId' as const, userId: 'alice' };

function fakeApi(answers: Array<{ token?: string; expireIn?: number; fail?: DingTalkError }>, seen: string[] = []) {
  let n = 0;
  return {
    api: {
      async getAccessToken(_key: string, secret: string) {
        seen.push(secret);
        const a = answers[Math.min(n++, answers.length - 1)]!;
        await new Promise((r) => setTimeout(r, 5));
        if (a.fail) throw a.fail;
        return { accessToken: a.token!, expireInSeconds: a.expireIn ?? 7200 };
      },
    } as unknown as DingTalkAppApi,
    calls: () => n,
  };
}

describe('AppTokenSource', () => {
  it('fetches once for concurrent callers and reuses the token until shortly before expireIn', async () => {
    let now = 1_000_000;
    const { api, calls } = fakeApi([{ token: 't1' }, { token: 't2' }]);
    const source = new AppTokenSource({ clientId: 'app', secret: new EnvironmentAppSecret('s'), api, now: () => now });
    expect(await Promise.all([source.get(user), source.get(user), source.get(user)])).toEqual(['t1', 't1', 't1']);
    expect(calls()).toBe(1);
    now += 7200_000 - 6 * 60_000;
    expect(await source.get(user)).toBe('t1');
    now += 2 * 60_000; // inside the 5-minute margin
    expect(await source.get(user)).toBe('t2');
    expect(calls()).toBe(2);
  });

  it('invalidate drops only the rejected token', async () => {
    const { api, calls } = fakeApi([{ token: 't1' }, { token: 't2' }]);
    const source = new AppTokenSource({ clientId: 'app', secret: new EnvironmentAppSecret('s'), api });
    await source.get(user);
    source.invalidate('other');
    expect(await source.get(user)).toBe('t1');
    source.invalidate('t1');
    expect(await source.get(user)).toBe('t2');
    expect(calls()).toBe(2);
  });

  it('a secret DingTalk refuses is fetched again from Agent Identity once (rotation), never cached when wrong', async () => {
    const refused = new DingTalkError('refused', 'app_credentials', 'invalidClientIdOrSecret', 400);
    const seen: string[] = [];
    const { api } = fakeApi([{ fail: refused }, { token: 't-new' }], seen);
    const secrets = ['old-secret', 'new-secret'];
    let fetched = 0;
    const secret = new AgentIdentityAppSecret(async () => secrets[fetched++]!, 'dingtalk-app-secret');
    const source = new AppTokenSource({ clientId: 'app', secret, api });
    expect(await source.get(user)).toBe('t-new');
    expect(seen).toEqual(['old-secret', 'new-secret']);
    expect(fetched).toBe(2);
  });

  it('the environment secret is not asked again: the error says what to fix', async () => {
    const refused = new DingTalkError('Check DINGTALK_CLIENT_ID', 'app_credentials', 'invalidClientIdOrSecret', 400);
    const { api, calls } = fakeApi([{ fail: refused }]);
    const source = new AppTokenSource({ clientId: 'app', secret: new EnvironmentAppSecret('s'), api });
    await expect(source.get(user)).rejects.toThrow(/DINGTALK_CLIENT_ID/);
    expect(calls()).toBe(1);
  });
});
