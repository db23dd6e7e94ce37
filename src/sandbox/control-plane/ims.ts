/** IMS 2019-08-15 (ims-20190815): OAuth applications and their secrets. */
import { randomBytes, randomUUID } from 'node:crypto';
import { AcsError, requiredParam } from '../acs-rpc.js';
import { isoSeconds, randomDigits, type Account, type EmuApplication, type Handler } from './state.js';

const appView = (a: EmuApplication) => ({
  AppId: a.AppId,
  AppName: a.AppName,
  DisplayName: a.DisplayName,
  AppType: a.AppType,
  AccountId: a.AccountId,
  ProtocolVersion: a.ProtocolVersion,
  SecretRequired: a.SecretRequired,
  IsMultiTenant: false,
  AccessTokenValidity: 3600,
  RefreshTokenValidity: a.AppType === 'WebApp' ? 7776000 : 2592000,
  RedirectUris: { RedirectUri: [...a.RedirectUris] },
  DelegatedScope: {
    PredefinedScopes: { PredefinedScope: a.PredefinedScopes.map((s) => ({ Name: s, Description: s, Required: a.RequiredScopes.includes(s) })) },
  },
  CreateDate: a.CreateDate,
  UpdateDate: a.UpdateDate,
});

export function imsHandlers(a: Account): Record<string, Handler> {
  const apps = a.applications;
  return {
    CreateApplication(p) {
      const appName = requiredParam(p, 'AppName');
      const displayName = requiredParam(p, 'DisplayName');
      const appType = requiredParam(p, 'AppType');
      if (!['WebApp', 'NativeApp', 'ServerApp'].includes(appType)) throw new AcsError(400, 'InvalidParameter.AppType', 'The parameter AppType is invalid.');
      // ims-20190815 CreateApplicationRequest: for WebApp and ServerApp SecretRequired "is forcibly set to true and
      // cannot be changed" (our client quotes an older text: "required and always true"). MODELED: missing or false is refused.
      if (appType !== 'NativeApp') {
        requiredParam(p, 'SecretRequired');
        if (p.SecretRequired !== 'true') {
          throw new AcsError(400, 'InvalidParameter.SecretRequired', `SecretRequired must be true for a ${appType} application.`);
        }
      }
      if (displayName.length > 24) throw new AcsError(400, 'InvalidParameter.DisplayName.Length', 'The display name can be up to 24 characters.');
      const split = (v: string | undefined) =>
        (v ?? '')
          .split(';')
          .map((s) => s.trim())
          .filter(Boolean);
      const now = isoSeconds();
      const app: EmuApplication = {
        AppId: randomDigits(19),
        AppName: appName,
        DisplayName: displayName,
        AppType: appType,
        RedirectUris: split(p.RedirectUris),
        PredefinedScopes: split(p.PredefinedScopes),
        RequiredScopes: split(p.RequiredScopes),
        // ims-20190815 CreateApplicationRequest: "For WebApp and ServerApp … always set to true".
        SecretRequired: p.SecretRequired === 'true',
        ProtocolVersion: p.ProtocolVersion || '2.0',
        AccountId: a.accountId,
        CreateDate: now,
        UpdateDate: now,
        secrets: [],
      };
      return { Application: appView(apps.add(app)) };
    },
    GetApplication: (p) => ({ Application: appView(apps.get(requiredParam(p, 'AppId'))) }),
    // ims-20190815 ListApplications: no request parameters, no paging; every application of the account.
    ListApplications: () => ({ Applications: { Application: a.state.applications.filter((x) => x.AccountId === a.accountId).map(appView) } }),
    DeleteApplication(p) {
      apps.remove(apps.get(requiredParam(p, 'AppId')));
      return {};
    },
    CreateAppSecret(p) {
      const app = apps.get(requiredParam(p, 'AppId'));
      if (app.secrets.length >= 2) throw new AcsError(409, 'LimitExceeded.AppSecret', 'An application can have at most two secrets.'); // MODELED
      const secret = { AppSecretId: randomUUID(), AppSecretValue: randomBytes(36).toString('base64url'), CreateDate: isoSeconds() };
      app.secrets.push(secret);
      return { AppSecret: { AppId: app.AppId, ...secret } };
    },
  };
}
