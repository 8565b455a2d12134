/**
 * What one token may do: the rules of its policies merged, looked up as
 * Consul's policy authorizer does — an exact rule for a segment wins, else
 * the longest prefix rule that covers it, else the default policy. Where two
 * policies name the same segment, deny beats write beats list beats read
 * (Consul's policy merger).
 */
import type { Access, GlobalResource, ParsedRules, Segmented } from './rules.js';

type Decision = Access | undefined;

const RANK: Record<Access, number> = { read: 1, list: 2, write: 3, deny: 4 };
const stronger = (a: Access | undefined, b: Access): Access => (a === undefined || RANK[b] > RANK[a] ? b : a);

interface Table {
  exact: Map<string, Access>;
  /** Prefix rules, longest first. */
  prefixes: Array<[string, Access]>;
}

function permits(access: Access, want: 'read' | 'list' | 'write'): boolean {
  if (access === 'deny') return false;
  if (want === 'read') return true;
  if (want === 'list') return access === 'list' || access === 'write';
  return access === 'write';
}

export class Authorizer {
  private readonly tables = new Map<Segmented, Table>();
  private readonly globals: Partial<Record<GlobalResource, Access>> = {};

  private constructor(
    /** Grants everything (global-management, or ACLs switched off). */
    readonly management: boolean,
    /** What applies where no rule speaks. */
    private readonly fallback: 'allow' | 'deny',
    /** AccessorID of the token, for "Permission denied" messages. */
    readonly accessorId: string,
    parsed: ParsedRules[],
  ) {
    const prefixMaps = new Map<Segmented, Map<string, Access>>();
    for (const p of parsed) {
      for (const r of p.rules) {
        let t = this.tables.get(r.resource);
        if (!t) this.tables.set(r.resource, (t = { exact: new Map(), prefixes: [] }));
        if (r.prefix) {
          let m = prefixMaps.get(r.resource);
          if (!m) prefixMaps.set(r.resource, (m = new Map()));
          m.set(r.segment, stronger(m.get(r.segment), r.access));
        } else t.exact.set(r.segment, stronger(t.exact.get(r.segment), r.access));
      }
      for (const [k, v] of Object.entries(p.globals) as Array<[GlobalResource, Access]>) this.globals[k] = stronger(this.globals[k], v);
    }
    for (const [res, m] of prefixMaps) this.tables.get(res)!.prefixes = [...m].sort((a, b) => b[0].length - a[0].length);
  }

  /** Everything allowed because ACLs are off: no token stands behind it, so it grants nothing explicitly. */
  static readonly OPEN = new Authorizer(true, 'allow', '', []);

  get open(): boolean {
    return this === Authorizer.OPEN;
  }

  static of(policies: ParsedRules[], defaultPolicy: 'allow' | 'deny', accessorId: string, management = false): Authorizer {
    return new Authorizer(management, defaultPolicy, accessorId, policies);
  }

  private rule(resource: Segmented, name: string): Decision {
    const t = this.tables.get(resource);
    if (!t) return undefined;
    const exact = t.exact.get(name);
    if (exact !== undefined) return exact;
    for (const [p, a] of t.prefixes) if (name.startsWith(p)) return a;
    return undefined;
  }

  /** True when a rule (not the default policy) grants `want` on the segment. */
  grantsExplicitly(resource: Segmented, name: string, want: 'read' | 'write'): boolean {
    if (this.open) return false;
    if (this.management) return true;
    const a = this.rule(resource, name);
    return a !== undefined && permits(a, want);
  }

  allowed(resource: Segmented, name: string, want: 'read' | 'list' | 'write'): boolean {
    if (this.management) return true;
    const a = this.rule(resource, name);
    if (a === undefined) return this.fallback === 'allow';
    return permits(a, want);
  }

  allowedGlobal(resource: GlobalResource, want: 'read' | 'write'): boolean {
    if (this.management) return true;
    const a = this.globals[resource];
    if (a === undefined) return this.fallback === 'allow';
    return permits(a, want);
  }

  /**
   * Write on everything under a prefix (a recursive delete): the rule that
   * covers the prefix grants write and no rule inside it grants less
   * (Consul's KeyWritePrefix).
   */
  allowedKeyWritePrefix(prefix: string): boolean {
    if (this.management) return true;
    const t = this.tables.get('key');
    if (t) {
      for (const [k, a] of t.exact) if (k.startsWith(prefix) && a !== 'write') return false;
      for (const [k, a] of t.prefixes) if (k.startsWith(prefix) && k.length > prefix.length && a !== 'write') return false;
    }
    return this.allowed('key', prefix, 'write');
  }
}
