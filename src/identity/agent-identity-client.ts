/**
 * Raw calls to the Alibaba Cloud Agent Identity data plane (AgentIdentityData, API version 2025-11-27).
 *
 * Wire facts (docs/reference/agent-identity.md §1, §1.1): RPC style, `POST /`, parameters in an
 * `application/x-www-form-urlencoded` body, JSON response, every response carries `RequestId`.
 * Structured parameters (`Scopes`, `CustomParameters`, `UserIdentifier`) travel as JSON strings.
 * Every action is signed (`authType: 'AK'`, V3 `ACS3-HMAC-SHA256` via `callApi` → `doRequest`) except
 * `AssumeRoleForWorkloadIdentity`, which is anonymous: the workload access token in the body is the credential.
 * Like the generated SDK, the anonymous call goes through `doRPCRequest` (no signature is added when
 * `authType` is `Anonymous`).
 *
 * No method ever logs or puts into an error message a token, JWT, AccessKey secret or security token:
 * SDK error messages can embed request data, so errors are rebuilt from code / HTTP status / RequestId.
 */
import type OpenApiModule from '@alicloud/openapi-client';
import type CredentialModule from '@alicloud/credentials';
import { AgentIdentityError } from './types.js';
import { silentLogger, type Logger } from '../log.js';
import { safeServiceMessage } from '../redact.js';
import { cjsDefault, isNetworkFailure, NETWORK_CODES, rpcParams, rpcRuntime } from '../acs-rpc.js';

/** The Alibaba Cloud SDK, loaded on first use: serving MCP starts without paying for it. */
async function importSdk() {
  const [openapi, credentials] = await Promise.all([import('@alicloud/openapi-client'), import('@alicloud/credentials')]);
  return {
    OpenApiClient: cjsDefault(openapi.default),
    OpenApiConfig: openapi.Config,
    OpenApiRequest: openapi.OpenApiRequest,
    Params: openapi.Params,
    Credential: cjsDefault(credentials.default),
    CredentialConfig: credentials.Config,
  };
}
let sdk: ReturnType<typeof importSdk> | undefined;
const loadSdk = () => (sdk ??= importSdk());

export type AlibabaCloudCredential = InstanceType<typeof CredentialModule.default>;
type OpenApiClientInstance = InstanceType<typeof OpenApiModule.default>;
type RuntimeOptionsArg = Parameters<OpenApiClientInstance['callApi']>[2];

export const AGENT_IDENTITY_DATA_API_VERSION = '2025-11-27';
export const DEFAULT_REGION_ID = 'cn-beijing';

export interface AgentIdentityClientOptions {
  /** Default `cn-beijing` (env `AGENT_IDENTITY_REGION_ID` is read by the config layer, not here). */
  regionId?: string;
  /**
   * Default `agentidentitydata.{regionId}.aliyuncs.com` over HTTPS. A full URL (`http://127.0.0.1:1234`)
   * selects protocol and host, for emulators and private endpoints.
   */
  endpoint?: string;
  /** The server's own credential. Default: the @alicloud/credentials default chain (`new Credential()`). */
  credential?: AlibabaCloudCredential;
  /** Read timeout per call (default 10 s); the connect timeout is capped at 5 s. */
  timeoutMs?: number;
  logger?: Logger;
}

/** Temporary credentials returned by AssumeRoleForWorkloadIdentity. */
export interface StsCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken: string;
  /** ISO-8601 as returned by the service, e.g. `2026-01-01T00:00:00Z`. */
  expiration: string;
}

export interface WorkloadAccessTokenResult {
  workloadAccessToken: string;
  requestId?: string;
}

export interface GetResourceOAuth2TokenRequest {
  workloadAccessToken: string;
  providerName: string;
  scopes: string[];
  flow: 'USER_FEDERATION';
  /** → `ResourceOAuth2ReturnURL`; must be in the workload identity's AllowedResourceOAuth2ReturnURLs. */
  returnUrl: string;
  /** → `CustomState`, echoed to the return URL as `state`. */
  customState: string;
  forceAuthentication?: boolean;
  customParameters?: Record<string, string>;
  /** → `SessionURI`: poll a session started earlier. */
  sessionUri?: string;
}

export interface GetResourceOAuth2TokenResult {
  accessToken?: string;
  authorizationUrl?: string;
  sessionUri?: string;
  /** Seen: `IN_PROGRESS`. Other values UNVERIFIED. */
  sessionStatus?: string;
  requestId?: string;
}

