/**
 * The document toolset over streamable HTTP: one server, two signed-in people at once, each acting only as
 * their own DingTalk account (operatorId from their own token), private documents never crossing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { connectHttpAs, startHttpServer, type HttpServerProcess } from '../helpers/http-server.js';
import { allServerStderr, textOf } from '../helpers/stack.js';

let sandbox: Sandbox;
let base: string;
let server: HttpServerProcess;
let zhang: string;
let li: string;
const bearers: string[] = [];

beforeAll(async () => {
  base = `http://127.0.0.1:${await freePort()}`;
  sandbox = await startSandbox({
    callbackUrl: `${base}/callback`,
    oidc: {
      loginRedirectUri: `${base}/login/callback`,
      users: [
        { sub: 'ann', name: 'Ann' },
        { sub: 'ben', name: 'Ben' },
      ],
    },
  });
  [zhang, li] = sandbox.dingtalk.users.map((u) => u.unionId) as [string, string];
  sandbox.dingtalk.seedDocument('HttpZhangDoc01', { title: 'Zhang notes', owner: zhang, content: 'zhang-only text about rockets' });
  sandbox.dingtalk.seedDocument('HttpLiDoc00002', { title: 'Li notes', owner: li, content: 'li-only text about rockets' });
  server = await startHttpServer(sandbox, base);
});
afterAll(async () => {
  await server?.stop();
  const stderr = allServerStderr.join('');
  for (const secret of [...bearers, ...sandbox.dingtalk.issuedTokens(), ...sandbox.agentIdentity.issuedSecrets()]) expect(stderr).not.toContain(secret);
  await sandbox?.close();
});

const call = async (client: Client, name: string, args: Record<string, unknown>) => {
  const r = await client.callTool({ name, arguments: args }, { timeout: 60_000 });
  return { ...r, text: textOf(r), structured: r.structuredContent as Record<string, unknown> };
};

describe('two people on one HTTP server', () => {
  it('search, read and append act as each caller, concurrently, and never cross', async () => {
    const [ann, ben] = await Promise.all([connectHttpAs(sandbox, base, 'ann', zhang, bearers), connectHttpAs(sandbox, base, 'ben', li, bearers)]);
    try {
      // First calls (consents) one after the other: each browser signs in as its own person.
      await call(ann, 'get_dingtalk_account', {});
      await call(ben, 'get_dingtalk_account', {});
      const before = sandbox.dingtalk.requests.length;
      const [annSearch, benSearch, annRead, benRead] = await Promise.all([
        call(ann, 'search_dingtalk_docs', { query: 'rockets' }),
        call(ben, 'search_dingtalk_docs', { query: 'rockets' }),
        call(ann, 'read_dingtalk_doc', { document: 'HttpLiDoc00002' }),
        call(ben, 'read_dingtalk_doc', { document: 'HttpLiDoc00002' }),
      ]);
      expect((annSearch.structured['documents'] as Array<{ id: string }>).map((d) => d.id)).toEqual(['HttpZhangDoc01']);
      expect((benSearch.structured['documents'] as Array<{ id: string }>).map((d) => d.id)).toEqual(['HttpLiDoc00002']);
      expect(annRead.isError).toBe(true);
      expect(annRead.text).toContain('张三');
      expect(annRead.text).not.toContain('li-only');
      expect(benRead.structured['markdown']).toBe('li-only text about rockets');
      const operators = new Set(
        sandbox.dingtalk.requests
          .slice(before)
          .filter((r) => r.tokenFamily === 'app')
          .map((r) => r.operatorId),
      );
      expect(operators).toEqual(new Set([zhang, li]));

      const appended = await call(ben, 'append_dingtalk_doc', { document: 'HttpLiDoc00002', content: 'more' });
      expect(appended.isError).toBeFalsy();
      const last = sandbox.dingtalk.requests.at(-1)!;
      expect(last).toMatchObject({ api: 'insertContent', operatorId: li, status: 200 });
      expect(sandbox.dingtalk.getDocument('HttpZhangDoc01')!.content).toBe('zhang-only text about rockets');
    } finally {
      await Promise.all([ann.close(), ben.close()]);
    }
  });
});
