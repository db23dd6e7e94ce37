/**
 * The DingTalk document toolset end to end over stdio: the built server, a real MCP client, the emulated
 * Agent Identity (holding the DingTalk app secret as an API-key credential provider) and DingTalk (two token
 * families, operator ACL). Two people with private documents; every app-token request must carry the caller's
 * own unionId.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { DEFAULT_PERMISSIONS, type EmulatorRequestLog } from '../../src/sandbox/dingtalk/index.js';
import { allServerStderr, connectServer, startStack, textOf, type ServerHandle, type Stack } from '../helpers/stack.js';

let stack: Stack;
let zhang: string;
let li: string;
const ZHANG_DOC = 'ZhangPrivateDoc0001';
const LI_DOC = 'LiPrivateDoc0002';
const SHARED_DOC = 'ZhangSharedWithLi0003';
const ZHANG_FOLDER = 'ZhangFolder0004';

beforeAll(async () => {
  stack = await startStack();
  const dt = stack.sandbox.dingtalk;
  [zhang, li] = dt.users.map((u) => u.unionId) as [string, string];
  dt.seedFolder(ZHANG_FOLDER, { title: 'Quarterly', owner: zhang });
  dt.seedDocument(ZHANG_DOC, {
    title: 'Zhang budget',
    owner: zhang,
    folder: ZHANG_FOLDER,
    content: '# Budget\n\nIntro with [a link](https://example.com/x).\n\n- one\n- two\n\n| Item | Cost |\n| --- | --- |\n| ECS | 10 |\n\nsecret-zhang-words',
  });
  dt.seedDocument(LI_DOC, { title: 'Li diary', owner: li, content: '# Diary\n\nsecret-li-words budget' });
  dt.seedDocument(SHARED_DOC, { title: 'Shared budget notes', owner: zhang, readers: [li], content: 'shared budget text' });
});
afterAll(async () => {
  const stderr = allServerStderr.join('');
  const dt = stack.sandbox.dingtalk;
  // No user token, app token or app secret in anything any server wrote.
  const secrets = [...dt.issuedTokens(), ...stack.sandbox.agentIdentity.issuedSecrets()];
  expect(secrets.length).toBeGreaterThan(2);
  for (const s of secrets) expect(stderr).not.toContain(s);
  expect(dt.requests.length).toBeGreaterThan(0);
  await stack.close();
});

const dtRequests = () => stack.sandbox.dingtalk.requests;
const aiCalls = () => stack.sandbox.agentIdentity.calls;

/** Connect as an Agent Identity user whose browser consents as the given DingTalk account. */
async function connectAs(
  userId: string,
  unionId: string,
  env: Record<string, string> = {},
): Promise<ServerHandle & { consents: () => number; consentAs: (u: string) => void }> {
  const server = await connectServer(stack, { era: 'legacy', userId, env });
  let consents = 0;
  let as = unionId;
  server.client.setRequestHandler('elicitation/create', async (request) => {
    consents++;
    const visit = await followAuthorizationLink((request.params as { url: string }).url, { unionId: as });
    expect(visit.body).toContain('DingTalk access granted');
    return { action: 'accept' };
  });
  return Object.assign(server, { consents: () => consents, consentAs: (u: string) => (as = u) });
}

async function call(client: Client, name: string, args: Record<string, unknown>) {
  const r = await client.callTool({ name, arguments: args }, { timeout: 60_000 });
  return { ...r, text: textOf(r), structured: r.structuredContent as Record<string, unknown> };
}

/** The DingTalk requests made while `fn` ran. */
async function during<T>(fn: () => Promise<T>): Promise<{ value: T; requests: EmulatorRequestLog[]; aiCalls: number }> {
  const before = dtRequests().length;
  const aiBefore = aiCalls().length;
  const value = await fn();
  return { value, requests: dtRequests().slice(before), aiCalls: aiCalls().length - aiBefore };
}

/** The core rule: every app-token request carried exactly this operator, and only user-token APIs went without one. */
function expectOperator(requests: EmulatorRequestLog[], unionId: string) {
  for (const r of requests) {
    if (r.tokenFamily === 'app') expect(r.operatorId, `${r.api} carried another operatorId`).toBe(unionId);
    if (r.tokenFamily === 'user') expect(r.unionId).toBe(unionId);
  }
}