export type UserIdentifier = { UserId: string } | { UserJWT: string };

export interface AssumeRoleResult extends StsCredentials {
  requestId?: string;
}

export type CredentialCheck = { ok: true; type: string; providerName?: string } | { ok: false; reason: string };

interface Endpoint {
  protocol: 'http' | 'https';
  host: string;
}

export function resolveEndpoint(regionId: string, endpoint?: string): Endpoint {
  if (!endpoint) return { protocol: 'https', host: `agentidentitydata.${regionId}.aliyuncs.com` };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) {
    const url = new URL(endpoint);
    const protocol = url.protocol.replace(/:$/, '').toLowerCase();
    if (protocol !== 'http' && protocol !== 'https') {
      throw new Error(`Unsupported Agent Identity endpoint protocol: ${protocol}`);
    }
    return { protocol, host: url.host };
  }
  return { protocol: 'https', host: endpoint.replace(/\/+$/, '') };
}

const CREDENTIAL_HINT =
  'Check ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET, or whatever the Alibaba Cloud default credential chain resolves to (STS token, RAM role ARN, ECS RAM role, OIDC/RRSA, CLI profile).';

/** What to do about a failure, by action and code. */
/** `returnUrl`: the ResourceOAuth2ReturnURL the call sent, so the hint names the actual callback URL. */
export function hintFor(action: string, code: string, httpStatus?: number, returnUrl?: string): string {
  if (code === 'NetworkError') {
    return 'The Agent Identity endpoint is unreachable: check AGENT_IDENTITY_ENDPOINT / AGENT_IDENTITY_REGION_ID and the network.';
  }
  if (code === 'CredentialsUnavailable') {
    // The same advice as `dingtalk-mcp doctor` gives when the chain finds nothing.
    return 'No Alibaba Cloud credentials were found (the default credential chain has none). Set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure`, or use an ECS RAM role / RRSA; `dingtalk-mcp doctor` checks them.';
  }
  if (code === 'InvalidCredentials') {
    return `No usable Alibaba Cloud credentials. ${CREDENTIAL_HINT}`;
  }
  if (code.startsWith('InvalidAccessKeyId') || code === 'SignatureDoesNotMatch' || code.startsWith('IncompleteSignature')) {
    return action === 'GetResourceOAuth2Token'
      ? `The request signature was rejected. If it was signed with the workload's STS credentials, set AGENT_IDENTITY_USE_STS=false to test with the server's own credentials; otherwise: ${CREDENTIAL_HINT}`
      : `The server's AccessKey was rejected. ${CREDENTIAL_HINT}`;
  }
  if (code.startsWith('InvalidSecurityToken')) {
    return 'The STS security token was rejected (expired or mismatched); it is fetched again on the next call.';
  }
  if (code.startsWith('SignatureNonceUsed') || code.startsWith('InvalidTimeStamp')) {
    return "The request was rejected as a replay or for clock skew: check the host's clock.";
  }
  if (code.startsWith('EntityNotExists.WorkloadIdentity') || code.startsWith('EntityNotExist.WorkloadIdentity')) {
    return 'The workload identity does not exist: check AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME (and the region).';
  }
  if (code.startsWith('EntityNotExists.OAuth2CredentialProvider') || code.startsWith('EntityNotExist.OAuth2CredentialProvider')) {
    return 'The OAuth2 credential provider does not exist: check the configured DingTalk credential provider name in the Agent Identity console.';
  }
  if (code.startsWith('EntityNotExists.APIKeyCredentialProvider') || code.startsWith('EntityNotExist.APIKeyCredentialProvider')) {
    return 'The API-key credential provider holding the DingTalk app secret does not exist: check AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER, or run `dingtalk-mcp setup` to create it.';
  }
  if (/ReturnURL/i.test(code)) {
    return `The return URL is not allowed: add ${returnUrl ?? 'this server\'s callback URL (APP_REDIRECT_URI + "/callback")'} to the workload identity's AllowedResourceOAuth2ReturnURLs.`;
  }
  if (code.startsWith('InvalidWorkloadAccessToken')) {
    return 'The workload access token was rejected (expired or invalid); it is minted again on the next call.';
  }
  if (code.startsWith('InvalidUserToken')) {
    return "The user's JWT was rejected: it must be unexpired and issued by the identity provider bound to the workload identity.";
  }
  if (code.startsWith('NoPermission') || code.startsWith('Forbidden') || httpStatus === 403) {
    switch (action) {
      case 'CompleteResourceTokenAuth':
        return "Grant the system policy AliyunAgentIdentityDataCompleteAuthAccess to the server's RAM identity (the credential chain's user or role).";
      case 'GetResourceOAuth2Token':
      case 'GetResourceAPIKey':
        return `The signing identity may not fetch this credential: the workload identity's RAM role needs agentidentitydata:${action} (AliyunAgentIdentityDataGetCredentialAccess), or with AGENT_IDENTITY_USE_STS=false the server's RAM identity does.`;
      case 'GetWorkloadAccessToken':
      case 'GetWorkloadAccessTokenForJWT':
      case 'GetWorkloadAccessTokenForUserId':
        return "Grant the server's RAM identity permission to mint workload access tokens (e.g. AliyunAgentIdentityDataFullAccess).";
      default:
        return "The server's RAM identity lacks permission for this action.";
    }
  }
  if (code === 'InvalidParameter.SessionURI' || code.startsWith('InvalidSession')) {
    return 'The authorization session is unknown, expired, already completed, or belongs to another user: start the authorization again.';
  }
  if (code.startsWith('MissingParameter') || code.startsWith('InvalidParameter')) {
    return 'The request was malformed; this is a bug in the server or its configuration (scopes, provider name, return URL).';
  }
  if (code.startsWith('Throttling')) return 'Agent Identity is throttling requests: retry later.';
  if (httpStatus !== undefined && httpStatus >= 500) return 'Agent Identity had an internal error: retry later.';
  return 'See the Agent Identity documentation for this error code.';
}

