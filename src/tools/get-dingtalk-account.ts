import * as z from 'zod/v4';
import { defineTool } from './define-tool.js';
import { statusOutput } from './inputs.js';

export const getDingTalkAccount = defineTool({
  name: 'get_dingtalk_account',
  title: 'Connected DingTalk account',
  description: [
    'Say which DingTalk account this server acts as for the signed-in user (the name DingTalk shows; never a token).',
    'With switch: true the user is asked for a fresh DingTalk consent, where they may pick another account; use it only when the user asks to change accounts.',
  ].join(' '),
  toolset: 'account',
  family: 'user',
  inputSchema: z.object({ switch: z.boolean().optional().describe('Ask the user to authorize DingTalk again, e.g. to change accounts.') }).strict(),
  outputSchema: statusOutput({
    name: z.string().describe("The DingTalk account's display name."),
    unionId: z.string().describe("The account's unionId: the operatorId this server uses for it."),
    switched: z.boolean().describe('True when this call went through a fresh consent.'),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  forceConsent: (input) => input.switch === true,
  purpose: (input) => (input.switch ? 'connecting a DingTalk account' : 'reading which DingTalk account is connected'),
  pending: () => ({ status: 'ok' }),
  nothingDone: 'The connected account is unchanged.',
  async run(input, call) {
    const account = await call.account();
    const name = account.nick ?? account.unionId;
    return {
      content: [
        {
          type: 'text',
          text: input.switch
            ? `Now connected to the DingTalk account ${name}.`
            : `Connected to the DingTalk account ${name}. To use another account, call get_dingtalk_account with switch: true.`,
        },
      ],
      structuredContent: { status: 'ok', name, unionId: account.unionId, switched: input.switch === true },
    };
  },
});
