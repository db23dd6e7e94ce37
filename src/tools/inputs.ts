/** Input fields several tools share, so their wording and limits stay the same everywhere. */
import * as z from 'zod/v4';

/** A DingTalk document (or folder) as a link or an id; `parseDocumentRef` decides which shapes are accepted. */
export function documentInput(description: string) {
  return z
    .string()
    .min(1, 'document is empty: pass a DingTalk document link (https://alidocs.dingtalk.com/i/nodes/<id>) or its id')
    .max(2048, 'document is too long to be a DingTalk link or id')
    .describe(description);
}
