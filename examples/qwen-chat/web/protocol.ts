/**
 * What the back end sends the page (events on /api/events) and what the items look like: shared by server.ts and
 * page/app.ts, so this file imports nothing. No field ever carries a token.
 */
export type ToolState = 'confirm' | 'running' | 'done' | 'error' | 'declined';
export type ConsentState = 'asking' | 'waiting' | 'completed' | 'declined' | 'cancelled' | 'failed' | 'refused';

export type Item =
  | { kind: 'user'; id: string; text: string }
  | { kind: 'assistant'; id: string; text: string; streaming: boolean }
  | {
      kind: 'tool';
      id: string;
      server?: string;
      tool: string;
      /** Arguments as pretty JSON, cut to a bounded length. */
      args: string;
      destructive: boolean;
      state: ToolState;
      result?: string;
      durationMs?: number;
    }
  | {
      kind: 'consent';
      id: string;
      toolId?: string;
      server: string;
      message?: string;
      /** The link in three parts, so the page can highlight the host; href is the exact URL the Open button opens. */
      scheme: string;
      host: string;
      rest: string;
      href: string;
      warnings: string[];
      refused?: string;
      /** The link goes to the MCP server that asked (its /connect page), not to some other site. */
      serverHost: boolean;
      state: ConsentState;
      note?: string;
    }
  | { kind: 'notice'; id: string; level: 'info' | 'error'; text: string };

export type ChatEvent =
  | { type: 'snapshot'; items: Item[]; busy: boolean }
  | { type: 'item'; item: Item }
  | { type: 'delta'; id: string; text: string }
  | { type: 'busy'; busy: boolean }
  | { type: 'ended'; reason: string };
