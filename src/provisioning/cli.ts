/**
 * `dingtalk-mcp setup|teardown|doctor`: parse flags, build the cloud client (or an in-process emulator with
 * `--sandbox`), run the command. Returns the exit code. src/cli.ts dispatches here.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import CredentialModule, { Config as CredentialConfig } from '@alicloud/credentials';
import type { AlibabaCloudCredential } from '../identity/agent-identity-client.js';
import { startControlPlaneEmulator, type ControlPlaneEmulator } from '../sandbox/control-plane/index.js';
import { Cloud } from './cloud.js';
import type { Context, Output } from './context.js';
import { ControlPlaneClient } from './control-plane-client.js';
import { runDoctor } from './doctor.js';
import { parseProvisioningArgs, UsageError, USAGE, type ProvisioningOptions } from './options.js';
import { promptSecret } from './prompt.js';
import { ConfigFile } from './record.js';
import { runSetup } from './setup.js';
import { runTeardown } from './teardown.js';

const Credential = ((CredentialModule as unknown as { default?: unknown }).default ?? CredentialModule) as typeof CredentialModule.default;

export type ProvisioningCommand = 'setup' | 'teardown' | 'doctor';

/** Injection points for tests; the CLI uses the process's own. */
export interface ProvisioningIO {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Replaces the default credential chain. */
  credential?: AlibabaCloudCredential;
  stdin?: NodeJS.ReadStream;
}

const SANDBOX_ACCESS_KEY_ID = 'LTAIsandboxControlPlane01';
const SANDBOX_DINGTALK_CLIENT_ID = 'dingsandboxapp0001';

export async function runProvisioning(command: ProvisioningCommand | string, argv: string[], io: ProvisioningIO = {}): Promise<number> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const writeOut = io.stdout ?? ((t: string) => void process.stdout.write(t));
  const writeErr = io.stderr ?? ((t: string) => void process.stderr.write(t));
  const output: Output = { out: (line = '') => writeOut(line + '\n'), err: (line) => writeErr(line + '\n') };

  if (command !== 'setup' && command !== 'teardown' && command !== 'doctor') {
    output.err(`dingtalk-mcp: unknown command ${command}\n${USAGE}`);
    return 2;
  }
  let opts: ProvisioningOptions;
  try {
    opts = parseProvisioningArgs(argv, env);
  } catch (e) {
    if (e instanceof UsageError) {
      output.err(`dingtalk-mcp ${command}: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    output.out(USAGE);
    return 0;
  }

  let emulator: ControlPlaneEmulator | undefined;
  let credential = io.credential;
  let sandboxSecret: string | undefined;
  try {
    if (opts.sandbox) {
      const accessKeySecret = randomSecret();
      sandboxSecret = randomSecret();
      emulator = await startControlPlaneEmulator({ accessKeys: [{ accessKeyId: SANDBOX_ACCESS_KEY_ID, accessKeySecret }] });
      credential = new Credential(new CredentialConfig({ type: 'access_key', accessKeyId: SANDBOX_ACCESS_KEY_ID, accessKeySecret }));
      const explicitConfig = argv.some((a) => a === '--config' || a.startsWith('--config='));
      opts = {
        ...opts,
        endpoints: { agentidentity: emulator.url, ram: emulator.url, sts: emulator.url, ims: emulator.url },
        // Never touch the real .config.json with emulated resources.
        configFile: explicitConfig ? opts.configFile : join(mkdtempSync(join(tmpdir(), 'dingtalk-mcp-sandbox-')), '.config.json'),
        dingtalkClientId: opts.dingtalkClientId ?? SANDBOX_DINGTALK_CLIENT_ID,
        discoveryUrl: opts.discoveryUrl ?? emulator.discoveryUrl,
      };
      output.err(
        `sandbox: emulated AgentIdentity, RAM, STS and IMS at ${emulator.url}; record file ${resolve(cwd, opts.configFile)}; nothing leaves this machine.`,
      );
    }

    const build = (quiet: boolean): Context => {
      const file = new ConfigFile(resolve(cwd, opts.configFile));
      // Teardown works only in the recorded region (it refuses a different explicit one); the others resolve the
      // region like resolveNames (context.ts).
      const recorded = file.record?.regionId;
      const regionId = (command === 'teardown' ? recorded : undefined) ?? opts.regionId ?? file.string('region_id') ?? recorded ?? 'cn-beijing';
      const cloud = new Cloud(new ControlPlaneClient({ regionId, endpoints: opts.endpoints, ...(credential ? { credential } : {}) }));
      return {
        opts,
        file,
        cloud,
        io: quiet ? { out: () => {}, err: () => {} } : output,
        env,
        readDingTalkSecret: async () => {
          if (sandboxSecret) return sandboxSecret;
          const fromEnv = env.DINGTALK_CLIENT_SECRET;
          if (fromEnv) return fromEnv;
          if (opts.noPrompt) return undefined;
          return promptSecret(`DingTalk app Client Secret for ${opts.dingtalkClientId ?? ''} (input hidden): `, io.stdin ?? process.stdin);
        },
        credentialSource: async () => {
          try {
            const model = await cloud.client.credential.getCredential();
            const usable = model.type === 'bearer' ? Boolean(model.bearerToken) : Boolean(model.accessKeyId && model.accessKeySecret);
            if (!usable) return undefined;
            return [model.providerName, model.type].filter(Boolean).join(' / ') || 'unknown source';
          } catch {
            return undefined;
          }
        },
      };
    };

    let ctx: Context;
    try {
      ctx = build(false);
    } catch (e) {
      output.err(`dingtalk-mcp ${command}: ${(e as Error).message}`);
      return 2;
    }
    if (opts.sandbox && command !== 'setup') {
      // The emulator starts empty: set things up first so there is something to check or remove.
      output.err('sandbox: running setup first (quietly) so there is something to work on.');
      const code = await runSetup({ ...build(true), opts: { ...opts, dryRun: false } });
      if (code !== 0) return code;
      ctx = build(false);
    }
    switch (command) {
      case 'setup':
        return await runSetup(ctx);
      case 'teardown':
        return await runTeardown(ctx);
      default:
        return await runDoctor(ctx);
    }
  } finally {
    await emulator?.close();
  }
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
