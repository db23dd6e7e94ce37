/**
 * How `setup` plans one resource. What exists decides the step, the same way for every resource:
 *   missing                    → create (recorded pending → created; a namesake that appears meanwhile is adopted if it fits);
 *   exists, setup's own        → ok, or update what differs from what setup would write;
 *   exists, not setup's, fits  → adopt (used as is: never changed, never deleted by teardown);
 *   exists, not setup's, unfit → blocked, with what to fix.
 */
import { createOrAdopt, GONE } from './create-step.js';
import type { ConfigFile, ResourceType } from './record.js';

export type Action = 'create' | 'update' | 'ok' | 'adopt' | 'blocked';

export interface PlanItem {
  type: ResourceType;
  label: string;
  name: string;
  action: Action;
  detail?: string;
  /** A returned line replaces the "created …" line (e.g. when the resource turned out to be someone else's). */
  apply?: () => Promise<string | undefined | void>;
}

/** Setup's own: recorded as created (or pending), and not re-created by someone else since (identity.ts). */
export type Owned = (type: ResourceType, name: string, identity: string | undefined) => boolean;

export interface ResourceSpec<T, C> {
  type: ResourceType;
  label: string;
  name: string;
  /** What exists now, as read before planning. */
  found: T | undefined;
  /** What tells setup's own resource from a namesake made later (identity.ts). */
  identity(resource: T): string | undefined;
  /** Why a resource setup did not create cannot be used as is; undefined when it fits. */
  unfit(resource: T): string | undefined;
  /** Records the resource in the config file. */
  record(resource: T | undefined, status: 'created' | 'adopted'): void | Promise<void>;
  /** Learns what later steps need from a resource that is there (setup's own or not). */
  use?(resource: T, mine: boolean): void;
  create: {
    detail: string;
    run(): Promise<C>;
    /** Records the created resource (and learns from it). */
    created(value: C): void | Promise<void>;
    /** Reads it again (a namesake appeared between the read and the create). */
    reread(): Promise<T | undefined>;
  };
  /** For setup's own resource: what differs from what setup would write (the plan's detail), and the fix. */
  update?: { differs(resource: T): string | undefined; run(resource: T): Promise<void> };
  /** The plan's detail when adopting. */
  adoptDetail?: string;
  /** How the blocked detail joins "it exists but was not created by setup" and the reason. */
  blockedJoin?: ': ' | ', and ';
}

export function planResource<T, C>(file: ConfigFile, owned: Owned, spec: ResourceSpec<T, C>): PlanItem {
  const base = { type: spec.type, label: spec.label, name: spec.name };
  const found = spec.found;
  if (!found) {
    return {
      ...base,
      action: 'create',
      detail: spec.create.detail,
      apply: () =>
        createOrAdopt(file, {
          ...base,
          create: spec.create.run,
          created: spec.create.created,
          adopt: async () => {
            const again = await spec.create.reread();
            const problem = again ? spec.unfit(again) : GONE;
            if (!problem) {
              spec.use?.(again!, false);
              await spec.record(again, 'adopted');
            }
            return problem;
          },
        }),
    };
  }
  if (owned(spec.type, spec.name, spec.identity(found))) {
    spec.use?.(found, true);
    const differs = spec.update?.differs(found);
    return {
      ...base,
      action: differs ? 'update' : 'ok',
      ...(differs ? { detail: differs } : {}),
      apply: async () => {
        if (differs) await spec.update!.run(found);
        await spec.record(found, 'created');
      },
    };
  }
  spec.use?.(found, false);
  const problem = spec.unfit(found);
  if (problem) return { ...base, action: 'blocked', detail: `it exists but was not created by setup${spec.blockedJoin ?? ': '}${problem}` };
  return { ...base, action: 'adopt', ...(spec.adoptDetail ? { detail: spec.adoptDetail } : {}), apply: async () => spec.record(found, 'adopted') };
}
