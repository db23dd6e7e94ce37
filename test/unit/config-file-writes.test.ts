/** .config.json and its secrets file are rewritten through an exclusive 0600 temporary file (src/provisioning/record.ts). */
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigFile, replaceFile } from '../../src/provisioning/record.js';

let dir: string;
let victim: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'config-writes-'));
  victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'untouched\n', { mode: 0o644 });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('config file writes', () => {
  it('never follows a symlink planted at the temporary path of .config.json; the save still succeeds', () => {
    const file = new ConfigFile(join(dir, '.config.json'));
    const planted = `${file.path}.${process.pid}.tmp`;
    symlinkSync(victim, planted);
    file.data.workload_identity_name = 'wi-1';
    file.save();
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(lstatSync(planted).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(file.path, 'utf8'))).toMatchObject({ workload_identity_name: 'wi-1' });
    expect(statSync(file.path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') && f !== `.config.json.${process.pid}.tmp`)).toEqual([]);
  });

  it('never follows a symlink planted at the temporary path of the secrets file', () => {
    const file = new ConfigFile(join(dir, '.config.json'));
    symlinkSync(victim, `${file.secretsPath}.${process.pid}.tmp`);
    file.writeSecret('oidc_client_secret', 'the-secret-value');
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(file.readSecret('oidc_client_secret')).toBe('the-secret-value');
    expect(statSync(file.secretsPath).mode & 0o777).toBe(0o600);
  });

  it('fails with a message naming the file when it cannot be written, and leaves no temporary file', () => {
    const target = join(dir, 'no-such-dir', 'x.json');
    expect(() => replaceFile(target, '{}')).toThrow(`Could not write ${target}`);
    expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
  });
});