describe('as 张三 (alice): first consent, then steady state', () => {
  let alice: Awaited<ReturnType<typeof connectAs>>;
  beforeAll(async () => {
    alice = await connectAs('alice', zhang);
  });
  afterAll(async () => {
    await alice.close();
  });

  it('read: the first call asks for consent and returns the document as Markdown; the next makes two DingTalk requests and no Agent Identity call', async () => {
    const first = await during(() => call(alice.client, 'read_dingtalk_doc', { document: `https://alidocs.dingtalk.com/i/nodes/${ZHANG_DOC}?utm_scene=x` }));
    expect(first.value.isError).toBeFalsy();
    expect(alice.consents()).toBe(1);
    const s = first.value.structured;
    expect(s).toMatchObject({ status: 'ok', documentId: ZHANG_DOC, title: 'Zhang budget', truncated: false });
    expect(s['markdown']).toBe(stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content);
    expect(first.value.text).toContain('[a link](https://example.com/x)');
    // First time: users/me (the operator), the app token, then GetNode + DocBlocksQuery.
    const apis = first.requests.map((r) => r.api).filter((a) => a !== 'authorize' && a !== 'decision');
    expect(apis.sort()).toEqual(['appToken', 'docBlocks', 'getNode', 'token', 'users/me'].sort());
    expect(aiCalls().some((c) => c.action === 'GetResourceAPIKey' && c.params.ResourceCredentialProviderName === stack.sandbox.appSecretProviderName)).toBe(
      true,
    );
    expectOperator(first.requests, zhang);

    const again = await during(() => call(alice.client, 'read_dingtalk_doc', { document: ZHANG_DOC }));
    expect(again.value.isError).toBeFalsy();
    expect(again.aiCalls).toBe(0);
    expect(again.requests.map((r) => r.api).sort()).toEqual(['docBlocks', 'getNode']);
    expectOperator(again.requests, zhang);
  });

  it('append: adds at the end, nothing else changes, one DingTalk request', async () => {
    const before = stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content;
    const r = await during(() => call(alice.client, 'append_dingtalk_doc', { document: ZHANG_DOC, content: '## October\n\nECS: 12' }));
    expect(r.value.isError).toBeFalsy();
    expect(r.value.structured).toEqual({ status: 'ok', documentId: ZHANG_DOC, charactersAppended: 19 });
    expect(stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content).toBe(`${before}\n\n## October\n\nECS: 12`);
    expect(r.requests.map((x) => x.api)).toEqual(['insertContent']);
    expect(r.aiCalls).toBe(0);
    expectOperator(r.requests, zhang);
  });

  it('create: a new document in 我的文档 with content, owned by the user; the workspace lookup is asked once', async () => {
    const r = await during(() => call(alice.client, 'create_dingtalk_doc', { title: '  Minutes 1  ', content: '# Minutes\n\n- decided' }));
    expect(r.value.isError).toBeFalsy();
    const id = r.value.structured['documentId'] as string;
    expect(r.value.structured).toMatchObject({ status: 'ok', title: 'Minutes 1', link: `https://alidocs.dingtalk.com/i/nodes/${id}`, charactersWritten: 20 });
    const doc = stack.sandbox.dingtalk.getDocument(id)!;
    expect(doc).toMatchObject({ title: 'Minutes 1', content: '# Minutes\n\n- decided', workspaceId: stack.sandbox.dingtalk.mineWorkspace(zhang).workspaceId });
    expect(doc.writes[0]).toMatchObject({ unionId: zhang, kind: 'create' });
    expect(r.requests.map((x) => x.api)).toEqual(['mineWorkspace', 'createWorkspaceDoc', 'insertContent']);
    expectOperator(r.requests, zhang);

    const second = await during(() => call(alice.client, 'create_dingtalk_doc', { title: 'Empty one' }));
    expect(second.value.isError).toBeFalsy();
    expect(second.requests.map((x) => x.api)).toEqual(['createWorkspaceDoc']);
  });

  it('create in a folder given by link', async () => {
    const r = await during(() =>
      call(alice.client, 'create_dingtalk_doc', { title: 'In folder', folder: `https://alidocs.dingtalk.com/i/nodes/${ZHANG_FOLDER}` }),
    );
    expect(r.value.isError).toBeFalsy();
    expect(stack.sandbox.dingtalk.getDocument(r.value.structured['documentId'] as string)!.parentId).toBe(ZHANG_FOLDER);
    expect(r.requests.map((x) => x.api)).toEqual(['getNode', 'createWorkspaceDoc']);
    const notFolder = await call(alice.client, 'create_dingtalk_doc', { title: 'x', folder: ZHANG_DOC });
    expect(notFolder.isError).toBe(true);
    expect(notFolder.text).toMatch(/is a document, not a folder/);
  });

  it("search: the user's accessible documents, paged with a cursor", async () => {
    const r = await during(() => call(alice.client, 'search_dingtalk_docs', { query: 'budget', limit: 1 }));
    expect(r.value.isError).toBeFalsy();
    const page1 = r.value.structured['documents'] as Array<{ id: string; title: string; link: string; lastModified?: string }>;
    expect(page1).toHaveLength(1);
    expect(r.value.structured['nextCursor']).toEqual(expect.any(String));
    const r2 = await call(alice.client, 'search_dingtalk_docs', { query: 'budget', limit: 1, cursor: r.value.structured['nextCursor'] });
    const page2 = r2.structured['documents'] as typeof page1;
    expect(page2).toHaveLength(1);
    expect(r2.structured['nextCursor']).toBeUndefined();
    expect([...page1, ...page2].map((d) => d.id).sort()).toEqual([SHARED_DOC, ZHANG_DOC].sort());
    expect(page1[0]!.lastModified).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(r.requests.map((x) => x.api)).toEqual(['searchDentries']);
    expectOperator(r.requests, zhang);
  });

  it('list: the root of 我的文档 by default, a folder by link', async () => {
    const root = await during(() => call(alice.client, 'list_dingtalk_folder', {}));
    expect(root.value.isError).toBeFalsy();
    const titles = (root.value.structured['items'] as Array<{ title: string; type?: string }>).map((i) => i.title);
    expect(titles).toEqual(expect.arrayContaining(['Quarterly', 'Shared budget notes', 'Minutes 1']));
    // The workspace lookup was cached by the create above.
    expect(root.requests.map((x) => x.api)).toEqual(['listNodes']);
    const folder = await call(alice.client, 'list_dingtalk_folder', { folder: `https://alidocs.dingtalk.com/i/nodes/${ZHANG_FOLDER}` });
    expect(folder.structured).toMatchObject({ folderId: ZHANG_FOLDER });
    expect((folder.structured['items'] as Array<{ id: string; type: string }>).map((i) => [i.id, i.type])).toEqual(
      expect.arrayContaining([[ZHANG_DOC, 'FILE']]),
    );
  });

  it("info: id, title, link, type, creator, last modified and the user's role, one request", async () => {
    const r = await during(() => call(alice.client, 'get_dingtalk_doc_info', { document: ZHANG_DOC }));
    expect(r.value.structured).toMatchObject({
      status: 'ok',
      documentId: ZHANG_DOC,
      title: 'Zhang budget',
      link: `https://alidocs.dingtalk.com/i/nodes/${ZHANG_DOC}`,
      type: 'FILE',
      extension: 'adoc',
      yourRole: 'OWNER',
      creatorId: expect.any(String),
      lastModified: expect.stringMatching(/^\d{4}-/),
    });
    expect(r.requests.map((x) => x.api)).toEqual(['getNode']);
  });

  it("account: the connected account's name, from the cache (no request)", async () => {
    const r = await during(() => call(alice.client, 'get_dingtalk_account', {}));
    expect(r.value.structured).toEqual({ status: 'ok', name: '张三', unionId: zhang, switched: false });
    expect(r.value.text).not.toMatch(/token/i);
    expect(r.requests).toEqual([]);
  });
});

