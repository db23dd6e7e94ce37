/**
 * A protocol-faithful emulator of the parts of DingTalk this server uses, for tests, `--sandbox` and the demo.
 *
 * One origin serves what DingTalk spreads over two hosts: login.dingtalk.com (consent.ts) and api.dingtalk.com
 * (openapi.ts: both token families, users/me, the document APIs), plus /sandbox/* (sandbox-pages.ts) that do
 * not exist in DingTalk. The state is in state.ts and documents.ts. Everything marked MODELED is not documented
 * by DingTalk (docs/dingtalk-api.md) and was chosen here. Tokens are random and never logged or echoed.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, shutdown } from '../http.js';
import { createConsent } from './consent.js';
import type { DocNode, Role } from './documents.js';
import { classifyApi, createOpenApi } from './openapi.js';
import { createSandboxPages } from './sandbox-pages.js';
import { EmulatorState, type ApiName, type EmulatorApp, type EmulatorRequestLog, type EmulatorUser, type FaultSpec } from './state.js';
import { HttpError, newRequestId, sendJson } from './wire.js';

export type { ApiName, EmulatorApp, EmulatorRequestLog, EmulatorUser, FaultMatch, FaultSpec } from './state.js';
export { DEFAULT_PERMISSIONS } from './state.js';
export { escapeHtml } from './wire.js';

export interface EmulatorDocumentSeed {
  id: string;
  title?: string;
  content?: string;
  /** unionId of the owner: the document goes into their 我的文档 (or `folder`). Without one it lives in the
   *  shared team space, which everyone in the organization may edit. */
  owner?: string;
  readers?: string[];
  editors?: string[];
  /** Parent folder id (created with `seedFolder`). */
  folder?: string;
}

export interface EmulatorDocument {
  id: string;
  title: string;
  content: string;
  ownerUnionId?: string;
  workspaceId: string;
  parentId: string | null;
  writes: Array<{ unionId: string; at: Date; kind: 'overwrite' | 'append' | 'create' }>;
}

export interface DingTalkEmulatorOptions {
  host?: string;
  port?: number;
  apps: EmulatorApp[];
  users?: EmulatorUser[];
  /** User access-token lifetime, seconds (DingTalk: 7200, docs/dingtalk-api.md). */
  tokenTtlSeconds?: number;
  /** App access-token lifetime, seconds (DingTalk: 7200, docs/dingtalk-api.md step 4). */
  appTokenTtlSeconds?: number;
  /** Refresh-token lifetime, seconds (DingTalk: 30 days). */
  refreshTokenTtlSeconds?: number;
  documents?: EmulatorDocumentSeed[];
  /** corpId returned by the token endpoint when the scope includes `corpid`. */
  corpId?: string;
  /** Clock, ms since epoch. Default Date.now. See also advanceTime(). */
  now?: () => number;
}

export interface DingTalkEmulator {
  /** Base URL, e.g. http://127.0.0.1:41234 (use for both the login host and the API host). */
  readonly url: string;
  /** Every request except /sandbox/*, in order. */
  readonly requests: EmulatorRequestLog[];
  close(): Promise<void>;
  /** Register (or replace) an app after start, e.g. once the callback's port is known. */
  addApp(app: EmulatorApp): void;
  seedDocument(id: string, doc?: Omit<EmulatorDocumentSeed, 'id'>): void;
  /** A folder in `owner`'s 我的文档 (or under `parent`). */
  seedFolder(id: string, folder: { title: string; owner: string; parent?: string; readers?: string[]; editors?: string[] }): void;
  getDocument(id: string): EmulatorDocument | undefined;
  /** Root folder and workspace of a user's 我的文档. */
  mineWorkspace(unionId: string): { workspaceId: string; rootNodeId: string };
  injectFault(fault: FaultSpec): void;
  clearFaults(): void;
  revokeAccessToken(token: string): void;
  revokeTokensForUser(unionId: string): void;
  /** Invalidate every app token (as if DingTalk had rotated them). */
  revokeAppTokens(): void;
  /** Change the permissions granted to an app in the developer console. */
  setAppPermissions(clientId: string, permissions: string[]): void;
  /** Move the emulator's clock forward (tokens and codes expire by it). */
  advanceTime(ms: number): void;
  /** The emulator's current time, ms since epoch. */
  now(): number;
  /** Convenience for tests: mint a user token pair without the browser flow. */
  issueTokens(clientId: string, unionId: string): { accessToken: string; refreshToken: string; expireIn: number };
  readonly users: ReadonlyArray<EmulatorUser>;
  /** Every user, refresh and app token ever issued (for leak checks in tests). */
  issuedTokens(): string[];
}

