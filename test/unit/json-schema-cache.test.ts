import { describe, expect, it } from 'vitest';
import * as z from 'zod/v4';
import { withCachedJsonSchema } from '../../src/json-schema-cache.js';

describe('tool schemas converted to JSON Schema once', () => {
  const schema = z.object({ document: z.string().min(1), content: z.string().max(5) }).strict();

  it('returns the same frozen conversion every time, equal to a fresh one', () => {
    const cached = withCachedJsonSchema(schema);
    const options = { target: 'draft-2020-12' };
    const first = cached['~standard'].jsonSchema.input(options);
    expect(cached['~standard'].jsonSchema.input(options)).toBe(first);
    expect(first).toEqual(schema['~standard'].jsonSchema.input(options));
    expect(Object.isFrozen(first)).toBe(true);
    expect(cached['~standard'].jsonSchema.output(options)).toEqual(schema['~standard'].jsonSchema.output(options));
  });

  it('validates exactly like the original schema', async () => {
    const cached = withCachedJsonSchema(schema);
    expect(await cached['~standard'].validate({ document: 'd', content: 'ok' })).toEqual(await schema['~standard'].validate({ document: 'd', content: 'ok' }));
    const refused = await cached['~standard'].validate({ document: '', content: 'too long', extra: 1 });
    expect('issues' in refused && refused.issues?.length).toBeGreaterThan(0);
    expect(cached.safeParse({ document: 'd', content: 'x' }).success).toBe(true);
  });
});