describe('two people, private documents: nothing crosses', () => {
  let bob: Awaited<ReturnType<typeof connectAs>>;
  beforeAll(async () => {
    bob = await connectAs('bob', li);
  });
  afterAll(async () => {
    await bob.close();
  });

  it("李四 (bob) cannot read, append to, look up or list 张三's private documents; the messages name the document and the account", async () => {
    const before = stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content;
    const read = await during(() => call(bob.client, 'read_dingtalk_doc', { document: ZHANG_DOC }));
    expect(read.value.isError).toBe(true);
    expect(read.value.text).toContain(ZHANG_DOC);
    expect(read.value.text).toContain('李四');
    expect(read.value.text).not.toContain('secret-zhang-words');
    expectOperator(read.requests, li);

    const append = await during(() => call(bob.client, 'append_dingtalk_doc', { document: ZHANG_DOC, content: 'hijack' }));
    expect(append.value.isError).toBe(true);
    expect(append.value.text).toMatch(/no permission to edit/);
    expect(stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content).toBe(before);
    expectOperator(append.requests, li);

    const info = await call(bob.client, 'get_dingtalk_doc_info', { document: ZHANG_DOC });
    expect(info.isError).toBe(true);
    const list = await call(bob.client, 'list_dingtalk_folder', { folder: ZHANG_FOLDER });
    expect(list.isError).toBe(true);
    expect(list.text).not.toContain('Zhang budget');
  });

  it('search and list show each person only their own and shared documents', async () => {
    const r = await during(() => call(bob.client, 'search_dingtalk_docs', { query: 'budget' }));
    const ids = (r.value.structured['documents'] as Array<{ id: string }>).map((d) => d.id);
    expect(ids.sort()).toEqual([LI_DOC, SHARED_DOC].sort());
    expect(r.value.text).not.toContain('secret-zhang-words');
    expectOperator(r.requests, li);
    const root = await call(bob.client, 'list_dingtalk_folder', {});
    const titles = (root.structured['items'] as Array<{ title: string }>).map((i) => i.title);
    expect(titles).toContain('Li diary');
    expect(titles).not.toContain('Quarterly');
  });

  it('a reader may read a shared document but not append to it', async () => {
    const read = await call(bob.client, 'read_dingtalk_doc', { document: SHARED_DOC });
    expect(read.isError).toBeFalsy();
    expect(read.structured['markdown']).toBe('shared budget text');
    const append = await call(bob.client, 'append_dingtalk_doc', { document: SHARED_DOC, content: 'x' });
    expect(append.isError).toBe(true);
    expect(stack.sandbox.dingtalk.getDocument(SHARED_DOC)!.content).toBe('shared budget text');
  });
});