interface SdkErrorLike {
  code?: unknown;
  message?: unknown;
  data?: Record<string, unknown>;
  statusCode?: unknown;
}

interface CallSpec {
  action: string;
  body: Record<string, string | boolean | number>;
  anonymous?: boolean;
  signing?: { accessKeyId: string; accessKeySecret: string; securityToken: string };
  /** Values that must never appear in messages or logs. */
  sensitive: string[];
}

export class AgentIdentityClient {
  readonly regionId: string;
  readonly endpoint: Endpoint;
  private credential: AlibabaCloudCredential | undefined;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private serverClient: OpenApiClientInstance | undefined;

  /** Pass `{}` for the defaults (cn-beijing, default credential chain). */
  constructor(options: AgentIdentityClientOptions) {
    this.regionId = options.regionId ?? DEFAULT_REGION_ID;
    this.endpoint = resolveEndpoint(this.regionId, options.endpoint);
    this.credential = options.credential; // default chain, built on first use
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.logger = (options.logger ?? silentLogger).child({ component: 'agent-identity-client' });
  }

  /**
   * Where a consent link from GetResourceOAuth2Token may point: the Agent Identity endpoint itself
   * (docs/reference/agent-identity.md: real links are `https://agentidentitydata.<region>.aliyuncs.com/oauth2/authorize?request_uri=…`;
   * in the sandbox, the configured emulator URL), and for the public endpoint also the SDK example's
   * `https://agentidentity.<region>.aliyuncs.com` family. Anything else would send the user's browser somewhere we do not know.
   */
  get authorizationOrigins(): string[] {
    const origins = [new URL(this.endpointUrl).origin];
    const region = /^agentidentitydata\.([a-z0-9-]+)\.aliyuncs\.com$/.exec(this.endpoint.host)?.[1];
    if (this.endpoint.protocol === 'https' && region) origins.push(`https://agentidentity.${region}.aliyuncs.com`);
    return origins;
  }

  private checkAuthorizationUrl(link: string, requestId: string | undefined): void {
    let origin: string | undefined;
    try {
      const url = new URL(link);
      if (!url.username && !url.password) origin = url.origin;
    } catch {
      origin = undefined;
    }
    if (origin && this.authorizationOrigins.includes(origin)) return;
    // The link's query may carry a session reference: log where it pointed, never the query.
    this.logger.warn('security: GetResourceOAuth2Token returned an authorization link outside Agent Identity; refused', {
      linkOrigin: origin ?? 'unparseable',
      allowed: this.authorizationOrigins.join(','),
      requestId,
    });
    throw new AgentIdentityError(
      `Agent Identity returned an unexpected authorization link (${origin ? `on ${origin}` : 'not a URL'}, not on ${this.authorizationOrigins[0]}), so it was not offered to you. ` +
        'Check AGENT_IDENTITY_ENDPOINT / AGENT_IDENTITY_REGION_ID; if they are right, report this to the administrator.',
      'UnexpectedAuthorizationURL',
      'GetResourceOAuth2Token',
      requestId,
    );
  }

