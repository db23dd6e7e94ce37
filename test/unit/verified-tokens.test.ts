import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { bearerAuth } from '../../src/http/caller.js';
import { OidcError, type OidcProvider } from '../../src/http/oidc.js';
import { VerifiedTokens } from '../../src/http/verified-tokens.js';
import { silentLogger } from '../../src/log.js';

const request = (authorization?: string) => ({ headers: authorization ? { authorization } : {} }) as IncomingMessage;

describe('verified bearer tokens are remembered, never beyond their expiry', () => {
  it('verifies a token once for many requests, and still refuses bad ones every time', async () => {
    let verifications = 0;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const oidc = {
      async verify(token: string) {
        verifications++;
        if (token !== 'good') throw new OidcError('The token signature is not valid.', 'invalid_token');
        return { sub: 'alice', iss: 'https://idp.example', exp };
      },
    } as unknown as OidcProvider;
    const authenticate = bearerAuth(oidc, 'aud', 'https://mcp.example/.well-known/oauth-protected-resource/mcp', silentLogger);
    for (let i = 0; i < 5; i++) {
      const outcome = await authenticate(request('Bearer good'));
      expect(outcome).toMatchObject({ ok: true, auth: { extra: { user: { subject: 'alice' } } } });
    }
    expect(verifications).toBe(1);
    for (let i = 0; i < 2; i++) {
      const refused = await authenticate(request('Bearer forged'));
      expect(refused).toMatchObject({ ok: false, status: 401 });
    }
    expect(verifications).toBe(3);
  });

  it('an entry ends at the token expiry or after maxAgeMs, whichever is first', () => {
    let now = 1_000_000;
    const cache = new VerifiedTokens<string>({ maxAgeMs: 60_000, now: () => now });
    cache.set('short', 'a', now + 10_000);
    cache.set('long', 'b', now + 3_600_000);
    cache.set('expired', 'c', now - 1);
    expect(cache.get('expired')).toBeUndefined();
    now += 10_000;
    expect(cache.get('short')).toBeUndefined();
    expect(cache.get('long')).toBe('b');
    now += 50_000;
    expect(cache.get('long')).toBeUndefined();
  });

  it('is bounded: the oldest entries go first', () => {
    const cache = new VerifiedTokens<number>({ maxEntries: 3 });
    for (let i = 0; i < 5; i++) cache.set(`t${i}`, i, Date.now() + 60_000);
    expect(cache.size).toBe(3);
    expect(cache.get('t0')).toBeUndefined();
    expect(cache.get('t4')).toBe(4);
  });
});
