/**
 * Signed RPC calls to the Alibaba Cloud control planes that provisioning needs: AgentIdentity (2025-09-01),
 * RAM (2015-05-01), STS (2015-04-01) and IMS (2019-08-15), through `@alicloud/openapi-client` `callApi`
 * (V3 `ACS3-HMAC-SHA256`), like src/identity/agent-identity-client.ts does for the data plane.
 *
 * Where parameters travel mirrors the generated SDKs (aliyun/alibabacloud-typescript-sdk `<product>/src/client.ts`):
 * AgentIdentity puts them in the form body; RAM, STS and IMS put them in the query. All are `POST /`, RPC style,
 * `reqBodyType: formData`, `bodyType: json`, `authType: AK`.
 *
 * Default hosts follow each SDK's endpoint rule: AgentIdentity `regional` → `agentidentity.<region>.aliyuncs.com`;
 * RAM `central` → `ram.aliyuncs.com`; STS `regional` → `sts.<region>.aliyuncs.com`; IMS: its endpoint map names
 * `ims.aliyuncs.com` (the regional form for other regions is UNVERIFIED, so the global host is used).
 *
 * Errors never carry secrets: they are rebuilt from code / HTTP status / RequestId, and a service message is shown
 * only when it contains none of the call's sensitive values.
 */
import OpenApiModule, { Config as OpenApiConfig, OpenApiRequest, Params } from '@alicloud/openapi-client';
import CredentialModule from '@alicloud/credentials';
import type { AlibabaCloudCredential } from '../identity/agent-identity-client.js';
import { silentLogger, type Logger } from '../log.js';
import { safeServiceMessage } from '../redact.js';
import { cjsDefault, isNetworkFailure, rpcParams, rpcRuntime } from '../acs-rpc.js';

const OpenApiClient = cjsDefault(OpenApiModule);
const Credential = cjsDefault(CredentialModule);
type OpenApiClientInstance = InstanceType<typeof OpenApiClient>;
type RuntimeOptionsArg = Parameters<OpenApiClientInstance['callApi']>[2];

export type Product = 'agentidentity' | 'ram' | 'sts' | 'ims';

export const API_VERSIONS: Record<Product, string> = {
  agentidentity: '2025-09-01',
  ram: '2015-05-01',
  sts: '2015-04-01',
  ims: '2019-08-15',
};

const PRODUCT_LABEL: Record<Product, string> = { agentidentity: 'AgentIdentity', ram: 'RAM', sts: 'STS', ims: 'IMS' };

/** Where each product's parameters go (generated SDKs). */
const PARAMS_IN: Record<Product, 'body' | 'query'> = { agentidentity: 'body', ram: 'query', sts: 'query', ims: 'query' };

export type Endpoints = Partial<Record<Product, string>>;

export function defaultEndpoint(product: Product, regionId: string): string {
  switch (product) {
    case 'agentidentity':
      return `agentidentity.${regionId}.aliyuncs.com`;
    case 'ram':
      return 'ram.aliyuncs.com';
    case 'sts':
      return `sts.${regionId}.aliyuncs.com`;
    case 'ims':
      return 'ims.aliyuncs.com';
  }
}

interface Endpoint {
  protocol: 'http' | 'https';
  host: string;
}

function parseEndpoint(value: string): Endpoint {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    const url = new URL(value);
    const protocol = url.protocol.replace(/:$/, '').toLowerCase();
    if (protocol !== 'http' && protocol !== 'https') throw new Error(`Unsupported endpoint protocol: ${protocol}`);
    return { protocol, host: url.host };
  }
  return { protocol: 'https', host: value.replace(/\/+$/, '') };
}

export class ControlPlaneError extends Error {
  constructor(
    message: string,
    readonly product: Product,
    readonly action: string,
    readonly code: string,
    readonly httpStatus?: number,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'ControlPlaneError';
  }
  /** `EntityNotExist.*` (RAM, IMS) and `EntityNotExists.*` (AgentIdentity). */
  get notFound(): boolean {
    return this.code.startsWith('EntityNotExist');
  }
  get alreadyExists(): boolean {
    return this.code.startsWith('EntityAlreadyExists');
  }
}