// One stdio server at a time while consenting: they share the loopback callback port.
describe('changing accounts', () => {
  it('switch: a fresh consent connects another DingTalk account, and later calls act as it', async () => {
    const carol = await connectAs('carol', zhang);
    try {
      const first = await call(carol.client, 'get_dingtalk_account', {});
      expect(first.text).toContain('张三');
      expect(first.structured['name']).toBe('张三');
      carol.consentAs(li);
      const switched = await call(carol.client, 'get_dingtalk_account', { switch: true });
      expect(switched.isError).toBeFalsy();
      expect(carol.consents()).toBe(2);
      expect(switched.structured).toEqual({ status: 'ok', name: '李四', unionId: li, switched: true });
      const r = await during(() => call(carol.client, 'read_dingtalk_doc', { document: LI_DOC }));
      expect(r.value.isError).toBeFalsy();
      expectOperator(r.requests, li);
    } finally {
      await carol.close();
    }
  });
});

describe('every app-token tool through its first consent (a fresh user each)', () => {
  const calls: Array<[string, Record<string, unknown>]> = [
    ['search_dingtalk_docs', { query: 'budget' }],
    ['read_dingtalk_doc', { document: ZHANG_DOC }],
    ['get_dingtalk_doc_info', { document: ZHANG_DOC }],
    ['list_dingtalk_folder', {}],
    ['append_dingtalk_doc', { document: ZHANG_DOC, content: 'first-consent append' }],
    ['create_dingtalk_doc', { title: 'First consent' }],
  ];
  for (const [tool, args] of calls) {
    it(tool, async () => {
      const s = await connectAs(`first-${tool}`, zhang);
      try {
        const r = await during(() => call(s.client, tool, args));
        expect(r.value.isError, r.value.text).toBeFalsy();
        expect(s.consents()).toBe(1);
        expect(r.value.structured['status']).toBe('ok');
        expectOperator(r.requests, zhang);
        // The operator was learnt from this user's own token, once.
        expect(r.requests.filter((x) => x.api === 'users/me')).toHaveLength(1);
      } finally {
        await s.close();
      }
    });
  }
});

describe('declining the consent', () => {
  it("says what did not happen for the tool at hand (a read: nothing was read, not 'written')", async () => {
    const s = await connectServer(stack, { era: 'legacy', userId: 'declines-a-read' });
    try {
      s.client.setRequestHandler('elicitation/create', async () => ({ action: 'decline' }));
      const r = await call(s.client, 'read_dingtalk_doc', { document: ZHANG_DOC });
      expect(r.isError).toBe(true);
      expect(r.text).toMatch(/declined.*so nothing was read/);
      expect(r.text).not.toMatch(/written/);
    } finally {
      await s.close();
    }
  });
});

