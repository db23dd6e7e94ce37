/**
 * Summarise `node --cpu-prof` profiles (e.g. of servers run by `BENCH_CPU_PROF=<dir> npm run bench`):
 * self time by function and by package, top entries first. `--skip-ms=N` leaves out the first N ms of
 * the profile (start-up, module loading), so a steady-state run shows what each call costs.
 * Run: node dist/bench/profile-summary.js <file.cpuprofile> [top=25] [--skip-ms=N]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

const argv = process.argv.slice(2);
const skipArg = argv.find((a) => a.startsWith('--skip-ms='));
const [file, topArg] = argv.filter((a) => !a.startsWith('--'));
if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [top] [--skip-ms=N]');
const top = Number(topArg ?? 25);
const skipUs = Number(skipArg?.slice('--skip-ms='.length) ?? 0) * 1000;
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; startTime: number; samples: number[]; timeDeltas: number[] };

const where = (url: string) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return url;
  if (url.includes('/dist/src/')) return 'ours: ' + url.slice(url.indexOf('/dist/src/') + 10);
  return url || '(native/gc/idle)';
};

// Self time per node: each sample's time delta (the time until the next sample) goes to the node it hit.
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
let at = 0;
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i] ?? 0;
  if (at < skipUs) continue;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt);
}

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let total = 0;
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
  if (functionName === '(idle)') continue;
  total += us;
  const fn = `${functionName || '(anonymous)'} ${where(url)}:${lineNumber + 1}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  byPackage.set(where(url), (byPackage.get(where(url)) ?? 0) + us);
}
const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title} (self time, % of busy time ${(total / 1000).toFixed(0)} ms)\n`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`);
};
show('by package', byPackage);
show('by function', byFunction);
