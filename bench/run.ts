/**
 * `npm run bench`: this server against a bare MCP SDK server doing the same necessary work
 * (bench/baseline: same SDK, same tool schema, the same one undici POST to the same emulated
 * DingTalk, for HTTP the same jose JWT verification), interleaved round by round, with medians,
 * spread (min–max over rounds) and ratios from the same run. Server CPU is read from inside each
 * server process (bench/probe.ts, process.cpuUsage over IPC); clients are light (JSON lines on
 * stdio, raw undici requests on HTTP), so the client's own cost does not dominate.
 *
 * Settings: BENCH_ROUNDS (5), BENCH_CALLS (stdio calls per round, 300), BENCH_ONLY
 * (comma list of stdio,http,heap,consent,cold), BENCH_BEFORE (path to another build's
 * dist/src/cli.js, measured as a third server in the same rounds), BENCH_OURS (our cli.js).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { followAuthorizationLink } from '../examples/shared/browser.js';
import { freePort, SANDBOX, startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { HttpClient, median, OURS, spawnMeasured, spread, StdioClient, table, waitUntil, type Era, type Measured, type ToolResult } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STDIO_CALLS = Number(process.env.BENCH_CALLS ?? 300);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'stdio,http,heap,consent,cold').split(','));
const BEFORE = process.env.BENCH_BEFORE;
// Extra settings for our servers (JSON object), e.g. to see what a setting costs: {"DINGTALK_MCP_LOG_LEVEL":"warn"}.
const SERVER_ENV = JSON.parse(process.env.BENCH_SERVER_ENV ?? '{}') as Record<string, string>;
const BASELINE_STDIO = fileURLToPath(new URL('./baseline/stdio.js', import.meta.url));
const BASELINE_HTTP = fileURLToPath(new URL('./baseline/http.js', import.meta.url));
const ERAS: Era[] = ['legacy', 'modern'];
const ERA_NAME: Record<Era, string> = { legacy: '2025-11-25', modern: '2026-07-28' };
const CONCURRENCY = [1, 10, 50];
const HTTP_CALLS: Record<number, number> = { 1: 200, 10: 600, 50: 1000 };
const HEAP_SESSIONS = 300;
const CONSENT_SAMPLES = 5;

const args = (sandbox: Sandbox) => ({ document: sandbox.sampleDocumentId, content: '# bench\n\n' + 'lorem ipsum '.repeat(200) });
const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const BENCH_USERS = users('bench-user', 50);
const CONSENT_USERS = ERAS.flatMap((era) => users(`consent-http-${era}`, CONSENT_SAMPLES));

/** One measured quantity per server per round. */
class Results {
  readonly rows = new Map<string, Map<string, number[]>>();
  add(metric: string, server: string, value: number): void {
    let m = this.rows.get(metric);
    if (!m) this.rows.set(metric, (m = new Map()));
    let xs = m.get(server);
    if (!xs) m.set(server, (xs = []));
    xs.push(value);
  }
}

interface Role {
  name: string;
  cli?: string; // our builds; undefined = baseline
}
const ROLES: Role[] = [{ name: 'baseline' }, { name: 'ours', cli: OURS }, ...(BEFORE ? [{ name: 'before', cli: BEFORE }] : [])];

/** Round r visits the servers in a rotated order, so neither always runs first. */
const rotated = <T>(xs: T[], r: number) => xs.map((_, i) => xs[(i + r) % xs.length]!);

function assertWritten(result: ToolResult): void {
  if (result.isError || result.structuredContent?.status !== 'written') throw new Error(`expected a write, got ${JSON.stringify(result).slice(0, 300)}`);
}

/** The link of a first call that needs consent: text fallback (no URL elicitation declared). */
function linkOf(result: ToolResult): string {
  const url = result.structuredContent?.authorizationUrl;
  if (typeof url !== 'string') throw new Error(`expected an authorization link, got ${JSON.stringify(result).slice(0, 300)}`);
  return url;
}

/** Requests that reached the emulated upstreams (DingTalk and Agent Identity) so far. */
const upstream = (sandbox: Sandbox) => sandbox.dingtalk.requests.length + sandbox.agentIdentity.calls.length;
const UPSTREAM = 'upstream requests per call (DingTalk + Agent Identity)';

