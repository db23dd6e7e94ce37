import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Encryption of what we put in a shared store: AES-256-GCM under a key derived (HKDF-SHA256) from
 * `DINGTALK_MCP_STATE_SECRET`, which only the replicas hold. The Redis key name is the associated
 * data, so a value copied under another key does not open. Anyone reading Redis sees neither the
 * user's JWT, nor the Agent Identity session, nor the user id (key names carry a keyed hash).
 */
export class Sealer {
  private readonly encryptionKey: Buffer;
  private readonly namingKey: Buffer;

  constructor(secret: string) {
    const ikm = Buffer.from(secret, 'utf8');
    const salt = Buffer.from('agent-identity-dingtalk-mcp/state');
    this.encryptionKey = Buffer.from(hkdfSync('sha256', ikm, salt, 'shared-store-encryption-v1', 32));
    this.namingKey = Buffer.from(hkdfSync('sha256', ikm, salt, 'shared-store-key-names-v1', 32));
  }

  seal(plaintext: string, associatedData: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(associatedData));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The plaintext, or undefined if the value was not sealed by a replica holding the same secret for this key. */
  open(sealed: string, associatedData: string): string | undefined {
    try {
      const raw = Buffer.from(sealed, 'base64url');
      if (raw.length < 28) return undefined;
      const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(associatedData));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** A stable, non-reversible name for a value (a user key) in key names: keyed, so not guessable from an e-mail address. */
  name(value: string): string {
    return createHmac('sha256', this.namingKey).update(value).digest('base64url').slice(0, 22);
  }
}
