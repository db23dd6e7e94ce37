import { createHash } from 'node:crypto';
import { JWT_LIKE } from './redact.js';

/** Logs go to stderr only: in stdio mode stdout belongs to the MCP protocol. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Defaults to process.stderr. Never stdout. */
  write?: (line: string) => void;
  /** Extra strings to scrub from every line (configured secrets such as an AccessKey secret). */
  secrets?: string[];
}

// Anything that looks like a bearer credential is scrubbed even if a caller slips up:
// JWTs, and values of fields whose names say they are secret.
const SECRET_FIELD = /token|secret|password|authorization|jwt|credential|cookie|apikey|api_key/i;

export function createLogger(options: LoggerOptions = {}, base: Record<string, unknown> = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 6);

  const scrub = (text: string): string => {
    let out = text.replace(JWT_LIKE, '[redacted-jwt]');
    for (const s of secrets) out = out.split(s).join('[redacted]');
    return out;
  };

  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < threshold) return;
    const all = { ...base, ...fields };
    const parts = [`${new Date().toISOString()} ${level.toUpperCase()} ${message}`];
    for (const [key, value] of Object.entries(all)) {
      if (value === undefined) continue;
      const shown = SECRET_FIELD.test(key) ? '[redacted]' : typeof value === 'string' ? value : JSON.stringify(value);
      parts.push(`${key}=${shown}`);
    }
    write(scrub(parts.join(' ')));
  };

  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A short, stable, non-reversible label for a user id in logs. */
export function hashUserId(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 12);
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