// ------------------------------------------------------------------------------------------------

async function benchStdio(sandbox: Sandbox, results: Results, baselineToken: string, ports: number[]): Promise<void> {
  for (const era of ERAS) {
    const servers: Array<{ role: Role; server: Measured; client: StdioClient }> = [];
    for (const [index, role] of ROLES.entries()) {
      // Each of our servers holds its own callback port.
      const appRedirectUri = `http://127.0.0.1:${ports[index]}`;
      const server = role.cli
        ? spawnMeasured(
            role.name,
            role.cli,
            [],
            sandbox.serverEnv(appRedirectUri, { AGENT_IDENTITY_USER_ID: `stdio-${role.name}-${era}`, ...SERVER_ENV }),
            'pipe',
          )
        : spawnMeasured(
            role.name,
            BASELINE_STDIO,
            [],
            { PATH: process.env.PATH ?? '', BENCH_DINGTALK_BASE: sandbox.dingtalkUrl, BENCH_DINGTALK_TOKEN: baselineToken },
            'pipe',
          );
      const client = new StdioClient(server.child);
      await client.handshake(era);
      if (role.cli) {
        await waitUntil(() => server.stderr().includes('authorization pages listening'), `${role.name}: authorization pages`);
        const first = await client.call(era, args(sandbox));
        if (first.structuredContent?.status !== 'written') await followAuthorizationLink(linkOf(first));
      }
      for (let i = 0; i < 50; i++) assertWritten(await client.call(era, args(sandbox)));
      servers.push({ role, server, client });
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const { role, server, client } of rotated(servers, r)) {
        const latencies: number[] = [];
        const up0 = upstream(sandbox);
        const cpu0 = await server.cpu();
        for (let i = 0; i < STDIO_CALLS; i++) {
          const t0 = performance.now();
          const result = await client.call(era, args(sandbox));
          latencies.push(performance.now() - t0);
          if (i === 0) assertWritten(result);
        }
        const cpu = (await server.cpu()) - cpu0;
        results.add(`stdio ${ERA_NAME[era]}: server CPU per call (µs)`, role.name, cpu / STDIO_CALLS);
        results.add(`stdio ${ERA_NAME[era]}: latency per call, median (ms)`, role.name, median(latencies));
        results.add(`stdio ${ERA_NAME[era]}: ${UPSTREAM}`, role.name, (upstream(sandbox) - up0) / STDIO_CALLS);
      }
    }
    await Promise.all(servers.map((s) => s.server.stop()));
  }
}

// ------------------------------------------------------------------------------------------------

async function startHttpServers(sandbox: Sandbox, baselineToken: string, ports: number[]): Promise<Array<{ role: Role; server: Measured; url: string }>> {
  return Promise.all(
    ROLES.map(async (role, i) => {
      const port = ports[i]!;
      const base = `http://127.0.0.1:${port}`;
      const server = role.cli
        ? spawnMeasured(
            role.name,
            role.cli,
            ['--transport', 'http', '--port', String(port)],
            sandbox.serverEnv(base, { DINGTALK_MCP_RATE_LIMIT: '100000', ...SERVER_ENV }),
          )
        : spawnMeasured(role.name, BASELINE_HTTP, [], {
            PATH: process.env.PATH ?? '',
            BENCH_PORT: String(port),
            BENCH_ISSUER: sandbox.oidc!.issuer,
            BENCH_JWKS: `${sandbox.oidc!.issuer}/jwks`,
            BENCH_AUDIENCE: SANDBOX.oidcClientId,
            BENCH_DINGTALK_BASE: sandbox.dingtalkUrl,
            BENCH_DINGTALK_TOKEN: baselineToken,
          });
      await waitUntil(() => /serving MCP over streamable HTTP|baseline listening/.test(server.stderr()), `${role.name} to listen`);
      return { role, server, url: `${base}/mcp` };
    }),
  );
}

