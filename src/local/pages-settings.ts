/**
 * What a local copy and its pages host (./pages-host.ts) agree on: the settings the host acts with, their
 * fingerprint (a hash, no secrets) by which a copy recognises a host it may share, and the proof that the host
 * holds this user's state secret (so another user's program on the port is never taken for ours).
 */
import { createHash, createHmac } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { LogLevel } from '../log.js';

/** The private path on which the pages host says who it is (GET, no secrets in the answer). */
export const HOST_PATH = '/_dingtalk-mcp/pages-host';
export const HOST_SERVICE = 'dingtalk-mcp-local-pages';
/** Loopback names the browser may use for the pages (DNS rebinding: any other Host is refused). */
export const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** Everything the pages host needs, passed on its stdin (never argv: other users can read a command line). */
export interface PagesHostSettings {
  appRedirectUri: string;
  callbackUrl: string;
  regionId: string;
  agentIdentityEndpoint?: string;
  workloadIdentityName: string;
  providerName: string;
  scopes: string[];
  useSts: boolean;
  stateSecret: string;
  /** The local state folder; records live in its `pending/`. */
  stateDir: string;
  authTimeoutSeconds: number;
  lingerMs: number;
  maxPerUser: number;
  logLevel: LogLevel;
  redisUrl?: string;
  redisKeyPrefix: string;
  /** A fixed AccessKey (the sandbox's); otherwise the host uses the default credential chain of the environment it inherits. */
  accessKey?: { accessKeyId: string; accessKeySecret: string; securityToken?: string };
}

export function hostSettings(
  config: Config,
  stateDir: string,
  store: { lingerMs: number; maxPerUser: number },
  accessKey?: PagesHostSettings['accessKey'],
): PagesHostSettings {
  if (!config.stateSecret) throw new Error('the local pages need the state secret');
  return {
    appRedirectUri: config.appRedirectUri,
    callbackUrl: config.callbackUrl,
    regionId: config.regionId,
    agentIdentityEndpoint: config.agentIdentityEndpoint,
    workloadIdentityName: config.workloadIdentityName ?? '',
    providerName: config.providerName,
    scopes: config.scopes,
    useSts: config.useSts,
    stateSecret: config.stateSecret,
    stateDir,
    authTimeoutSeconds: config.authTimeoutSeconds,
    lingerMs: store.lingerMs,
    maxPerUser: store.maxPerUser,
    logLevel: config.logLevel,
    redisUrl: config.redisUrl,
    redisKeyPrefix: config.redisKeyPrefix,
    accessKey,
  };
}

export const pendingDir = (stateDir: string) => join(stateDir, 'pending');
export const hostLogPath = (stateDir: string) => join(stateDir, 'pages-host.log');

/** The port of APP_REDIRECT_URI: where the pages listen. */
export function pagesPort(appRedirectUri: string): number {
  const u = new URL(appRedirectUri);
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
}

/**
 * The base of the links we print: `localhost` becomes the literal 127.0.0.1, so the browser cannot be sent to a
 * listener another local user put on [::1]. The callback stays APP_REDIRECT_URI's, as allowed on the workload identity.
 */
export function linkBase(appRedirectUri: string): string {
  const u = new URL(appRedirectUri);
  if (u.hostname !== 'localhost') return appRedirectUri;
  u.hostname = '127.0.0.1';
  return u.toString().replace(/\/+$/, '');
}

/**
 * A hash of what decides how a host completes an authorization: two copies with the same fingerprint can share one
 * host. The credential is named by the environment settings that choose it (no secret goes in).
 */
export function fingerprintOf(s: PagesHostSettings, env: NodeJS.ProcessEnv = process.env): string {
  const credentialChoice = [
    'ALIBABA_CLOUD_ACCESS_KEY_ID',
    'ALIBABA_CLOUD_PROFILE',
    'ALIBABA_CLOUD_CREDENTIALS_FILE',
    'ALIBABA_CLOUD_ROLE_ARN',
    'ALIBABA_CLOUD_ECS_METADATA',
    'ALIBABA_CLOUD_OIDC_PROVIDER_ARN',
    'ALIBABA_CLOUD_CREDENTIALS_URI',
  ].map((name) => env[name] ?? '');
  const material = {
    v: 1,
    appRedirectUri: s.appRedirectUri,
    regionId: s.regionId,
    agentIdentityEndpoint: s.agentIdentityEndpoint ?? '',
    workloadIdentityName: s.workloadIdentityName,
    providerName: s.providerName,
    scopes: s.scopes,
    useSts: s.useSts,
    stateDir: s.stateDir,
    secret: secretIdOf(s.stateSecret),
    redis: s.redisUrl ? createHash('sha256').update(s.redisUrl).update(s.redisKeyPrefix).digest('base64url') : '',
    credential: s.accessKey ? ['fixed', s.accessKey.accessKeyId] : credentialChoice,
  };
  return createHash('sha256').update(JSON.stringify(material)).digest('base64url').slice(0, 32);
}

/** Names the state secret without revealing it (a keyed hash). */
export function secretIdOf(secret: string): string {
  return createHmac('sha256', secret).update('local-pages-secret-id').digest('base64url').slice(0, 16);
}

/** The host's answer to a copy's nonce: only a process that read this user's state secret can give it. */
export function proofOf(secret: string, nonce: string, fingerprint: string, pid: number): string {
  return createHmac('sha256', secret).update(`local-pages-proof:${nonce}:${fingerprint}:${pid}`).digest('base64url');
}

/** What GET HOST_PATH answers. */
export interface HostIdentity {
  service: typeof HOST_SERVICE;
  version: string;
  pid: number;
  fingerprint: string;
  secretId: string;
  proof: string;
}
