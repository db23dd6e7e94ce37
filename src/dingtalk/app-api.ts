/**
 * The app-token family of DingTalk document APIs (docs/architecture.md decision 12): header `x-acs-dingtalk-access-token` =
 * the **app** token, `operatorId` = the acting user's unionId; DingTalk enforces that operator's own access
 * rights. Paths, methods, field names and required fields follow `@alicloud/dingtalk` 2.2.27 (the SDK action is
 * named at each call); see docs/dingtalk-api.md. Answers are parsed defensively: a field DingTalk leaves out is
 * reported as missing, never invented.
 */
import type { DingTalkClient, Operation } from './client.js';
import { DingTalkError } from './types.js';

/** Who acts and with which app token. `operatorId` is only ever the caller's own unionId (tools/define-tool.ts). */
export interface AppCallContext {
  appToken: string;
  operatorId: string;
  signal?: AbortSignal;
}

export interface WikiNode {
  nodeId: string;
  name: string;
  /** FILE or FOLDER (wiki_2_0 node `type`). */
  type?: string;
  category?: string;
  extension?: string;
  url?: string;
  workspaceId?: string;
  hasChildren?: boolean;
  creatorId?: string;
  modifierId?: string;
  createTime?: string;
  modifiedTime?: string;
  permissionRole?: string;
}

export interface SearchHit {
  dentryUuid: string;
  name: string;
  url?: string;
  lastModifyTime?: number;
  creator?: string;
  modifier?: string;
}

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

const READ_SCOPE = 'Storage.File.Read';
const WRITE_SCOPE = 'Storage.File.Write';
const CREATE_SCOPE = 'Document.WorkspaceDocument.Write';
const NODE_SCOPE = 'Wiki.Node.Read';
const WORKSPACE_SCOPE = 'Wiki.Workspace.Read';
const SEARCH_SCOPE = 'Storage.Dentry.Search';

/** The DingTalk app permission each app-token API needs (docs/dingtalk-api.md; shown by `doctor` and setup's checklist). */
export const APP_PERMISSIONS = {
  read: [READ_SCOPE, NODE_SCOPE, WORKSPACE_SCOPE, SEARCH_SCOPE],
  write: [WRITE_SCOPE, CREATE_SCOPE, WORKSPACE_SCOPE, NODE_SCOPE],
} as const;

export class DingTalkAppApi {
  constructor(private readonly client: DingTalkClient) {}

  /** oauth2_1_0 GetAccessToken: POST /v1.0/oauth2/accessToken {appKey, appSecret} → {accessToken, expireIn}. */
  async getAccessToken(appKey: string, appSecret: string, signal?: AbortSignal): Promise<{ accessToken: string; expireInSeconds: number }> {
    const { body, requestId } = await this.client.send(
      {
        name: 'GetAccessToken',
        method: 'POST',
        path: '/v1.0/oauth2/accessToken',
        body: JSON.stringify({ appKey, appSecret }),
        scope: '(none)',
        family: 'none',
        what: 'fetching the DingTalk app access token',
        idempotent: true,
      },
      '',
      signal,
      [appSecret],
    );
    const accessToken = body['accessToken'];
    // expireIn per SDK and docs; some clients see expiresIn (docs/dingtalk-api.md): accept both.
    const expire = body['expireIn'] ?? body['expiresIn'];
    if (typeof accessToken !== 'string' || accessToken === '') throw missing('accessToken', 'GetAccessToken', requestId);
    return { accessToken, expireInSeconds: typeof expire === 'number' && expire > 0 ? expire : 7200 };
  }

  /** doc_1_0 DocBlocksQuery: GET /v1.0/doc/suites/documents/{docKey}/blocks?operatorId&startIndex → {success, result:{data:[…]}}. */
  async queryBlocks(documentId: string, ctx: AppCallContext, startIndex?: number): Promise<unknown[]> {
    const q = query({ operatorId: ctx.operatorId, startIndex });
    const { body, requestId } = await this.send(ctx, {
      name: 'DocBlocksQuery',
      method: 'GET',
      path: `/v1.0/doc/suites/documents/${encodeURIComponent(documentId)}/blocks${q}`,
      scope: READ_SCOPE,
      what: `reading DingTalk document "${documentId}"`,
      idempotent: true,
      documentId,
      needs: 'read',
    });
    const result = record(body['result']);
    const data = result?.['data'];
    if (!Array.isArray(data)) throw missing('result.data', 'DocBlocksQuery', requestId);
    return data;
  }