async function benchHttp(
  sandbox: Sandbox,
  results: Results,
  servers: Array<{ role: Role; server: Measured; url: string }>,
  bearers: Map<string, string>,
): Promise<void> {
  // Each user consents once to our servers (the token then stays cached in Agent Identity and ours).
  for (const { role, url } of servers) {
    if (!role.cli) continue;
    for (let i = 0; i < BENCH_USERS.length; i += 5) {
      await Promise.all(
        BENCH_USERS.slice(i, i + 5).map(async (sub) => {
          const client = new HttpClient(url, bearers.get(sub)!, 'modern');
          const first = await client.call(args(sandbox));
          if (first.structuredContent?.status !== 'written') {
            await followAuthorizationLink(linkOf(first), { oidcSub: sub });
            assertWritten(await client.call(args(sandbox)));
          }
          await client.close();
        }),
      );
    }
  }
  for (const era of ERAS) {
    const clients = new Map<string, HttpClient[]>();
    for (const { role, url } of servers) {
      const list = BENCH_USERS.map((sub) => new HttpClient(url, bearers.get(sub)!, era));
      await Promise.all(list.map((c) => c.handshake()));
      for (const c of list) assertWritten(await c.call(args(sandbox)));
      clients.set(role.name, list);
    }
    for (const concurrency of CONCURRENCY) {
      const total = HTTP_CALLS[concurrency]!;
      const label = concurrency === 1 ? 'sequential' : `${concurrency} concurrent clients`;
      for (let r = 0; r < ROUNDS; r++) {
        for (const { role, server } of rotated(servers, r)) {
          const pool = clients.get(role.name)!.slice(0, concurrency);
          const latencies: number[] = [];
          let next = 0;
          const up0 = upstream(sandbox);
          const cpu0 = await server.cpu();
          const t0 = performance.now();
          await Promise.all(
            pool.map(async (client) => {
              while (next < total) {
                next++;
                const s = performance.now();
                const result = await client.call(args(sandbox));
                latencies.push(performance.now() - s);
                if (result.isError) throw new Error(`${role.name}: ${JSON.stringify(result).slice(0, 300)}`);
              }
            }),
          );
          const wall = (performance.now() - t0) / 1000;
          const cpu = (await server.cpu()) - cpu0;
          const prefix = `HTTP ${ERA_NAME[era]}, ${label}`;
          results.add(`${prefix}: server CPU per call (µs)`, role.name, cpu / total);
          results.add(`${prefix}: throughput (calls/s)`, role.name, total / wall);
          results.add(`${prefix}: latency per call, median (ms)`, role.name, median(latencies));
          results.add(`${prefix}: ${UPSTREAM}`, role.name, (upstream(sandbox) - up0) / total);
        }
      }
    }
    for (const list of clients.values()) await Promise.all(list.map((c) => c.close()));
  }
}

async function benchHeap(results: Results, servers: Array<{ role: Role; server: Measured; url: string }>, bearers: Map<string, string>): Promise<void> {
  for (const { role, server, url } of servers) {
    const opened: HttpClient[] = [];
    await server.heap(); // settle
    const before = await server.heap();
    for (let i = 0; i < HEAP_SESSIONS; i++) {
      const client = new HttpClient(url, bearers.get(BENCH_USERS[i % BENCH_USERS.length]!)!, 'legacy');
      await client.handshake();
      opened.push(client);
    }
    const after = await server.heap();
    results.add(`idle 2025-11-25 session: heap per session (KiB), ${HEAP_SESSIONS} sessions`, role.name, (after - before) / HEAP_SESSIONS / 1024);
    await Promise.all(opened.map((c) => c.close()));
  }
}

// ------------------------------------------------------------------------------------------------
// consent → write: from the moment our /callback page answers the browser to the DingTalk write

async function consentToWrite(
  sandbox: Sandbox,
  era: Era,
  call: (onLink: (url: string) => Promise<void>) => Promise<ToolResult>,
  sub?: string,
): Promise<number> {
  let callbackDone = 0;
  const result = await call(async (url) => {
    const visit = await followAuthorizationLink(url, sub ? { oidcSub: sub } : {});
    callbackDone = Date.now();
    if (!visit.body.includes('DingTalk access granted')) throw new Error(`consent failed: ${visit.body.slice(0, 200)}`);
  });
  assertWritten(result);
  const write = [...sandbox.dingtalk.requests].reverse().find((r) => r.api === 'overwriteContent' && r.at.getTime() >= callbackDone);
  if (!write || !callbackDone) throw new Error(`${era}: no write after the callback`);
  return write.at.getTime() - callbackDone;
}

