/**
 * The emulated DingTalk document APIs enforce what DingTalk does: the token family of each API, a required
 * operatorId, the operator's own access rights, and the SDK's field names (a client bug fails here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDingTalkEmulator, type DingTalkEmulator } from '../../src/sandbox/dingtalk/index.js';

const APP = { clientId: 'dingdocapp', clientSecret: 'doc-app-secret-0001', redirectUris: ['http://127.0.0.1:1/callback'] };
let emu: DingTalkEmulator;
let zhang: string;
let li: string;
let appToken: string;
let zhangToken: string;

beforeAll(async () => {
  emu = await startDingTalkEmulator({ apps: [APP] });
  [zhang, li] = emu.users.map((u) => u.unionId) as [string, string];
  emu.seedDocument('ZhangDoc000001', { title: 'Plan', owner: zhang, content: '# Plan\n\nhello' });
  zhangToken = emu.issueTokens(APP.clientId, zhang).accessToken;
  const res = await post('/v1.0/oauth2/accessToken', { appKey: APP.clientId, appSecret: APP.clientSecret });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { accessToken: string; expireIn: number };
  expect(body.expireIn).toBe(7200);
  appToken = body.accessToken;
});
afterAll(async () => {
  await emu.close();
});

function post(path: string, body: unknown, token?: string) {
  return fetch(emu.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { 'x-acs-dingtalk-access-token': token } : {}) },
    body: JSON.stringify(body),
  });
}
const get = (path: string, token?: string) => fetch(emu.url + path, { headers: token ? { 'x-acs-dingtalk-access-token': token } : {} });
const codeOf = async (res: Response) => ((await res.json()) as { code?: string }).code;

describe('GetAccessToken (app token)', () => {
  it('refuses a wrong appSecret with invalidClientIdOrSecret and returns the same token while it is valid', async () => {
    const bad = await post('/v1.0/oauth2/accessToken', { appKey: APP.clientId, appSecret: 'nope' });
    expect(bad.status).toBe(400);
    expect(await codeOf(bad)).toBe('invalidClientIdOrSecret');
    const again = (await (await post('/v1.0/oauth2/accessToken', { appKey: APP.clientId, appSecret: APP.clientSecret })).json()) as { accessToken: string };
    expect(again.accessToken).toBe(appToken);
  });
});

describe('token families do not mix', () => {
  it('an app token is refused on users/me and on the user-token overwrite', async () => {
    expect(await codeOf(await get('/v1.0/contact/users/me', appToken))).toBe('InvalidAuthentication');
    expect(await codeOf(await post('/v2.0/doc/me/suites/documents/ZhangDoc000001/overwriteContent', { content: 'x' }, appToken))).toBe('InvalidAuthentication');
    expect(emu.getDocument('ZhangDoc000001')!.content).toBe('# Plan\n\nhello');
  });
  it('a user token is refused on the app-token APIs even with the right operatorId', async () => {
    const res = await get(`/v1.0/doc/suites/documents/ZhangDoc000001/blocks?operatorId=${zhang}`, zhangToken);
    expect(res.status).toBe(400);
    expect(await codeOf(res)).toBe('InvalidAuthentication');
    expect(emu.requests.at(-1)).toMatchObject({ api: 'docBlocks', tokenFamily: 'user' });
  });
  it('an expired app token is refused', async () => {
    emu.advanceTime(7201_000);
    try {
      expect(await codeOf(await get(`/v2.0/wiki/nodes/ZhangDoc000001?operatorId=${zhang}`, appToken))).toBe('InvalidAuthentication');
    } finally {
      emu.advanceTime(-7201_000);
    }
    appToken = ((await (await post('/v1.0/oauth2/accessToken', { appKey: APP.clientId, appSecret: APP.clientSecret })).json()) as { accessToken: string })
      .accessToken;
  });
});

describe('operatorId', () => {
  it('is mandatory (MissingoperatorId), in the query or in the body as the SDK puts it', async () => {
    const q = await get('/v1.0/doc/suites/documents/ZhangDoc000001/blocks', appToken);
    expect(q.status).toBe(400);
    expect(await q.json()).toMatchObject({ code: 'MissingoperatorId', message: 'operatorId is mandatory for this action.' });
    const ws = emu.mineWorkspace(zhang).workspaceId;
    // CreateWorkspaceDoc takes it in the body: in the query it does not count.
    const b = await post(`/v1.0/doc/workspaces/${ws}/docs?operatorId=${zhang}`, { docType: 'DOC', name: 'x' }, appToken);
    expect(await codeOf(b)).toBe('MissingoperatorId');
  });
  it("enforces the operator's own rights: another user's unionId cannot read a private document", async () => {
    const res = await get(`/v1.0/doc/suites/documents/ZhangDoc000001/blocks?operatorId=${li}`, appToken);
    expect(res.status).toBe(403);
    expect(JSON.stringify(await res.json())).not.toContain('hello');
    const ok = await get(`/v1.0/doc/suites/documents/ZhangDoc000001/blocks?operatorId=${zhang}`, appToken);
    expect(await ok.json()).toMatchObject({
      success: true,
      result: {
        data: [
          { blockType: 'heading', heading: { level: 'heading-1', text: 'Plan' } },
          { blockType: 'paragraph', paragraph: { text: 'hello' } },
        ],
      },
    });
  });
});

describe('field names and required fields follow the SDK', () => {
  it('InsertContent needs content {type:"markdown", content}', async () => {
    const path = `/v1.0/doc/suites/documents/ZhangDoc000001/content?operatorId=${zhang}`;
    expect(await codeOf(await post(path, { markdown: 'x' }, appToken))).toBe('MissingParameter');
    expect(await codeOf(await post(path, { content: 'x' }, appToken))).toBe('InvalidParameter');
    expect((await post(path, { content: { type: 'markdown', content: 'more' } }, appToken)).status).toBe(200);
    expect(emu.getDocument('ZhangDoc000001')!.content).toBe('# Plan\n\nhello\n\nmore');
  });
  it('CreateWorkspaceDoc needs docType and name; ListNodes needs parentNodeId; SearchDentries needs keyword', async () => {
    const ws = emu.mineWorkspace(zhang).workspaceId;
    expect(await codeOf(await post(`/v1.0/doc/workspaces/${ws}/docs`, { name: 'x', operatorId: zhang }, appToken))).toBe('MissingParameter');
    expect(await codeOf(await post(`/v1.0/doc/workspaces/${ws}/docs`, { docType: 'DOC', operatorId: zhang }, appToken))).toBe('MissingParameter');
    expect(await codeOf(await get(`/v2.0/wiki/nodes?operatorId=${zhang}`, appToken))).toBe('MissingParameter');
    expect(await codeOf(await post(`/v2.0/storage/dentries/search?operatorId=${zhang}`, { query: 'x' }, appToken))).toBe('MissingParameter');
    expect(await codeOf(await post(`/v2.0/storage/dentries/search?operatorId=${zhang}`, { keyword: 'x', option: { maxResults: 51 } }, appToken))).toBe(
      'InvalidParameter',
    );
  });
  it("cannot create in someone else's 我的文档", async () => {
    const ws = emu.mineWorkspace(zhang).workspaceId;
    const res = await post(`/v1.0/doc/workspaces/${ws}/docs`, { docType: 'DOC', name: 'intruder', operatorId: li }, appToken);
    expect(res.status).toBe(403);
  });
  it('a wrong path is InvalidAction.NotFound', async () => {
    expect(await codeOf(await get(`/v2.0/wiki/nodes/query?operatorId=${zhang}&x=1`, appToken))).not.toBe(undefined);
    expect(await codeOf(await get('/v1.0/doc/suites/documents/ZhangDoc000001', appToken))).toBe('InvalidAction.NotFound');
  });
});
