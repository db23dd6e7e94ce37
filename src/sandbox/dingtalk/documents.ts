/**
 * The emulator's document model: workspaces (知识库, and one 我的文档 per user), folders and documents in one
 * node tree, each with an owner, readers and editors. Node ids play every id role at once (dentryUuid =
 * wiki nodeId = docKey), which DingTalk allows for /i/nodes/ links (docs/dingtalk-api.md, "Identifiers").
 *
 * Access rights are the operator's own (docs/dingtalk-api.md: "DingTalk enforces the operator's document
 * ACL"): a role on the node or on a folder above it, or on the workspace. How DingTalk inherits roles in detail
 * is MODELED.
 */
import { randomBytes } from 'node:crypto';

export type Role = 'OWNER' | 'EDITOR' | 'READER';
const RANK: Record<Role, number> = { READER: 1, EDITOR: 2, OWNER: 3 };

export interface Workspace {
  workspaceId: string;
  name: string;
  /** MODELED values: PERSONAL for 我的文档, TEAM for a shared 知识库. */
  type: 'PERSONAL' | 'TEAM';
  ownerUnionId?: string;
  rootNodeId: string;
  /** Workspace-wide roles; `*` = everyone in the organization. */
  members: Map<string, Role>;
  createdAt: number;
}

export interface DocNode {
  nodeId: string;
  workspaceId: string;
  /** null for a workspace's root folder. */
  parentId: string | null;
  type: 'FILE' | 'FOLDER';
  /** Without the `.adoc` suffix; the wiki APIs add it for documents (third-party observation, docs/dingtalk-api.md). */
  name: string;
  creatorUnionId: string;
  modifierUnionId: string;
  /** Per-node roles; `*` = everyone in the organization. */
  roles: Map<string, Role>;
  /** Markdown. */
  content: string;
  createdAt: number;
  modifiedAt: number;
  writes: Array<{ unionId: string; at: Date; kind: 'overwrite' | 'append' | 'create' }>;
}

export class DocumentStore {
  readonly workspaces = new Map<string, Workspace>();
  readonly nodes = new Map<string, DocNode>();
  private readonly mine = new Map<string, string>();

  constructor(private readonly now: () => number) {}

  createWorkspace(name: string, type: Workspace['type'], ownerUnionId?: string, id = newId('ws')): Workspace {
    const rootNodeId = newId('root');
    const ws: Workspace = { workspaceId: id, name, type, rootNodeId, members: new Map(), createdAt: this.now() };
    if (ownerUnionId) {
      ws.ownerUnionId = ownerUnionId;
      ws.members.set(ownerUnionId, 'OWNER');
    }
    this.workspaces.set(id, ws);
    this.addNode({ nodeId: rootNodeId, workspaceId: id, parentId: null, type: 'FOLDER', name, creatorUnionId: ownerUnionId ?? 'system' });
    return ws;
  }

  /** 我的文档 of a user, created on first use (every DingTalk user has one). */
  mineWorkspace(unionId: string): Workspace {
    const id = this.mine.get(unionId);
    if (id) return this.workspaces.get(id)!;
    const ws = this.createWorkspace('我的文档', 'PERSONAL', unionId);
    this.mine.set(unionId, ws.workspaceId);
    return ws;
  }

  addNode(n: {
    nodeId?: string;
    workspaceId: string;
    parentId: string | null;
    type: DocNode['type'];
    name: string;
    creatorUnionId: string;
    content?: string;
  }): DocNode {
    const at = this.now();
    const node: DocNode = {
      nodeId: n.nodeId ?? newId('node'),
      workspaceId: n.workspaceId,
      parentId: n.parentId,
      type: n.type,
      name: n.name,
      creatorUnionId: n.creatorUnionId,
      modifierUnionId: n.creatorUnionId,
      roles: new Map(),
      content: n.content ?? '',
      createdAt: at,
      modifiedAt: at,
      writes: [],
    };
    this.nodes.set(node.nodeId, node);
    return node;
  }

  /** The operator's strongest role on a node: its own, any folder's above it, or the workspace's. */
  roleOf(node: DocNode, unionId: string): Role | undefined {
    let best: Role | undefined;
    const consider = (r: Role | undefined) => {
      if (r && (!best || RANK[r] > RANK[best])) best = r;
    };
    for (let n: DocNode | undefined = node; n; n = n.parentId ? this.nodes.get(n.parentId) : undefined) {
      consider(n.roles.get(unionId));
      consider(n.roles.get('*'));
    }
    const ws = this.workspaces.get(node.workspaceId);
    consider(ws?.members.get(unionId));
    consider(ws?.members.get('*'));
    return best;
  }

  can(node: DocNode, unionId: string, needed: Role): boolean {
    const role = this.roleOf(node, unionId);
    return role !== undefined && RANK[role] >= RANK[needed];
  }

  children(folderId: string): DocNode[] {
    return [...this.nodes.values()].filter((n) => n.parentId === folderId).sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
  }

  /** Documents and folders the operator can at least read. */
  visibleTo(unionId: string): DocNode[] {
    return [...this.nodes.values()].filter((n) => n.parentId !== null && this.can(n, unionId, 'READER'));
  }
}

export function newId(prefix: string): string {
  // dentryUuid-like: letters and digits, 24+ characters (MODELED length).
  return `${prefix}${randomBytes(12).toString('hex')}`;
}