  /** doc_1_0 InsertContent: POST /v1.0/doc/suites/documents/{documentId}/content?operatorId, body {content:{type:"markdown", content}}; no path/index = the end. */
  async appendMarkdown(documentId: string, markdown: string, ctx: AppCallContext): Promise<void> {
    await this.send(ctx, {
      name: 'InsertContent',
      method: 'POST',
      path: `/v1.0/doc/suites/documents/${encodeURIComponent(documentId)}/content${query({ operatorId: ctx.operatorId })}`,
      // The map's markdown form {type, content} is from a third-party live test (docs/dingtalk-api.md): UNVERIFIED.
      body: JSON.stringify({ content: { type: 'markdown', content: markdown } }),
      scope: WRITE_SCOPE,
      what: `appending to DingTalk document "${documentId}"`,
      idempotent: false,
      documentId,
      needs: 'edit',
    });
  }

  /** wiki_2_0 GetMineWorkspace: GET /v2.0/wiki/mineWorkspaces?operatorId → {workspace:{workspaceId, rootNodeId, …}}. */
  async getMineWorkspace(ctx: AppCallContext): Promise<{ workspaceId: string; rootNodeId: string }> {
    const { body, requestId } = await this.send(ctx, {
      name: 'GetMineWorkspace',
      method: 'GET',
      path: `/v2.0/wiki/mineWorkspaces${query({ operatorId: ctx.operatorId })}`,
      scope: WORKSPACE_SCOPE,
      what: 'finding your 我的文档 (My Docs)',
      idempotent: true,
    });
    const ws = record(body['workspace']);
    const workspaceId = ws?.['workspaceId'];
    const rootNodeId = ws?.['rootNodeId'];
    if (typeof workspaceId !== 'string' || typeof rootNodeId !== 'string') throw missing('workspace.workspaceId/rootNodeId', 'GetMineWorkspace', requestId);
    return { workspaceId, rootNodeId };
  }

  /** doc_1_0 CreateWorkspaceDoc: POST /v1.0/doc/workspaces/{workspaceId}/docs, body {docType:"DOC", name, operatorId, parentNodeId}. */
  async createDocument(
    workspaceId: string,
    name: string,
    parentNodeId: string | undefined,
    ctx: AppCallContext,
  ): Promise<{ nodeId: string; url?: string; workspaceId: string }> {
    const body: Record<string, string> = { docType: 'DOC', name, operatorId: ctx.operatorId };
    if (parentNodeId) body['parentNodeId'] = parentNodeId;
    const res = await this.send(ctx, {
      name: 'CreateWorkspaceDoc',
      method: 'POST',
      path: `/v1.0/doc/workspaces/${encodeURIComponent(workspaceId)}/docs`,
      body: JSON.stringify(body),
      scope: CREATE_SCOPE,
      what: `creating the DingTalk document "${name}"`,
      idempotent: false,
      ...(parentNodeId ? { documentId: parentNodeId, needs: 'edit' as const } : {}),
    });
    // The response names the node by dentryUuid, nodeId and docKey; all are accepted where a docKey is (docs/dingtalk-api.md).
    const nodeId = str(res.body['dentryUuid']) ?? str(res.body['nodeId']);
    if (!nodeId) throw missing('dentryUuid', 'CreateWorkspaceDoc', res.requestId);
    const url = str(res.body['url']);
    // 3P: the returned workspaceId may differ from the one requested (docs/dingtalk-api.md); keep DingTalk's.
    return { nodeId, workspaceId: str(res.body['workspaceId']) ?? workspaceId, ...(url ? { url } : {}) };
  }

  /** wiki_2_0 GetNode: GET /v2.0/wiki/nodes/{nodeId}?operatorId&withPermissionRole=true → {node}. */
  async getNode(nodeId: string, ctx: AppCallContext): Promise<WikiNode> {
    const { body, requestId } = await this.send(ctx, {
      name: 'GetNode',
      method: 'GET',
      path: `/v2.0/wiki/nodes/${encodeURIComponent(nodeId)}${query({ operatorId: ctx.operatorId, withPermissionRole: true })}`,
      scope: NODE_SCOPE,
      what: `looking up DingTalk document "${nodeId}"`,
      idempotent: true,
      documentId: nodeId,
      needs: 'read',
    });
    const node = toNode(body['node']);
    if (!node) throw missing('node', 'GetNode', requestId);
    return node;
  }