const CREDENTIAL_HINT =
  'Set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or configure another source of the Alibaba Cloud default credential chain (STS token, RAM role ARN, ECS RAM role, OIDC/RRSA, `aliyun configure` CLI profile).';

/** What to do about a failure, by product, action and code. */
export function controlPlaneHint(product: Product, action: string, code: string, httpStatus?: number): string {
  if (code === 'NetworkError')
    return `The ${PRODUCT_LABEL[product]} endpoint is unreachable: check the network, or the endpoint override (--${product === 'agentidentity' ? 'agent-identity-control' : product}-endpoint).`;
  if (code === 'CredentialsUnavailable' || code === 'InvalidCredentials') return `No usable Alibaba Cloud credentials. ${CREDENTIAL_HINT}`;
  if (
    code.startsWith('InvalidAccessKeyId') ||
    code === 'SignatureDoesNotMatch' ||
    code.startsWith('IncompleteSignature') ||
    code.startsWith('InvalidSecurityToken')
  ) {
    return `The AccessKey was rejected (wrong, disabled or deleted key, or wrong secret). ${CREDENTIAL_HINT}`;
  }
  if (code.startsWith('InvalidTimeStamp') || code.startsWith('SignatureNonceUsed'))
    return "The request was rejected for clock skew or replay: check this machine's clock.";
  if (code.startsWith('NoPermission') || code.startsWith('Forbidden') || httpStatus === 403) {
    switch (product) {
      case 'agentidentity':
        return `Grant the RAM identity running this command the system policy AliyunAgentIdentityFullAccess (it lacks agentidentity:${action}).`;
      case 'ram':
        return `Grant the RAM identity running this command AliyunRAMFullAccess, or at least ram:${action} (setup needs ram:CreateRole, GetRole, UpdateRole, CreatePolicy, GetPolicy, CreatePolicyVersion, AttachPolicyToRole, ListPoliciesForRole; teardown also DetachPolicyFromRole, DeletePolicy, DeleteRole).`;
      case 'ims':
        return `Grant the RAM identity running this command AliyunRAMFullAccess, or at least ram:${action} (OAuth applications are RAM actions: ram:CreateApplication, ram:GetApplication, ram:ListApplications, ram:CreateAppSecret, ram:DeleteApplication).`;
      case 'sts':
        return 'STS refused to identify the caller: check the credentials.';
    }
  }
  if (code.startsWith('Throttling')) return 'The API is throttling requests: wait a minute and run the command again (it resumes where it stopped).';
  if (httpStatus !== undefined && httpStatus >= 500) return 'The service had an internal error: run the command again later (it resumes where it stopped).';
  if (code.startsWith('MissingParameter') || code.startsWith('InvalidParameter') || code.startsWith('MalformedPolicyDocument')) {
    return 'The request was rejected as malformed: check the names and URLs given to the command (names: letters, digits, `-`; URLs absolute).';
  }
  return `See the ${PRODUCT_LABEL[product]} error code reference for ${code}.`;
}

export type ParamValue = string | number | boolean | undefined;

export interface ControlPlaneClientOptions {
  regionId: string;
  endpoints?: Endpoints;
  /** Default: the @alicloud/credentials default chain. */
  credential?: AlibabaCloudCredential;
  timeoutMs?: number;
  logger?: Logger;
}

export class ControlPlaneClient {
  readonly regionId: string;
  readonly credential: AlibabaCloudCredential;
  private readonly endpoints: Record<Product, Endpoint>;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly clients = new Map<Product, OpenApiClientInstance>();

