/**
 * The chat page. Plain DOM, no framework. Everything the server sends is drawn with textContent, except the model's
 * answers: Markdown rendered by markdown-it with raw HTML off and images off, then sanitised by DOMPurify (an allow
 * list of tags, http(s)/mailto links only, links open in a new tab without opener), then inserted as nodes. The page's
 * Content-Security-Policy allows scripts from this origin only, so even markup that slipped through could not run.
 *
 * A consent link is opened only by a click on its Open button, and then in a new tab without opener or referrer.
 */
import type { ChatEvent, Item } from '../protocol.js';

declare const markdownit: typeof import('markdown-it').default;
declare const DOMPurify: import('dompurify').DOMPurify;

type ConsentItem = Extract<Item, { kind: 'consent' }>;
type ToolItem = Extract<Item, { kind: 'tool' }>;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let csrf = '';
let events: EventSource | undefined;
const items = new Map<string, Item>();
const waitingSince = new Map<string, number>();
const pendingRender = new Set<string>();

const md = new markdownit({ html: false, linkify: true, typographer: false, breaks: false });
// Images would load from wherever the model says (a tracking pixel); they are shown as links instead.
md.disable(['image']);

// Links in answers open in a new tab that cannot reach this page, and tell the target nothing about it.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const ALLOWED_TAGS = [
  'p',
  'br',
  'hr',
  'strong',
  'em',
  's',
  'del',
  'code',
  'pre',
  'blockquote',
  'ul',
  'ol',
  'li',
  'a',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'table',
  'thead',
  'tbody',
  'tr',
  'th',
  'td',
];

function renderMarkdown(text: string): DocumentFragment {
  return DOMPurify.sanitize(md.render(text), {
    ALLOWED_TAGS,
    ALLOWED_ATTR: ['href', 'title', 'start'],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
    RETURN_DOM_FRAGMENT: true,
  });
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: Array<Node | string | undefined>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  for (const c of children) if (c !== undefined) node.append(c);
  return node;
}

function button(label: string, onClick: () => void, className = ''): HTMLButtonElement {
  const b = el('button', { className, text: label, attrs: { type: 'button' } });
  b.addEventListener('click', onClick);
  return b;
}

async function post(path: string, body: unknown = {}): Promise<{ ok: boolean; status: number; data: Record<string, unknown> }> {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
  });
  const data = res.status === 204 ? {} : ((await res.json().catch(() => ({}))) as Record<string, unknown>);
  return { ok: res.ok, status: res.status, data };
}

function showError(id: string, text: string | undefined): void {
  const p = $(id);
  p.textContent = text ?? '';
  p.hidden = !text;
}

// --- session -----------------------------------------------------------------------------------------------------

async function boot(): Promise<void> {
  const res = await fetch('/api/session', { credentials: 'same-origin' });
  const session = (await res.json()) as { csrf: string; user: { name: string; sub: string } | null; banner: string | null; limits: { messageChars: number } };
  csrf = session.csrf;
  if (session.banner) {
    $('banner').textContent = session.banner;
    $('banner').hidden = false;
  }
  $<HTMLTextAreaElement>('message').maxLength = session.limits.messageChars;
  if (session.user) {
    $('user-name').textContent = session.user.name;
    $('who').hidden = false;
    $('signed-out').hidden = true;
    $('chat').hidden = false;
    connect();
    $('message').focus();
  } else {
    events?.close();
    $('who').hidden = true;
    $('chat').hidden = true;
    $('signed-out').hidden = false;
    $('sign-in').focus();
  }
}

$('sign-in').addEventListener('click', async () => {
  showError('signin-error', undefined);
  const r = await post('/auth/login').catch(() => undefined);
  if (r?.ok && typeof r.data.url === 'string') window.location.assign(r.data.url);
  else showError('signin-error', String(r?.data.error ?? 'The sign-in could not start. Try again.'));
});

$('sign-out').addEventListener('click', async () => {
  events?.close();
  await post('/auth/logout').catch(() => undefined);
  items.clear();
  $('log').replaceChildren();
  await boot();
});

// --- the event stream --------------------------------------------------------------------------------------------

function connect(): void {
  events?.close();
  events = new EventSource('/api/events');
  events.onmessage = (m) => apply(JSON.parse(m.data as string) as ChatEvent);
  events.onerror = () => {
    // The server ended the stream (sign-out elsewhere, restart): ask it where we stand.
    if (events?.readyState === EventSource.CLOSED) void boot();
  };
}

