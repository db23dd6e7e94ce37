/**
 * Memory per open 2025-era HTTP session, measured in-process with the garbage collector forced
 * before each reading (run with `node --expose-gc`). The baseline is the same server with no
 * sessions; sessions are opened by raw initialize requests, so no client state is counted.
 * Run: npm run bench
 */
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config.js';
import { createHttpApp } from '../src/http/app.js';
import { OidcProvider } from '../src/http/oidc.js';
import { silentLogger } from '../src/log.js';
import { createRuntime } from '../src/runtime.js';
import { freePort, SANDBOX, startSandbox } from '../src/sandbox/index.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 500);
const gc = (globalThis as { gc?: () => void }).gc;

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const sandbox = await startSandbox({ callbackUrl: `${base}/callback`, oidc: { loginRedirectUri: `${base}/login/callback` } });
  const config = loadConfig({
    argv: ['--transport', 'http', '--port', String(port)],
    env: { AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'bench', APP_REDIRECT_URI: base, OIDC_ISSUER: sandbox.oidc!.issuer, OIDC_CLIENT_ID: SANDBOX.oidcClientId },
  });
  const runtime = createRuntime(config, { logger: silentLogger, credential: sandbox.credential });
  const http = createHttpApp(runtime, new OidcProvider(config.oidcIssuer!, silentLogger));
  const server = http.app.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;

  const tokens = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => sandbox.oidc!.mintAccessToken({ sub: `bench-user-${i}` })));
  const open = async (bearer: string) => {
    const headers = { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: { elicitation: { url: {} } }, clientInfo: { name: 'bench', version: '1' } } }) });
    await res.text();
    const sid = res.headers.get('mcp-session-id')!;
    await (await fetch(url, { method: 'POST', headers: { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  };
  await open(tokens[0]!); // warm every code path once
  const heap = () => {
    gc!();
    gc!();
    return process.memoryUsage().heapUsed;
  };
  const before = heap();
  for (const t of tokens.slice(1)) await open(t);
  const after = heap();
  const perSession = (after - before) / (SESSIONS - 1);
  process.stdout.write(`memory per open 2025-era session: ${(perSession / 1024).toFixed(1)} KiB of heap (${http.sessionCount()} sessions open, baseline heap ${(before / 1048576).toFixed(1)} MiB)\n`);
  await http.close();
  server.close();
  server.closeAllConnections();
  await runtime.close();
  await sandbox.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
