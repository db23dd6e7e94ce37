/**
 * Where a DingTalk account's 我的文档 (My Docs) lives: wiki_2_0 GetMineWorkspace, asked once per account and
 * kept (it does not move). Keyed by unionId, so it can never be another account's.
 */
import type { AppCallContext, DingTalkAppApi } from './app-api.js';

const MAX_ENTRIES = 10_000;

export class MineWorkspaces {
  private readonly byUnionId = new Map<string, Promise<{ workspaceId: string; rootNodeId: string }>>();

  constructor(private readonly api: DingTalkAppApi) {}

  get(ctx: AppCallContext): Promise<{ workspaceId: string; rootNodeId: string }> {
    let entry = this.byUnionId.get(ctx.operatorId);
    if (!entry) {
      entry = this.api.getMineWorkspace(ctx);
      // Failures are not kept: the next call asks again.
      entry.catch(() => this.byUnionId.delete(ctx.operatorId));
      this.byUnionId.set(ctx.operatorId, entry);
      if (this.byUnionId.size > MAX_ENTRIES) this.byUnionId.delete(this.byUnionId.keys().next().value as string);
    }
    return entry;
  }
}