describe('a long document is read in bounded parts', () => {
  it('cuts at a block boundary with a note, and startBlock continues exactly there', async () => {
    const paragraphs = Array.from({ length: 400 }, (_, i) => `Paragraph ${i}: ${'text '.repeat(30).trim()}`);
    stack.sandbox.dingtalk.seedDocument('ZhangLongDoc0005', { title: 'Long', owner: zhang, content: paragraphs.join('\n\n') });
    const alice = await connectAs('alice', zhang);
    try {
      const first = await call(alice.client, 'read_dingtalk_doc', { document: 'ZhangLongDoc0005' });
      expect(first.structured['truncated']).toBe(true);
      const next = first.structured['nextStartBlock'] as number;
      expect((first.structured['markdown'] as string).length).toBeLessThanOrEqual(30_000);
      expect(first.text).toContain(`startBlock: ${next}`);
      expect(first.structured['markdown']).toBe(paragraphs.slice(0, next).join('\n\n'));
      let all = first.structured['markdown'] as string;
      let from: number | undefined = next;
      while (from !== undefined) {
        const part = await call(alice.client, 'read_dingtalk_doc', { document: 'ZhangLongDoc0005', startBlock: from });
        all += `\n\n${part.structured['markdown'] as string}`;
        from = part.structured['nextStartBlock'] as number | undefined;
      }
      expect(all).toBe(paragraphs.join('\n\n'));
    } finally {
      await alice.close();
    }
  });
});

describe('bad input is refused before any request', () => {
  let alice: Awaited<ReturnType<typeof connectAs>>;
  beforeAll(async () => {
    alice = await connectAs('alice', zhang);
  });
  afterAll(async () => {
    await alice.close();
  });

  const cases: Array<[string, string, Record<string, unknown>, RegExp]> = [
    ['a foreign link', 'read_dingtalk_doc', { document: 'https://evil.example/i/nodes/abcdefgh' }, /alidocs\.dingtalk\.com/],
    ['a traversal id', 'append_dingtalk_doc', { document: '../../v1.0/oauth2', content: 'x' }, /not a document id/],
    ['a traversal link', 'get_dingtalk_doc_info', { document: 'https://alidocs.dingtalk.com/i/nodes/../x' }, /"\.\."/],
    ['an empty title', 'create_dingtalk_doc', { title: '   ' }, /title is only whitespace/],
    ['a multi-line title', 'create_dingtalk_doc', { title: 'a\nb' }, /single line/],
    ['oversized content', 'append_dingtalk_doc', { document: ZHANG_DOC, content: 'x'.repeat(50_001) }, /50000/],
    ['whitespace content', 'append_dingtalk_doc', { document: ZHANG_DOC, content: '  \n ' }, /only whitespace/],
    ['a foreign folder', 'list_dingtalk_folder', { folder: 'https://docs.dingtalk.com/i/nodes/abcdefgh' }, /AI tables/],
    ['a huge limit', 'search_dingtalk_docs', { query: 'x', limit: 500 }, /50/],
    ['a forged cursor', 'search_dingtalk_docs', { query: 'x', cursor: 'a b' }, /cursor/],
  ];
  for (const [what, tool, args, message] of cases) {
    it(what, async () => {
      const r = await during(() => call(alice.client, tool, args));
      expect(r.value.isError).toBe(true);
      expect(r.value.text).toMatch(message);
      expect(r.requests).toEqual([]);
      expect(r.aiCalls).toBe(0);
    });
  }
});

