/** Groups a deployment can switch on or off with `--toolsets` (like github-mcp-server's toolsets). */
export const TOOLSETS = ['read', 'write', 'account'] as const;
export type Toolset = (typeof TOOLSETS)[number];
