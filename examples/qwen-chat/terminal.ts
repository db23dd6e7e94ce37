/**
 * The human end of the chat: a terminal (readline) or a script (tests, `--yes` runs).
 * Everything the person must see goes through `write`; every question through `ask`.
 */
import { createInterface, type Interface } from 'node:readline/promises';

export interface Terminal {
  /** ANSI styling allowed (a TTY, and NO_COLOR unset). */
  readonly color: boolean;
  /** A person can answer questions (false for scripted runs). */
  readonly interactive: boolean;
  write(text: string): void;
  /** Ask and wait for one line; undefined at end of input or when `signal` aborts. */
  ask(question: string, signal?: AbortSignal): Promise<string | undefined>;
  close(): void;
}

const ESC = '\x1b[';
export const style = {
  bold: (t: Terminal, s: string) => (t.color ? `${ESC}1m${s}${ESC}22m` : s),
  dim: (t: Terminal, s: string) => (t.color ? `${ESC}2m${s}${ESC}22m` : s),
  /** The host of a URL: bold, underlined, yellow. */
  host: (t: Terminal, s: string) => (t.color ? `${ESC}1;4;33m${s}${ESC}0m` : s),
  warn: (t: Terminal, s: string) => (t.color ? `${ESC}33m${s}${ESC}39m` : s),
  error: (t: Terminal, s: string) => (t.color ? `${ESC}31m${s}${ESC}39m` : s),
  accent: (t: Terminal, s: string) => (t.color ? `${ESC}36m${s}${ESC}39m` : s),
};

/** Remove terminal control sequences from text that came from a server or a model. */
export function sanitize(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '');
}

export function processTerminal(): Terminal {
  const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  // Lines are queued, so piped input is not lost between questions.
  const lines: string[] = [];
  const waiters: Array<(line: string | undefined) => void> = [];
  let ended = false;
  let rl: Interface | undefined;
  const start = () => {
    if (rl) return;
    rl = createInterface({ input: process.stdin, output: process.stdout, terminal: Boolean(process.stdin.isTTY) });
    rl.on('line', (line) => {
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    });
    rl.on('close', () => {
      ended = true;
      for (const w of waiters.splice(0)) w(undefined);
    });
  };
  return {
    color,
    interactive: Boolean(process.stdin.isTTY),
    write: (text) => void process.stdout.write(text),
    ask(question, signal) {
      start();
      process.stdout.write(question);
      const queued = lines.shift();
      if (queued !== undefined) {
        if (!process.stdin.isTTY) process.stdout.write(`${queued}\n`);
        return Promise.resolve(queued);
      }
      if (ended || signal?.aborted) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const waiter = (line: string | undefined) => {
          signal?.removeEventListener('abort', onAbort);
          if (line !== undefined && !process.stdin.isTTY) process.stdout.write(`${line}\n`);
          resolve(line);
        };
        const onAbort = () => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          process.stdout.write('\n');
          resolve(undefined);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    close: () => rl?.close(),
  };
}

/** A terminal whose answers come from a script (a list, or a function of the question). Output is recorded. */
export function scriptedTerminal(
  answers: string[] | ((question: string) => string | undefined) = [],
  echo?: (text: string) => void,
): Terminal & { output: string[]; questions: string[] } {
  const output: string[] = [];
  const questions: string[] = [];
  const queue = Array.isArray(answers) ? [...answers] : undefined;
  return {
    color: false,
    interactive: false,
    output,
    questions,
    write(text) {
      output.push(text);
      echo?.(text);
    },
    async ask(question) {
      questions.push(question);
      const answer = queue ? queue.shift() : (answers as (q: string) => string | undefined)(question);
      output.push(`${question}${answer ?? ''}\n`);
      echo?.(`${question}${answer ?? ''}\n`);
      return answer;
    },
    close() {},
  };
}