function apply(event: ChatEvent): void {
  switch (event.type) {
    case 'snapshot':
      items.clear();
      $('log').replaceChildren();
      for (const item of event.items) upsert(item, false);
      setBusy(event.busy);
      break;
    case 'item':
      upsert(event.item, true);
      break;
    case 'delta': {
      const item = items.get(event.id);
      if (item?.kind === 'assistant') {
        item.text += event.text;
        scheduleRender(item.id);
      }
      break;
    }
    case 'busy':
      setBusy(event.busy);
      break;
    case 'ended':
      events?.close();
      items.clear();
      $('log').replaceChildren();
      void boot().then(() => showError('signin-error', event.reason));
      break;
  }
}

function setBusy(busy: boolean): void {
  $<HTMLButtonElement>('send').disabled = busy;
  $('stop').hidden = !busy;
  $('status').textContent = busy ? 'Qwen is working on it…' : '';
}

function scheduleRender(id: string): void {
  if (pendingRender.has(id)) return;
  pendingRender.add(id);
  requestAnimationFrame(() => {
    pendingRender.delete(id);
    const item = items.get(id);
    if (item) upsert(item, false);
  });
}

function upsert(item: Item, live: boolean): void {
  const previous = items.get(item.id);
  items.set(item.id, item);
  const old = document.querySelector(`#log > li[data-id="${CSS.escape(item.id)}"]`);
  const node = render(item);
  node.dataset.id = item.id;
  const hadFocus = old?.contains(document.activeElement) ?? false;
  if (old) old.replaceWith(node);
  else $('log').append(node);
  // Keyboard users: a card that needs an answer takes the focus; a card that had it keeps it.
  const needsAnswer = (item.kind === 'consent' && item.state === 'asking') || (item.kind === 'tool' && item.state === 'confirm');
  const wasAsking = previous && ((previous.kind === 'consent' && previous.state === 'asking') || (previous.kind === 'tool' && previous.state === 'confirm'));
  if (needsAnswer && (live || !wasAsking)) node.querySelector<HTMLButtonElement>('button')?.focus();
  else if (hadFocus) (node.querySelector<HTMLButtonElement>('button') ?? node).focus();
  if (live || !old) node.scrollIntoView({ block: 'nearest' });
}

// --- items -------------------------------------------------------------------------------------------------------

function render(item: Item): HTMLLIElement {
  switch (item.kind) {
    case 'user':
      return el('li', { className: 'user' }, el('p', { className: 'who', text: 'You' }), el('div', { text: item.text }));
    case 'assistant': {
      const body = el('div', { className: 'markdown' });
      body.append(renderMarkdown(item.text));
      // aria-busy while streaming: screen readers announce the answer once, not every redraw.
      return el(
        'li',
        { className: `assistant${item.streaming ? ' streaming' : ''}`, attrs: { 'aria-busy': String(item.streaming) } },
        el('p', { className: 'who', text: 'Qwen' }),
        body,
      );
    }
    case 'notice':
      return el('li', { className: `notice ${item.level}`, attrs: item.level === 'error' ? { role: 'alert' } : {} }, item.text);
    case 'tool':
      return toolCard(item);
    case 'consent':
      return consentCard(item);
  }
}

const TOOL_STATE: Record<ToolItem['state'], string> = {
  confirm: 'waiting for your confirmation',
  running: 'running',
  done: 'done',
  error: 'failed',
  declined: 'not run',
};

function toolCard(item: ToolItem): HTMLLIElement {
  const li = el('li', { className: `card tool ${item.state}`, attrs: { tabindex: '-1', 'aria-label': `Tool ${item.tool}: ${TOOL_STATE[item.state]}` } });
  li.append(
    el(
      'h3',
      {},
      'Tool ',
      el('span', { text: item.server ? `${item.server} · ` : '' }),
      el('code', { text: item.tool }),
      ' ',
      el('span', { className: `state ${item.state}`, text: `(${TOOL_STATE[item.state]})` }),
    ),
  );
  const args = el('details', {}, el('summary', { text: 'Arguments' }), el('pre', { text: item.args }));
  if (item.state === 'confirm') args.open = true;
  li.append(args);
  if (item.state === 'confirm') {
    li.append(
      el('p', {
        className: 'warnings',
        attrs: { role: 'alert' },
        text: 'This tool may overwrite or delete data (it is not marked read-only). Check the arguments, then choose.',
      }),
      el(
        'div',
        { className: 'buttons' },
        button('Run it', () => decide(item.id, 'run'), 'danger'),
        button("Don't run", () => decide(item.id, 'skip'), 'secondary'),
      ),
    );
  }
  if (item.result !== undefined) {
    li.append(
      el(
        'details',
        { attrs: item.state === 'error' || item.state === 'declined' ? { open: '' } : {} },
        el('summary', { text: item.state === 'error' ? 'Error' : 'Result' }),
        el('pre', { text: item.result }),
      ),
    );
  }
  if (item.durationMs !== undefined && item.state !== 'declined')
    li.append(el('p', { className: 'meta', text: `took ${(item.durationMs / 1000).toFixed(1)} s` }));
  return li;
}

