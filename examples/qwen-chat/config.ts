/**
 * The familiar `mcpServers` config:
 *
 *   { "mcpServers": {
 *       "<name>": { "command": "node", "args": ["dist/src/cli.js"], "env": { "K": "${K}" }, "cwd": "." },   // stdio
 *       "<name>": { "url": "https://…/mcp", "headers": { "Authorization": "Bearer ${KEY}" } },             // HTTP, static key
 *       "<name>": { "url": "https://…/mcp", "oauth": { "clientId": "…", "scope": "…", "callbackPort": 8765 } } // HTTP, OAuth
 *   } }
 *
 * `${VAR}` reads the environment, so secrets stay out of the file. An HTTP server with no Authorization header logs in
 * with OAuth when it answers 401 (set "oauth": false to forbid that). `"disabled": true` skips an entry.
 */
import { readFileSync } from 'node:fs';
import * as z from 'zod/v4';

const common = { disabled: z.boolean().optional(), description: z.string().optional(), type: z.string().optional() };

const stdioSchema = z.object({
  ...common,
  command: z.string().min(1),
  args: z.array(z.string()).optional(),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
});

const oauthSchema = z.object({
  clientId: z.string().optional(),
  clientSecret: z.string().optional(),
  scope: z.string().optional(),
  callbackPort: z.number().int().min(1).max(65535).optional(),
});

const httpSchema = z.object({
  ...common,
  url: z.string().min(1),
  headers: z.record(z.string(), z.string()).optional(),
  oauth: z.union([z.literal(false), oauthSchema]).optional(),
});

const configSchema = z.object({ mcpServers: z.record(z.string(), z.union([stdioSchema, httpSchema])) });

export type StdioServerConfig = z.infer<typeof stdioSchema>;
export type HttpServerConfig = z.infer<typeof httpSchema>;
export type ServerConfig = StdioServerConfig | HttpServerConfig;
export interface ChatConfig {
  mcpServers: Record<string, ServerConfig>;
}

export function isHttpServer(entry: ServerConfig): entry is HttpServerConfig {
  return 'url' in entry;
}

export class ConfigFileError extends Error {}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replace `${VAR}`; names of unset variables are collected in `missing`, and the substituted values in `used`
 * (so that messages can hide them again).
 */
export function interpolate(value: string, env: NodeJS.ProcessEnv, missing: Set<string>, used?: Map<string, string>): string {
  return value.replace(VAR, (_m, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') missing.add(name);
    else used?.set(name, v);
    return v ?? '';
  });
}

export interface ResolvedServer {
  name: string;
  entry: ServerConfig;
  /** Variables the entry needs but the environment lacks: the server is reported, not started. */
  missing: string[];
  /** The entry as written in the file, before `${VAR}` expansion: what messages may show. Absent: same as `entry`. */
  written?: ServerConfig;
  /** Values substituted for `${VAR}` (name → value): never shown; messages put `${VAR}` back. */
  substituted?: Map<string, string>;
}

/** Parse a config, expanding `${VAR}`. A stdio env entry that is exactly an unset `${VAR}` is dropped (optional setting). */
export function parseConfig(json: string, env: NodeJS.ProcessEnv = process.env, source = 'config'): ResolvedServer[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new ConfigFileError(`${source} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new ConfigFileError(`${source} is not an "mcpServers" config (${issues}). Each server needs "command" (stdio) or "url" (HTTP).`);
  }
  const servers: ResolvedServer[] = [];
  for (const [name, original] of Object.entries(parsed.data.mcpServers)) {
    if (original.disabled) continue;
    const missing = new Set<string>();
    const used = new Map<string, string>();
    let entry: ServerConfig;
    if (isHttpServer(original)) {
      entry = {
        ...original,
        url: interpolate(original.url, env, missing, used),
        headers: Object.fromEntries(Object.entries(original.headers ?? {}).map(([k, v]) => [k, interpolate(v, env, missing, used)])),
        ...(original.oauth
          ? {
              oauth: {
                ...original.oauth,
                ...(original.oauth.clientId !== undefined ? { clientId: interpolate(original.oauth.clientId, env, missing, used) } : {}),
                ...(original.oauth.clientSecret !== undefined ? { clientSecret: interpolate(original.oauth.clientSecret, env, missing, used) } : {}),
              },
            }
          : {}),
      };
    } else {
      const envOut: Record<string, string> = {};
      for (const [k, v] of Object.entries(original.env ?? {})) {
        const only = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(v);
        if (only && !env[only[1]!]) continue;
        envOut[k] = interpolate(v, env, missing, used);
      }
      entry = { ...original, args: (original.args ?? []).map((a) => interpolate(a, env, missing, used)), env: envOut };
    }
    servers.push({ name, entry, missing: [...missing], written: original, substituted: used });
  }
  return servers;
}

export function readConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): ResolvedServer[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigFileError(
      `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)}). Pass --config <file>, e.g. --config examples/qwen-chat/mcp.example.json`,
    );
  }
  return parseConfig(text, env, path);
}
