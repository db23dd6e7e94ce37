/** The one rule `setup` applies to every resource (src/provisioning/plan.ts), branch by branch. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlPlaneError } from '../../src/provisioning/control-plane-client.js';
import { planResource, type Owned, type ResourceSpec } from '../../src/provisioning/plan.js';
import { ConfigFile, RECORD_KEY } from '../../src/provisioning/record.js';

interface Thing {
  name: string;
  color: string;
  id: string;
}

let dir: string;
let file: ConfigFile;
const calls: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plan-test-'));
  file = new ConfigFile(join(dir, '.config.json'));
  file.data[RECORD_KEY] = { version: 1, suffix: 'x', mode: 'stdio', regionId: 'cn-beijing', resources: [] };
  calls.length = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function spec(found: Thing | undefined, overrides: Partial<ResourceSpec<Thing, Thing>> = {}): ResourceSpec<Thing, Thing> {
  return {
    type: 'ram_role',
    label: 'RAM role',
    name: 'r1',
    found,
    identity: (t) => t.id,
    unfit: (t) => (t.color === 'blue' ? undefined : `it is ${t.color}, not blue`),
    record: (t, status) => file.track({ type: 'ram_role', name: 'r1', status, ...(t ? { identity: t.id } : {}) }),
    use: (t, mine) => void calls.push(`use ${t.id} ${mine ? 'mine' : 'theirs'}`),
    create: {
      detail: 'a blue one',
      run: async () => {
        calls.push('create');
        return { name: 'r1', color: 'blue', id: 'new' };
      },
      created: (t) => file.track({ type: 'ram_role', name: 'r1', status: 'created', identity: t.id }),
      reread: async () => ({ name: 'r1', color: 'blue', id: 'raced' }),
    },
    update: {
      differs: (t) => (t.color === 'blue' ? undefined : 'color differs'),
      run: async (t) => void calls.push(`paint ${t.id}`),
    },
    blockedJoin: ', and ',
    ...overrides,
  };
}

const mine: Owned = () => true;
const notMine: Owned = () => false;
const status = () => file.find('ram_role', 'r1')?.status;

describe('planResource', () => {
  it('missing: create, recorded created', async () => {
    const item = planResource(file, notMine, spec(undefined));
    expect(item).toMatchObject({ action: 'create', detail: 'a blue one' });
    await item.apply!();
    expect(calls).toEqual(['create']);
    expect(file.find('ram_role', 'r1')).toMatchObject({ status: 'created', identity: 'new' });
  });

  it('missing, but a namesake appears before the create: adopted when it fits, never recorded as created', async () => {
    const item = planResource(
      file,
      notMine,
      spec(undefined, {
        create: {
          ...spec(undefined).create,
          run: async () => {
            throw new ControlPlaneError('taken', 'ram', 'CreateRole', 'EntityAlreadyExists.Role');
          },
        },
      }),
    );
    expect(await item.apply!()).toMatch(/^adopted RAM role r1 \(someone else created it/);
    expect(calls).toEqual(['use raced theirs']);
    expect(status()).toBe('adopted');
  });

  it("setup's own and as it should be: ok, nothing changed", async () => {
    const item = planResource(file, mine, spec({ name: 'r1', color: 'blue', id: 'a' }));
    expect(item.action).toBe('ok');
    await item.apply!();
    expect(calls).toEqual(['use a mine']);
    expect(status()).toBe('created');
  });

  it("setup's own but different: update with what differs", async () => {
    const item = planResource(file, mine, spec({ name: 'r1', color: 'red', id: 'a' }));
    expect(item).toMatchObject({ action: 'update', detail: 'color differs' });
    await item.apply!();
    expect(calls).toEqual(['use a mine', 'paint a']);
  });

  it("someone else's that fits: adopt, never changed", async () => {
    const item = planResource(file, notMine, spec({ name: 'r1', color: 'blue', id: 'b' }, { adoptDetail: 'used as is' }));
    expect(item).toMatchObject({ action: 'adopt', detail: 'used as is' });
    await item.apply!();
    expect(calls).toEqual(['use b theirs']);
    expect(status()).toBe('adopted');
  });

  it("someone else's that does not fit: blocked with the reason, nothing to apply", () => {
    const item = planResource(file, notMine, spec({ name: 'r1', color: 'red', id: 'b' }));
    expect(item).toMatchObject({ action: 'blocked', detail: 'it exists but was not created by setup, and it is red, not blue' });
    expect(item.apply).toBeUndefined();
  });
});
