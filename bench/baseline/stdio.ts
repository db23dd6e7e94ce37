/** Bare SDK server over stdio (bench baseline): BENCH_DINGTALK_BASE, BENCH_DINGTALK_TOKEN. */
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { createBaselineServer } from './tool.js';

const base = process.env.BENCH_DINGTALK_BASE ?? 'http://127.0.0.1:9';
const token = process.env.BENCH_DINGTALK_TOKEN ?? '';
serveStdio(() => createBaselineServer(base, () => token));
