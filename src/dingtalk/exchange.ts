/**
 * One HTTP request/response exchange with DingTalk over an undici pool, through its documented `dispatch`
 * handler API (undici's Dispatcher `DispatchHandler`): the answer's status, body text and request id,
 * or a rejection. `undici.request` does the same through an async resource, a readable stream for the body and an
 * abort listener; a DingTalk answer is small JSON read whole, so this handler collects the body and settles one
 * promise. The attempt's timeout covers connect, answer and body; `signal` aborts it at once.
 */
import type { Dispatcher } from 'undici';

export class AttemptTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super('timed out');
  }
}

export interface ExchangeRequest {
  origin: string;
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

export interface Exchanged {
  status: number;
  text: string;
  requestId?: string;
}

export function exchange(dispatcher: Dispatcher, request: ExchangeRequest, timeoutMs: number, signal?: AbortSignal): Promise<Exchanged> {
  return new Promise<Exchanged>((resolve, reject) => {
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    // Why the caller stopped waiting (timeout, abort), for undici too once it has a controller to abort.
    let stopped: Error | undefined;
    let status = 0;
    let requestId: string | undefined;
    let chunks: Buffer[] = [];

    const settle = (error: unknown, answer?: Exchanged) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (answer) resolve(answer);
      else reject(error);
    };
    const stop = (reason: unknown) => {
      stopped ??= reason instanceof Error ? reason : new Error(String(reason));
      controller?.abort(stopped);
      settle(reason);
    };
    // The error (and its stack) is built only if the attempt really times out.
    const timer = setTimeout(() => stop(new AttemptTimeout(timeoutMs)), timeoutMs);
    const onAbort = () => stop(signal?.reason);
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (stopped) c.abort(stopped);
      },
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return; // 1xx: the real answer follows
        status = statusCode;
        chunks = [];
        const id = headers['x-acs-request-id'];
        requestId = typeof id === 'string' ? id : Array.isArray(id) ? id[0] : undefined;
      },
      onResponseData(_c, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        settle(undefined, requestId ? { status, text, requestId } : { status, text });
      },
      onResponseError(_c, error) {
        settle(error);
      },
    };
    try {
      dispatcher.dispatch(
        { origin: request.origin, path: request.path, method: request.method, headers: request.headers, body: request.body ?? null },
        handler,
      );
    } catch (error) {
      settle(error);
    }
  });
}
