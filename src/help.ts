/**
 * `dingtalk-mcp --help`, written for a terminal: every command and mode, then every setting (flag, environment
 * variable, `.config.json` key, default) with its meaning wrapped under it. The README's Markdown table of the same
 * settings is `settingsTable()` in config.ts.
 */
import { SETTINGS, type Setting } from './config.js';
import { VERSION } from './version.js';

const COMMANDS: Array<[string, string]> = [
  ['dingtalk-mcp', 'serve MCP over stdio: one local user (what MCP clients start)'],
  ['dingtalk-mcp --transport http', 'serve streamable HTTP at /mcp: many users, OAuth bearer tokens'],
  ['dingtalk-mcp --sandbox', 'either mode against embedded emulators of Agent Identity and DingTalk (no cloud account)'],
  ['dingtalk-mcp sandbox stop', 'end the shared sandbox services that stdio --sandbox copies keep running'],
  ['dingtalk-mcp setup [--http]', 'create or fix the Alibaba Cloud resources the server needs, after printing a plan'],
  ['dingtalk-mcp doctor', 'check those resources and this machine; print a fix for each problem'],
  ['dingtalk-mcp teardown', 'delete exactly what setup created, nothing else'],
  ['dingtalk-mcp <command> --help', "a command's own flags"],
  ['dingtalk-mcp --version', 'print the version'],
];

/** Plain text: no Markdown code spans. */
const plain = (s: string) => s.replace(/`([^`]*)`/g, '$1');

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

function settingLines(s: Setting, width: number): string[] {
  const isBool = s.default === 'true' || s.default === 'false';
  const names = [s.flag && (isBool ? `--${s.flag}` : `--${s.flag} <value>`), s.env].filter(Boolean).join(', ');
  const facts = [s.default !== undefined && `Default: ${s.default}.`, s.file && `In .config.json: "${s.file}".`].filter(Boolean).join(' ');
  return [`  ${names}`, ...wrap(`${plain(s.help)} ${facts}`, width, '      ')];
}

export function usage(width = 100): string {
  const w = Math.max(60, Math.min(width, 120));
  const commandWidth = Math.max(...COMMANDS.map(([c]) => c.length)) + 3;
  return [
    `dingtalk-mcp ${VERSION}: an MCP server that writes DingTalk documents as the user, with the`,
    "user's DingTalk token held by Alibaba Cloud Agent Identity (never by the agent or the client).",
    '',
    'Commands and modes:',
    ...COMMANDS.flatMap(([c, what]) =>
      wrap(what, w, ' '.repeat(2 + commandWidth)).map((l, i) => (i === 0 ? `  ${c.padEnd(commandWidth)}${l.trimStart()}` : l)),
    ),
    '',
    'Try it with no account:  npx -y agent-identity-dingtalk-mcp --sandbox',
    'Client setup, HTTP mode, deployment, troubleshooting: the docs/ folder of the package',
    '(docs/clients.md first).',
    '',
    'Settings (a flag beats the environment, which beats .config.json, which beats the default;',
    'a true/false flag also has a --no-<flag> form):',
    '',
    ...SETTINGS.flatMap((s) => [...settingLines(s, w), '']),
    ...wrap(
      'Alibaba Cloud credentials are not settings: they come from the default credential chain (ALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET, ALIBABA_CLOUD_ROLE_ARN, an ECS or Function Compute RAM role, OIDC/RRSA, or a CLI profile).',
      w,
      '',
    ),
    '',
  ].join('\n');
}
