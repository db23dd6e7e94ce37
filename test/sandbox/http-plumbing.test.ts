/** The emulators' shared HTTP plumbing (src/sandbox/http.ts): bounded bodies, JSON replies, the fault queue. */
import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { BodyTooLargeError, FaultQueue, listen, readBody, sendJson, shutdown } from '../../src/sandbox/http.js';

describe('FaultQueue', () => {
  it('answers the first matching fault, `times` times, then forgets it', () => {
    const q = new FaultQueue<{ action: string; times?: number }>();
    q.inject({ action: 'A', times: 2 });
    q.inject({ action: 'B' });
    const match = (action: string) => (f: { action: string }) => f.action === action;
    expect(q.take(match('B'))?.action).toBe('B');
    expect(q.take(match('B'))).toBeUndefined();
    expect(q.take(match('A'))?.action).toBe('A');
    expect(q.take(match('A'))?.action).toBe('A');
    expect(q.take(match('A'))).toBeUndefined();
  });

  it('refuses a fault that could never fire, and clears', () => {
    const q = new FaultQueue<{ times?: number }>();
    expect(() => q.inject({ times: 0 })).toThrow(/times must be > 0/);
    q.inject({ times: Infinity });
    expect(q.take(() => true)).toBeDefined();
    q.clear();
    expect(q.take(() => true)).toBeUndefined();
  });
});

describe('readBody and sendJson', () => {
  it('echo within the limit, refuse above it', async () => {
    const server = createServer((req, res) => {
      readBody(req, 16).then(
        (body) => sendJson(res, 200, { got: body.toString('utf8') }, { 'x-test': '1' }),
        (e: unknown) => sendJson(res, e instanceof BodyTooLargeError ? 413 : 500, { error: 'too large' }),
      );
    });
    const url = await listen(server);
    try {
      const ok = await fetch(url, { method: 'POST', body: 'hello' });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toBe('application/json;charset=utf-8');
      expect(ok.headers.get('x-test')).toBe('1');
      expect(await ok.json()).toEqual({ got: 'hello' });
      const big = await fetch(url, { method: 'POST', body: 'x'.repeat(64 * 1024) }).catch((e: unknown) => e);
      // Either the 413 arrives before the connection drops, or the drop wins: never a 200.
      if (big instanceof Response) expect(big.status).toBe(413);
      else expect(big).toBeInstanceOf(Error);
    } finally {
      await shutdown(server);
    }
  });
});
