/** RAM 2015-05-01 (ram-20150501): roles, custom policies and their versions, attachments. */
import { AcsError, requiredParam } from '../acs-rpc.js';
import { isObject, isoSeconds, randomDigits, type Account, type EmuPolicy, type EmuRole, type Handler } from './state.js';

function policyDocument(params: Record<string, string>, name: string): string {
  const raw = requiredParam(params, name);
  try {
    const doc = JSON.parse(raw) as { Statement?: unknown };
    if (!isObject(doc) || !Array.isArray(doc.Statement)) throw new Error('no Statement');
  } catch {
    // MODELED code.
    throw new AcsError(400, 'MalformedPolicyDocument', `The parameter ${name} is not a valid policy document.`);
  }
  return raw;
}

const policyView = (p: EmuPolicy) => {
  const { versions: _versions, ...rest } = p;
  return rest;
};

export function ramHandlers(a: Account): Record<string, Handler> {
  const { roles, state } = a;
  const roleView = (r: EmuRole) => ({ ...r });

  return {
    CreateRole(p) {
      const name = requiredParam(p, 'RoleName');
      roles.assertFree(name);
      const now = isoSeconds();
      const role: EmuRole = {
        RoleName: name,
        RoleId: randomDigits(19),
        Arn: a.roleArn(name),
        AssumeRolePolicyDocument: policyDocument(p, 'AssumeRolePolicyDocument'),
        ...(p.Description ? { Description: p.Description } : {}),
        MaxSessionDuration: Number(p.MaxSessionDuration ?? 3600) || 3600,
        CreateDate: now,
        UpdateDate: now,
      };
      return { Role: roleView(roles.add(role)) };
    },
    GetRole: (p) => ({ Role: roleView(roles.get(requiredParam(p, 'RoleName'))) }),
    UpdateRole(p) {
      const role = roles.get(requiredParam(p, 'RoleName'));
      if (p.NewAssumeRolePolicyDocument) role.AssumeRolePolicyDocument = policyDocument(p, 'NewAssumeRolePolicyDocument');
      if (p.NewDescription !== undefined) role.Description = p.NewDescription;
      role.UpdateDate = isoSeconds();
      return { Role: roleView(role) };
    },
    DeleteRole(p) {
      const role = roles.get(requiredParam(p, 'RoleName'));
      if ((state.attachments[role.RoleName.toLowerCase()] ?? []).length > 0) {
        throw new AcsError(409, 'DeleteConflict.Role.Policy', 'The role cannot have any attached policies when you delete it.');
      }
      roles.remove(role);
      return {};
    },
    CreatePolicy(p) {
      const name = requiredParam(p, 'PolicyName');
      if (a.findPolicy(name)) throw new AcsError(409, 'EntityAlreadyExists.Policy', 'The policy already exists.');
      const now = isoSeconds();
      const policy: EmuPolicy = {
        PolicyName: name,
        PolicyType: 'Custom',
        ...(p.Description ? { Description: p.Description } : {}),
        DefaultVersion: 'v1',
        versions: [{ VersionId: 'v1', PolicyDocument: policyDocument(p, 'PolicyDocument'), CreateDate: now }],
        CreateDate: now,
        UpdateDate: now,
      };
      state.policies.push(policy);
      return { Policy: policyView(policy) };
    },
    GetPolicy(p) {
      const policy = a.policyOrThrow(requiredParam(p, 'PolicyName'), requiredParam(p, 'PolicyType'));
      const v = policy.versions.find((x) => x.VersionId === policy.DefaultVersion)!;
      const attachmentCount = Object.values(state.attachments).filter((list) => list.includes(`${policy.PolicyType}:${policy.PolicyName}`)).length;
      return {
        Policy: { ...policyView(policy), AttachmentCount: attachmentCount },
        DefaultPolicyVersion: { ...v, IsDefaultVersion: true },
      };
    },
    CreatePolicyVersion(p) {
      const policy = a.policyOrThrow(requiredParam(p, 'PolicyName'));
      const doc = policyDocument(p, 'PolicyDocument');
      if (policy.versions.length >= 5) {
        if (p.RotateStrategy !== 'DeleteOldestNonDefaultVersionWhenLimitExceeded') {
          throw new AcsError(409, 'LimitExceeded.Policy.Version', 'The number of policy versions exceeds the limit.');
        }
        const oldest = policy.versions.find((v) => v.VersionId !== policy.DefaultVersion);
        policy.versions = policy.versions.filter((v) => v !== oldest);
      }
      const next = Math.max(...policy.versions.map((v) => Number(v.VersionId.slice(1)) || 0)) + 1;
      const version = { VersionId: `v${next}`, PolicyDocument: doc, CreateDate: isoSeconds() };
      policy.versions.push(version);
      if (p.SetAsDefault === 'true') policy.DefaultVersion = version.VersionId;
      policy.UpdateDate = version.CreateDate;
      return { PolicyVersion: { ...version, IsDefaultVersion: policy.DefaultVersion === version.VersionId } };
    },
    DeletePolicy(p) {
      const policy = a.policyOrThrow(requiredParam(p, 'PolicyName'));
      const key = `Custom:${policy.PolicyName}`;
      if (Object.values(state.attachments).some((list) => list.includes(key))) {
        throw new AcsError(409, 'DeleteConflict.Policy.Role', 'The policy is attached to a role; detach it first.');
      }
      if (policy.versions.length > 1 && p.CascadingDelete !== 'true') {
        throw new AcsError(409, 'DeleteConflict.Policy.Version', 'The policy has non-default versions; delete them first.');
      }
      state.policies = state.policies.filter((x) => x !== policy);
      return {};
    },
    AttachPolicyToRole(p) {
      const type = requiredParam(p, 'PolicyType');
      const policy = a.policyOrThrow(requiredParam(p, 'PolicyName'), type);
      const role = roles.get(requiredParam(p, 'RoleName'));
      const list = state.attachments[role.RoleName.toLowerCase()] ?? [];
      if (list.includes(`${type}:${policy.PolicyName}`))
        throw new AcsError(409, 'EntityAlreadyExists.Role.Policy', 'The policy is already attached to the role.');
      a.attach(role.RoleName, type, policy.PolicyName);
      return {};
    },
    DetachPolicyFromRole(p) {
      const type = requiredParam(p, 'PolicyType');
      const policyName = requiredParam(p, 'PolicyName');
      const role = roles.get(requiredParam(p, 'RoleName'));
      const key = role.RoleName.toLowerCase();
      const list = state.attachments[key] ?? [];
      const entry = list.find((e) => e.toLowerCase() === `${type}:${policyName}`.toLowerCase());
      if (!entry) throw new AcsError(404, 'EntityNotExist.Role.Policy', 'The policy is not attached to the role.');
      state.attachments[key] = list.filter((e) => e !== entry);
      return {};
    },
    ListPoliciesForRole(p) {
      const role = roles.get(requiredParam(p, 'RoleName'));
      const list = state.attachments[role.RoleName.toLowerCase()] ?? [];
      const policies = list.map((entry) => {
        const [type, name] = entry.split(':') as [string, string];
        const policy = a.findPolicy(name, type);
        return {
          PolicyName: name,
          PolicyType: type,
          DefaultVersion: policy?.DefaultVersion ?? 'v1',
          ...(policy?.Description ? { Description: policy.Description } : {}),
          AttachDate: policy?.CreateDate ?? a.t0,
        };
      });
      return { Policies: { Policy: policies } };
    },
  };
}