/** One round trip of the consent flow as an MCP client declaring URL elicitation plays it. */
function consentingCall(
  era: Era,
  client: { call: (extra?: Record<string, unknown>, caps?: Record<string, unknown>) => Promise<ToolResult>; onRequest?: unknown },
  setHandler: (h: (url: string) => Promise<void>) => void,
) {
  const caps = { elicitation: { url: {} } };
  return async (onLink: (url: string) => Promise<void>) => {
    if (era === 'legacy') {
      setHandler(onLink);
      return client.call({}, caps);
    }
    const first = await client.call({}, caps);
    if (first.resultType !== 'input_required') return first;
    const [key, request] = Object.entries(first.inputRequests ?? {})[0]!;
    await onLink(request.params.url);
    return client.call({ inputResponses: { [key]: { action: 'accept' } }, requestState: first.requestState }, caps);
  };
}

async function benchConsent(
  sandbox: Sandbox,
  results: Results,
  httpServers: Array<{ role: Role; server: Measured; url: string }> | undefined,
  bearers: Map<string, string>,
  stdioPort: number,
): Promise<void> {
  const appRedirectUri = `http://127.0.0.1:${stdioPort}`;
  for (const era of ERAS) {
    for (let i = 0; i < CONSENT_SAMPLES; i++) {
      // stdio: a fresh process and user each time, so the first write pays every first-use cost.
      const server = spawnMeasured(
        'ours',
        OURS,
        [],
        sandbox.serverEnv(appRedirectUri, { AGENT_IDENTITY_USER_ID: `consent-stdio-${era}-${i}-${Date.now()}` }),
        'pipe',
      );
      const client = new StdioClient(server.child);
      await client.handshake(era, { elicitation: { url: {} } });
      await waitUntil(() => server.stderr().includes('authorization pages listening'), 'authorization pages');
      const call = consentingCall(
        era,
        { call: (extra = {}, caps = {}) => client.call(era, args(sandbox), extra, caps) },
        (h) => (client.onRequest = async (m) => (await h((m.params as { url: string }).url), { action: 'accept' })),
      );
      results.add(`consent → write, stdio ${ERA_NAME[era]} (ms)`, 'ours', await consentToWrite(sandbox, era, call));
      await server.stop();
    }
    for (const { role, url } of httpServers ?? []) {
      if (role.name !== 'ours') continue;
      for (let i = 0; i < CONSENT_SAMPLES; i++) {
        const sub = `consent-http-${era}-${i}`;
        const client = new HttpClient(url, bearers.get(sub)!, era);
        await client.handshake({ elicitation: { url: {} } });
        if (era === 'legacy') await client.openStream();
        const call = consentingCall(
          era,
          { call: (extra = {}, caps = {}) => client.call(args(sandbox), extra, caps) },
          (h) => (client.onRequest = async (m) => (await h((m.params as { url: string }).url), { action: 'accept' })),
        );
        results.add(`consent → write, HTTP ${ERA_NAME[era]} (ms)`, 'ours', await consentToWrite(sandbox, era, call, sub));
        await client.close();
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// cold start: spawn → the initialize answer on stdout (no probe: nothing extra is loaded)

function coldStart(script: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('"id":1')) {
        resolve(performance.now() - started);
        child.kill();
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => (out.includes('"id":1') ? undefined : reject(new Error(`${script} exited ${code} before answering`))));
    child.stdin.write(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
      }) + '\n',
    );
  });
}

async function benchColdStart(results: Results): Promise<void> {
  const env = {
    AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'bench',
    AGENT_IDENTITY_USER_ID: 'bench',
    ALIBABA_CLOUD_ACCESS_KEY_ID: 'bench',
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'bench',
    APP_REDIRECT_URI: 'http://127.0.0.1:0',
    DINGTALK_MCP_LOG_LEVEL: 'silent',
  };
  for (const role of ROLES) await coldStart(role.cli ?? BASELINE_STDIO, role.cli ? env : {}); // warm the disk cache
  for (let r = 0; r < ROUNDS * 3; r++) {
    for (const role of rotated(ROLES, r))
      results.add('stdio cold start to the initialize answer (ms)', role.name, await coldStart(role.cli ?? BASELINE_STDIO, role.cli ? env : {}));
  }
}

