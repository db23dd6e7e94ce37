/**
 * Identities of the resources setup creates that a re-created resource of the same name never shares (field
 * names: cloud.ts). Setup records one per resource it creates; teardown re-reads the resource and deletes it only
 * when the identity still matches, so a resource someone else re-created under the same name is left alone.
 */
import type { Application, Cloud, Policy, Role } from './cloud.js';
import type { ResourceType } from './record.js';

export const roleIdentity = (r: Role): string | undefined => r.id ?? r.createDate;
export const policyIdentity = (p: Policy): string | undefined => p.createDate;
export const appIdentity = (a: Application): string => a.appId;
export const attachmentIdentity = (role: Role, policy: Policy): string | undefined => {
  const r = roleIdentity(role);
  const p = policyIdentity(policy);
  return r && p ? `${r}|${p}` : undefined;
};

/** `undefined`: the resource does not exist. Otherwise its identity (`undefined` inside when the API returned none). */
export async function readIdentity(cloud: Cloud, type: ResourceType, name: string, appId?: string): Promise<{ identity: string | undefined } | undefined> {
  switch (type) {
    case 'ram_role': {
      const role = await cloud.getRole(name);
      return role && { identity: roleIdentity(role) };
    }
    case 'ram_policy': {
      const policy = await cloud.getPolicy(name);
      return policy && { identity: policyIdentity(policy) };
    }
    case 'ram_policy_attachment': {
      const [roleName, policyName] = name.split('/') as [string, string];
      const role = await cloud.getRole(roleName);
      if (!role) return undefined;
      const attached = (await cloud.listPoliciesForRole(roleName)).some((p) => p.type === 'Custom' && p.name.toLowerCase() === policyName.toLowerCase());
      const policy = attached ? await cloud.getPolicy(policyName) : undefined;
      return policy && { identity: attachmentIdentity(role, policy) };
    }
    case 'workload_identity': {
      const wi = await cloud.getWorkloadIdentity(name);
      return wi && { identity: wi.createTime };
    }
    case 'identity_provider': {
      const idp = await cloud.getIdentityProvider(name);
      return idp && { identity: idp.createTime };
    }
    case 'oauth2_credential_provider': {
      const p = await cloud.getOAuth2Provider(name);
      return p && { identity: p.createTime };
    }
    case 'apikey_credential_provider': {
      const p = await cloud.getApiKeyProvider(name);
      return p && { identity: p.createTime };
    }
    case 'ims_application': {
      const app = appId ? await cloud.getApplication(appId) : undefined;
      // An AppId names one application forever; the name check catches a record pointed at another app.
      return app && { identity: app.appName === undefined || app.appName === name ? appIdentity(app) : `${app.appId} (named ${app.appName})` };
    }
    case 'ims_app_secret':
      return undefined;
  }
}

/** IMS applications named `appName` (ListApplications), for a create whose answer was lost. */
export async function applicationsNamed(cloud: Cloud, appName: string): Promise<Application[]> {
  return (await cloud.listApplications()).filter((a) => a.appName === appName);
}
