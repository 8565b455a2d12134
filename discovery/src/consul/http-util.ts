/**
 * Pieces every Consul-compatible endpoint shares: Go-style durations,
 * blocking-query parameters (`index`, `wait`), consistency modes, the
 * X-Consul-* headers, path parameters and JSON bodies validated at the edge.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { RequestContext } from '../../../common/http/server.js';
import { parseInput, type z } from '../../../common/validate.js';

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10s", "1m30s", "250ms", "1.5h" → milliseconds; undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === t.length && matched > 0 ? total : undefined;
}

/** Consul prints durations as Go does for whole seconds: "15s". */
export const formatSeconds = (ms: number): string => `${Math.round(ms / 1000)}s`;

export interface Blocking {
  /** Wait for changes after this index; undefined means answer at once. */
  index: number | undefined;
  waitMs: number;
}

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;

/**
 * Consul's read modes: `stale` and `consistent` contradict each other (400);
 * corral has one copy of its state, so both read what the default reads.
 */
export function consistencyMode(ctx: RequestContext): 'leader' | 'stale' | 'consistent' {
  const stale = ctx.query.has('stale');
  const consistent = ctx.query.has('consistent');
  if (stale && consistent) throw new CorralError('INVALID_ARGUMENT', 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  return stale ? 'stale' : consistent ? 'consistent' : 'leader';
}

export function blockingParams(ctx: RequestContext): Blocking {
  consistencyMode(ctx);
  const rawIndex = ctx.query.get('index');
  const rawWait = ctx.query.get('wait');
  let index: number | undefined;
  if (rawIndex !== null && rawIndex !== '') {
    if (!/^\d{1,15}$/.test(rawIndex)) throw new CorralError('INVALID_ARGUMENT', `index must be a non-negative integer, got "${rawIndex.slice(0, 40)}"`);
    index = Number(rawIndex);
  }
  let waitMs = DEFAULT_WAIT_MS;
  if (rawWait !== null && rawWait !== '') {
    const ms = parseDuration(rawWait);
    if (ms === undefined) throw new CorralError('INVALID_ARGUMENT', `wait must be a duration like "10s" or "5m", got "${rawWait.slice(0, 40)}"`);
    // As in Consul, a wait of zero is no wait given: the default applies.
    waitMs = ms <= 0 ? DEFAULT_WAIT_MS : Math.min(ms, MAX_WAIT_MS);
  }
  // Index 0 means "no index yet": Consul answers at once.
  return { index: index === 0 ? undefined : index, waitMs: waitMs + Math.random() * (waitMs / 16) };
}

export function setIndex(ctx: RequestContext, index: number): void {
  ctx.res.setHeader('X-Consul-Index', String(Math.max(1, index)));
  ctx.res.setHeader('X-Consul-KnownLeader', 'true');
  ctx.res.setHeader('X-Consul-LastContact', '0');
  ctx.res.setHeader('X-Consul-Effective-Consistency', consistencyMode(ctx));
}

/** The decoded rest of the path after a route prefix ("" when absent). */
export function pathParam(ctx: RequestContext, what: string): string {
  try {
    return decodeURIComponent(ctx.rest);
  } catch {
    throw new CorralError('INVALID_ARGUMENT', `${what} in the path is not valid percent-encoding`);
  }
}

export function requiredPathParam(ctx: RequestContext, what: string): string {
  const v = pathParam(ctx, what);
  if (!v) throw new CorralError('INVALID_ARGUMENT', `missing ${what} in the path`);
  return v;
}

/**
 * Go's JSON decoder leaves a field at its zero value when the body says
 * `null`, so Consul clients send `"Tags": null` and the like freely: object
 * members that are null are dropped (recursively) before validation.
 */
export function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
  return out;
}

/** A JSON body checked against a schema; an empty body (or `null`) counts as `{}` where that is allowed. */
export async function jsonBody<S extends z.ZodType>(ctx: RequestContext, schema: S, what: string, emptyAllowed = false): Promise<z.output<S>> {
  const raw = await rawJsonBody(ctx);
  if (raw === undefined && emptyAllowed) return parseInput(schema, {}, what);
  return parseInput(schema, dropNulls(raw ?? null), what);
}

/** The parsed body as sent (undefined when the body is empty or `null`). */
export async function rawJsonBody(ctx: RequestContext): Promise<unknown> {
  const buf = await ctx.body();
  if (buf.length === 0) return undefined;
  const v = await ctx.json();
  return v === null ? undefined : v;
}

/** `?flag`, `?flag=` or `?flag=true` all switch a Consul boolean parameter on. */
export function flag(ctx: RequestContext, name: string): boolean {
  const v = ctx.query.get(name);
  return v !== null && v !== 'false' && v !== '0';
}

/**
 * A boolean parameter read as Consul's getBoolQueryParam reads `?passing`:
 * present without a value is true, otherwise Go's strconv.ParseBool, and
 * anything else is a 400.
 */
export function boolParam(ctx: RequestContext, name: string): boolean {
  const v = ctx.query.get(name);
  if (v === null) return false;
  if (v === '' || ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new CorralError('INVALID_ARGUMENT', `Invalid value for ?${name}`);
}

export function uintParam(ctx: RequestContext, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = ctx.query.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) > max) throw new CorralError('INVALID_ARGUMENT', `${name} must be a non-negative integer up to ${max}, got "${v.slice(0, 40)}"`);
  return Number(v);
}
