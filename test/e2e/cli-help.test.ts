/** `dingtalk-mcp --help` as a terminal shows it: every command and mode, every setting, plain text. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';
import { CLI } from '../helpers/stack.js';

describe('dingtalk-mcp --help', () => {
  const run = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });

  it('exits 0 on stdout, nothing on stderr', () => {
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('lists every command and mode', () => {
    for (const usage of [
      'dingtalk-mcp --transport http',
      'dingtalk-mcp --sandbox',
      'dingtalk-mcp setup',
      'dingtalk-mcp doctor',
      'dingtalk-mcp teardown',
      'dingtalk-mcp sandbox stop',
      'dingtalk-mcp --version',
      'npx -y agent-identity-dingtalk-mcp --sandbox',
    ]) {
      expect(run.stdout).toContain(usage);
    }
  });

  it('names every setting by its flag and environment variable', () => {
    for (const s of SETTINGS) {
      if (s.flag) expect(run.stdout).toContain(`--${s.flag}`);
      if (s.env) expect(run.stdout).toContain(s.env);
    }
  });

  it('is plain text that fits a 100-column terminal: no Markdown tables or code spans', () => {
    expect(run.stdout).not.toMatch(/\|---|^\|/m);
    expect(run.stdout).not.toContain('`');
    for (const line of run.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
  });
});