  /** wiki_2_0 ListNodes: GET /v2.0/wiki/nodes?parentNodeId&operatorId&maxResults&nextToken → {nodes, nextToken}. */
  async listNodes(parentNodeId: string, ctx: AppCallContext, maxResults: number, nextToken?: string): Promise<Page<WikiNode>> {
    const { body, requestId } = await this.send(ctx, {
      name: 'ListNodes',
      method: 'GET',
      path: `/v2.0/wiki/nodes${query({ parentNodeId, operatorId: ctx.operatorId, maxResults, nextToken })}`,
      scope: NODE_SCOPE,
      what: `listing DingTalk folder "${parentNodeId}"`,
      idempotent: true,
      documentId: parentNodeId,
      needs: 'read',
    });
    const nodes = body['nodes'] ?? [];
    if (!Array.isArray(nodes)) throw missing('nodes', 'ListNodes', requestId);
    return page(
      nodes.map(toNode).filter((n): n is WikiNode => n !== undefined),
      body['nextToken'],
    );
  }

  /** storage_2_0 SearchDentries: POST /v2.0/storage/dentries/search?operatorId, body {keyword, option:{maxResults, nextToken}}. */
  async search(keyword: string, ctx: AppCallContext, maxResults: number, nextToken?: string): Promise<Page<SearchHit>> {
    const option: Record<string, unknown> = { maxResults };
    if (nextToken) option['nextToken'] = nextToken;
    const { body, requestId } = await this.send(ctx, {
      name: 'SearchDentries',
      method: 'POST',
      path: `/v2.0/storage/dentries/search${query({ operatorId: ctx.operatorId })}`,
      body: JSON.stringify({ keyword, option }),
      scope: SEARCH_SCOPE,
      what: 'searching DingTalk documents',
      idempotent: true,
    });
    const items = body['items'] ?? [];
    if (!Array.isArray(items)) throw missing('items', 'SearchDentries', requestId);
    const hits: SearchHit[] = [];
    for (const raw of items) {
      const r = record(raw);
      const id = str(r?.['dentryUuid']);
      if (!r || !id) continue;
      const hit: SearchHit = { dentryUuid: id, name: str(r['name']) ?? id };
      const url = str(record(r['path'])?.['url']);
      if (url) hit.url = url;
      if (typeof r['lastModifyTime'] === 'number') hit.lastModifyTime = r['lastModifyTime'];
      const creator = str(record(r['creator'])?.['name']);
      if (creator) hit.creator = creator;
      const modifier = str(record(r['modifier'])?.['name']);
      if (modifier) hit.modifier = modifier;
      hits.push(hit);
    }
    return page(hits, body['nextToken']);
  }

  private send(ctx: AppCallContext, op: Omit<Operation, 'family'>) {
    return this.client.send({ ...op, family: 'app' }, ctx.appToken, ctx.signal);
  }
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function page<T>(items: T[], nextToken: unknown): Page<T> {
  const next = str(nextToken);
  return next ? { items, nextToken: next } : { items };
}

function toNode(raw: unknown): WikiNode | undefined {
  const r = record(raw);
  const nodeId = str(r?.['nodeId']);
  if (!r || !nodeId) return undefined;
  const node: WikiNode = { nodeId, name: str(r['name']) ?? nodeId };
  for (const k of ['type', 'category', 'extension', 'url', 'workspaceId', 'creatorId', 'modifierId', 'createTime', 'modifiedTime', 'permissionRole'] as const) {
    const v = str(r[k]);
    if (v) node[k] = v;
  }
  if (typeof r['hasChildren'] === 'boolean') node.hasChildren = r['hasChildren'];
  return node;
}

function missing(field: string, action: string, requestId?: string): DingTalkError {
  return new DingTalkError(
    `DingTalk ${action} answered without ${field}${requestId ? ` (DingTalk requestid ${requestId})` : ''}; the API may have changed.`,
    'unknown',
    undefined,
    200,
    requestId,
    'app',
  );
}
