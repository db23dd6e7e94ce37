import { describe, expect, it } from 'vitest';
import { parseDocumentRef } from '../../src/dingtalk/document-ref.js';

const ID = 'Z9xxxxaBcD-id_01';

function ok(input: string): string {
  const r = parseDocumentRef(input);
  if (!r.ok) throw new Error(`expected ok for ${JSON.stringify(input)}, got: ${r.message}`);
  return r.documentId;
}

function rejected(input: string): string {
  const r = parseDocumentRef(input);
  if (r.ok) throw new Error(`expected rejection for ${JSON.stringify(input)}, got id ${r.documentId}`);
  return r.message;
}

describe('parseDocumentRef: accepted', () => {
  it.each([
    [`https://alidocs.dingtalk.com/i/nodes/${ID}`],
    [`https://alidocs.dingtalk.com/i/nodes/${ID}/`],
    [`https://alidocs.dingtalk.com/i/nodes/${ID}?utm_source=im&iframeQuery=x%2Fy`],
    [`https://alidocs.dingtalk.com/i/nodes/${ID}#heading-1`],
    [`https://alidocs.dingtalk.com/i/nodes/${ID}/?a=b#c`],
    [`https://alidocs.dingtalk.io/i/nodes/${ID}`],
    [`HTTPS://ALIDOCS.DINGTALK.COM/i/nodes/${ID}`],
    [`  https://alidocs.dingtalk.com/i/nodes/${ID}\n`],
    [ID],
    [`  ${ID}  `],
  ])('%j', (input) => {
    expect(ok(input)).toBe(ID);
  });

  it('accepts ids at the length bounds', () => {
    expect(ok('abc-_1')).toBe('abc-_1');
    expect(ok('a'.repeat(128))).toBe('a'.repeat(128));
  });
});

describe('parseDocumentRef: rejected before any network call', () => {
  it.each([
    ['look-alike host', `https://alidocs.dingtalk.com.evil.example/i/nodes/${ID}`],
    ['other host', `https://evil.example/i/nodes/${ID}`],
    ['subdomain of dingtalk', `https://api.dingtalk.com/i/nodes/${ID}`],
    ['userinfo trick', `https://alidocs.dingtalk.com@evil.example/i/nodes/${ID}`],
    ['userinfo with password', `https://alidocs.dingtalk.com:x@evil.example/i/nodes/${ID}`],
    ['http link', `http://alidocs.dingtalk.com/i/nodes/${ID}`],
    ['other scheme', `javascript:alert(1)`],
    ['file scheme', `file:///etc/passwd`],
    ['port', `https://alidocs.dingtalk.com:8443/i/nodes/${ID}`],
    ['backslash', `https://alidocs.dingtalk.com\\i\\nodes\\${ID}`],
    ['dot-dot in link', `https://alidocs.dingtalk.com/i/nodes/x/../${ID}`],
    ['percent-encoding in link', `https://alidocs.dingtalk.com/i/nodes/${ID}%2F..`],
    ['extra path segment', `https://alidocs.dingtalk.com/i/nodes/${ID}/edit`],
    ['no id', `https://alidocs.dingtalk.com/i/nodes/`],
    ['bad id chars in link', `https://alidocs.dingtalk.com/i/nodes/abc.def.ghi`],
    ['id with slash', `abc/def123`],
    ['id with dot-dot', `..abcdef`],
    ['id with space', `abc def123`],
    ['id with tab inside link', `https://alidocs.dingtalk.com/i/nodes/${ID.slice(0, 4)}\t${ID.slice(4)}`],
    ['percent-encoded id', `abc%2Fdef`],
    ['too short', `abc12`],
    ['too long', 'a'.repeat(129)],
    ['empty', ''],
    ['whitespace only', '   '],
    ['AI table host', `https://docs.dingtalk.com/i/nodes/${ID}`],
    ['schemeless', `alidocs.dingtalk.com/i/nodes/${ID}`],
    ['protocol-relative', `//alidocs.dingtalk.com/i/nodes/${ID}`],
  ])('%s', (_name, input) => {
    const message = rejected(input);
    expect(message.length).toBeGreaterThan(20);
    // every message says what a valid input looks like
    expect(message).toMatch(/\/i\/nodes\//);
  });

  it('explains share short links and how to get the /i/nodes/ link', () => {
    const message = rejected('https://alidocs.dingtalk.com/i/p/Y7kmbokZp3pgGLq2/docs/abc');
    expect(message).toMatch(/share/i);
    expect(message).toMatch(/cannot be resolved/);
    expect(message).toMatch(/address bar/);
    expect(message).toContain('https://alidocs.dingtalk.com/i/nodes/');
  });

  it('explains /document/edit?dentryKey= links', () => {
    const message = rejected('https://alidocs.dingtalk.com/document/edit?dentryKey=abcDEF123&type=d');
    expect(message).toMatch(/dentryKey/);
    expect(message).toMatch(/address bar/);
  });

  it('says what was wrong', () => {
    expect(rejected(`http://alidocs.dingtalk.com/i/nodes/${ID}`)).toMatch(/https/);
    expect(rejected(`https://alidocs.dingtalk.com.evil.example/i/nodes/${ID}`)).toContain('alidocs.dingtalk.com.evil.example');
    expect(rejected(`https://alidocs.dingtalk.com@evil.example/i/nodes/${ID}`)).toMatch(/credentials|@/);
    expect(rejected('abc def123')).toMatch(/spaces/);
  });
});
