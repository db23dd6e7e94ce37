/**
 * The DingTalk OpenAPI endpoints the server calls, faithful to `@alicloud/dingtalk` 2.2.27 (path, method,
 * which field goes in query or body, which are required) and to docs/dingtalk-api.md–§5. The SDK action
 * each handler answers is named above it. Error codes DingTalk does not document are MODELED.
 */
import type { IncomingMessage } from 'node:http';
import type { DocNode, Role } from './documents.js';
import { markdownToBlocks } from './markdown.js';
import type { ApiName, EmulatorRequestLog, EmulatorState, EmulatorUser } from './state.js';
import { HttpError, readJson, safeDecode } from './wire.js';

/** docs/dingtalk-api.md (a): content ≤ 50,000 chars; assumed for the other write APIs too (UNVERIFIED). */
export const MAX_CONTENT_CHARS = 50_000;
/** storage_2_0 SearchDentries: maxResults default 50, max 50 (docs/dingtalk-api.md). ListNodes' cap is MODELED the same. */
const MAX_PAGE = 50;
export const DOC_LINK_BASE = 'https://alidocs.dingtalk.com/i/nodes/';

interface Route {
  api: ApiName;
  method: string;
  pattern: RegExp;
}

const ROUTES: Route[] = [
  { api: 'token', method: 'POST', pattern: /^\/v1\.0\/oauth2\/userAccessToken$/ },
  { api: 'appToken', method: 'POST', pattern: /^\/v1\.0\/oauth2\/accessToken$/ },
  { api: 'users/me', method: 'GET', pattern: /^\/v1\.0\/contact\/users\/me$/ },
  { api: 'overwriteContent', method: 'POST', pattern: /^\/v2\.0\/doc\/me\/suites\/documents\/([^/]+)\/overwriteContent$/ },
  { api: 'docBlocks', method: 'GET', pattern: /^\/v1\.0\/doc\/suites\/documents\/([^/]+)\/blocks$/ },
  { api: 'insertContent', method: 'POST', pattern: /^\/v1\.0\/doc\/suites\/documents\/([^/]+)\/content$/ },
  { api: 'createWorkspaceDoc', method: 'POST', pattern: /^\/v1\.0\/doc\/workspaces\/([^/]+)\/docs$/ },
  { api: 'mineWorkspace', method: 'GET', pattern: /^\/v2\.0\/wiki\/mineWorkspaces$/ },
  { api: 'getNode', method: 'GET', pattern: /^\/v2\.0\/wiki\/nodes\/([^/]+)$/ },
  { api: 'listNodes', method: 'GET', pattern: /^\/v2\.0\/wiki\/nodes$/ },
  { api: 'searchDentries', method: 'POST', pattern: /^\/v2\.0\/storage\/dentries\/search$/ },
];

/** Which API a request is, and the id in its path. */
export function classifyApi(method: string, path: string): { api: ApiName; id?: string } {
  for (const r of ROUTES) {
    const m = r.method === method ? r.pattern.exec(path) : null;
    if (m) return m[1] !== undefined ? { api: r.api, id: safeDecode(m[1]) ?? m[1] } : { api: r.api };
  }
  return { api: 'unknown' };
}

