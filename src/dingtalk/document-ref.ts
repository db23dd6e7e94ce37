/**
 * Turn what a user typed ("the document") into a DingTalk document id.
 *
 * This is also an SSRF guard: we never fetch a user-supplied URL. We only pull the id out of a link of one
 * known shape and throw away everything else, so whatever the user types, the only network call that follows
 * is to the configured DingTalk API base with that id in a path segment.
 *
 * Accepted (docs/reference/dingtalk.md §1):
 *   - https://alidocs.dingtalk.com/i/nodes/<dentryUuid>   (query string and fragment ignored, optional trailing slash)
 *   - https://alidocs.dingtalk.io/i/nodes/<dentryUuid>    (international host)
 *   - a bare id: letters, digits, '-' and '_', 6–128 characters
 * The dentryUuid from an /i/nodes/ link is accepted as `docKey` by the doc suites APIs (§1), including the
 * user-token overwrite (§3.1 (b)).
 */

export type DocumentRefResult = { ok: true; documentId: string } | { ok: false; message: string };

const ID_PATTERN = /^[A-Za-z0-9_-]{6,128}$/;
const ALLOWED_HOSTS = new Set(['alidocs.dingtalk.com', 'alidocs.dingtalk.io']);

const VALID_SHAPES =
  'Give the document link as shown in the browser, e.g. https://alidocs.dingtalk.com/i/nodes/<id> ' +
  '(or alidocs.dingtalk.io), or just the id (6–128 letters, digits, "-" or "_").';

const HOW_TO_GET_LINK =
  'Open the document in the browser (or in DingTalk, then "open in browser") and copy the address bar: ' +
  'it looks like https://alidocs.dingtalk.com/i/nodes/<id>.';

function fail(message: string): DocumentRefResult {
  return { ok: false, message };
}

/** A short, printable excerpt of the input for messages (never echo a huge or multi-line value). */
function excerpt(input: string): string {
  const flat = input.replace(/[\u0000-\u001f\u007f]/g, '?');
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}

export function parseDocumentRef(input: string): DocumentRefResult {
  if (typeof input !== 'string') return fail(`No document given. ${VALID_SHAPES}`);
  const text = input.trim();
  if (text === '') return fail(`No document given. ${VALID_SHAPES}`);
  if (text.length > 2048) return fail(`The document reference is too long to be a DingTalk link. ${VALID_SHAPES}`);

  // Whitespace or control characters inside: the WHATWG URL parser would silently drop tabs and newlines,
  // so reject before parsing rather than accept a different id than the one shown.
  if (/[\s\u0000-\u001f\u007f]/.test(text)) {
    return fail(`"${excerpt(text)}" contains spaces or line breaks; a document id or link has none. ${VALID_SHAPES}`);
  }

  if (ID_PATTERN.test(text)) return { ok: true, documentId: text };

  const looksLikeUrl = /^[A-Za-z][A-Za-z0-9+.-]*:/.test(text) || text.startsWith('//');
  if (!looksLikeUrl) {
    if (/^(alidocs\.dingtalk\.(com|io))([/?#]|$)/i.test(text)) {
      return fail(`"${excerpt(text)}" has no "https://" in front. Copy the whole link from the address bar. ${VALID_SHAPES}`);
    }
    if (text.includes('/') || text.includes('\\') || text.includes('..') || text.includes('%')) {
      return fail(`"${excerpt(text)}" is not a document id: ids contain only letters, digits, "-" and "_" (no "/", "..", "%"). ${VALID_SHAPES}`);
    }
    if (/^[A-Za-z0-9_-]+$/.test(text)) {
      return fail(`"${excerpt(text)}" is ${text.length < 6 ? 'too short' : 'too long'} to be a DingTalk document id. ${VALID_SHAPES}`);
    }
    return fail(`"${excerpt(text)}" is not a document id: ids contain only letters, digits, "-" and "_". ${VALID_SHAPES}`);
  }

  return parseLink(text);
}

function parseLink(text: string): DocumentRefResult {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`"${excerpt(text)}" is not a valid link. ${VALID_SHAPES}`);
  }

  if (url.protocol === 'http:') {
    return fail(`Only https:// links are accepted ("${excerpt(text)}" uses http://). ${VALID_SHAPES}`);
  }
  if (url.protocol !== 'https:') {
    return fail(`Only https:// links to alidocs.dingtalk.com are accepted, not "${url.protocol}" links. ${VALID_SHAPES}`);
  }
  // https://alidocs.dingtalk.com@evil.example/... — the real host is evil.example.
  if (url.username !== '' || url.password !== '' || /^https:\/\/[^/?#]*@/i.test(text)) {
    return fail(`The link contains "user@" credentials before the host, so it does not point at alidocs.dingtalk.com. ${VALID_SHAPES}`);
  }
  if (url.hostname === 'docs.dingtalk.com') {
    return fail(`docs.dingtalk.com links are AI tables (多维表), not documents; only DingTalk documents can be written. ${VALID_SHAPES}`);
  }
  if (!ALLOWED_HOSTS.has(url.hostname)) {
    return fail(`Only links on alidocs.dingtalk.com or alidocs.dingtalk.io are accepted, not "${excerpt(url.hostname)}". ${VALID_SHAPES}`);
  }
  if (url.port !== '') {
    return fail(`The link has an unexpected port (:${url.port}); DingTalk document links have none. ${VALID_SHAPES}`);
  }

  // Look at the path as typed: the URL parser would resolve "/./", "/../" and "\" before we see them.
  const rawPath = rawPathOf(text);
  if (rawPath.includes('%')) {
    return fail(`The link contains percent-encoded characters ("%"); DingTalk document ids never do. ${VALID_SHAPES}`);
  }
  if (rawPath.includes('\\') || /(^|\/)\.{1,2}(\/|$)/.test(rawPath)) {
    return fail(`The link's path contains "..", "." or "\\" segments. ${VALID_SHAPES}`);
  }

  const path = url.pathname;
  if (/^\/i\/p\//.test(path)) {
    return fail(`This is a share short link (/i/p/...), which cannot be resolved to a document. ${HOW_TO_GET_LINK}`);
  }
  if (/^\/document\/(edit|preview)/.test(path) || url.searchParams.has('dentryKey')) {
    return fail(`Links of the form /document/edit?dentryKey=... are not supported. ${HOW_TO_GET_LINK}`);
  }

  const match = /^\/i\/nodes\/([^/]+)\/?$/.exec(path);
  if (!match) {
    return fail(`"${excerpt(text)}" is not a document link (expected the path /i/nodes/<id>). ${HOW_TO_GET_LINK}`);
  }
  const id = match[1] ?? '';
  if (!ID_PATTERN.test(id)) {
    return fail(`The id in the link ("${excerpt(id)}") is not a valid DingTalk document id (6–128 letters, digits, "-" or "_"). ${VALID_SHAPES}`);
  }
  return { ok: true, documentId: id };
}

/** The path part of a URL string exactly as typed (after scheme and authority, before '?' or '#'). */
function rawPathOf(text: string): string {
  const afterScheme = text.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const slash = afterScheme.search(/[/\\]/);
  const fromPath = slash === -1 ? '' : afterScheme.slice(slash);
  const end = fromPath.search(/[?#]/);
  return end === -1 ? fromPath : fromPath.slice(0, end);
}
