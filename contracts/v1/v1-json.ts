/**
 * JSON `null` in v1 input means "not set", for every field of every message,
 * as Mesos's JSON→protobuf parser (stout/protobuf.hpp) treats it: a null field
 * is skipped and a null element of a repeated field is dropped. Clients
 * generated from the .proto files (protobuf.js and the like) send every unset
 * field as null, so a master that refused nulls would refuse them outright.
 *
 * One mechanism for every call instead of `.nullable()` on each schema field:
 * nulls are removed from the parsed body before validation, so zod and the
 * quick validator (v1-fast.ts) both see only set fields and keep agreeing.
 */

/** Remove every null object member and null array element inside `value`, in place; returns `value`. */
export function stripNulls<T>(value: T): T {
  if (typeof value === 'object' && value !== null) strip(value as object);
  return value;
}

/**
 * A walk with a stack of its own rather than recursion: JSON.parse takes any
 * depth, and a few thousand nested arrays in a small body would otherwise end
 * the walk with a RangeError (a 500) instead of reaching validation.
 */
function strip(root: object): void {
  const todo: object[] = [root];
  for (let node = todo.pop(); node !== undefined; node = todo.pop()) {
    if (Array.isArray(node)) {
      // Compacted in the same pass: most arrays hold no null, and then nothing moves.
      let w = 0;
      for (let r = 0; r < node.length; r++) {
        const x: unknown = node[r];
        if (x === null) continue;
        if (typeof x === 'object') todo.push(x as object);
        if (w !== r) node[w] = x;
        w++;
      }
      if (w !== node.length) node.length = w;
      continue;
    }
    const o = node as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      if (v === null) delete o[k];
      else if (typeof v === 'object') todo.push(v as object);
    }
  }
}

/**
 * Whether a raw JSON body may hold a null: a search of its text, far cheaper
 * than a walk of the parsed body, so bodies without the token (every call
 * corral's own clients send) skip stripNulls. A "null" inside a string only
 * costs a walk.
 */
export const mayHoldNull = (raw: string): boolean => raw.includes('null');