// ------------------------------------------------------------------------------------------------

function report(results: Results): string {
  const others = ROLES.filter((r) => r.cli).map((r) => r.name);
  const header = ['', 'baseline (bare SDK)', ...others, ...others.map((o) => `${o} / baseline`)];
  const rows = [header];
  for (const [metric, byServer] of results.rows) {
    const base = byServer.get('baseline');
    const digits = metric.includes('µs') || metric.includes('calls/s') ? 0 : metric.includes('KiB') ? 1 : 2;
    if (metric.includes(UPSTREAM)) {
      // A count, not a cost: the same for every round when the server behaves, so the ratio says nothing new.
      rows.push([metric, base ? spread(base, digits) : '—', ...others.map((o) => spread(byServer.get(o) ?? [], digits)), ...others.map(() => '')]);
      continue;
    }
    const ratios = others.map((o) => {
      const xs = byServer.get(o);
      if (!base || !xs) return '';
      // Per-round ratios: each round's servers ran back to back under the same conditions.
      const per = xs.map((x, i) => x / base[i]!);
      return `${spread(per)}x`;
    });
    rows.push([metric, base ? spread(base, digits) : '—', ...others.map((o) => spread(byServer.get(o) ?? [], digits)), ...ratios]);
  }
  return table(rows);
}

async function main(): Promise<void> {
  const started = performance.now();
  const loadBefore = os.loadavg()[0]!.toFixed(2);
  const results = new Results();
  const free = () => Promise.all(ROLES.map(() => freePort()));
  const [stdioPorts, httpPorts, [consentPort]] = [await free(), await free(), [await freePort()]];
  const bases = [...stdioPorts, ...httpPorts, consentPort!].map((p) => `http://127.0.0.1:${p}`);
  const sandbox = await startSandbox({
    callbackUrl: bases.map((b) => `${b}/callback`),
    oidc: { loginRedirectUri: `${bases[1]}/login/callback`, users: [...BENCH_USERS, ...CONSENT_USERS].map((sub) => ({ sub, name: sub })) },
  });
  sandbox.oidc!.registerClient({ clientId: SANDBOX.oidcClientId, redirectUris: bases.map((b) => `${b}/login/callback`) });
  const baselineToken = sandbox.dingtalk.issueTokens(SANDBOX.dingtalkClientId, sandbox.dingtalk.users[0]!.unionId).accessToken;
  const bearers = new Map<string, string>();
  for (const sub of [...BENCH_USERS, ...CONSENT_USERS]) bearers.set(sub, await sandbox.oidc!.mintAccessToken({ sub }));
  const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

  try {
    if (ONLY.has('cold')) {
      log('stdio cold start');
      await benchColdStart(results);
    }
    if (ONLY.has('stdio')) {
      log('stdio per-call cost');
      await benchStdio(sandbox, results, baselineToken, stdioPorts);
    }
    let httpServers: Awaited<ReturnType<typeof startHttpServers>> | undefined;
    if (ONLY.has('http') || ONLY.has('heap') || ONLY.has('consent')) httpServers = await startHttpServers(sandbox, baselineToken, httpPorts);
    try {
      if (ONLY.has('http')) {
        log('HTTP per-call cost and throughput');
        await benchHttp(sandbox, results, httpServers!, bearers);
      }
      if (ONLY.has('heap')) {
        log('idle-session heap');
        await benchHeap(results, httpServers!, bearers);
      }
      if (ONLY.has('consent')) {
        log('consent to write');
        await benchConsent(sandbox, results, httpServers, bearers, consentPort!);
      }
    } finally {
      await Promise.all((httpServers ?? []).map((s) => s.server.stop()));
    }
  } finally {
    await sandbox.close();
  }
  const cpus = os.cpus();
  process.stdout.write(
    `Benchmarks, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'CPU'}, ` +
      `Node ${process.versions.node}, load average ${loadBefore} before and ${os.loadavg()[0]!.toFixed(2)} after, ${((performance.now() - started) / 1000).toFixed(0)} s.\n` +
      `${ROUNDS} rounds, servers interleaved round by round (rotating order); each cell: median (min–max) over rounds; ` +
      `ratios per round (ours / baseline in the same round), then median (min–max).\n\n` +
      report(results) +
      '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
