/**
 * One user's conversation as the page draws it: a bounded list of items (messages, tool cards, consent cards,
 * notices) and the events that change them, pushed to every open event stream of that user. Nothing here holds a
 * token: items carry what the person may see, and nothing else.
 */
import { randomBytes } from 'node:crypto';

import type { ChatEvent, Item } from './protocol.js';

export type { ChatEvent, Item } from './protocol.js';

/** Bounds per user: items kept (older ones drop off the page), characters of one answer. */
export const MAX_ITEMS = 200;
export const MAX_TEXT = 32_000;
export const MAX_SHOWN = 8_000;

export function clip(text: string, max = MAX_SHOWN): string {
  return text.length > max ? `${text.slice(0, max)}\n…(${text.length - max} more characters not shown)` : text;
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString('base64url')}`;
}

export class Transcript {
  private readonly items: Item[] = [];
  private readonly listeners = new Set<(event: ChatEvent) => void>();
  busy = false;

  snapshot(): ChatEvent {
    return { type: 'snapshot', items: this.items.map((i) => ({ ...i })), busy: this.busy };
  }

  get(id: string): Item | undefined {
    return this.items.find((i) => i.id === id);
  }

  all(): readonly Item[] {
    return this.items;
  }

  add<T extends Item>(item: T): T {
    this.items.push(item);
    if (this.items.length > MAX_ITEMS) this.items.splice(0, this.items.length - MAX_ITEMS);
    this.emit({ type: 'item', item: { ...item } });
    return item;
  }

  update<T extends Item>(item: T, patch: Partial<T>): void {
    Object.assign(item, patch);
    this.emit({ type: 'item', item: { ...item } });
  }

  append(item: Extract<Item, { kind: 'assistant' }>, text: string): void {
    const room = MAX_TEXT - item.text.length;
    if (room <= 0) return;
    const piece = text.slice(0, room);
    item.text += piece;
    this.emit({ type: 'delta', id: item.id, text: piece });
  }

  setBusy(busy: boolean): void {
    this.busy = busy;
    this.emit({ type: 'busy', busy });
  }

  subscribe(listener: (event: ChatEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  emit(event: ChatEvent): void {
    for (const l of this.listeners) l(event);
  }
}
