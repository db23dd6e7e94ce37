/**
 * The control-plane emulator refuses what the service refuses, as the generated models say (agentidentity-20250901
 * OAuth2ProviderConfig and its variants; ims-20190815 CreateApplicationRequest.SecretRequired), so a client that
 * sends the wrong shape fails here and not first in a real account. Calls go through our own signed client.
 */
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cloud } from '../../src/provisioning/cloud.js';
import { ControlPlaneClient, ControlPlaneError, type ParamValue } from '../../src/provisioning/control-plane-client.js';
import { startControlPlaneEmulator, type ControlPlaneEmulator } from '../../src/sandbox/control-plane/index.js';

const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;
const AK = { accessKeyId: 'LTAIfidelityTest0001', accessKeySecret: 'fidelity-secret-0123456789' };

let emu: ControlPlaneEmulator;
let client: ControlPlaneClient;

beforeEach(async () => {
  emu = await startControlPlaneEmulator({ accessKeys: [AK] });
  client = new ControlPlaneClient({
    regionId: 'cn-beijing',
    endpoints: { agentidentity: emu.url, ram: emu.url, sts: emu.url, ims: emu.url },
    credential: new Credential(new CredentialConfig({ type: 'access_key', ...AK })),
  });
});
afterEach(() => emu.close());

async function refusal(product: 'agentidentity' | 'ims', action: string, params: Record<string, ParamValue>): Promise<ControlPlaneError> {
  const err = await client.call(product, action, params).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ControlPlaneError);
  return err as ControlPlaneError;
}

const custom = {
  CustomOAuth2ProviderConfig: {
    ClientId: 'dingapp',
    ClientSecret: 'app-secret',
    OAuth2Discovery: {
      AuthorizationServerMetadata: {
        Issuer: 'https://login.dingtalk.com',
        AuthorizationRequest: { Endpoint: 'https://login.dingtalk.com/oauth2/auth' },
        TokenRequest: { Endpoint: 'https://api.dingtalk.com/v1.0/oauth2/userAccessToken' },
        PKCE: { Enabled: false },
      },
    },
  },
};

function createProvider(vendor: string | undefined, config: unknown) {
  return refusal('agentidentity', 'CreateOAuth2CredentialProvider', {
    OAuth2CredentialProviderName: 'p1',
    ...(vendor ? { CredentialProviderVendor: vendor } : {}),
    ...(config !== undefined ? { OAuth2ProviderConfig: JSON.stringify(config) } : {}),
  });
}

describe('CreateOAuth2CredentialProvider', () => {
  it('takes the two shapes of the models, each with its vendor', async () => {
    const cloud = new Cloud(client);
    await cloud.createOAuth2Provider({
      name: 'custom',
      vendor: 'CustomOAuth2',
      callbackUrl: `${emu.url}/cb/1`,
      config: custom,
      clientSecret: 'app-secret',
      description: 'd',
    });
    await cloud.createOAuth2Provider({
      name: 'included',
      vendor: 'AliyunOAuth2',
      callbackUrl: `${emu.url}/cb/2`,
      config: { IncludedOAuth2ProviderConfig: { ClientId: '4071151845732613353' } },
      clientSecret: '',
      description: 'd',
    });
    expect(emu.state().oauth2Providers.map((p) => [p.OAuth2CredentialProviderName, p.CredentialProviderVendor])).toEqual([
      ['custom', 'CustomOAuth2'],
      ['included', 'AliyunOAuth2'],
    ]);
  });

  it('refuses a config of the wrong shape, naming what is wrong', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ClientId: 'x' }, /has no field ClientId/],
      [{ ...custom, IncludedOAuth2ProviderConfig: { ClientId: 'x' } }, /exactly one of/],
      [{ CustomOAuth2ProviderConfig: { ...custom.CustomOAuth2ProviderConfig, ClientId: 7 } }, /ClientId must be a non-empty string/],
      [{ CustomOAuth2ProviderConfig: { ClientId: 'x' } }, /OAuth2Discovery must be an object/],
      [{ CustomOAuth2ProviderConfig: { ClientId: 'x', OAuth2Discovery: {} } }, /exactly one of DiscoveryURL and AuthorizationServerMetadata/],
      [{ CustomOAuth2ProviderConfig: { ClientId: 'x', OAuth2Discovery: { DiscoveryURL: 'not a url' } } }, /DiscoveryURL must be a URL/],
      [
        {
          CustomOAuth2ProviderConfig: {
            ClientId: 'x',
            OAuth2Discovery: {
              AuthorizationServerMetadata: { Issuer: 'i', AuthorizationRequest: { Endpoint: 'https://a' }, TokenReqeust: { Endpoint: 'https://t' } },
            },
          },
        },
        /has no field TokenReqeust/,
      ],
      [[custom], /invalid shape/],
    ];
    for (const [config, message] of cases) {
      const err = await createProvider('CustomOAuth2', config);
      expect({ code: err.code, status: err.httpStatus }).toEqual({ code: 'InvalidParameter.OAuth2ProviderConfig', status: 400 });
      expect(err.message).toMatch(message);
    }
    expect(emu.state().oauth2Providers).toEqual([]);
  });

  it('refuses an unknown vendor, a vendor with the other shape, and a missing vendor or config', async () => {
    expect((await createProvider('DingTalk', custom)).code).toBe('InvalidParameter.CredentialProviderVendor');
    const mismatch = await createProvider('AliyunOAuth2', custom);
    expect(mismatch.code).toBe('InvalidParameter.OAuth2ProviderConfig');
    expect(mismatch.message).toMatch(/AliyunOAuth2 takes IncludedOAuth2ProviderConfig/);
    expect((await createProvider(undefined, custom)).code).toBe('MissingParameter.CredentialProviderVendor');
    expect((await createProvider('CustomOAuth2', undefined)).code).toBe('MissingParameter.OAuth2ProviderConfig');
    expect(emu.state().oauth2Providers).toEqual([]);
  });
});

describe('IMS CreateApplication', () => {
  const webApp = { AppName: 'dingtalk-mcp-x', DisplayName: 'dingtalk-mcp', AppType: 'WebApp', RedirectUris: 'http://localhost:8090/callback' };

  it('refuses a WebApp without SecretRequired=true', async () => {
    expect((await refusal('ims', 'CreateApplication', webApp)).code).toBe('MissingParameter.SecretRequired');
    expect((await refusal('ims', 'CreateApplication', { ...webApp, SecretRequired: false })).code).toBe('InvalidParameter.SecretRequired');
    expect(emu.state().applications).toEqual([]);
  });

  it('takes what setup sends (a WebApp with SecretRequired) and a NativeApp without it', async () => {
    const app = await new Cloud(client).createWebApplication({
      appName: 'a1',
      displayName: 'a1',
      redirectUris: ['http://localhost:8090/callback'],
      scopes: ['openid'],
    });
    expect(app.appId).toMatch(/^\d+$/);
    await client.call('ims', 'CreateApplication', { ...webApp, AppName: 'n1', AppType: 'NativeApp' });
    expect(emu.state().applications.map((a) => [a.AppName, a.SecretRequired])).toEqual([
      ['a1', true],
      ['n1', false],
    ]);
  });
});