const CONSENT_STATE: Record<ConsentItem['state'], string> = {
  asking: 'Open the link only if you expect this step and trust the site.',
  waiting: 'Waiting for you to finish in the browser tab',
  completed: '✓ Done: the server confirmed the step is complete.',
  declined: 'You declined: nothing was opened.',
  cancelled: 'No longer needed: the request ended.',
  failed: 'The step did not complete.',
  refused: 'This link is not offered:',
};

function consentCard(item: ConsentItem): HTMLLIElement {
  const li = el('li', { className: `card consent ${item.state}`, attrs: { tabindex: '-1', 'aria-label': `Consent request from ${item.server}` } });
  li.append(el('h3', { text: `Consent needed: the MCP server "${item.server}" asks you to open a link` }));
  if (item.message) li.append(el('p', { text: item.message }));
  if (item.state === 'refused') {
    li.append(el('p', { className: 'state refused', text: `${CONSENT_STATE.refused} ${item.refused ?? ''}` }), el('p', { className: 'link', text: item.rest }));
    return li;
  }
  li.append(
    el(
      'p',
      { className: 'site' },
      'Site: ',
      el('mark', { text: item.host }),
      el('span', {
        className: 'meta',
        text: item.serverHost ? ' — the MCP server this chat is connected to' : ' — not the MCP server itself; check that you expect it',
      }),
    ),
    el('p', { className: 'link', attrs: { 'aria-label': `Full link: ${item.href}` } }, item.scheme, el('mark', { text: item.host }), item.rest),
  );
  if (item.warnings.length) li.append(el('ul', { className: 'warnings', attrs: { role: 'alert' } }, ...item.warnings.map((w) => el('li', { text: `⚠ ${w}` }))));
  const state = el('p', { className: `state ${item.state}`, text: CONSENT_STATE[item.state] });
  li.append(state);
  if (item.note) li.append(el('p', { className: 'meta', text: item.note }));
  if (item.state === 'asking') {
    li.append(
      el(
        'div',
        { className: 'buttons' },
        button('Open link', () => {
          // Opened here, in the click, so it is the person's action; noopener: the new tab cannot reach this page.
          window.open(item.href, '_blank', 'noopener,noreferrer');
          void decide(item.id, 'accept');
        }),
        button('Decline', () => decide(item.id, 'decline'), 'secondary'),
      ),
    );
  } else if (item.state === 'waiting') {
    if (!waitingSince.has(item.id)) waitingSince.set(item.id, Date.now());
    state.className = 'state waiting progress';
    const elapsed = el('span', { className: 'elapsed' });
    state.append(' ', elapsed);
    const tick = () => {
      elapsed.textContent = `(${Math.round((Date.now() - waitingSince.get(item.id)!) / 1000)} s)`;
      // Until the card is redrawn (a new state replaces this node).
      setTimeout(() => elapsed.isConnected && tick(), 1000);
    };
    tick();
    li.append(
      el('progress', { attrs: { 'aria-label': 'Waiting for the browser step' } }),
      el(
        'div',
        { className: 'buttons' },
        button('Open the link again', () => void window.open(item.href, '_blank', 'noopener,noreferrer'), 'secondary'),
      ),
    );
  }
  return li;
}

async function decide(id: string, answer: 'accept' | 'decline' | 'run' | 'skip'): Promise<void> {
  const r = await post('/api/decide', { id, answer }).catch(() => undefined);
  if (!r?.ok) showError('composer-error', String(r?.data.error ?? 'The answer could not be sent. Check the connection.'));
}

// --- composer ----------------------------------------------------------------------------------------------------

$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const box = $<HTMLTextAreaElement>('message');
  const message = box.value.trim();
  if (!message) return;
  showError('composer-error', undefined);
  const r = await post('/api/chat', { message }).catch(() => undefined);
  if (r?.ok) box.value = '';
  else if (r?.status === 401) await boot();
  else showError('composer-error', String(r?.data.error ?? 'The message could not be sent. Check the connection.'));
});

$('message').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $<HTMLFormElement>('composer').requestSubmit();
  }
});

$('stop').addEventListener('click', () => void post('/api/cancel'));

void boot();
