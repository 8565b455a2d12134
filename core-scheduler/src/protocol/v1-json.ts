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

function strip(node: object): void {
  if (Array.isArray(node)) {
    let nulls = 0;
    for (const x of node) {
      if (x === null) nulls++;
      else if (typeof x === 'object') strip(x as object);
    }
    // Compacted only when needed: most arrays hold no null.
    if (nulls > 0) {
      let w = 0;
      for (let r = 0; r < node.length; r++) if (node[r] !== null) node[w++] = node[r];
      node.length = w;
    }
    return;
  }
  const o = node as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (v === null) delete o[k];
    else if (typeof v === 'object') strip(v as object);
  }
}

const NULL_TOKEN = Buffer.from('null');

/**
 * Whether a raw JSON body may hold a null: a byte search, far cheaper than a
 * walk of the parsed body, so bodies without the token (every call corral's
 * own clients send) skip stripNulls. A "null" inside a string only costs a walk.
 */
export const mayHoldNull = (raw: Buffer): boolean => raw.includes(NULL_TOKEN);
