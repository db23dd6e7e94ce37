/** Placeholder until the provisioning commands land: says so clearly instead of failing obscurely. */
export async function runProvisioning(command: string, _argv: string[]): Promise<number> {
  process.stderr.write(`dingtalk-mcp ${command}: not available in this build yet.\n`);
  return 2;
}
