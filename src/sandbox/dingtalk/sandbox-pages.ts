/**
 * /sandbox/*: pages and switches that do not exist in DingTalk — the document viewer (who owns what, who may
 * read or edit it, its Markdown) and fault injection.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DocNode } from './documents.js';
import { API_NAMES, type EmulatorState, type FaultMatch, type FaultSpec } from './state.js';
import { escapeHtml, page, readJson, safeDecode, sendHtml, sendJson } from './wire.js';

export function createSandboxPages(st: EmulatorState) {
  const nick = (unionId: string) => st.users.get(unionId)?.nick ?? unionId;

  function access(n: DocNode): string {
    const ws = st.docs.workspaces.get(n.workspaceId);
    const parts: string[] = [];
    if (ws?.members.get('*')) parts.push(`everyone: ${ws.members.get('*')}`);
    for (const [who, role] of ws?.members ?? []) if (who !== '*') parts.push(`${nick(who)}: ${role}`);
    for (const [who, role] of n.roles) parts.push(`${who === '*' ? 'everyone' : nick(who)}: ${role}`);
    return parts.join(', ') || 'nobody';
  }

  async function faults(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    if (method === 'GET') {
      sendJson(res, 200, { faults: st.faults.map((f) => ({ ...f, remaining: Number.isFinite(f.remaining) ? f.remaining : 'Infinity' })) });
      return;
    }
    if (method === 'DELETE') {
      st.faults = [];
      sendJson(res, 200, { faults: [] });
      return;
    }
    if (method !== 'POST') {
      sendJson(res, 405, { error: 'use GET, POST or DELETE' });
      return;
    }
    // JSON only: a browser page cannot send application/json cross-origin without a preflight we never allow.
    if (
      !String(req.headers['content-type'] ?? '')
        .toLowerCase()
        .startsWith('application/json')
    ) {
      sendJson(res, 415, { error: 'send the fault as application/json' });
      return;
    }
    try {
      const body = await readJson(req);
      const t = body['times'];
      const times = t === undefined || t === null || t === 'Infinity' || t === 'infinity' ? Infinity : Number(t);
      const match = body['match'];
      const fault: FaultSpec = { status: Number(body['status']), code: typeof body['code'] === 'string' ? body['code'] : 'unknownError', times };
      if (typeof body['message'] === 'string') fault.message = body['message'];
      if (match === 'any' || API_NAMES.includes(match as never)) fault.match = match as FaultMatch;
      else if (match !== undefined) throw new Error(`match must be one of ${[...API_NAMES, 'any'].join(', ')}`);
      if (typeof body['delayMs'] === 'number') fault.delayMs = body['delayMs'];
      if (typeof body['rawBody'] === 'string') fault.rawBody = body['rawBody'];
      if (Array.isArray(body['requiredScopes'])) fault.requiredScopes = body['requiredScopes'].map(String);
      st.injectFault(fault);
      sendJson(res, 201, { ok: true, fault: { ...fault, times: Number.isFinite(times) ? times : 'Infinity' } });
    } catch (err) {
      sendJson(res, 400, {
        error: err instanceof Error ? err.message : 'bad fault',
        example: { status: 403, code: 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', times: 2, match: 'overwriteContent' },
      });
    }
  }

  function documentList(res: ServerResponse): void {
    const rows = [...st.docs.nodes.values()]
      .filter((n) => n.type === 'FILE')
      .map((d) => {
        const ws = st.docs.workspaces.get(d.workspaceId);
        return `<li><a href="/sandbox/docs/${encodeURIComponent(d.nodeId)}">${escapeHtml(d.name)}</a> <code>${escapeHtml(d.nodeId)}</code> · ${escapeHtml(ws?.type === 'PERSONAL' ? `我的文档 of ${nick(ws.ownerUnionId ?? '')}` : (ws?.name ?? ''))} · <span class="note">${escapeHtml(access(d))}</span></li>`;
      })
      .join('');
    sendHtml(res, 200, page('Documents (DingTalk emulator)', `<ul>${rows}</ul>`));
  }

  function documentPage(res: ServerResponse, id: string, raw: boolean): void {
    const doc = st.docs.nodes.get(id);
    if (raw) {
      res.writeHead(doc ? 200 : 404, { 'content-type': `text/${doc ? 'markdown' : 'plain'}; charset=utf-8`, 'cache-control': 'no-store' });
      res.end(doc ? doc.content : 'no such document\n');
      return;
    }
    if (!doc) {
      sendHtml(res, 404, page('Not found', `<p>No document <code>${escapeHtml(id)}</code>.</p>`));
      return;
    }
    const last = doc.writes[doc.writes.length - 1];
    const who = last
      ? `<p class="note">Last change (${escapeHtml(last.kind)}) by ${escapeHtml(nick(last.unionId))} at ${escapeHtml(last.at.toISOString())} (${doc.writes.length} change(s)).</p>`
      : '<p class="note">Never written.</p>';
    const body = `<p><code>${escapeHtml(doc.nodeId)}</code> · <a href="/sandbox/docs/${encodeURIComponent(doc.nodeId)}.md">raw markdown</a></p>
<p class="note">Created by ${escapeHtml(nick(doc.creatorUnionId))}. Access: ${escapeHtml(access(doc))}.</p>${who}<pre>${escapeHtml(doc.content)}</pre>`;
    sendHtml(res, 200, page(doc.name, body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, method: string, path: string): Promise<void> {
    if (path === '/sandbox/faults') return faults(req, res, method);
    if (method === 'GET' && (path === '/sandbox/docs' || path === '/sandbox')) return documentList(res);
    const m = /^\/sandbox\/docs\/([^/]+?)(\.md)?$/.exec(path);
    if (method === 'GET' && m) return documentPage(res, safeDecode(m[1] ?? '') ?? '', Boolean(m[2]));
    sendJson(res, 404, { error: 'unknown sandbox path' });
  }

  return { handle };
}
