/**
 * ARNs and the two RAM policy documents of the workload role, plus the small evaluator doctor uses to check them.
 *
 * Shapes (docs/reference/agent-identity.md §1.2, §4 — the kit's agent-identity-cli):
 * - workload identity ARN `acs:agentidentity:{region}:{account}:workloadidentitydirectory/default/workloadidentity/{name}`;
 * - OAuth2 provider ARN `acs:agentidentity:{region}:{account}:tokenvault/default/oauth2credentialprovider/{name}`;
 * - trust policy: Principal.Service `workload.agentidentity.aliyuncs.com`, actions `sts:AssumeRole` + `sts:SetContext`,
 *   condition `StringEquals["sts:RequestContext/agentidentity:WorkloadIdentityArn"]` = the workload identity ARN;
 * - permission policy: the kit allows `agentidentitydata:GetResourceOAuth2Token` on [workload ARN, `…/oauth2credentialprovider/*`]
 *   and GetResourceAPIKey likewise. Ours is narrower: only GetResourceOAuth2Token on this provider, and (with the document
 *   tools) GetResourceAPIKey on exactly the app-secret provider (UNVERIFIED that
 *   Agent Identity authorizes against a provider-specific ARN as it does against the kit's wildcard).
 */
export const WORKLOAD_SERVICE_PRINCIPAL = 'workload.agentidentity.aliyuncs.com';
export const WORKLOAD_ARN_CONDITION = 'sts:RequestContext/agentidentity:WorkloadIdentityArn';
export const ROLE_ACTION = 'agentidentitydata:GetResourceOAuth2Token';
export const API_KEY_ACTION = 'agentidentitydata:GetResourceAPIKey';

export function workloadIdentityArn(region: string, account: string, name: string): string {
  return `acs:agentidentity:${region}:${account}:workloadidentitydirectory/default/workloadidentity/${name}`;
}

export function apiKeyProviderArn(region: string, account: string, name: string): string {
  return `acs:agentidentity:${region}:${account}:tokenvault/default/apikeycredentialprovider/${name}`;
}

export function oauth2ProviderArn(region: string, account: string, name: string): string {
  return `acs:agentidentity:${region}:${account}:tokenvault/default/oauth2credentialprovider/${name}`;
}

/** RAM ARNs carry the role name in lower case (`acs:ram::<account>:role/<name>`). */
export function roleArn(account: string, roleName: string): string {
  return `acs:ram::${account}:role/${roleName.toLowerCase()}`;
}

/** Custom policy ARN form (derived from RAM's ARN scheme; not returned by the API). */
export function policyArn(account: string, policyName: string): string {
  return `acs:ram::${account}:policy/${policyName}`;
}

export function roleNameFromArn(arn: string): string | undefined {
  const m = /^acs:ram::\d*:role\/(.+)$/.exec(arn);
  return m?.[1];
}

export function trustPolicy(workloadArn: string): string {
  return JSON.stringify({
    Version: '1',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['sts:AssumeRole', 'sts:SetContext'],
        Principal: { Service: [WORKLOAD_SERVICE_PRINCIPAL] },
        Condition: { StringEquals: { [WORKLOAD_ARN_CONDITION]: workloadArn } },
      },
    ],
  });
}

/** GetResourceOAuth2Token on the DingTalk provider; with the document tools also GetResourceAPIKey on exactly the app-secret provider. */
export function permissionPolicy(workloadArn: string, providerArn: string, apiKeyArn?: string): string {
  return JSON.stringify({
    Version: '1',
    Statement: [
      { Effect: 'Allow', Action: [ROLE_ACTION], Resource: [workloadArn, providerArn] },
      ...(apiKeyArn ? [{ Effect: 'Allow', Action: [API_KEY_ACTION], Resource: [workloadArn, apiKeyArn] }] : []),
    ],
  });
}

/** Semantic equality of two JSON documents (key order and whitespace ignored). */
export function sameJson(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  try {
    return canonical(JSON.parse(a)) === canonical(JSON.parse(b));
  } catch {
    return false;
  }
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

// ---- evaluation (doctor) -------------------------------------------------------------------------

interface Statement {
  Effect?: string;
  Action?: string | string[];
  Resource?: string | string[];
  Principal?: { Service?: string | string[] };
  Condition?: Record<string, Record<string, string | string[]>>;
}

function statements(doc: string | undefined): Statement[] {
  if (!doc) return [];
  try {
    const parsed = JSON.parse(doc) as { Statement?: unknown };
    return Array.isArray(parsed.Statement) ? (parsed.Statement as Statement[]) : [];
  } catch {
    return [];
  }
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** RAM wildcard match (`*`, `?`), case-sensitive for resources, case-insensitive for actions. */
function wildcard(pattern: string, value: string, ignoreCase = false): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    ignoreCase ? 'i' : '',
  );
  return re.test(value);
}

export interface TrustCheck {
  ok: boolean;
  problem?: string;
}

