/**
 * Who the caller is in DingTalk: the unionId (and name) that GET /v1.0/contact/users/me (contact_1_0 GetUser,
 * "me") returns for *their own* user token. It is the only `operatorId` app-token calls ever carry
 * (docs/architecture.md decision 12). Cached per user together with a fingerprint of the token it was learnt from: a different token
 * (after a re-consent, perhaps of another DingTalk account) means asking again, and dropping the user's token
 * drops this too.
 */
import { createHash } from 'node:crypto';
import type { DingTalkClient } from './client.js';

export interface DingTalkAccount {
  unionId: string;
  nick?: string;
}

const MAX_ENTRIES = 10_000;

export class OperatorDirectory {
  private readonly byUser = new Map<string, { fingerprint: string; account: DingTalkAccount }>();
  private readonly inflight = new Map<string, Promise<DingTalkAccount>>();

  constructor(private readonly client: DingTalkClient) {}

  /** The DingTalk account behind `userToken`, for the Agent Identity user `userKey`. */
  resolve(userKey: string, userToken: string, signal?: AbortSignal): Promise<DingTalkAccount> {
    const fingerprint = createHash('sha256').update(userToken).digest('base64url');
    const hit = this.byUser.get(userKey);
    if (hit && hit.fingerprint === fingerprint) return Promise.resolve(hit.account);
    const flightKey = `${userKey}|${fingerprint}`;
    let flight = this.inflight.get(flightKey);
    if (!flight) {
      flight = this.client
        .getCurrentUser(userToken, signal ? { signal } : {})
        .then((account) => {
          this.byUser.delete(userKey);
          this.byUser.set(userKey, { fingerprint, account });
          if (this.byUser.size > MAX_ENTRIES) this.byUser.delete(this.byUser.keys().next().value as string);
          return account;
        })
        .finally(() => this.inflight.delete(flightKey));
      this.inflight.set(flightKey, flight);
    }
    return flight;
  }

  /** The last account seen for this user, without asking DingTalk (for messages). */
  known(userKey: string): DingTalkAccount | undefined {
    return this.byUser.get(userKey)?.account;
  }

  drop(userKey: string): void {
    this.byUser.delete(userKey);
  }
}
