/**
 * `dingtalk-mcp teardown`: delete exactly what `setup` recorded as created — never an adopted resource, never
 * anything unrecorded. It runs only in the recorded account and region. Before each delete it re-reads the
 * resource and deletes it only when its identity (identity.ts) is the one setup recorded: a resource someone
 * else re-created under the same name is left untouched, and so is one whose identity setup never learned
 * (a create interrupted before its answer; a re-run of setup resolves that). A name is never proof: an IMS
 * application whose create answer was lost is looked up by name (ListApplications) only to tell the user which
 * application to check and delete by hand. Reverse dependency order; resources
 * already gone are fine. Each deletion is struck from the record as it happens, so an interrupted teardown resumes.
 */
import type { Context } from './context.js';
import { applicationsNamed, readIdentity } from './identity.js';
import { RECORD_KEY, type ResourceRecord, type ResourceType } from './record.js';

const ORDER: ResourceType[] = [
  'apikey_credential_provider',
  'oauth2_credential_provider',
  'workload_identity',
  'ram_policy_attachment',
  'ram_policy',
  'ram_role',
  'identity_provider',
  'ims_app_secret',
  'ims_application',
];

const LABEL: Record<ResourceType, string> = {
  oauth2_credential_provider: 'DingTalk credential provider',
  apikey_credential_provider: 'DingTalk app secret provider',
  workload_identity: 'workload identity',
  ram_policy_attachment: 'policy attachment',
  ram_policy: 'RAM policy',
  ram_role: 'RAM role',
  identity_provider: 'identity provider',
  ims_app_secret: 'IMS application secret',
  ims_application: 'IMS OAuth application',
};

/** The Python kit's keys that point at a resource, cleared when that resource is deleted. */
const KIT_KEYS: Partial<Record<ResourceType, (r: ResourceRecord) => Array<[string, string | undefined]>>> = {
  workload_identity: (r) => [['workload_identity_name', r.name]],
  ram_role: (r) => [['role_arn', r.arn]],
  identity_provider: (r) => [
    ['identity_provider_name', r.name],
    ['oidc_issuer', undefined],
  ],
  ims_application: (r) => [
    ['inbound_app_id', r.appId],
    ['inbound_app_name', r.name],
  ],
  oauth2_credential_provider: (r) => [['dingtalk_provider_name', r.name]],
  apikey_credential_provider: (r) => [['dingtalk_app_secret_provider_name', r.name]],
};