  /** A readable form of the endpoint (no secrets in it). */
  get endpointUrl(): string {
    return `${this.endpoint.protocol}://${this.endpoint.host}`;
  }

  async getWorkloadAccessToken(workloadIdentityName: string): Promise<WorkloadAccessTokenResult> {
    const body = await this.call({
      action: 'GetWorkloadAccessToken',
      body: { WorkloadIdentityName: workloadIdentityName },
      sensitive: [],
    });
    return { workloadAccessToken: requireString(body, 'WorkloadAccessToken', 'GetWorkloadAccessToken'), requestId: requestIdOf(body) };
  }

  async getWorkloadAccessTokenForUserId(workloadIdentityName: string, userId: string): Promise<WorkloadAccessTokenResult> {
    const action = 'GetWorkloadAccessTokenForUserId';
    const body = await this.call({ action, body: { WorkloadIdentityName: workloadIdentityName, UserId: userId }, sensitive: [] });
    return { workloadAccessToken: requireString(body, 'WorkloadAccessToken', action), requestId: requestIdOf(body) };
  }

  async getWorkloadAccessTokenForJWT(workloadIdentityName: string, userToken: string): Promise<WorkloadAccessTokenResult> {
    const action = 'GetWorkloadAccessTokenForJWT';
    const body = await this.call({
      action,
      body: { WorkloadIdentityName: workloadIdentityName, UserToken: userToken },
      sensitive: [userToken],
    });
    return { workloadAccessToken: requireString(body, 'WorkloadAccessToken', action), requestId: requestIdOf(body) };
  }

  /** `signingCredential`: the workload's STS credentials (AssumeRoleForWorkloadIdentity); default the server's own. */
  async getResourceOAuth2Token(request: GetResourceOAuth2TokenRequest, signingCredential?: StsCredentials): Promise<GetResourceOAuth2TokenResult> {
    const form: Record<string, string | boolean> = {
      WorkloadAccessToken: request.workloadAccessToken,
      ResourceCredentialProviderName: request.providerName,
      Scopes: JSON.stringify(request.scopes),
      OAuth2Flow: request.flow,
      ResourceOAuth2ReturnURL: request.returnUrl,
      CustomState: request.customState,
    };
    if (request.forceAuthentication !== undefined) form.ForceAuthentication = request.forceAuthentication;
    if (request.customParameters !== undefined) form.CustomParameters = JSON.stringify(request.customParameters);
    if (request.sessionUri !== undefined) form.SessionURI = request.sessionUri;
    const body = await this.call({
      action: 'GetResourceOAuth2Token',
      body: form,
      signing: signingCredential,
      sensitive: [request.workloadAccessToken, ...(signingCredential ? [signingCredential.accessKeySecret, signingCredential.securityToken] : [])],
    });
    const authorizationUrl = optionalString(body, 'AuthorizationURL');
    if (authorizationUrl !== undefined) this.checkAuthorizationUrl(authorizationUrl, requestIdOf(body));
    return {
      accessToken: optionalString(body, 'AccessToken'),
      authorizationUrl,
      sessionUri: optionalString(body, 'SessionURI'),
      sessionStatus: optionalString(body, 'SessionStatus'),
      requestId: requestIdOf(body),
    };
  }

  /**
   * GetResourceAPIKey (AgentIdentityData 2025-11-27; GetResourceAPIKeyRequest {WorkloadAccessToken,
   * ResourceCredentialProviderName} → GetResourceAPIKeyResponseBody {APIKey, RequestId}). `signingCredential` as above.
   */
  async getResourceAPIKey(
    workloadAccessToken: string,
    providerName: string,
    signingCredential?: StsCredentials,
  ): Promise<{ apiKey: string; requestId?: string }> {
    const action = 'GetResourceAPIKey';
    const body = await this.call({
      action,
      body: { WorkloadAccessToken: workloadAccessToken, ResourceCredentialProviderName: providerName },
      signing: signingCredential,
      sensitive: [workloadAccessToken, ...(signingCredential ? [signingCredential.accessKeySecret, signingCredential.securityToken] : [])],
    });
    return { apiKey: requireString(body, 'APIKey', action), requestId: requestIdOf(body) };
  }

