/**
 * The tokens the emulated data plane checks: the workload access tokens it mints (JWT-shaped, HMAC-SHA256
 * signed with a per-emulator key) and the users' JWTs that GetWorkloadAccessTokenForJWT exchanges.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { AcsError, safeEqual } from '../acs-rpc.js';
import type { AgentIdentityState, JwtClaims, WorkloadTokenRecord } from './state.js';

export interface WorkloadTokens {
  mint(record: Omit<WorkloadTokenRecord, 'expiresAt'>): string;
  verify(token: string): WorkloadTokenRecord;
  verifyUserJwt(jwt: string): Promise<JwtClaims>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export function createWorkloadTokens(state: AgentIdentityState): WorkloadTokens {
  const signingKey = randomBytes(32);
  const keyId = randomUUID();
  const ttlMs = (state.options.workloadTokenTtlSeconds ?? 900) * 1000;

  function mint(record: Omit<WorkloadTokenRecord, 'expiresAt'>): string {
    const jti = randomUUID();
    const issuedAt = state.now();
    const expiresAt = issuedAt + ttlMs;
    state.workloadTokens.set(jti, { ...record, expiresAt });
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: keyId }));
    const payload = b64url(
      JSON.stringify({
        iss: `${state.baseUrl}/`,
        aud: 'agentidentitydata',
        sub: record.user ?? `workload:${record.workloadIdentityName}`,
        wi: record.workloadIdentityName,
        iat: Math.floor(issuedAt / 1000),
        exp: Math.floor(expiresAt / 1000),
        jti,
      }),
    );
    const sig = createHmac('sha256', signingKey).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${sig}`;
  }

  // MODELED/UNVERIFIED: codes InvalidWorkloadAccessToken(.Expired), HTTP 401.
  function verify(token: string): WorkloadTokenRecord {
    const parts = token.split('.');
    if (parts.length !== 3) throw new AcsError(401, 'InvalidWorkloadAccessToken', 'The workload access token is malformed.');
    const [h, p, s] = parts as [string, string, string];
    const expected = createHmac('sha256', signingKey).update(`${h}.${p}`).digest('base64url');
    if (!safeEqual(expected, s)) throw new AcsError(401, 'InvalidWorkloadAccessToken', 'The workload access token is invalid.');
    let jti: unknown;
    try {
      jti = (JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { jti?: unknown }).jti;
    } catch {
      throw new AcsError(401, 'InvalidWorkloadAccessToken', 'The workload access token is malformed.');
    }
    const record = typeof jti === 'string' ? state.workloadTokens.get(jti) : undefined;
    if (!record) throw new AcsError(401, 'InvalidWorkloadAccessToken', 'The workload access token is invalid.');
    if (record.expiresAt <= state.now()) {
      throw new AcsError(401, 'InvalidWorkloadAccessToken.Expired', 'The workload access token has expired.');
    }
    if (!state.workloads.has(record.workloadIdentityName)) {
      throw new AcsError(404, 'EntityNotExists.WorkloadIdentity', 'The workload identity of this token no longer exists.');
    }
    return record;
  }

  // MODELED/UNVERIFIED: codes InvalidParameter.UserToken / InvalidUserToken.Expired / InvalidUserToken.
  async function verifyUserJwt(jwt: string): Promise<JwtClaims> {
    const parts = jwt.split('.');
    if (parts.length !== 3 || parts.some((x, i) => i < 2 && !/^[A-Za-z0-9_-]+$/.test(x))) {
      throw new AcsError(400, 'InvalidParameter.UserToken', 'The specified UserToken is not a well-formed JWT.');
    }
    let claims: JwtClaims;
    try {
      JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as JwtClaims;
    } catch {
      throw new AcsError(400, 'InvalidParameter.UserToken', 'The specified UserToken is not a well-formed JWT.');
    }
    if (!claims || typeof claims !== 'object' || typeof claims.sub !== 'string' || !claims.sub) {
      throw new AcsError(400, 'InvalidParameter.UserToken', 'The specified UserToken has no sub claim.');
    }
    if (claims.exp !== undefined && (typeof claims.exp !== 'number' || claims.exp * 1000 <= state.now())) {
      throw new AcsError(400, 'InvalidUserToken.Expired', 'The specified UserToken has expired.');
    }
    const trust = state.options.trustedJwtIssuers;
    if (trust?.issuers && (typeof claims.iss !== 'string' || !trust.issuers.includes(claims.iss))) {
      throw new AcsError(400, 'InvalidUserToken', 'The issuer of the specified UserToken is not trusted.');
    }
    if (trust?.verify && !(await trust.verify(jwt, claims))) {
      throw new AcsError(400, 'InvalidUserToken', 'The specified UserToken failed verification.');
    }
    return claims;
  }

  return { mint, verify, verifyUserJwt };
}
