/**
 * Cold start of the stdio server: process spawn → the `initialize` response on stdout.
 * Compared, in the same run, with a bare SDK server (bench/baseline-server.ts), so the ratio says
 * what our code adds on top of Node + the MCP SDK. Run: npm run bench
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const ours = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const baseline = fileURLToPath(new URL('./baseline-server.js', import.meta.url));

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: { elicitation: { url: {} } }, clientInfo: { name: 'bench', version: '1' } },
});

function once(script: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('"id":1')) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        child.kill();
        resolve(ms);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => (out.includes('"id":1') ? undefined : reject(new Error(`${script} exited ${code} before answering`))));
    child.stdin.write(initialize + '\n');
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const env = {
    AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME: 'bench',
    ALIBABA_CLOUD_ACCESS_KEY_ID: 'bench',
    ALIBABA_CLOUD_ACCESS_KEY_SECRET: 'bench',
    APP_REDIRECT_URI: 'http://127.0.0.1:0',
    DINGTALK_MCP_LOG_LEVEL: 'silent',
  };
  const a: number[] = [];
  const b: number[] = [];
  // Interleaved, after one warm-up each, so disk cache and CPU state treat both alike.
  await once(baseline, {});
  await once(ours, env);
  for (let i = 0; i < RUNS; i++) {
    b.push(await once(baseline, {}));
    a.push(await once(ours, env));
  }
  const ratio = median(a) / median(b);
  process.stdout.write(
    `cold start to initialize response (median of ${RUNS}):\n` +
      `  baseline (bare SDK server)   ${median(b).toFixed(1)} ms\n` +
      `  dingtalk-mcp                 ${median(a).toFixed(1)} ms\n` +
      `  ratio                        ${ratio.toFixed(2)}x\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