  async completeResourceTokenAuth(sessionUri: string, identifier: UserIdentifier): Promise<{ requestId?: string }> {
    const body = await this.call({
      action: 'CompleteResourceTokenAuth',
      body: { SessionURI: sessionUri, UserIdentifier: JSON.stringify(identifier) },
      sensitive: 'UserJWT' in identifier ? [identifier.UserJWT] : [],
    });
    return { requestId: requestIdOf(body) };
  }

  async assumeRoleForWorkloadIdentity(
    workloadAccessToken: string,
    options: { roleSessionName: string; durationSeconds: number; policy?: string },
  ): Promise<AssumeRoleResult> {
    const action = 'AssumeRoleForWorkloadIdentity';
    const form: Record<string, string | number> = {
      WorkloadAccessToken: workloadAccessToken,
      RoleSessionName: options.roleSessionName,
      DurationSeconds: options.durationSeconds,
    };
    if (options.policy !== undefined) form.Policy = options.policy;
    const body = await this.call({ action, body: form, anonymous: true, sensitive: [workloadAccessToken] });
    const creds = body.Credentials;
    if (!creds || typeof creds !== 'object') {
      throw new AgentIdentityError(
        `Agent Identity ${action} returned no Credentials (RequestId ${requestIdOf(body) ?? 'unknown'}).`,
        'InvalidResponse',
        action,
        requestIdOf(body),
      );
    }
    const c = creds as Record<string, unknown>;
    return {
      accessKeyId: requireString(c, 'AccessKeyId', action),
      accessKeySecret: requireString(c, 'AccessKeySecret', action),
      securityToken: requireString(c, 'SecurityToken', action),
      expiration: requireString(c, 'Expiration', action),
      requestId: requestIdOf(body),
    };
  }

  /** Whether the credential chain yields usable credentials. Never reveals them. */
  async checkCredentials(): Promise<CredentialCheck> {
    try {
      const model = await (await this.serverCredential()).getCredential();
      const usable = model.type === 'bearer' ? Boolean(model.bearerToken) : Boolean(model.accessKeyId && model.accessKeySecret);
      if (!usable) return { ok: false, reason: 'The credential chain returned incomplete credentials.' };
      return { ok: true, type: model.type ?? 'unknown', ...(model.providerName ? { providerName: model.providerName } : {}) };
    } catch {
      return { ok: false, reason: `No Alibaba Cloud credentials could be loaded. ${CREDENTIAL_HINT}` };
    }
  }

  // ---------------------------------------------------------------------------------------------

  private async serverCredential(): Promise<AlibabaCloudCredential> {
    const { Credential } = await loadSdk();
    this.credential ??= new Credential();
    return this.credential;
  }

  private async openApiClient(signing?: CallSpec['signing']): Promise<OpenApiClientInstance> {
    const { OpenApiClient, OpenApiConfig, Credential, CredentialConfig } = await loadSdk();
    const base = {
      endpoint: this.endpoint.host,
      protocol: this.endpoint.protocol,
      regionId: this.regionId,
      readTimeout: this.timeoutMs,
      connectTimeout: Math.min(this.timeoutMs, 5_000),
    };
    if (signing) {
      const credential = new Credential(
        new CredentialConfig({
          type: 'sts',
          accessKeyId: signing.accessKeyId,
          accessKeySecret: signing.accessKeySecret,
          securityToken: signing.securityToken,
        }),
      );
      return new OpenApiClient(new OpenApiConfig({ ...base, credential }));
    }
    const credential = await this.serverCredential();
    this.serverClient ??= new OpenApiClient(new OpenApiConfig({ ...base, credential }));
    return this.serverClient;
  }

