/**
 * A protocol-faithful emulator of the Alibaba Cloud Agent Identity data plane (AgentIdentityData 2025-11-27)
 * and its OAuth consent redirect, for the tests, `--sandbox` and the demo. Loopback only.
 *
 * Wire shape (docs/reference/agent-identity.md §1, §1.1, §3; VERIFIED there): RPC `POST /` with a form body,
 * `Version=2025-11-27`, JSON responses that always carry `RequestId`, JSON-string params
 * (`Scopes`, `CustomParameters`, `UserIdentifier`), `SessionURI = urn:ietf:params:oauth:request_uri:<uuid>`,
 * `AuthorizationURL = <host>/oauth2/authorize?request_uri=<SessionURI>`, IdP callback
 * `<host>/oauth2/callback/<id>`, then a redirect to `ResourceOAuth2ReturnURL?session_uri=…&state=<CustomState>`.
 *
 * Modules: the state and public types (./state.ts), the workload tokens and user JWTs (./tokens.ts), the RPC
 * front with signature checks, faults and permissions (./rpc.ts), one handler per action (./openapi.ts), the
 * consent redirect and callback pages (./consent.ts) and the provider's token endpoint (./provider.ts).
 * Signatures are verified by ../acs-rpc.ts, shared with the control-plane emulator.
 *
 * Everything about data-plane *errors* is MODELED/UNVERIFIED (no documented codes, §1.3): codes follow the
 * usual Alibaba Cloud POP naming; the ones marked MODELED are our guesses.
 */
import { createServer, type Server } from 'node:http';
import { listen, shutdown } from '../http.js';
import { createConsentPages, sendPage } from './consent.js';
import { createRpcHandler } from './rpc.js';
import {
  AgentIdentityState,
  type AgentIdentityEmulatorOptions,
  type EmulatorCall,
  type InjectedFault,
  type SessionInfo,
  type VaultEntry,
  type VaultFilter,
} from './state.js';
import { createWorkloadTokens } from './tokens.js';

export { EMULATED_API_VERSION } from './rpc.js';
export type {
  AgentIdentityEmulatorOptions,
  CallSigner,
  EmulatorAccessKey,
  EmulatorApiKeyProvider,
  EmulatorCall,
  EmulatorOAuth2Provider,
  EmulatorWorkloadIdentity,
  InjectedFault,
  JwtClaims,
  SessionInfo,
  VaultEntry,
} from './state.js';

export interface AgentIdentityEmulator {
  readonly url: string;
  readonly calls: EmulatorCall[];
  readonly vault: {
    list(): VaultEntry[];
    get(user: string, providerName?: string, workloadIdentityName?: string): VaultEntry | undefined;
    has(user: string, providerName?: string, workloadIdentityName?: string): boolean;
  };
  /** Remove vaulted tokens of a user (all providers/workloads unless narrowed). Returns how many. */
  revokeVaultToken(filter: VaultFilter): number;
  /** Mark vaulted tokens expired by time, so the next use refreshes them through the provider. */
  expireVaultToken(filter: VaultFilter): number;
  sessions(): SessionInfo[];
  /** Every secret the emulator handed out (STS secrets and security tokens, vaulted access and refresh tokens), for leak checks. */
  issuedSecrets(): string[];
  /** The `<emulator>/oauth2/callback/<id>` URL of a provider (to register at the IdP). */
  callbackUrl(providerName: string): string;
  injectFault(fault: InjectedFault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

export async function startAgentIdentityEmulator(options: AgentIdentityEmulatorOptions): Promise<AgentIdentityEmulator> {
  const state = new AgentIdentityState(options);
  const handleRpc = createRpcHandler(state, createWorkloadTokens(state));
  const consent = createConsentPages(state);

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', state.baseUrl || 'http://localhost');
    const run = async () => {
      if (url.pathname === '/') return handleRpc(req, res, url);
      if (req.method === 'GET' && url.pathname === '/oauth2/authorize') return consent.authorize(res, url);
      const cb = /^\/oauth2\/callback\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && cb) return consent.callback(res, url, decodeURIComponent(cb[1]!));
      sendPage(res, 404, 'Not found', 'No such page.');
    };
    run().catch(() => {
      if (!res.headersSent) sendPage(res, 500, 'Error', 'Internal error.');
      else res.destroy();
    });
  });

  state.baseUrl = await listen(server, options.host ?? '127.0.0.1', options.port);

  const narrowed = (user: string, providerName?: string, workloadIdentityName?: string): VaultFilter => ({
    user,
    ...(providerName ? { providerName } : {}),
    ...(workloadIdentityName ? { workloadIdentityName } : {}),
  });

  return {
    url: state.baseUrl,
    calls: state.calls,
    vault: {
      list: () => [...state.vault.values()].map((e) => ({ ...e, scopes: [...e.scopes] })),
      get: (user, providerName, workloadIdentityName) => {
        const found = state.matchVault(narrowed(user, providerName, workloadIdentityName))[0];
        return found ? { ...found[1], scopes: [...found[1].scopes] } : undefined;
      },
      has: (user, providerName, workloadIdentityName) => state.matchVault(narrowed(user, providerName, workloadIdentityName)).length > 0,
    },
    revokeVaultToken(filter) {
      const found = state.matchVault(filter);
      for (const [k] of found) state.vault.delete(k);
      return found.length;
    },
    expireVaultToken(filter) {
      const found = state.matchVault(filter);
      for (const [, e] of found) e.expiresAt = state.now() - 1;
      return found.length;
    },
    issuedSecrets: () => state.issuedSecrets(),
    sessions: () => state.sessionInfos(),
    callbackUrl(providerName) {
      const p = state.providers.get(providerName);
      if (!p) throw new Error(`unknown provider ${providerName}`);
      return state.callbackUrlFor(p);
    },
    injectFault(fault) {
      state.faults.inject(fault);
    },
    clearFaults() {
      state.faults.clear();
    },
    close: () => shutdown(server),
  };
}
