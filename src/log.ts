import { createHmac, randomBytes } from 'node:crypto';
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
const LABEL: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', silent: 'SILENT' };

// Field names come from code, not input: a few dozen distinct ones, each tested once.
const secretFieldNames = new Map<string, boolean>();
function isSecretField(key: string): boolean {
  let secret = secretFieldNames.get(key);
  if (secret === undefined) {
    secret = SECRET_FIELD.test(key);
    if (secretFieldNames.size < 1000) secretFieldNames.set(key, secret);
  }
  return secret;
}

// ISO 8601 time of a line: the part up to the seconds is built once a second, not for every line.
let secondStart = -1;
let secondText = '';
function timestamp(): string {
  const now = Date.now();
  const ms = now % 1000;
  if (now - ms !== secondStart) {
    secondStart = now - ms;
    secondText = new Date(secondStart).toISOString().slice(0, 20); // "2026-07-28T09:15:02."
  }
  return `${secondText}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
}

/** ` key=value` for the line, '' for an undefined value; secret-named fields never show their value. */
function shown(key: string, value: unknown): string {
  if (value === undefined) return '';
  return ` ${key}=${isSecretField(key) ? '[redacted]' : typeof value === 'string' ? value : JSON.stringify(value)}`;
}

function hasAny(o: Record<string, unknown>): boolean {
  for (const _ in o) return true;
  return false;
}

// The default destination, stderr, is written synchronously (a pipe or a file), one system call per write.
// Debug and info lines are gathered for up to GATHER_MS and written together, so a busy server does not
// pay a write (and wake whoever reads its stderr) for every call's log line; a warning or an error is
// written at once, after whatever was gathered, and so is everything left when the process exits.
const GATHER_MS = 25;
const GATHER_MAX_CHARS = 32 * 1024;
let gathered = '';
let gatherTimer: ReturnType<typeof setTimeout> | undefined;
let flushOnExit = false;

/** Write out the gathered log lines now (before writing to stderr directly, e.g. a fatal message). */
export function flushLogs(): void {
  if (gatherTimer) clearTimeout(gatherTimer);
  gatherTimer = undefined;
  if (gathered === '') return;
  const text = gathered;
  gathered = '';
  process.stderr.write(text);
}

function writeStderr(line: string, urgent: boolean): void {
  gathered += line + '\n';
  if (urgent || gathered.length >= GATHER_MAX_CHARS) {
    flushLogs();
    return;
  }
  if (!flushOnExit) {
    flushOnExit = true;
    process.on('exit', flushLogs);
  }
  gatherTimer ??= setTimeout(flushLogs, GATHER_MS).unref();
}

export function createLogger(options: LoggerOptions = {}, base: Record<string, unknown> = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const custom = options.write;
  const write = custom ? (line: string) => custom(line) : (line: string, level: LogLevel) => writeStderr(line, RANK[level] >= RANK.warn);
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 6);

  const scrub = (text: string): string => {
    // Most lines carry neither: test first, rewrite only when needed.
    let out = text.includes('eyJ') ? text.replace(JWT_LIKE, '[redacted-jwt]') : text;
    for (const s of secrets) if (out.includes(s)) out = out.split(s).join('[redacted]');
    return out;
  };

  const emit = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < threshold) return;
    let line = `${timestamp()} ${LABEL[level]} ${message}`;
    // Base fields first (a call's own value replaces a base field's in place), then the call's own.
    if (fields === undefined || !hasAny(base)) {
      const all = fields ?? base;
      for (const key in all) line += shown(key, all[key]);
    } else {
      for (const key in base) line += shown(key, key in fields ? fields[key] : base[key]);
      for (const key in fields) if (!(key in base)) line += shown(key, fields[key]);
    }
    write(scrub(line), level);
  };

  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

// User ids are often guessable (e-mail addresses, employee numbers), so a plain hash of one could
// be reversed by trying candidates: labels are keyed (HMAC). The key is random per process unless
// configureUserLabels() derives it from the configured state secret, which makes labels agree
// across replicas and restarts of one deployment.
let labelKey: Uint8Array = randomBytes(32);
const labels = new Map<string, string>();

export function configureUserLabels(key: Uint8Array): void {
  labelKey = key;
  labels.clear();
}

/** A short, stable label for a user id in logs: HMAC-SHA256 under a key kept out of the logs. */
export function hashUserId(id: string): string {
  let label = labels.get(id);
  if (label === undefined) {
    label = createHmac('sha256', labelKey).update(id).digest('hex').slice(0, 12);
    if (labels.size >= 10_000) labels.clear();
    labels.set(id, label);
  }
  return label;
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