  private async call(spec: CallSpec): Promise<Record<string, unknown>> {
    const { action } = spec;
    const client = await this.openApiClient(spec.signing);
    const { Params, OpenApiRequest } = await loadSdk();
    const params = new Params(rpcParams(action, AGENT_IDENTITY_DATA_API_VERSION, this.endpoint.protocol, spec.anonymous ? 'Anonymous' : 'AK'));
    const request = new OpenApiRequest({ body: spec.body });
    const runtime = rpcRuntime(this.timeoutMs) as unknown as RuntimeOptionsArg;
    const signedBy = spec.anonymous ? 'anonymous' : spec.signing ? 'sts' : 'server-credential';

    let response: Record<string, unknown>;
    try {
      // The generated SDK sends the anonymous AssumeRoleForWorkloadIdentity through doRPCRequest.
      response = spec.anonymous
        ? await client.doRPCRequest(action, params.version, params.protocol, 'POST', 'Anonymous', 'json', request, runtime)
        : await client.callApi(params, request, runtime);
    } catch (err) {
      const returnUrl = spec.body.ResourceOAuth2ReturnURL;
      const mapped = this.mapError(action, err, spec.sensitive, typeof returnUrl === 'string' ? returnUrl : undefined);
      this.logger.warn('agent identity call failed', {
        action,
        signedBy,
        code: mapped.code,
        httpStatus: mapped.httpStatus,
        requestId: mapped.requestId,
      });
      throw mapped;
    }
    const body = (response.body ?? {}) as Record<string, unknown>;
    this.logger.debug('agent identity call', {
      action,
      signedBy,
      httpStatus: response.statusCode,
      requestId: requestIdOf(body),
    });
    return body;
  }

  private mapError(action: string, err: unknown, sensitive: string[], returnUrl?: string): AgentIdentityError {
    if (err instanceof AgentIdentityError) return err;
    const e = (err ?? {}) as SdkErrorLike;
    const data = e.data && typeof e.data === 'object' ? e.data : undefined;
    const rawCode = typeof e.code === 'string' && e.code && e.code !== 'undefined' ? e.code : undefined;
    const httpStatus = typeof data?.statusCode === 'number' ? data.statusCode : undefined;
    const requestId = typeof data?.RequestId === 'string' ? data.RequestId : typeof data?.requestId === 'string' ? data.requestId : undefined;

    let code: string;
    if (httpStatus !== undefined) {
      code = rawCode ?? `HTTP${httpStatus}`;
    } else if (rawCode && NETWORK_CODES.has(rawCode)) {
      code = 'NetworkError';
    } else if (rawCode === 'InvalidCredentials') {
      code = 'InvalidCredentials';
    } else if (isCredentialChainFailure(err)) {
      // Before the network check: the chain's message lists every source it tried, the metadata lookup's
      // ENOTFOUND/timeout among them, though no request to Agent Identity was ever sent.
      code = 'CredentialsUnavailable';
    } else if (isNetworkFailure(err)) {
      code = 'NetworkError';
    } else if (isCredentialFailure(err)) {
      code = 'CredentialsUnavailable';
    } else {
      code = rawCode ?? 'UnknownError';
    }

    const parts = [`Agent Identity ${action} failed: ${code}`];
    const meta: string[] = [];
    if (httpStatus !== undefined) meta.push(`HTTP ${httpStatus}`);
    if (requestId) meta.push(`RequestId ${requestId}`);
    if (code === 'NetworkError') meta.push(`endpoint ${this.endpointUrl}`);
    if (meta.length) parts[0] += ` (${meta.join(', ')})`;
    parts[0] += '.';
    const serviceMessage = httpStatus !== undefined ? safeServiceMessage(data?.Message ?? data?.message, sensitive) : undefined;
    if (serviceMessage) parts.push(`Service says: ${serviceMessage}`);
    parts.push(hintFor(action, code, httpStatus, returnUrl));
    return new AgentIdentityError(parts.join(' '), code, action, requestId, httpStatus);
  }
}

/** @alicloud/credentials' default chain: "unable to get credentials from any of the providers in the chain: …". */
function isCredentialChainFailure(err: unknown): boolean {
  const message = typeof (err as { message?: unknown })?.message === 'string' ? (err as { message: string }).message : '';
  return /unable to get credentials from any of the providers in the chain/i.test(message);
}

function isCredentialFailure(err: unknown): boolean {
  const message = typeof (err as { message?: unknown })?.message === 'string' ? (err as { message: string }).message : '';
  return /credential/i.test(message);
}

function requestIdOf(body: Record<string, unknown>): string | undefined {
  return typeof body.RequestId === 'string' ? body.RequestId : undefined;
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function requireString(body: Record<string, unknown>, field: string, action: string): string {
  const v = body[field];
  if (typeof v === 'string' && v.length > 0) return v;
  const rid = typeof body.RequestId === 'string' ? body.RequestId : undefined;
  throw new AgentIdentityError(
    `Agent Identity ${action} returned no ${field} (RequestId ${rid ?? 'unknown'}); the service answered in an unexpected shape.`,
    'InvalidResponse',
    action,
    rid,
  );
}
