/**
 * Alibaba Cloud region ids, to tell a typo (`cn-beijng`) or stray spaces from a real region before the first call
 * turns it into "endpoint unreachable". Agent Identity itself is in cn-beijing (docs/reference/agent-identity.md,
 * "Region"); other regions are accepted, since the service may open there and the endpoints can be overridden.
 */
export const ALIBABA_CLOUD_REGIONS = [
  'cn-qingdao',
  'cn-beijing',
  'cn-zhangjiakou',
  'cn-huhehaote',
  'cn-wulanchabu',
  'cn-hangzhou',
  'cn-shanghai',
  'cn-nanjing',
  'cn-fuzhou',
  'cn-wuhan-lr',
  'cn-shenzhen',
  'cn-heyuan',
  'cn-guangzhou',
  'cn-chengdu',
  'cn-hongkong',
  'cn-hangzhou-finance',
  'cn-shanghai-finance-1',
  'cn-shenzhen-finance-1',
  'cn-beijing-finance-1',
  'cn-north-2-gov-1',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-southeast-1',
  'ap-southeast-3',
  'ap-southeast-5',
  'ap-southeast-6',
  'ap-southeast-7',
  'ap-south-1',
  'us-east-1',
  'us-west-1',
  'eu-west-1',
  'eu-central-1',
  'me-east-1',
  'me-central-1',
  'na-south-1',
] as const;

const KNOWN = new Set<string>(ALIBABA_CLOUD_REGIONS);

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** Why `value` is not a region id (quoting it), or undefined when it is one. */
export function regionProblem(value: string): string | undefined {
  if (value !== value.trim()) return `"${value}" has spaces around it; use "${value.trim()}"`;
  if (KNOWN.has(value)) return undefined;
  const closest = ALIBABA_CLOUD_REGIONS.map((r) => ({ r, d: distance(value, r) })).sort((x, y) => x.d - y.d)[0]!;
  if (closest.d <= 3) return `"${value}" is not an Alibaba Cloud region; did you mean "${closest.r}"? (Agent Identity is in cn-beijing)`;
  return `"${value}" is not an Alibaba Cloud region; Agent Identity is in cn-beijing (regions: ${ALIBABA_CLOUD_REGIONS.join(', ')})`;
}