describe('faults', () => {
  it('an app token DingTalk no longer accepts is fetched again once, and the call succeeds', async () => {
    const alice = await connectAs('alice', zhang);
    try {
      await call(alice.client, 'get_dingtalk_doc_info', { document: ZHANG_DOC });
      stack.sandbox.dingtalk.revokeAppTokens();
      const r = await during(() => call(alice.client, 'get_dingtalk_doc_info', { document: ZHANG_DOC }));
      expect(r.value.isError).toBeFalsy();
      expect(r.requests.map((x) => [x.api, x.status])).toEqual([
        ['getNode', 400],
        ['appToken', 200],
        ['getNode', 200],
      ]);
    } finally {
      await alice.close();
    }
  });

  it('a wrong app secret (development fallback) gives an actionable message without the secret', async () => {
    const wrong = 'wrong-app-secret-1234567890';
    const s = await connectAs('dave', zhang, { AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER: '', DINGTALK_CLIENT_SECRET: wrong });
    try {
      const r = await call(s.client, 'read_dingtalk_doc', { document: ZHANG_DOC });
      expect(r.isError).toBe(true);
      expect(r.text).toMatch(/DINGTALK_CLIENT_ID/);
      expect(r.text).toMatch(/invalidClientIdOrSecret/);
      expect(r.text).not.toContain(wrong);
      expect(s.stderr()).not.toContain(wrong);
    } finally {
      await s.close();
    }
  });

  it('a missing API-key credential provider is named, with what to do', async () => {
    const s = await connectAs('erin', zhang, { AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER: 'no-such-provider' });
    try {
      const r = await call(s.client, 'search_dingtalk_docs', { query: 'budget' });
      expect(r.isError).toBe(true);
      expect(r.text).toMatch(/EntityNotExists\.APIKeyCredentialProvider/);
      expect(r.text).toMatch(/AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER/);
    } finally {
      await s.close();
    }
  });

  it('a missing DingTalk app permission is named', async () => {
    const alice = await connectAs('alice', zhang);
    const dt = stack.sandbox.dingtalk;
    try {
      dt.setAppPermissions(stack.sandbox.dingtalkClientId, ['Contact.User.Read', 'Document.Document.Write', 'Wiki.Node.Read']);
      const r = await call(alice.client, 'read_dingtalk_doc', { document: ZHANG_DOC });
      expect(r.isError).toBe(true);
      expect(r.text).toContain('Storage.File.Read');
      expect(r.text).toContain('权限管理');
      expect(r.text).not.toMatch(/authorize DingTalk again/);
    } finally {
      dt.setAppPermissions(stack.sandbox.dingtalkClientId, [...DEFAULT_PERMISSIONS]);
      await alice.close();
    }
  });

  it('a QPS limit on append is retried (DingTalk did nothing) and the content lands exactly once', async () => {
    const alice = await connectAs('alice', zhang);
    try {
      const before = stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content;
      stack.sandbox.dingtalk.injectFault({ status: 403, code: 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', match: 'insertContent', times: 1 });
      const r = await call(alice.client, 'append_dingtalk_doc', { document: ZHANG_DOC, content: 'once' });
      expect(r.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(ZHANG_DOC)!.content).toBe(`${before}\n\nonce`);
    } finally {
      await alice.close();
    }
  });

  it('a 5xx on append is not repeated (it may have been applied); a 5xx on read is retried', async () => {
    const alice = await connectAs('alice', zhang);
    try {
      stack.sandbox.dingtalk.injectFault({ status: 503, code: 'ServiceUnavailable', match: 'insertContent', times: 1 });
      const r = await during(() => call(alice.client, 'append_dingtalk_doc', { document: ZHANG_DOC, content: 'maybe' }));
      expect(r.value.isError).toBe(true);
      expect(r.value.text).toMatch(/server error/);
      expect(r.requests.filter((x) => x.api === 'insertContent')).toHaveLength(1);
      stack.sandbox.dingtalk.injectFault({ status: 500, code: 'unknownError', match: 'docBlocks', times: 1 });
      const read = await call(alice.client, 'read_dingtalk_doc', { document: ZHANG_DOC });
      expect(read.isError).toBeFalsy();
    } finally {
      await alice.close();
    }
  });

  it('without an app credential only the user-token tools are listed', async () => {
    const s = await connectServer(stack, { userId: 'alice', env: { DINGTALK_CLIENT_ID: '' } });
    try {
      const { tools } = await s.client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['write_dingtalk_doc', 'get_dingtalk_account']);
    } finally {
      await s.close();
    }
  });

  it('--toolsets read and --read-only choose what is exposed', async () => {
    const read = await connectServer(stack, { userId: 'alice', env: { DINGTALK_MCP_TOOLSETS: 'read' } });
    const ro = await connectServer(stack, { userId: 'alice', env: { DINGTALK_MCP_READ_ONLY: 'true' } });
    try {
      expect((await read.client.listTools()).tools.map((t) => t.name)).toEqual([
        'search_dingtalk_docs',
        'read_dingtalk_doc',
        'get_dingtalk_doc_info',
        'list_dingtalk_folder',
      ]);
      expect((await ro.client.listTools()).tools.map((t) => t.name)).toEqual([
        'search_dingtalk_docs',
        'read_dingtalk_doc',
        'get_dingtalk_doc_info',
        'list_dingtalk_folder',
        'get_dingtalk_account',
      ]);
      // An unlisted tool is a protocol error, not a call.
      await expect(ro.client.callTool({ name: 'append_dingtalk_doc', arguments: { document: ZHANG_DOC, content: 'x' } })).rejects.toThrow(/not found/);
    } finally {
      await read.close();
      await ro.close();
    }
  });
});
