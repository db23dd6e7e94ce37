import type { Response } from 'express';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** Headers for every browser-facing response: no caching, no framing, no referrer, no scripts. */
export function setPageSecurityHeaders(res: Response): void {
  res.set({
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
  });
}

/** A small self-contained page: a title and a sentence or two. */
export function sendPage(res: Response, status: number, title: string, ...paragraphs: string[]): void {
  sendPageWithLinks(res, status, title, paragraphs, []);
}

/** A link on a page: plain `<a href>` (the CSP allows no forms and no scripts); `href` is relative to the page. */
export interface PageLink {
  href: string;
  text: string;
  /** The main action (drawn as a button). */
  primary?: boolean;
}

/** A page with the same headers as sendPage, plus links (the interstitial's Continue and Cancel). Everything is escaped. */
export function sendPageWithLinks(res: Response, status: number, title: string, paragraphs: string[], links: PageLink[]): void {
  setPageSecurityHeaders(res);
  const actions = links.length
    ? `<p class="actions">${links.map((l) => `<a href="${escapeHtml(l.href)}"${l.primary ? ' class="primary"' : ''}>${escapeHtml(l.text)}</a>`).join(' ')}</p>`
    : '';
  res
    .status(status)
    .type('html')
    .send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2328}h1{font-size:1.4rem}.actions a{display:inline-block;margin:0 1rem .5rem 0;padding:.5rem 1rem;border:1px solid #d0d7de;border-radius:6px;color:#1f2328;text-decoration:none}.actions a.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}</style>
</head><body><h1>${escapeHtml(title)}</h1>${paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join('')}${actions}</body></html>
`);
}