/** Does the trust policy let Agent Identity assume the role for this workload identity? */
export function checkTrust(doc: string, workloadArn: string): TrustCheck {
  const allow = statements(doc).filter((s) => s.Effect === 'Allow');
  const forService = allow.filter((s) => list(s.Principal?.Service).includes(WORKLOAD_SERVICE_PRINCIPAL));
  if (forService.length === 0) return { ok: false, problem: `no statement trusts the service ${WORKLOAD_SERVICE_PRINCIPAL}` };
  const assumes = forService.filter((s) => list(s.Action).some((a) => wildcard(a, 'sts:AssumeRole', true)));
  if (assumes.length === 0) return { ok: false, problem: 'the trust policy does not allow sts:AssumeRole' };
  const bound = assumes.some((s) => {
    const cond = s.Condition?.StringEquals?.[WORKLOAD_ARN_CONDITION];
    return cond === undefined || list(cond).includes(workloadArn);
  });
  if (!bound) return { ok: false, problem: `its ${WORKLOAD_ARN_CONDITION} condition names another workload identity` };
  return { ok: true };
}

/**
 * Setup adopts an existing role only when its trust policy is exactly {@link trustPolicy}: one statement, Allow,
 * Principal only `Service` = the Agent Identity service, Action exactly `sts:AssumeRole` + `sts:SetContext`, Condition
 * only `StringEquals` {WorkloadIdentityArn: this workload identity}. A single value may be a string or a one-element
 * array, and order is free. Returns what differs, or undefined when it fits.
 */
export function trustProblem(doc: string, workloadArn: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(doc);
  } catch {
    return 'its trust policy is not valid JSON';
  }
  const p = (parsed ?? {}) as Record<string, unknown>;
  const extraTop = Object.keys(p).filter((k) => k !== 'Version' && k !== 'Statement');
  if (extraTop.length) return `its trust policy has other top-level keys (${extraTop.join(', ')})`;
  const all = Array.isArray(p.Statement) ? (p.Statement as Array<Record<string, unknown>>) : [];
  if (all.length !== 1) return `its trust policy has ${all.length} statements; exactly one is expected`;
  const s = all[0] ?? {};
  const extra = Object.keys(s).filter((k) => !['Effect', 'Action', 'Principal', 'Condition'].includes(k));
  if (extra.length) return `its trust statement has other keys (${extra.join(', ')})`;
  if (s.Effect !== 'Allow') return `its trust statement's Effect is ${String(s.Effect)}, not Allow`;
  const principal = (s.Principal ?? {}) as Record<string, string | string[]>;
  const principals = Object.keys(principal);
  const services = list(principal.Service);
  if (principals.length !== 1 || services.length !== 1 || services[0] !== WORKLOAD_SERVICE_PRINCIPAL) {
    return `its trust statement's Principal is not only Service ${WORKLOAD_SERVICE_PRINCIPAL}`;
  }
  const actions = [...new Set(list(s.Action as string | string[]))].sort();
  if (actions.join(',') !== 'sts:AssumeRole,sts:SetContext')
    return `its trust statement's Action is ${actions.join(' + ') || 'empty'}, not sts:AssumeRole + sts:SetContext`;
  const cond = (s.Condition ?? {}) as Record<string, Record<string, string | string[]>>;
  const eq = cond.StringEquals ?? {};
  const values = list(eq[WORKLOAD_ARN_CONDITION]);
  if (Object.keys(cond).length !== 1 || Object.keys(eq).length !== 1 || values.length !== 1 || values[0] !== workloadArn) {
    return `its trust statement's Condition is not exactly StringEquals ${WORKLOAD_ARN_CONDITION} = ${workloadArn}`;
  }
  return undefined;
}

/** Does one of these policy documents allow `action` (default GetResourceOAuth2Token) on both the workload and the provider ARN? */
export function allowsTokenFetch(docs: string[], workloadArn: string, providerArn: string, action = ROLE_ACTION): boolean {
  const allowed = (resource: string) =>
    docs.some((d) =>
      statements(d).some(
        (s) => s.Effect === 'Allow' && list(s.Action).some((a) => wildcard(a, action, true)) && list(s.Resource).some((r) => wildcard(r, resource)),
      ),
    );
  const denied = docs.some((d) =>
    statements(d).some(
      (s) =>
        s.Effect === 'Deny' &&
        list(s.Action).some((a) => wildcard(a, action, true)) &&
        list(s.Resource).some((r) => wildcard(r, workloadArn) || wildcard(r, providerArn)),
    ),
  );
  return !denied && allowed(workloadArn) && allowed(providerArn);
}

/** System policies that include GetResourceOAuth2Token (reference §1.4). */
export const SYSTEM_POLICIES_WITH_TOKEN_FETCH = ['AliyunAgentIdentityDataGetCredentialAccess', 'AliyunAgentIdentityDataFullAccess'];