export function createOpenApi(st: EmulatorState) {
  const docs = st.docs;
  const iso = (ms: number) => new Date(ms).toISOString();

  /** MODELED: DingTalk's codes for "no such document" and "the operator may not" are not documented (docs/dingtalk-api.md). */
  const notFound = (id: string) => new HttpError(404, 'DocumentNotFound', `The document or folder ${id} does not exist.`);
  const noAccess = () => new HttpError(403, 'Forbidden.AccessDenied.NoPermission', 'The operator has no permission on this document.');

  function nodeFor(id: string, operator: string, needed: Role): DocNode {
    const node = docs.nodes.get(id);
    if (!node) throw notFound(id);
    if (!docs.can(node, operator, needed)) throw noAccess();
    return node;
  }

  function userIdOf(unionId: string): string {
    // 3P-observed (docs/dingtalk-api.md): wiki nodes report the numeric userId, not the unionId. MODELED derivation.
    let h = 0;
    for (const c of unionId) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return String(100000000 + (h % 900000000));
  }

  /** wiki_2_0 node model (GetNodeResponseBodyNode / ListNodesResponseBodyNodes). */
  function nodeJson(n: DocNode, operator: string, withRole: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {
      nodeId: n.nodeId,
      name: n.type === 'FILE' ? `${n.name}.adoc` : n.name,
      type: n.type,
      url: DOC_LINK_BASE + n.nodeId,
      workspaceId: n.workspaceId,
      hasChildren: docs.children(n.nodeId).length > 0,
      createTime: iso(n.createdAt),
      modifiedTime: iso(n.modifiedAt),
      creatorId: userIdOf(n.creatorUnionId),
      modifierId: userIdOf(n.modifierUnionId),
    };
    if (n.type === 'FILE') Object.assign(out, { category: 'ALIDOC', extension: 'adoc', size: Buffer.byteLength(n.content) });
    if (withRole) out['permissionRole'] = docs.roleOf(n, operator);
    return out;
  }

  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const intParam = (v: string | null, name: string, min: number, max: number): number | undefined => {
    if (v === null || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, 'InvalidParameter', `${name} must be an integer between ${min} and ${max}.`); // MODELED
    return n;
  };
  /** Page tokens are opaque to clients; here an offset (MODELED). */
  const page = <T>(items: T[], maxResults: number | undefined, nextToken: string | undefined) => {
    const start = nextToken === undefined ? 0 : Number.parseInt(Buffer.from(nextToken, 'base64url').toString('utf8'), 10);
    if (!Number.isInteger(start) || start < 0) throw new HttpError(400, 'InvalidParameter.NextToken', 'nextToken is invalid.'); // MODELED
    const size = Math.min(maxResults ?? MAX_PAGE, MAX_PAGE);
    const slice = items.slice(start, start + size);
    const next = start + size < items.length ? Buffer.from(String(start + size)).toString('base64url') : undefined;
    return { slice, next };
  };

  function markdownOf(body: Record<string, unknown>, key: string): string {
    const v = body[key];
    if (v === undefined || v === null) throw new HttpError(400, 'MissingParameter', `缺少参数：${key}`); // MODELED
    if (typeof v !== 'string') throw new HttpError(400, 'InvalidParameter', `${key} must be a string`); // MODELED
    if (v.length > MAX_CONTENT_CHARS) {
      throw new HttpError(400, 'InvalidParameter.Content.TooLong', `content is too long: ${v.length} characters, at most ${MAX_CONTENT_CHARS} are allowed`); // MODELED
    }
    return v;
  }

  function write(node: DocNode, operator: string, kind: 'overwrite' | 'append' | 'create', content: string): void {
    node.content = content;
    node.modifiedAt = st.now();
    node.modifierUnionId = operator;
    node.writes.push({ unionId: operator, at: new Date(st.now()), kind });
  }

  async function handle(api: ApiName, id: string | undefined, req: IncomingMessage, url: URL, log: EmulatorRequestLog): Promise<unknown> {
    const q = url.searchParams;
    switch (api) {
      // oauth2_1_0 GetAccessToken: POST /v1.0/oauth2/accessToken {appKey, appSecret} → {accessToken, expireIn}.
      case 'appToken': {
        const body = await readJson(req);
        const app = st.apps.get(str(body['appKey']) ?? '');
        if (!app || body['appSecret'] !== app.clientSecret) throw new HttpError(400, 'invalidClientIdOrSecret', '无效的clientId或者clientSecret');
        return st.appToken(app.clientId);
      }

      // contact_1_0 GetUser with unionId "me" (user token, Contact.User.Read).
      case 'users/me': {
        const token = st.authenticateUser(req, 'Contact.User.Read', log);
        const user = st.users.get(token.unionId);
        return {
          nick: user?.nick ?? token.unionId,
          avatarUrl: '',
          stateCode: '86',
          openId: userIdOf(`${token.clientId}:${token.unionId}`),
          unionId: token.unionId,
          visitor: false,
        };
      }

      // doc_2_0 DocUpdateContentWithDelegatedPermission (user token, Document.Document.Write) → {data}.
      case 'overwriteContent': {
        const token = st.authenticateUser(req, 'Document.Document.Write', log);
        const body = await readJson(req);
        const content = markdownOf(body, 'content');
        if (body['dataType'] !== undefined && body['dataType'] !== 'markdown') throw new HttpError(400, 'InvalidParameter', 'dataType must be "markdown"'); // MODELED
        write(nodeFor(id ?? '', token.unionId, 'EDITOR'), token.unionId, 'overwrite', content);
        return { data: {} }; // members of `data` undocumented (MODELED: empty)
      }

      // doc_1_0 DocBlocksQuery: GET …/documents/{docKey}/blocks?operatorId (required)&startIndex&endIndex&blockType.
      case 'docBlocks': {
        const { operator } = st.authenticateApp(req, 'Storage.File.Read', q.get('operatorId'), log);
        const node = nodeFor(id ?? '', operator.unionId, 'READER');
        if (node.type !== 'FILE') throw new HttpError(400, 'InvalidParameter.NotADocument', 'The node is a folder, not a document.'); // MODELED
        let blocks = markdownToBlocks(node.content, node.nodeId);
        const start = intParam(q.get('startIndex'), 'startIndex', 0, 100_000) ?? 0;
        const end = intParam(q.get('endIndex'), 'endIndex', 0, 100_000);
        blocks = blocks.filter((b) => b.index >= start && (end === undefined || b.index <= end));
        const type = q.get('blockType');
        if (type) blocks = blocks.filter((b) => b.blockType === type);
        return { success: true, result: { data: blocks } };
      }

      // doc_1_0 InsertContent: POST …/documents/{documentId}/content?operatorId, body {content (required map), index, path}.
      case 'insertContent': {
        const { operator } = st.authenticateApp(req, 'Storage.File.Write', q.get('operatorId'), log);
        const body = await readJson(req);
        const content = body['content'];
        if (content === undefined || content === null) throw new HttpError(400, 'MissingParameter', '缺少参数：content'); // MODELED
        if (typeof content !== 'object' || Array.isArray(content)) throw new HttpError(400, 'InvalidParameter', 'content must be an object'); // MODELED
        const c = content as Record<string, unknown>;
        // {type:"markdown", content} per a third-party live test (docs/dingtalk-api.md); other types MODELED as refused.
        if (c['type'] !== 'markdown') throw new HttpError(400, 'InvalidParameter', 'content.type must be "markdown"');
        const markdown = markdownOf(c, 'content');
        const node = nodeFor(id ?? '', operator.unionId, 'EDITOR');
        if (body['path'] !== undefined || body['index'] !== undefined) {
          throw new HttpError(400, 'InvalidParameter', 'the emulator only appends at the end (no path / index)'); // emulator limit
        }
        if (node.content.length + markdown.length + 2 > 1_000_000) throw new HttpError(400, 'InvalidParameter.Content.TooLong', 'the document is too large'); // MODELED
        const joined = node.content.trimEnd() === '' ? markdown : `${node.content.trimEnd()}\n\n${markdown}`;
        write(node, operator.unionId, 'append', joined);
        return { success: true, result: {} };
      }

      // doc_1_0 CreateWorkspaceDoc: POST /v1.0/doc/workspaces/{workspaceId}/docs, body {docType, name, operatorId (required), parentNodeId}.
      case 'createWorkspaceDoc': {
        const body = await readJson(req);
        const { operator } = st.authenticateApp(req, 'Document.WorkspaceDocument.Write', body['operatorId'], log);
        const ws = st.docs.workspaces.get(id ?? '');
        if (!ws) throw new HttpError(404, 'WorkspaceNotFound', `Workspace ${id} does not exist.`); // MODELED
        const name = str(body['name']);
        if (!name) throw new HttpError(400, 'MissingParameter', '缺少参数：name'); // MODELED
        if (name.length > 200) throw new HttpError(400, 'InvalidParameter', 'name is too long'); // MODELED limit
        const docType = body['docType'];
        if (docType === undefined) throw new HttpError(400, 'MissingParameter', '缺少参数：docType'); // MODELED
        if (docType !== 'DOC' && docType !== 'FOLDER')
          throw new HttpError(400, 'InvalidParameter', 'docType must be DOC, WORKBOOK, MIND or FOLDER (the emulator makes DOC and FOLDER)');
        const parentId = str(body['parentNodeId']) ?? ws.rootNodeId;
        const parent = nodeFor(parentId, operator.unionId, 'EDITOR');
        if (parent.workspaceId !== ws.workspaceId || parent.type !== 'FOLDER')
          throw new HttpError(400, 'InvalidParameter.ParentNodeId', 'parentNodeId is not a folder of this workspace.'); // MODELED
        const node = st.docs.addNode({
          workspaceId: ws.workspaceId,
          parentId,
          type: docType === 'DOC' ? 'FILE' : 'FOLDER',
          name,
          creatorUnionId: operator.unionId,
        });
        node.writes.push({ unionId: operator.unionId, at: new Date(st.now()), kind: 'create' });
        return { workspaceId: ws.workspaceId, nodeId: node.nodeId, docKey: node.nodeId, dentryUuid: node.nodeId, url: DOC_LINK_BASE + node.nodeId };
      }

      // wiki_2_0 GetMineWorkspace: GET /v2.0/wiki/mineWorkspaces?operatorId → {workspace}.
      case 'mineWorkspace': {
        const { operator } = st.authenticateApp(req, 'Wiki.Workspace.Read', q.get('operatorId'), log);
        const ws = st.docs.mineWorkspace(operator.unionId);
        return {
          workspace: {
            workspaceId: ws.workspaceId,
            rootNodeId: ws.rootNodeId,
            name: ws.name,
            type: ws.type,
            corpId: st.corpId,
            url: `https://alidocs.dingtalk.com/i/spaces/${ws.workspaceId}/overview`, // MODELED shape
            permissionRole: 'OWNER',
            createTime: iso(ws.createdAt),
            modifiedTime: iso(ws.createdAt),
          },
        };
      }

      // wiki_2_0 GetNode: GET /v2.0/wiki/nodes/{nodeId}?operatorId (required)&withPermissionRole&withStatisticalInfo → {node}.
      case 'getNode': {
        const { operator } = st.authenticateApp(req, 'Wiki.Node.Read', q.get('operatorId'), log);
        const node = nodeFor(id ?? '', operator.unionId, 'READER');
        return { node: nodeJson(node, operator.unionId, q.get('withPermissionRole') === 'true') };
      }

      // wiki_2_0 ListNodes: GET /v2.0/wiki/nodes?parentNodeId (required)&operatorId (required)&maxResults&nextToken → {nodes, nextToken}.
      case 'listNodes': {
        const { operator } = st.authenticateApp(req, 'Wiki.Node.Read', q.get('operatorId'), log);
        const parentId = q.get('parentNodeId');
        if (!parentId) throw new HttpError(400, 'MissingParameter', '缺少参数：parentNodeId'); // MODELED
        log.documentId = parentId;
        const parent = nodeFor(parentId, operator.unionId, 'READER');
        const { slice, next } = page(docs.children(parent.nodeId), intParam(q.get('maxResults'), 'maxResults', 1, MAX_PAGE), q.get('nextToken') ?? undefined);
        const nodes = slice.map((n) => nodeJson(n, operator.unionId, q.get('withPermissionRole') === 'true'));
        return next ? { nodes, nextToken: next } : { nodes };
      }

      // storage_2_0 SearchDentries: POST /v2.0/storage/dentries/search?operatorId, body {keyword (required), option{maxResults ≤ 50, nextToken}}.
      case 'searchDentries': {
        const { operator } = st.authenticateApp(req, 'Storage.Dentry.Search', q.get('operatorId'), log);
        const body = await readJson(req);
        const keyword = str(body['keyword']);
        if (!keyword) throw new HttpError(400, 'MissingParameter', '缺少参数：keyword'); // MODELED
        const option = (typeof body['option'] === 'object' && body['option'] !== null ? body['option'] : {}) as Record<string, unknown>;
        const max = option['maxResults'];
        if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_PAGE)) {
          throw new HttpError(400, 'InvalidParameter', `option.maxResults must be between 1 and ${MAX_PAGE}`); // MODELED code, documented limit
        }
        const needle = keyword.toLowerCase();
        // MODELED ranking: documents the operator may read whose name or text contains the keyword, newest first.
        const hits = docs
          .visibleTo(operator.unionId)
          .filter((n) => n.type === 'FILE' && (n.name.toLowerCase().includes(needle) || n.content.toLowerCase().includes(needle)))
          .sort((a, b) => b.modifiedAt - a.modifiedAt);
        const { slice, next } = page(hits, max as number | undefined, str(option['nextToken']));
        const person = (unionId: string) => ({ name: st.users.get(unionId)?.nick ?? unionId, userId: userIdOf(unionId) });
        const items = slice.map((n) => ({
          dentryUuid: n.nodeId,
          name: `${n.name}.adoc`,
          creator: person(n.creatorUnionId),
          modifier: person(n.modifierUnionId),
          lastModifyTime: n.modifiedAt,
          path: { path: `/${n.name}`, longPath: `/${n.name}`, url: DOC_LINK_BASE + n.nodeId },
        }));
        return next ? { items, nextToken: next } : { items };
      }
      default:
        // docs/dingtalk-api.md: a wrong path gives 404 InvalidAction.NotFound [3P].
        throw new HttpError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');
    }
  }

  return { handle };
}

export type { EmulatorUser };
