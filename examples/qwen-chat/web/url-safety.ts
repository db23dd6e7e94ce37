/**
 * What a consent card shows about a link a server asks the person to open: the terminal chat's checks (checkUrl:
 * https or loopback only, no `user@host`, punycode and non-ASCII warnings) plus a warning for hosts that look like a
 * well-known Alibaba / DingTalk domain without being it (`dingtalk.com.evil.io`, `dingtaIk.com`, `aliyun-login.net`).
 */
import { checkUrl } from '../elicitation.js';

/** Domains people in this flow expect to see; a host that resembles one without being under it gets a warning. */
export const KNOWN_DOMAINS = ['dingtalk.com', 'aliyun.com', 'alibabacloud.com', 'aliyuncs.com', 'alipay.com', 'taobao.com'];

export interface LinkView {
  ok: boolean;
  /** Why the link is not offered at all (ok=false). */
  refused?: string;
  /** `https://`, the host (ASCII form, as the browser will use it) and the rest, to render the host highlighted. */
  scheme: string;
  host: string;
  rest: string;
  href: string;
  warnings: string[];
}

export function viewLink(raw: string): LinkView {
  const check = checkUrl(raw);
  if (!check.ok || !check.url) return { ok: false, refused: check.reason, scheme: '', host: '', rest: raw.slice(0, 2048), href: '', warnings: check.warnings };
  const url = check.url;
  const scheme = `${url.protocol}//`;
  return {
    ok: true,
    scheme,
    host: url.host,
    rest: url.href.slice(scheme.length + url.host.length),
    href: url.href,
    warnings: [...check.warnings, ...lookAlikeWarnings(url.hostname)],
  };
}

/** Warnings for a host that imitates one of {@link KNOWN_DOMAINS}; none for the real domains and their subdomains. */
export function lookAlikeWarnings(hostname: string): string[] {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (KNOWN_DOMAINS.some((d) => host === d || host.endsWith(`.${d}`))) return [];
  const labels = host.split('.');
  const registrable = labels.slice(-2).join('.');
  for (const known of KNOWN_DOMAINS) {
    const brand = known.split('.')[0]!;
    if (host.includes(brand)) return [`The host "${host}" contains "${brand}" but is not ${known} or one of its subdomains: it may be imitating it.`];
    const a = skeleton(registrable.split('.')[0]!);
    const b = skeleton(brand);
    if (a === b || (Math.abs(a.length - b.length) <= 1 && editDistance(a, b) <= 1 && b.length >= 5)) {
      return [`The host "${host}" looks like ${known} but is a different domain: check it letter by letter.`];
    }
  }
  return [];
}

/** Fold characters people confuse when reading a host name. */
function skeleton(s: string): string {
  return s
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w')
    .replace(/[1il|]/g, 'l')
    .replace(/0/g, 'o')
    .replace(/5/g, 's')
    .replace(/-/g, '');
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const keep = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = keep;
    }
  }
  return row[b.length]!;
}
