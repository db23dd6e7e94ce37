/** What looks like a bearer credential in free text: JWTs, and long opaque runs (tokens, secrets). */
export const JWT_LIKE = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const OPAQUE_RUN = /[A-Za-z0-9+/_=.-]{40,}/g;

/**
 * An upstream service's own error message, fit to show a user: dropped entirely if it echoes any
 * of the request's sensitive values, otherwise scrubbed, then shortened (scrubbing first, so a
 * cut-off token cannot slip through).
 */
export function safeServiceMessage(message: unknown, sensitive: string[]): string | undefined {
  if (typeof message !== 'string' || message.length === 0) return undefined;
  for (const s of sensitive) if (s && s.length >= 4 && message.includes(s)) return undefined;
  const text = message.replace(JWT_LIKE, '[redacted-jwt]').replace(OPAQUE_RUN, '[redacted]');
  return text.length > 300 ? text.slice(0, 300) + '…' : text;
}
