/** A hidden prompt for a secret: raw mode, nothing echoed, nothing logged. Returns undefined without a TTY. */
export async function promptSecret(
  question: string,
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string | undefined> {
  if (!input.isTTY || typeof input.setRawMode !== 'function') return undefined;
  output.write(question);
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (result: string | undefined, error?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.off('data', onData);
      output.write('\n');
      if (error) reject(error);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(value || undefined);
        if (ch === '\u0003') return done(undefined, new Error('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    input.setRawMode(true);
    input.resume();
    input.on('data', onData);
  });
}
