/**
 * The RPC front of the emulated data plane: `POST /` with Version 2025-11-27, the signature checked
 * (V3 or V2, ../acs-rpc.ts) and resolved to a principal (an AccessKey or the STS credentials the emulator
 * issued), injected faults, the caller's permissions, then the action's handler (./openapi.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AcsError, createSignatureVerifier, firstHeader, readRpcInput, safeEqual, sendAcsError, sendAcsJson, toAcsError } from '../acs-rpc.js';
import { ANONYMOUS_ACTIONS, dataPlaneHandlers, STS_ALLOWED_ACTIONS } from './openapi.js';
import type { AgentIdentityState, EmulatorCall, Principal } from './state.js';
import type { WorkloadTokens } from './tokens.js';

export const EMULATED_API_VERSION = '2025-11-27';

export function createRpcHandler(state: AgentIdentityState, tokens: WorkloadTokens) {
  const handlers = dataPlaneHandlers(state, tokens);

  function principalForAccessKey(accessKeyId: string, securityToken: string | undefined): { secret: string; principal: Principal } {
    if (securityToken !== undefined || accessKeyId.startsWith('STS.')) {
      const sts = state.stsByAccessKeyId.get(accessKeyId);
      if (!sts) throw new AcsError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
      if (securityToken === undefined) throw new AcsError(400, 'MissingSecurityToken', 'SecurityToken is mandatory for this AccessKeyId.');
      if (!safeEqual(sts.securityToken, securityToken)) {
        throw new AcsError(400, 'InvalidSecurityToken.MismatchWithAccessKey', 'Specified SecurityToken mismatch with the AccessKey.');
      }
      if (sts.expiresAt <= state.now()) throw new AcsError(400, 'InvalidSecurityToken.Expired', 'Specified SecurityToken is expired.');
      return {
        secret: sts.accessKeySecret,
        principal: {
          signer: { type: 'sts', accessKeyId, workloadIdentityName: sts.workloadIdentityName, user: sts.user ?? '' },
          allowedActions: [...STS_ALLOWED_ACTIONS],
        },
      };
    }
    const key = state.accessKeys.get(accessKeyId);
    if (!key) throw new AcsError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    return {
      secret: key.accessKeySecret,
      principal: { signer: { type: 'accessKey', accessKeyId }, allowedActions: key.allowedActions ?? '*' },
    };
  }

  const { verifyV3, verifyV2 } = createSignatureVerifier(principalForAccessKey);

  return async function handleRpc(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID().toUpperCase();
    const call: EmulatorCall = {
      action: firstHeader(req, 'x-acs-action') ?? url.searchParams.get('Action') ?? '',
      params: {},
      signedBy: { type: 'anonymous' },
      signatureVersion: 'none',
      status: 200,
      requestId,
    };
    try {
      const { query, form, body, params } = await readRpcInput(req, url);
      call.params = params;

      if (req.method !== 'POST' && req.method !== 'GET') {
        throw new AcsError(405, 'UnsupportedHTTPMethod', 'Specified HTTP method is not supported.');
      }
      const action = call.action;
      if (!action)
        throw new AcsError(400, 'MissingParameter.Action', 'The input parameter "Action" that is mandatory for processing this request is not supplied.');
      const version = firstHeader(req, 'x-acs-version') ?? query.Version;
      if (!version)
        throw new AcsError(400, 'MissingParameter.Version', 'The input parameter "Version" that is mandatory for processing this request is not supplied.');
      if (version !== EMULATED_API_VERSION) throw new AcsError(400, 'InvalidVersion', `Specified parameter Version "${version}" is not valid.`);
      if (query.Action !== undefined && firstHeader(req, 'x-acs-action') !== undefined && query.Action !== firstHeader(req, 'x-acs-action')) {
        throw new AcsError(400, 'InvalidParameter.Action', 'Action in the query and in x-acs-action differ.');
      }
      const handler = Object.hasOwn(handlers, action) ? handlers[action] : undefined;
      if (!handler) throw new AcsError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');

      let principal: Principal | undefined;
      const authorization = firstHeader(req, 'authorization');
      if (authorization) {
        call.signatureVersion = 'v3';
        principal = verifyV3(req, url.pathname, query, body, authorization);
      } else if (query.Signature !== undefined) {
        call.signatureVersion = 'v2';
        principal = verifyV2(req.method ?? 'POST', query, form);
      } else if (!ANONYMOUS_ACTIONS.has(action)) {
        // MODELED: the exact code for an unsigned request to a signed action.
        throw new AcsError(400, 'MissingAuthorization', 'This action requires a signed request (Authorization header).');
      }
      if (principal) call.signedBy = principal.signer;

      const fault = state.faults.take((f) => f.action === action || f.action === '*');
      if (fault) throw new AcsError(fault.status, fault.code, fault.message ?? `Injected fault for ${action}.`);

      if (principal && !ANONYMOUS_ACTIONS.has(action)) {
        const allowed = principal.allowedActions === '*' || principal.allowedActions.includes(action);
        if (!allowed) {
          throw new AcsError(403, 'NoPermission', `You are not authorized to do this operation. Action: agentidentitydata:${action}.`);
        }
      }
      const result = await handler(params, principal ?? { signer: { type: 'anonymous' }, allowedActions: [] });
      sendAcsJson(res, 200, { RequestId: requestId, ...result }, requestId);
    } catch (err) {
      const e = toAcsError(err);
      call.status = e.status;
      call.code = e.code;
      sendAcsError(res, e, requestId, state.hostId(), {
        Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(e.code)}&product=AgentIdentityData`,
      });
    } finally {
      state.calls.push(call);
    }
  };
}
