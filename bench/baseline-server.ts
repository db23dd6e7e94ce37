/** The baseline for bench/cold-start: the same SDK serving stdio with no tools and no dependencies of ours. */
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';

serveStdio(() => new McpServer({ name: 'baseline', version: '0.0.0' }));