  constructor(options: ControlPlaneClientOptions) {
    this.regionId = options.regionId;
    this.credential = options.credential ?? new Credential();
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.logger = (options.logger ?? silentLogger).child({ component: 'control-plane-client' });
    const e = options.endpoints ?? {};
    this.endpoints = {
      agentidentity: parseEndpoint(e.agentidentity ?? defaultEndpoint('agentidentity', this.regionId)),
      ram: parseEndpoint(e.ram ?? defaultEndpoint('ram', this.regionId)),
      sts: parseEndpoint(e.sts ?? defaultEndpoint('sts', this.regionId)),
      ims: parseEndpoint(e.ims ?? defaultEndpoint('ims', this.regionId)),
    };
  }

  endpointUrl(product: Product): string {
    const e = this.endpoints[product];
    return `${e.protocol}://${e.host}`;
  }

  /** One signed call. `sensitive`: values that must never reach a message or a log line. */
  async call(product: Product, action: string, params: Record<string, ParamValue>, sensitive: string[] = []): Promise<Record<string, unknown>> {
    const endpoint = this.endpoints[product];
    let client = this.clients.get(product);
    if (!client) {
      client = new OpenApiClient(
        new OpenApiConfig({
          endpoint: endpoint.host,
          protocol: endpoint.protocol,
          regionId: this.regionId,
          credential: this.credential,
          readTimeout: this.timeoutMs,
          connectTimeout: Math.min(this.timeoutMs, 5_000),
        }),
      );
      this.clients.set(product, client);
    }
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (v !== undefined) values[k] = String(v);
    const request = new OpenApiRequest(PARAMS_IN[product] === 'body' ? { body: values } : { query: values });
    const apiParams = new Params(rpcParams(action, API_VERSIONS[product], endpoint.protocol));
    const runtime = rpcRuntime(this.timeoutMs) as unknown as RuntimeOptionsArg;
    try {
      const response = await client.callApi(apiParams, request, runtime);
      const body = (response.body ?? {}) as Record<string, unknown>;
      this.logger.debug('control-plane call', { product, action, requestId: body.RequestId });
      return body;
    } catch (err) {
      const mapped = this.mapError(product, action, err, sensitive);
      this.logger.debug('control-plane call failed', { product, action, code: mapped.code, httpStatus: mapped.httpStatus, requestId: mapped.requestId });
      throw mapped;
    }
  }

  private mapError(product: Product, action: string, err: unknown, sensitive: string[]): ControlPlaneError {
    const e = (err ?? {}) as { code?: unknown; message?: unknown; name?: unknown; data?: Record<string, unknown>; cause?: { code?: unknown } };
    const data = e.data && typeof e.data === 'object' ? e.data : undefined;
    const rawCode = typeof e.code === 'string' && e.code && e.code !== 'undefined' ? e.code : undefined;
    const httpStatus = typeof data?.statusCode === 'number' ? data.statusCode : undefined;
    const requestId = typeof data?.RequestId === 'string' ? data.RequestId : undefined;
    const text = `${typeof e.name === 'string' ? e.name : ''} ${typeof e.message === 'string' ? e.message : ''}`;
    let code: string;
    if (httpStatus !== undefined) code = rawCode ?? `HTTP${httpStatus}`;
    else if (isNetworkFailure(err)) code = 'NetworkError';
    else if (rawCode === 'InvalidCredentials') code = 'InvalidCredentials';
    else if (/credential/i.test(text)) code = 'CredentialsUnavailable';
    else code = rawCode ?? 'UnknownError';

    const meta: string[] = [];
    if (httpStatus !== undefined) meta.push(`HTTP ${httpStatus}`);
    if (requestId) meta.push(`RequestId ${requestId}`);
    if (code === 'NetworkError') meta.push(`endpoint ${this.endpointUrl(product)}`);
    let message = `${PRODUCT_LABEL[product]} ${action} failed: ${code}${meta.length ? ` (${meta.join(', ')})` : ''}.`;
    const serviceMessage = httpStatus !== undefined ? safeServiceMessage(data?.Message ?? data?.message, sensitive) : undefined;
    if (serviceMessage) message += ` Service says: ${serviceMessage}`;
    message += ` Fix: ${controlPlaneHint(product, action, code, httpStatus)}`;
    return new ControlPlaneError(message, product, action, code, httpStatus, requestId);
  }
}
