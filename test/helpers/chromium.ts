/**
 * Debian's Chromium driven by playwright-core (no browser download): a fresh profile per context, loopback only.
 * Screenshots go to test-artifacts/<suite>/ (gitignored), numbered in the order they are taken.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get update && apt-get install -y chromium (.ci/run does it)`);

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  /** The window the browser opened with. */
  page: Page;
  close(): Promise<void>;
}

/** A new browser with its own empty profile (cookies are not shared between two of these). */
export async function launchBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'web-chat-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: options.viewport ?? { width: 1100, height: 900 },
  });
  return {
    context,
    page: context.pages()[0] ?? (await context.newPage()),
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function screenshots(suite: string) {
  const dir = fileURLToPath(new URL(`../../test-artifacts/${suite}/`, import.meta.url));
  mkdirSync(dir, { recursive: true });
  let n = 0;
  const taken: string[] = [];
  return {
    dir,
    taken,
    async shot(page: Page, name: string): Promise<string> {
      const path = join(dir, `${String(++n).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      taken.push(path);
      return path;
    },
  };
}
