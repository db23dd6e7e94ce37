/**
 * An emulator of the Alibaba Cloud control-plane APIs that `dingtalk-mcp setup|teardown|doctor` call, for the
 * tests and `--sandbox`. Loopback only. One server answers all four products; the API version tells them apart:
 *
 * | Product | Version | Actions |
 * |---|---|---|
 * | AgentIdentity | 2025-09-01 | Create/Get/Update/Delete WorkloadIdentity, ListWorkloadIdentities, Create/Get/Update/Delete IdentityProvider, Create/Get/Delete OAuth2CredentialProvider, Create/Get/Delete APIKeyCredentialProvider |
 * | RAM | 2015-05-01 | Create/Get/Update/Delete Role, Create/Get/Delete Policy, CreatePolicyVersion, AttachPolicyToRole, DetachPolicyFromRole, ListPoliciesForRole |
 * | STS | 2015-04-01 | GetCallerIdentity |
 * | IMS | 2019-08-15 | Create/Get/Delete Application, ListApplications, CreateAppSecret |
 *
 * Parameter and response field names follow the generated SDKs (aliyun/alibabacloud-typescript-sdk,
 * `agentidentity-20250901`, `ram-20150501`, `sts-20150401`, `ims-20190815`; see docs/provisioning.md).
 * One module per product holds its handler table (./agent-identity.ts, ./ram.ts, ./sts.ts, ./ims.ts); the state and
 * its lookups are ./state.ts. Requests are RPC `POST /`, signed V3 (`ACS3-HMAC-SHA256`) or V2, verified by ../acs-rpc.ts.
 *
 * Error codes. VERIFIED: `EntityAlreadyExists.IdentityProvider`, `EntityAlreadyExists.OAuth2CredentialProvider`,
 * `EntityNotExists.IdentityProvider`, `EntityNotExists.OAuth2CredentialProvider` (reference §1.3, the kit's
 * prepare.py/clear.py), IMS `EntityNotExist.Application` (§1.3), RAM `EntityNotExist.Role` and
 * `DeleteConflict.Role.Policy` (DeleteRole API reference). MODELED (same naming, unconfirmed):
 * `EntityAlreadyExists.WorkloadIdentity`, `EntityNotExists.WorkloadIdentity`, `EntityAlreadyExists.Role`,
 * `EntityAlreadyExists.Policy`, `EntityNotExist.Policy`, `EntityAlreadyExists.Role.Policy`,
 * `EntityNotExist.Role.Policy`, `DeleteConflict.Policy.Role`, `NoPermission` (403) wording.
 *
 * It also serves an OIDC discovery document at `/.well-known/openid-configuration`, so HTTP-mode checks
 * (`doctor` fetching an identity provider's DiscoveryURL) run without the internet.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AcsError, createSignatureVerifier, firstHeader, readRpcInput, sendAcsError, sendAcsJson as send, toAcsError } from '../acs-rpc.js';
import { FaultQueue, listen, shutdown } from '../http.js';
import { agentIdentityHandlers } from './agent-identity.js';
import { imsHandlers } from './ims.js';
import { ramHandlers } from './ram.js';
import { createAccount, type Account, type ControlPlaneSeed, type ControlPlaneState, type Handler } from './state.js';
import { stsHandlers } from './sts.js';

export type {
  ControlPlaneSeed,
  ControlPlaneState,
  EmuApplication,
  EmuIdentityProvider,
  EmuOAuth2Provider,
  EmuPolicy,
  EmuRole,
  EmuWorkloadIdentity,
} from './state.js';

export const CONTROL_PLANE_VERSIONS = {
  agentidentity: '2025-09-01',
  ram: '2015-05-01',
  sts: '2015-04-01',
  ims: '2019-08-15',
} as const;
type Product = keyof typeof CONTROL_PLANE_VERSIONS;

/** Per product: its RAM action namespace and its handler table (the table's keys are the actions it answers). */
const PRODUCTS: Record<Product, { ramPrefix: string; handlers: (a: Account) => Record<string, Handler> }> = {
  agentidentity: { ramPrefix: 'agentidentity', handlers: agentIdentityHandlers },
  ram: { ramPrefix: 'ram', handlers: ramHandlers },
  sts: { ramPrefix: 'sts', handlers: stsHandlers },
  // IMS OAuth applications are authorized as `ram:*` actions (Agent Identity DingTalk tutorial).
  ims: { ramPrefix: 'ram', handlers: imsHandlers },
};

export interface ControlPlaneAccessKey {
  accessKeyId: string;
  accessKeySecret: string;
  /** RAM-style actions this identity may call, e.g. `agentidentity:*`, `ram:CreateRole`, `*` (default). */
  allowedActions?: string[] | '*';
  /** Default `dingtalk-mcp-admin`. */
  userName?: string;
}

export interface ControlPlaneEmulatorOptions {
  host?: string;
  port?: number;
  accountId?: string;
  regionId?: string;
  accessKeys: ControlPlaneAccessKey[];
  seed?: ControlPlaneSeed;
}

export interface ControlPlaneCall {
  product: Product | 'unknown';
  action: string;
  /** Parameter names only: values may carry secrets (a client secret, a policy). */
  paramNames: string[];
  status: number;
  code?: string;
  requestId: string;
}

export interface ControlPlaneFault {
  action: string;
  status: number;
  code: string;
  message?: string;
  /** How many calls fail; default 1. */
  times?: number;
}

