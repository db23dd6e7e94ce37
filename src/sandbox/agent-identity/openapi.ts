/**
 * The AgentIdentityData 2025-11-27 actions (docs/reference/agent-identity.md §1, §3): one handler per action,
 * each taking the RPC parameters and the verified caller. Codes marked MODELED/UNVERIFIED are our guesses.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AcsError, isStringArray, jsonParam, requiredParam, safeEqual } from '../acs-rpc.js';
import { vaultedToken } from './provider.js';
import { SESSION_URI_PREFIX, type AgentIdentityState, type Principal, type Session, type StsRecord, type WorkloadTokenRecord } from './state.js';
import type { WorkloadTokens } from './tokens.js';

export type Handler = (params: Record<string, string>, principal: Principal) => Promise<Record<string, unknown>>;

/** Actions the workload role's STS credentials may call (the CLI-created role policy, reference §4). */
export const STS_ALLOWED_ACTIONS = new Set(['GetResourceOAuth2Token', 'GetResourceAPIKey']);
/** Actions callable without a signature (they authenticate with a workload access token). */
export const ANONYMOUS_ACTIONS = new Set(['AssumeRoleForWorkloadIdentity']);

const isStringMap = (v: unknown): v is Record<string, string> =>
  !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

function parseBool(params: Record<string, string>, name: string): boolean | undefined {
  const raw = params[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new AcsError(400, `InvalidParameter.${name}`, `The parameter ${name} must be true or false.`);
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** STS credentials of a workload role act only for the workload + user of the token that minted them. */
function checkStsBinding(principal: Principal, wt: WorkloadTokenRecord): void {
  if (principal.signer.type !== 'sts') return;
  if (principal.signer.workloadIdentityName !== wt.workloadIdentityName || principal.signer.user !== (wt.user ?? '')) {
    // MODELED/UNVERIFIED code.
    throw new AcsError(403, 'Forbidden.WorkloadIdentityMismatch', 'The STS credentials belong to another workload identity or user.');
  }
}

export function dataPlaneHandlers(state: AgentIdentityState, tokens: WorkloadTokens): Record<string, Handler> {
  return {
    async GetWorkloadAccessToken(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      state.workloadNamed(name);
      return { WorkloadAccessToken: tokens.mint({ workloadIdentityName: name, user: undefined, artifact: undefined }) };
    },

    async GetWorkloadAccessTokenForUserId(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      const userId = requiredParam(params, 'UserId');
      state.workloadNamed(name);
      return {
        WorkloadAccessToken: tokens.mint({ workloadIdentityName: name, user: `uid:${userId}`, artifact: { kind: 'userId', userId } }),
      };
    },

    async GetWorkloadAccessTokenForJWT(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      const jwt = requiredParam(params, 'UserToken');
      state.workloadNamed(name);
      const claims = await tokens.verifyUserJwt(jwt);
      return {
        WorkloadAccessToken: tokens.mint({
          workloadIdentityName: name,
          user: `jwt:${typeof claims.iss === 'string' ? claims.iss : ''}:${claims.sub}`,
          artifact: { kind: 'jwt', jwt },
          jwtClaims: claims,
        }),
      };
    },

    async AssumeRoleForWorkloadIdentity(params) {
      const wt = tokens.verify(requiredParam(params, 'WorkloadAccessToken'));
      const roleSessionName = requiredParam(params, 'RoleSessionName');
      if (!/^[\w.@-]{2,64}$/.test(roleSessionName)) {
        throw new AcsError(400, 'InvalidParameter.RoleSessionName', 'The parameter RoleSessionName is invalid.');
      }
      let duration = 3600;
      if (params.DurationSeconds !== undefined && params.DurationSeconds !== '') {
        duration = Number(params.DurationSeconds);
        if (!Number.isInteger(duration) || duration < 900 || duration > 43200) {
          throw new AcsError(400, 'InvalidParameter.DurationSeconds', 'DurationSeconds must be an integer between 900 and 43200.');
        }
      }
      const ttl = (state.options.stsTtlSeconds ?? duration) * 1000;
      const workload = state.workloadNamed(wt.workloadIdentityName);
      const expiresAt = state.now() + ttl;
      const record: StsRecord = {
        accessKeyId: `STS.${randomBytes(12).toString('base64url')}`,
        accessKeySecret: randomBytes(24).toString('base64url'),
        securityToken: `CAIS${randomBytes(96).toString('base64')}`,
        expiresAt,
        workloadIdentityName: wt.workloadIdentityName,
        user: wt.user,
      };
      state.stsByAccessKeyId.set(record.accessKeyId, record);
      const roleArn = workload.roleArn ?? `acs:ram::${state.accountId}:role/agentidentityrole-${workload.name.toLowerCase()}`;
      const roleName = roleArn.split('/').pop() ?? 'role';
      const userContext =
        wt.artifact?.kind === 'userId'
          ? { UserId: wt.artifact.userId }
          : wt.jwtClaims
            ? {
                JwtClaims: {
                  Issuer: wt.jwtClaims.iss ?? '',
                  Subject: wt.jwtClaims.sub,
                  Audiences: Array.isArray(wt.jwtClaims.aud) ? wt.jwtClaims.aud : wt.jwtClaims.aud ? [wt.jwtClaims.aud] : [],
                },
              }
            : undefined;
      return {
        Credentials: {
          AccessKeyId: record.accessKeyId,
          AccessKeySecret: record.accessKeySecret,
          SecurityToken: record.securityToken,
          Expiration: isoSeconds(expiresAt),
        },
        AssumedRoleUser: {
          Arn: `acs:ram::${state.accountId}:assumed-role/${roleName}/${roleSessionName}`,
          AssumedRoleId: `${randomBytes(9).readUIntBE(0, 6)}:${roleSessionName}`,
        },
        WorkloadContextInfo: {
          WorkloadIdentityArn: `acs:agentidentity:cn-beijing:${state.accountId}:workloadidentitydirectory/default/workloadidentity/${workload.name}`,
          ...(userContext ? { UserContext: userContext } : {}),
        },
      };
    },

    async GetResourceOAuth2Token(params, principal) {
      const wt = tokens.verify(requiredParam(params, 'WorkloadAccessToken'));
      checkStsBinding(principal, wt);
      const providerName = requiredParam(params, 'ResourceCredentialProviderName');
      const flow = requiredParam(params, 'OAuth2Flow');
      // MODELED/UNVERIFIED: only USER_FEDERATION is known to exist (reference §2).
      if (flow !== 'USER_FEDERATION') throw new AcsError(400, 'InvalidParameter.OAuth2Flow', `The OAuth2Flow "${flow}" is not supported.`);
      const scopes = jsonParam(params, 'Scopes', isStringArray);
      const customParameters = jsonParam(params, 'CustomParameters', isStringMap) ?? {};
      // The kit always sends Scopes (docs/reference/agent-identity.md, the call sequence step 4) and the provider
      // needs at least one to ask the user's consent for; MODELED: missing or empty is refused like other parameters.
      if (!scopes) requiredParam(params, 'Scopes');
      if (!scopes || scopes.length === 0 || scopes.some((s) => !s.trim())) {
        throw new AcsError(400, 'InvalidParameter.Scopes', 'The parameter Scopes must name at least one non-empty scope.');
      }
      const force = parseBool(params, 'ForceAuthentication') ?? false;
      const returnUrl = params.ResourceOAuth2ReturnURL;
      const customState = params.CustomState;
      const sessionUri = params.SessionURI;
      const workload = state.workloadNamed(wt.workloadIdentityName);
      const provider = state.providers.get(providerName);
      if (!provider) {
        throw new AcsError(404, 'EntityNotExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${providerName}" does not exist.`);
      }
      if (returnUrl !== undefined && returnUrl !== '' && !workload.allowedReturnUrls.includes(returnUrl)) {
        // MODELED/UNVERIFIED code.
        throw new AcsError(
          400,
          'InvalidParameter.ResourceOAuth2ReturnURL',
          'The specified ResourceOAuth2ReturnURL is not in the AllowedResourceOAuth2ReturnURLs of the workload identity.',
        );
      }
      if (!wt.user || !wt.artifact) {
        throw new AcsError(400, 'InvalidParameter.WorkloadAccessToken', 'USER_FEDERATION requires a workload access token bound to a user.');
      }
      const key = state.vaultKey(wt.workloadIdentityName, wt.user, providerName);

      if (sessionUri) {
        const session = state.liveSession(sessionUri);
        // MODELED/UNVERIFIED: an unknown or foreign session answers like CompleteResourceTokenAuth does.
        if (!session || session.workloadIdentityName !== wt.workloadIdentityName || session.user !== wt.user || session.providerName !== providerName) {
          throw new AcsError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
        }
        if (session.status === 'COMPLETED') {
          const entry = state.vault.get(key);
          const live = entry ? await vaultedToken(state, entry, key) : undefined;
          if (live) return { AccessToken: live.accessToken };
          throw new AcsError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
        }
        if (session.status === 'FAILED') {
          // MODELED/UNVERIFIED: SessionStatus values other than IN_PROGRESS are not documented.
          return { SessionURI: session.sessionUri, SessionStatus: 'FAILED' };
        }
        return { AuthorizationURL: state.authorizationUrlFor(session), SessionURI: session.sessionUri, SessionStatus: 'IN_PROGRESS' };
      }

      if (!force) {
        const entry = state.vault.get(key);
        // MODELED: a vaulted token granted for fewer scopes than asked starts a new consent.
        if (entry && scopes.every((s) => entry.scopes.includes(s))) {
          const live = await vaultedToken(state, entry, key);
          if (live) return { AccessToken: live.accessToken };
        }
      }

      if (!returnUrl) {
        throw new AcsError(
          400,
          'MissingParameter.ResourceOAuth2ReturnURL',
          'The input parameter "ResourceOAuth2ReturnURL" is mandatory to start an authorization session.',
        );
      }
      const id = randomUUID();
      const session: Session = {
        id,
        sessionUri: `${SESSION_URI_PREFIX}${id}`,
        status: 'IN_PROGRESS',
        workloadIdentityName: wt.workloadIdentityName,
        user: wt.user,
        artifact: wt.artifact,
        providerName,
        returnUrl,
        ...(customState !== undefined ? { customState } : {}),
        scopes,
        customParameters,
        authorizeUsed: false,
        callbackReceived: false,
        expiresAt: state.now() + state.sessionTtlMs,
        providerState: randomBytes(24).toString('base64url'),
      };
      state.addSession(session);
      return { AuthorizationURL: state.authorizationUrlFor(session), SessionURI: session.sessionUri, SessionStatus: 'IN_PROGRESS' };
    },

    async CompleteResourceTokenAuth(params) {
      const sessionUri = requiredParam(params, 'SessionURI');
      const identifier = jsonParam(
        params,
        'UserIdentifier',
        (v): v is { UserId?: unknown; UserJWT?: unknown } => !!v && typeof v === 'object' && !Array.isArray(v),
      );
      if (!identifier) requiredParam(params, 'UserIdentifier');
      const userId = identifier?.UserId;
      const userJwt = identifier?.UserJWT;
      if (
        (userId !== undefined && typeof userId !== 'string') ||
        (userJwt !== undefined && typeof userJwt !== 'string') ||
        (userId === undefined && userJwt === undefined)
      ) {
        throw new AcsError(400, 'InvalidParameter.UserIdentifier', 'UserIdentifier must carry UserId or UserJWT.');
      }
      const session = state.liveSession(sessionUri);
      // Modeled on the AWS AgentCore analogue (reference §1.3), UNVERIFIED for Alibaba: same artifact or nothing.
      const invalid = () => new AcsError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
      if (session?.status !== 'IN_PROGRESS' || !session.token) throw invalid();
      const a = session.artifact;
      const matches = a.kind === 'userId' ? userId === a.userId : typeof userJwt === 'string' && safeEqual(userJwt, a.jwt);
      if (!matches) throw invalid();
      const t = session.token;
      state.vault.set(state.vaultKey(session.workloadIdentityName, session.user, session.providerName), {
        workloadIdentityName: session.workloadIdentityName,
        user: session.user,
        providerName: session.providerName,
        accessToken: t.accessToken,
        ...(t.refreshToken ? { refreshToken: t.refreshToken } : {}),
        expiresAt: t.expiresAt,
        scopes: session.scopes,
        ...(t.corpId ? { corpId: t.corpId } : {}),
      });
      session.status = 'COMPLETED';
      delete session.token;
      return {};
    },

    async GetResourceAPIKey(params, principal) {
      const wt = tokens.verify(requiredParam(params, 'WorkloadAccessToken'));
      checkStsBinding(principal, wt);
      const name = requiredParam(params, 'ResourceCredentialProviderName');
      const p = state.apiKeyProviders.get(name);
      if (!p) throw new AcsError(404, 'EntityNotExists.APIKeyCredentialProvider', `The API key credential provider "${name}" does not exist.`);
      return { APIKey: p.apiKey };
    },
  };
}
