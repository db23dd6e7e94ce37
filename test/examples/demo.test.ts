/** The first minutes with `npm run demo`: a refusal stops it, and its document viewer stays up until Enter. */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/stack.js';

const demo = fileURLToPath(new URL('../../dist/examples/demo.js', import.meta.url));
const env = { PATH: process.env.PATH ?? '' };

describe('npm run demo', () => {
  it('after Deny, stops with a clear message instead of asking again', () => {
    const run = spawnSync(process.execPath, [demo, '--yes', '--deny'], { encoding: 'utf8', timeout: 60_000, env });
    expect(run.status).toBe(1);
    expect(run.stdout.match(/The server asks you to authorize/g)).toHaveLength(1);
    expect(run.stdout).toContain('Access was denied on the DingTalk consent page');
    expect(run.stdout).toContain('Demo stopped: nothing was written');
    expect(run.stdout).not.toContain('A second write');
  });

  it('keeps the document viewer alive until Enter', async () => {
    const child = spawn(process.execPath, [demo, '--yes', '--keep-open'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => void (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor(() => out.includes('Press Enter to stop the sandbox'), 'the Enter prompt', 60_000);
      const viewer = /stays viewable at (\S+)/.exec(out)?.[1];
      expect(viewer).toBeDefined();
      const page = await fetch(viewer!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('ECS costs');
      child.stdin.write('\n');
      expect(await exited).toBe(0);
      await expect(fetch(viewer!)).rejects.toThrow();
    } finally {
      child.kill();
    }
  });
});
