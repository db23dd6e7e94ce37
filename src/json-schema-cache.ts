/**
 * The SDK converts a tool's Standard Schema to JSON Schema (`~standard.jsonSchema`) for every
 * server instance it meets: on 2026-07-28 that is every request (a fresh McpServer each time), and
 * each tools/call converts both the input schema (header scan) and the output schema. The schemas
 * never change, so the conversion is done once per target and shared. Validation is untouched:
 * the wrapper delegates `~standard.validate` to the original schema.
 */
interface StandardWithJsonSchema {
  '~standard': {
    validate: unknown;
    jsonSchema?: {
      input(options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown>;
      output(options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown>;
    };
  };
}

export function withCachedJsonSchema<S extends StandardWithJsonSchema>(schema: S, validateWith?: StandardWithJsonSchema): S {
  const std = schema['~standard'];
  // Validation may come from another schema (a lenient twin), while clients are still shown `schema`.
  const validate = validateWith ? validateWith['~standard'].validate : std.validate;
  const convert = std.jsonSchema;
  if (!convert) return schema;
  const cache = new Map<string, Record<string, unknown>>();
  const memo =
    (io: 'input' | 'output') =>
    (options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown> => {
      const key = `${io}\u0000${options.target}\u0000${options.libraryOptions ? JSON.stringify(options.libraryOptions) : ''}`;
      let json = cache.get(key);
      if (!json) {
        // Frozen: one copy is shared by every server instance, so nobody may change it.
        json = deepFreeze(convert[io](options));
        cache.set(key, json);
      }
      return json;
    };
  // Everything else (zod's methods, `_zod`, `shape`) comes from the original through the prototype.
  const wrapper = Object.create(schema) as S;
  Object.defineProperty(wrapper, '~standard', { value: { ...std, validate, jsonSchema: { input: memo('input'), output: memo('output') } }, enumerable: false });
  return wrapper;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