export async function runTeardown(ctx: Context): Promise<number> {
  const { file, cloud, io, opts } = ctx;
  const record = file.record;
  const mine = (record?.resources ?? []).filter((r) => r.status !== 'adopted');
  mine.sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));
  if (mine.length === 0) {
    io.out(`Nothing to tear down: ${file.path} records no resources created by setup.`);
    if (record && !opts.dryRun) {
      file.record = undefined;
      file.save();
    }
    return 0;
  }
  if (!record?.accountId || !record.regionId) {
    io.err(
      `teardown: ${file.path} does not say which account and region its resources are in (accountId / regionId of ${RECORD_KEY}), so teardown will not delete anything. ` +
        'Fix: delete the resources by hand in the consoles, or restore the record setup wrote.',
    );
    return 1;
  }
  if (opts.regionId && opts.regionId !== record.regionId) {
    io.err(
      `teardown: the record is for region ${record.regionId}, but --region / AGENT_IDENTITY_REGION_ID says ${opts.regionId}. Teardown always works in the recorded region. ` +
        `Fix: drop --region (or unset AGENT_IDENTITY_REGION_ID), or point --config at the record of region ${opts.regionId}.`,
    );
    return 1;
  }
  try {
    const who = await cloud.callerIdentity();
    if (who.accountId !== record.accountId) {
      io.err(
        `teardown: the record is for account ${record.accountId}, but the credentials belong to account ${who.accountId}. Fix: use that account's credentials.`,
      );
      return 1;
    }
  } catch (e) {
    io.err(`teardown: cannot identify the Alibaba Cloud account. ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }

  io.out(
    `Plan: delete ${mine.length} resource${mine.length === 1 ? '' : 's'} recorded as created by setup in ${file.path} (account ${record.accountId}, region ${record.regionId}), each only if it is still the one setup created:`,
  );
  for (const r of mine)
    io.out(
      `  - delete  ${LABEL[r.type].padEnd(28)} ${r.type === 'ims_application' ? `${r.name} (${r.appId ?? 'id unknown'})` : r.name}${r.arn ? `  ${r.arn}` : ''}`,
    );
  const adopted = (record?.resources ?? []).filter((r) => r.status === 'adopted');
  for (const r of adopted) io.out(`  = keep    ${LABEL[r.type].padEnd(28)} ${r.name}  (not created by setup)`);
  if (opts.dryRun) {
    io.out('Dry run: nothing was deleted.');
    return 0;
  }

  let failures = 0;
  for (const r of mine) {
    try {
      const outcome = await removeIfOurs(ctx, r);
      if (typeof outcome === 'object') {
        failures += 1;
        io.err(
          `teardown: ${LABEL[r.type]} ${r.name}: setup's create of it was interrupted before IMS answered, so setup never learned its AppId; ` +
            `${outcome.namesakes.length === 1 ? 'an application' : `${outcome.namesakes.length} applications`} of that name exist (AppId ${outcome.namesakes.join(', ')}), but a name is no proof that setup made it; left untouched. ` +
            'Fix: check it in the RAM console (Identities → OAuth applications) and delete it there if it is the one setup made, then run teardown again (it then finds it gone).',
        );
        continue;
      }
      if (outcome === 'unproven') {
        failures += 1;
        io.err(
          `teardown: ${LABEL[r.type]} ${r.name} exists, but setup never learned its identity (its create was interrupted, or the record predates identity checks), so it is not proven to be setup's; left untouched. ` +
            'Fix: run `dingtalk-mcp setup` again (it confirms and records it), then teardown; or delete it by hand if it is yours.',
        );
        continue;
      }
      if (outcome === 'foreign') {
        io.err(`teardown: ${LABEL[r.type]} ${r.name} was re-created by someone else after setup; left untouched (setup's one is gone).`);
      } else {
        const verb = r.type === 'ims_app_secret' ? 'deleted with its application' : outcome === 'deleted' ? 'deleted' : 'already gone';
        io.out(`${verb}: ${LABEL[r.type]} ${r.name}`);
      }
      file.forget(r.type, r.name);
      for (const [key, value] of KIT_KEYS[r.type]?.(r) ?? []) {
        if (value === undefined || file.data[key] === value) delete file.data[key];
      }
      if (r.type === 'ims_app_secret') file.writeSecret('oidc_client_secret', undefined);
      file.save();
    } catch (e) {
      failures += 1;
      io.err(`teardown: could not delete ${LABEL[r.type]} ${r.name}. ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (failures) {
    io.err(`teardown: ${failures} resource${failures === 1 ? '' : 's'} left; they stay recorded in ${file.path}. Fix the cause above and run teardown again.`);
    return 1;
  }
  if (adopted.length === 0) {
    file.record = undefined;
    file.save();
  } else {
    file.record = { ...record!, resources: adopted };
    file.save();
  }
  io.out('Teardown complete.');
  return 0;
}

/** `namesakes`: applications that only share the name of one whose create answer was lost (their AppIds). */
type Outcome = 'deleted' | 'gone' | 'foreign' | 'unproven' | { namesakes: string[] };

async function removeIfOurs(ctx: Context, record: ResourceRecord): Promise<Outcome> {
  const r = record;
  if (r.type === 'ims_app_secret') return 'deleted';
  if (r.type === 'ims_application' && !r.appId) {
    // The create's answer was lost: an application of that name may be setup's or anyone's; never delete on a name.
    const named = await applicationsNamed(ctx.cloud, r.name);
    return named.length === 0 ? 'gone' : { namesakes: named.map((a) => a.appId) };
  }
  const found = await readIdentity(ctx.cloud, r.type, r.name, r.appId);
  if (!found) return 'gone';
  if (r.identity === undefined) return 'unproven';
  if (found.identity !== r.identity) return 'foreign';
  return (await remove(ctx, r)) ? 'deleted' : 'gone';
}

async function remove(ctx: Context, r: ResourceRecord): Promise<boolean> {
  const { cloud } = ctx;
  switch (r.type) {
    case 'oauth2_credential_provider':
      return cloud.deleteOAuth2Provider(r.name);
    case 'apikey_credential_provider':
      return cloud.deleteApiKeyProvider(r.name);
    case 'workload_identity':
      return cloud.deleteWorkloadIdentity(r.name);
    case 'ram_policy_attachment': {
      const [role, policy] = r.name.split('/') as [string, string];
      return cloud.detachPolicyFromRole(policy, role);
    }
    case 'ram_policy':
      return cloud.deletePolicy(r.name);
    case 'ram_role':
      return cloud.deleteRole(r.name);
    case 'identity_provider':
      return cloud.deleteIdentityProvider(r.name);
    case 'ims_app_secret':
      // Deleted with its application when setup created that too; a lone secret of an adopted app is not created by setup.
      return true;
    case 'ims_application':
      return r.appId ? cloud.deleteApplication(r.appId) : false;
  }
}
