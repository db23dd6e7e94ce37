/** Where a consent link from GetResourceOAuth2Token may point (issue 9, part 2 "Redirect target"). */
import { describe, expect, it } from 'vitest';
import { AgentIdentityClient } from '../../src/identity/agent-identity-client.js';

describe('AgentIdentityClient.authorizationOrigins', () => {
  it('the public endpoint: its own https origin and the documented agentidentity.<region> family, nothing over http', () => {
    const origins = new AgentIdentityClient({ regionId: 'cn-hangzhou' }).authorizationOrigins;
    expect(origins).toEqual(['https://agentidentitydata.cn-hangzhou.aliyuncs.com', 'https://agentidentity.cn-hangzhou.aliyuncs.com']);
    expect(origins).not.toContain('http://agentidentitydata.cn-hangzhou.aliyuncs.com');
  });

  it('a configured endpoint (a private one, or the sandbox emulator): exactly its origin', () => {
    expect(new AgentIdentityClient({ endpoint: 'http://127.0.0.1:41234' }).authorizationOrigins).toEqual(['http://127.0.0.1:41234']);
    expect(new AgentIdentityClient({ endpoint: 'agentidentitydata-vpc.cn-beijing.aliyuncs.com' }).authorizationOrigins).toEqual([
      'https://agentidentitydata-vpc.cn-beijing.aliyuncs.com',
    ]);
  });
});