export const DEFAULT_EMULATOR_USERS: ReadonlyArray<EmulatorUser> = [
  { unionId: 'emuZhangSan0001UnionId', nick: '张三' },
  { unionId: 'emuLiSi0002UnionId', nick: '李四' },
];

export async function startDingTalkEmulator(options: DingTalkEmulatorOptions): Promise<DingTalkEmulator> {
  const st = new EmulatorState(
    options.apps,
    options.users ?? DEFAULT_EMULATOR_USERS,
    options.now ?? Date.now,
    (options.tokenTtlSeconds ?? 7200) * 1000,
    (options.refreshTokenTtlSeconds ?? 30 * 24 * 3600) * 1000,
    (options.appTokenTtlSeconds ?? 7200) * 1000,
    options.corpId ?? 'dingemulatorcorp0001',
  );
  const consent = createConsent(st);
  const openapi = createOpenApi(st);
  const sandboxPages = createSandboxPages(st);
  const timers = new Set<NodeJS.Timeout>();

  const team = st.docs.createWorkspace('Sandbox team space', 'TEAM', undefined, 'wsSandboxTeamSpace0001');
  team.members.set('*', 'EDITOR');

  const grant = (node: DocNode, readers: string[] = [], editors: string[] = []) => {
    for (const r of readers) node.roles.set(r, 'READER' satisfies Role);
    for (const e of editors) node.roles.set(e, 'EDITOR' satisfies Role);
  };
  const placement = (owner: string | undefined, folder: string | undefined) => {
    if (folder) {
      const parent = st.docs.nodes.get(folder);
      if (parent?.type !== 'FOLDER') throw new Error(`no folder ${folder}`);
      return { workspaceId: parent.workspaceId, parentId: parent.nodeId };
    }
    const ws = owner ? st.docs.mineWorkspace(owner) : team;
    return { workspaceId: ws.workspaceId, parentId: ws.rootNodeId };
  };
  const seedDocument = (id: string, doc: Omit<EmulatorDocumentSeed, 'id'> = {}) => {
    st.docs.nodes.delete(id);
    const node = st.docs.addNode({
      nodeId: id,
      ...placement(doc.owner, doc.folder),
      type: 'FILE',
      name: doc.title ?? id,
      creatorUnionId: doc.owner ?? 'system',
      content: doc.content ?? '',
    });
    if (doc.owner) node.roles.set(doc.owner, 'OWNER');
    grant(node, doc.readers, doc.editors);
  };
  for (const d of options.documents ?? []) seedDocument(d.id, d);

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Never let a bug crash the test process; answer like DingTalk's gateway would.
      if (!res.headersSent) sendJson(res, 500, { code: 'unknownError', requestid: newRequestId(), message: String(err).slice(0, 200) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/sandbox' || path.startsWith('/sandbox/')) return sandboxPages.handle(req, res, method, path);

    const requestId = newRequestId();
    res.setHeader('x-acs-request-id', requestId); // MODELED: header name as sent by the acs gateway
    const consentPage: ApiName | undefined =
      path === '/oauth2/auth' && method === 'GET' ? 'authorize' : path === '/oauth2/auth/decision' && method === 'POST' ? 'decision' : undefined;
    const { api, id }: { api: ApiName; id?: string } = consentPage ? { api: consentPage } : classifyApi(method, path);
    const entry: EmulatorRequestLog = { at: new Date(st.now()), method, path, api, unionId: null, status: 0, requestId };
    if (id !== undefined) entry.documentId = id;
    st.requests.push(entry);
    const finish = (status: number, code?: string) => {
      entry.status = status;
      if (code) entry.code = code;
    };

    // Injected faults (API endpoints only), answered before authentication like a gateway-level limit.
    const fault = api !== 'authorize' && api !== 'decision' && api !== 'unknown' ? st.takeFault(api) : undefined;
    if (fault) {
      entry.faulted = true;
      if (fault.delayMs && fault.delayMs > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, fault.delayMs);
          timers.add(t);
        });
      }
      finish(fault.status, fault.code);
      if (res.destroyed || res.writableEnded) return;
      if (fault.rawBody !== undefined) {
        res.writeHead(fault.status, { 'content-type': 'text/html; charset=utf-8' });
        res.end(fault.rawBody);
        return;
      }
      const body: Record<string, unknown> = { code: fault.code, requestid: requestId, message: fault.message ?? `Injected fault: ${fault.code}` };
      if (fault.requiredScopes) body['accessdenieddetail'] = { requiredScopes: fault.requiredScopes };
      sendJson(res, fault.status, body);
      return;
    }

    try {
      if (api === 'authorize') return finish(consent.authorizePage(res, url));
      if (api === 'decision') return finish(await consent.decision(req, res));
      const body = api === 'token' ? await consent.tokenEndpoint(req) : await openapi.handle(api, id, req, url, entry);
      sendJson(res, 200, body);
      finish(200);
    } catch (err) {
      if (err instanceof HttpError) {
        // docs/dingtalk-api.md: error body {code, requestid, message} (+ accessdenieddetail for permission errors).
        sendJson(res, err.status, { code: err.code, requestid: requestId, message: err.message, ...err.extra });
        finish(err.status, err.code);
        return;
      }
      throw err;
    }
  }

  const url = await listen(server, options.host ?? '127.0.0.1', options.port);

  return {
    url,
    requests: st.requests,
    users: [...st.users.values()],
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await shutdown(server);
    },
    addApp(app) {
      st.apps.set(app.clientId, app);
    },
    seedDocument,
    seedFolder(id, folder) {
      st.docs.nodes.delete(id);
      const node = st.docs.addNode({ nodeId: id, ...placement(folder.owner, folder.parent), type: 'FOLDER', name: folder.title, creatorUnionId: folder.owner });
      node.roles.set(folder.owner, 'OWNER');
      grant(node, folder.readers, folder.editors);
    },
    getDocument(docId) {
      const d = st.docs.nodes.get(docId);
      if (d?.type !== 'FILE') return undefined;
      const owner = [...d.roles].find(([, r]) => r === 'OWNER')?.[0] ?? st.docs.workspaces.get(d.workspaceId)?.ownerUnionId;
      const out: EmulatorDocument = {
        id: d.nodeId,
        title: d.name,
        content: d.content,
        workspaceId: d.workspaceId,
        parentId: d.parentId,
        writes: d.writes.map((w) => ({ ...w })),
      };
      if (owner) out.ownerUnionId = owner;
      return out;
    },
    mineWorkspace(unionId) {
      const ws = st.docs.mineWorkspace(unionId);
      return { workspaceId: ws.workspaceId, rootNodeId: ws.rootNodeId };
    },
    injectFault: (f) => st.injectFault(f),
    clearFaults() {
      st.faults = [];
    },
    revokeAccessToken(token) {
      st.userTokens.delete(token);
      st.appTokens.delete(token);
    },
    revokeTokensForUser(unionId) {
      for (const [t, r] of st.userTokens) if (r.unionId === unionId) st.userTokens.delete(t);
      for (const [t, r] of st.refreshTokens) if (r.unionId === unionId) st.refreshTokens.delete(t);
    },
    revokeAppTokens() {
      st.appTokens.clear();
    },
    setAppPermissions(clientId, permissions) {
      const app = st.apps.get(clientId);
      if (!app) throw new Error(`unknown clientId ${clientId}`);
      app.permissions = [...permissions];
    },
    advanceTime(ms) {
      st.offsetMs += ms;
    },
    now: () => st.now(),
    issuedTokens: () => [...st.issued],
    issueTokens(clientId, unionId) {
      if (!st.apps.has(clientId)) throw new Error(`unknown clientId ${clientId}`);
      if (!st.users.has(unionId)) throw new Error(`unknown unionId ${unionId}`);
      return st.issueUserTokens(clientId, unionId);
    },
  };
}