export interface ControlPlaneEmulator {
  readonly url: string;
  /** `<url>/.well-known/openid-configuration` */
  readonly discoveryUrl: string;
  readonly accountId: string;
  readonly calls: ControlPlaneCall[];
  state(): ControlPlaneState;
  /** Change state directly (seed a misconfiguration in a test). */
  mutate(fn: (state: ControlPlaneState) => void): void;
  injectFault(fault: ControlPlaneFault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

function actionAllowed(allowed: string[] | '*', ramAction: string): boolean {
  if (allowed === '*') return true;
  return allowed.some((p) => p === '*' || p === ramAction || (p.endsWith(':*') && ramAction.startsWith(p.slice(0, -1))));
}

export async function startControlPlaneEmulator(options: ControlPlaneEmulatorOptions): Promise<ControlPlaneEmulator> {
  const host = options.host ?? '127.0.0.1';
  const keys = new Map(options.accessKeys.map((k) => [k.accessKeyId, k]));
  const calls: ControlPlaneCall[] = [];
  const faults = new FaultQueue<ControlPlaneFault>();
  let baseUrl = '';
  const account = createAccount(options.accountId ?? '1234567890123456', options.regionId ?? 'cn-beijing', () => baseUrl, options.seed);
  const handlers = Object.fromEntries((Object.keys(PRODUCTS) as Product[]).map((product) => [product, PRODUCTS[product].handlers(account)])) as Record<
    Product,
    Record<string, Handler>
  >;

  const verifier = createSignatureVerifier<ControlPlaneAccessKey>((accessKeyId, securityToken) => {
    const key = keys.get(accessKeyId);
    if (!key) throw new AcsError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    if (securityToken !== undefined)
      throw new AcsError(400, 'InvalidSecurityToken.MismatchWithAccessKey', 'Specified SecurityToken mismatch with the AccessKey.');
    return { secret: key.accessKeySecret, principal: key };
  });

  async function handleRpc(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID().toUpperCase();
    const call: ControlPlaneCall = { product: 'unknown', action: '', paramNames: [], status: 200, requestId };
    try {
      const input = await readRpcInput(req, url);
      call.action = firstHeader(req, 'x-acs-action') ?? input.query.Action ?? '';
      call.paramNames = Object.keys(input.params).sort();
      if (req.method !== 'POST' && req.method !== 'GET') throw new AcsError(405, 'UnsupportedHTTPMethod', 'Specified HTTP method is not supported.');
      if (!call.action)
        throw new AcsError(400, 'MissingParameter.Action', 'The input parameter "Action" that is mandatory for processing this request is not supplied.');
      const version = firstHeader(req, 'x-acs-version') ?? input.query.Version;
      const product = (Object.keys(CONTROL_PLANE_VERSIONS) as Product[]).find((p) => CONTROL_PLANE_VERSIONS[p] === version);
      if (!product) throw new AcsError(400, 'InvalidVersion', `Specified parameter Version "${version ?? ''}" is not valid.`);
      call.product = product;
      const handler = Object.hasOwn(handlers[product], call.action) ? handlers[product][call.action] : undefined;
      if (!handler) throw new AcsError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');

      const authorization = firstHeader(req, 'authorization');
      let caller: ControlPlaneAccessKey;
      if (authorization) caller = verifier.verifyV3(req, url.pathname, input.query, input.body, authorization);
      else if (input.query.Signature !== undefined) caller = verifier.verifyV2(req.method ?? 'POST', input.query, input.form);
      else throw new AcsError(400, 'MissingAuthorization', 'This action requires a signed request.');

      const fault = faults.take((f) => f.action === call.action || f.action === '*');
      if (fault) throw new AcsError(fault.status, fault.code, fault.message ?? `Injected fault for ${call.action}.`);
      const ramAction = `${PRODUCTS[product].ramPrefix}:${call.action}`;
      // STS GetCallerIdentity needs no permission (any valid credential may ask who it is).
      if (call.action !== 'GetCallerIdentity' && !actionAllowed(caller.allowedActions ?? '*', ramAction)) {
        throw new AcsError(403, 'NoPermission', `You are not authorized to do this operation. Action: ${ramAction}.`);
      }
      const result = handler(input.params, caller);
      send(res, 200, { RequestId: requestId, ...result }, requestId);
    } catch (err) {
      const e = toAcsError(err);
      call.status = e.status;
      call.code = e.code;
      sendAcsError(res, e, requestId, new URL(baseUrl).host);
    } finally {
      calls.push(call);
    }
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', baseUrl || 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      send(
        res,
        200,
        {
          issuer: baseUrl,
          authorization_endpoint: `${baseUrl}/oauth2/v1/auth`,
          token_endpoint: `${baseUrl}/v1/token`,
          jwks_uri: `${baseUrl}/v1/keys`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
        },
        randomUUID(),
      );
      return;
    }
    if (url.pathname !== '/') {
      send(res, 404, { Code: 'NotFound', Message: 'No such page.' }, randomUUID());
      return;
    }
    handleRpc(req, res, url).catch(() => {
      if (!res.headersSent) send(res, 500, { Code: 'InternalError', Message: 'Internal error.' }, randomUUID());
      else res.destroy();
    });
  });

  baseUrl = await listen(server, host, options.port);

  const snapshot = (): ControlPlaneState => structuredClone(account.state);

  return {
    url: baseUrl,
    discoveryUrl: `${baseUrl}/.well-known/openid-configuration`,
    accountId: account.accountId,
    calls,
    state: snapshot,
    mutate(fn) {
      fn(account.state);
    },
    injectFault(fault) {
      faults.inject(fault);
    },
    clearFaults() {
      faults.clear();
    },
    close: () => shutdown(server),
  };
}
