/**
 * Consul ACL rules: the HCL (or JSON) text of a policy, parsed into what the
 * authorizer needs. Blocks name a resource and a segment —
 * `key_prefix "app/" { policy = "write" }`, `service "web" { policy = "read" }` —
 * and a few resources take a bare policy (`acl = "write"`, `operator = "read"`).
 * Anything else is refused at policy creation, as Consul refuses rules it
 * cannot parse, so a typo never silently grants or denies.
 */
import { CorralError } from '../../../contracts/errors.js';

export type Access = 'deny' | 'read' | 'list' | 'write';
/** Resources with named segments (exact `x` and prefix `x_prefix` blocks). */
export const SEGMENTED = ['key', 'service', 'node', 'session', 'agent', 'query', 'event'] as const;
export type Segmented = (typeof SEGMENTED)[number];
/** Resources with one policy for the whole cluster. */
export const GLOBAL = ['acl', 'operator', 'keyring', 'mesh', 'peering'] as const;
export type GlobalResource = (typeof GLOBAL)[number];

export interface Rule {
  resource: Segmented;
  prefix: boolean;
  segment: string;
  access: Access;
}

export interface ParsedRules {
  rules: Rule[];
  globals: Partial<Record<GlobalResource, Access>>;
}

const ACCESS = new Set<string>(['deny', 'read', 'list', 'write']);

function fail(msg: string): never {
  throw new CorralError('INVALID_ARGUMENT', `Failed to parse ACL rules: ${msg}`);
}

function access(v: unknown, where: string, resource: string): Access {
  if (typeof v !== 'string' || !ACCESS.has(v)) fail(`${where}: policy must be "read", "write", "deny"${resource === 'key' ? ' or "list"' : ''}`);
  // "list" only means something for keys (Consul's KeyList); elsewhere it is invalid.
  if (v === 'list' && resource !== 'key') fail(`${where}: "list" is only valid for key rules`);
  return v as Access;
}

// ---- a small HCL reader: blocks, string attributes and comments -----------

type Tok = { t: 'ident' | 'str' | 'punct'; v: string; at: number };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c) || c === ',') {
      i++;
    } else if (c === '#' || (c === '/' && src[i + 1] === '/')) {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated comment');
      i = end + 2;
    } else if (c === '{' || c === '}' || c === '=') {
      out.push({ t: 'punct', v: c, at: i });
      i++;
    } else if (c === '"') {
      let s = '';
      const start = i++;
      for (;;) {
        if (i >= src.length) fail(`unterminated string at offset ${start}`);
        const d = src[i++]!;
        if (d === '"') break;
        if (d === '\n') fail(`newline in string at offset ${start}`);
        if (d === '\\') {
          const e = src[i++];
          if (e === 'n') s += '\n';
          else if (e === 't') s += '\t';
          else if (e === '"' || e === '\\' || e === '/') s += e;
          else fail(`unknown escape \\${e ?? ''} at offset ${i - 2}`);
        } else s += d;
      }
      out.push({ t: 'str', v: s, at: start });
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i))!;
      out.push({ t: 'ident', v: m[0], at: i });
      i += m[0].length;
    } else {
      fail(`unexpected "${c}" at offset ${i}`);
    }
  }
  return out;
}

/** HCL body → plain object: `a = "x"` is a string member, `a "lbl" { … }` nests as a.lbl = {…}. */
function parseHclBody(toks: Tok[], pos: { i: number }, nested: boolean): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  while (pos.i < toks.length) {
    const tok = toks[pos.i]!;
    if (tok.t === 'punct' && tok.v === '}') {
      if (!nested) fail(`unexpected "}" at offset ${tok.at}`);
      pos.i++;
      return obj;
    }
    if (tok.t !== 'ident' && tok.t !== 'str') fail(`expected a name at offset ${tok.at}`);
    pos.i++;
    const next = toks[pos.i];
    if (next?.t === 'punct' && next.v === '=') {
      pos.i++;
      const val = toks[pos.i];
      if (val?.t === 'str') {
        obj[tok.v] = val.v;
        pos.i++;
      } else if (val?.t === 'punct' && val.v === '{') {
        pos.i++;
        obj[tok.v] = parseHclBody(toks, pos, true);
      } else fail(`expected a string after "${tok.v} =" at offset ${tok.at}`);
      continue;
    }
    if (next?.t === 'str') {
      pos.i++;
      const open = toks[pos.i];
      if (open?.t === 'punct' && open.v === '=') pos.i++;
      if (toks[pos.i]?.t !== 'punct' || toks[pos.i]!.v !== '{') fail(`expected "{" after ${tok.v} "${next.v}" at offset ${next.at}`);
      pos.i++;
      const group = (obj[tok.v] ??= {}) as Record<string, unknown>;
      if (typeof group !== 'object') fail(`"${tok.v}" given both as a value and as blocks`);
      group[next.v] = parseHclBody(toks, pos, true);
      continue;
    }
    fail(`expected "=" or a quoted name after "${tok.v}" at offset ${tok.at}`);
  }
  if (nested) fail('missing "}"');
  return obj;
}

/** Policy rules (HCL or JSON, as Consul takes both) → rules; INVALID_ARGUMENT when malformed or unknown. */
export function parseRules(text: string): ParsedRules {
  const src = text.trim();
  if (src.length > 128 * 1024) fail('rules longer than 128 KiB');
  let doc: Record<string, unknown>;
  if (src.startsWith('{')) {
    try {
      doc = JSON.parse(src) as Record<string, unknown>;
    } catch (err) {
      fail(`invalid JSON: ${(err as Error).message}`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) fail('JSON rules must be an object');
  } else {
    doc = parseHclBody(tokenize(src), { i: 0 }, false);
  }
  const out: ParsedRules = { rules: [], globals: {} };
  for (const [name, body] of Object.entries(doc)) {
    if ((GLOBAL as readonly string[]).includes(name)) {
      out.globals[name as GlobalResource] = access(body, name, name);
      continue;
    }
    const prefix = name.endsWith('_prefix');
    const resource = prefix ? name.slice(0, -'_prefix'.length) : name;
    if (!(SEGMENTED as readonly string[]).includes(resource)) fail(`unknown rule "${name}"`);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) fail(`"${name}" needs blocks like ${name} "segment" { policy = "read" }`);
    for (const [segment, block] of Object.entries(body as Record<string, unknown>)) {
      const where = `${name} "${segment}"`;
      if (block === null || typeof block !== 'object' || Array.isArray(block)) fail(`${where}: expected a block`);
      const p = (block as Record<string, unknown>).policy;
      out.rules.push({ resource: resource as Segmented, prefix, segment, access: access(p, where, resource) });
    }
  }
  return out;
}
