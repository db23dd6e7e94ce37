import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/** At most one JWKS fetch per second, whatever tokens arrive (tokens naming random key ids cannot make us hammer the provider). */
const MIN_FETCH_INTERVAL_MS = 1_000;
/** Keys are re-read this often even when every token names a known key (a withdrawn key stops being honoured). */
const MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 10_000;

/** The provider's keys cannot be had: none fetched yet, or a token names a key we cannot look up now. */
export class JwksUnavailableError extends Error {
  override name = 'JwksUnavailableError';
}

interface KeySet {
  uri: string;
  select: ReturnType<typeof createLocalJWKSet>;
  fetchedAt: number;
}

/**
 * The identity provider's JWKS, kept as the last good copy. A token naming an unknown key id
 * (a freshly rotated key) refetches at once, single-flight and at most once a second; a JWKS
 * outage keeps serving the last good keys instead of refusing valid tokens.
 */
export class JwksCache {
  private good?: KeySet;
  private inFlight?: Promise<KeySet>;
  private lastFetchStarted = Number.NEGATIVE_INFINITY;

  constructor(private readonly onStale: (error: string) => void = () => {}) {}

  /** A key resolver for `jwtVerify`, against the JWKS at `uri`. */
  resolver(uri: string): JWTVerifyGetKey {
    return async (header, token) => {
      let set = this.good?.uri === uri ? this.good : undefined;
      if (!set) set = await this.fetch(uri);
      else if (Date.now() - set.fetchedAt > MAX_AGE_MS) {
        set = await this.fetch(uri).catch((e: unknown) => {
          this.onStale((e as Error).message);
          return set!;
        });
      }
      try {
        return await set.select(header, token);
      } catch (e) {
        if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
        // Perhaps a key published since our copy: look again now.
        const fresh = await this.fetch(uri);
        return fresh.select(header, token);
      }
    };
  }

  /** Fetch the JWKS: joins a fetch under way, and waits out the one-second spacing. Throws JwksUnavailableError. */
  private fetch(uri: string): Promise<KeySet> {
    this.inFlight ??= (async () => {
      const wait = this.lastFetchStarted + MIN_FETCH_INTERVAL_MS - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.lastFetchStarted = Date.now();
      let body: Partial<JSONWebKeySet>;
      try {
        const res = await fetch(uri, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/json' } });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        body = (await res.json()) as Partial<JSONWebKeySet>;
      } catch (e) {
        throw new JwksUnavailableError(`the identity provider's keys (${uri}) could not be read: ${(e as Error).message}`);
      }
      if (!Array.isArray(body.keys)) throw new JwksUnavailableError(`the identity provider's keys (${uri}) are not a JWKS (no "keys" array)`);
      const set: KeySet = { uri, select: createLocalJWKSet({ keys: body.keys }), fetchedAt: Date.now() };
      this.good = set;
      return set;
    })().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }
}
