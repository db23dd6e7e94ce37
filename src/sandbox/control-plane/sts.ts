/** STS 2015-04-01 (sts-20150401): who signed the call. */
import { randomDigitsFrom, type Account, type Handler } from './state.js';

export function stsHandlers(a: Account): Record<string, Handler> {
  return {
    GetCallerIdentity(_p, caller) {
      const userName = caller.userName ?? 'dingtalk-mcp-admin';
      const userId = `2${randomDigitsFrom(caller.accessKeyId, 15)}`;
      return {
        AccountId: a.accountId,
        Arn: `acs:ram::${a.accountId}:user/${userName}`,
        IdentityType: 'RAMUser',
        PrincipalId: userId,
        UserId: userId,
      };
    },
  };
}
