/**
 * /v1/session/*: create, destroy, renew, info, list, node.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import type { Store } from '../../../contracts/store/types.js';
import { z } from '../../../common/validate.js';
import type { Sessions } from './sessions.js';
import { Acl, permissionDenied } from '../acl/request.js';
import type { Authorizer } from '../acl/authorizer.js';
import { jsonBody, parseDuration, rawJsonBody, requiredPathParam, setIndex } from './http-util.js';

const durationOrNanos = z.union([z.string().max(32), z.number().nonnegative().max(Number.MAX_SAFE_INTEGER)]);

const createSchema = z.looseObject({
  Name: z.string().max(256).optional(),
  Node: z.string().max(256).optional(),
  LockDelay: durationOrNanos.optional(),
  Behavior: z.enum(['release', 'delete', '']).optional(),
  TTL: z.string().max(32).optional(),
  Checks: z.array(z.string().max(256)).max(32).optional(),
  NodeChecks: z.array(z.string().max(256)).max(32).optional(),
});

interface SessionLimits {
  /** Shortest TTL accepted (Consul: 10 s). */
  ttlMinMs: number;
  ttlMaxMs: number;
}

function durationMs(v: string | number | undefined, what: string, fallback: number): number {
  if (v === undefined || v === '') return fallback;
  // Numbers are nanoseconds (Go's time.Duration); strings are Go duration syntax.
  const ms = typeof v === 'number' ? v / 1e6 : parseDuration(v);
  if (ms === undefined) throw new CorralError('INVALID_ARGUMENT', `${what} must be a duration like "15s"`);
  return ms;
}

/**
 * Consul's FixupLockDelay: a lock delay under 1000 ns is taken as seconds,
 * because users write `"LockDelay": 5` meaning 5 s (agent/session_endpoint.go).
 */
export function lockDelayMs(v: string | number | undefined): number {
  const ms = durationMs(v, 'LockDelay', 15_000);
  const ns = Math.round(ms * 1e6);
  return ns < 1000 ? ns * 1000 : ms;
}

/** True when the body names the member (Go matches JSON names without regard to case), even as null. */
function hasMember(raw: unknown, name: string): boolean {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return false;
  const lower = name.toLowerCase();
  return Object.keys(raw).some((k) => k.toLowerCase() === lower);
}

/** Consul guards a session with the node's serfHealth check unless the body lists checks itself (an empty list removes it). */
const DEFAULT_SESSION_CHECKS = ['serfHealth'];

export function mountSessions(server: HttpServer, store: Store, sessions: Sessions, nodeName: string, limits: SessionLimits, acl: Acl): void {
  /** session:write on the node a session is (or will be) bound to, as Consul's Session.Apply asks. */
  const mayWrite = (a: Authorizer, node: string): void => {
    if (!a.allowed('session', node, 'write')) throw permissionDenied(a, 'session:write', node);
  };
  const readable = <T extends { Node: string }>(ctx: RequestContext, a: Authorizer, list: T[]): T[] => {
    const out = list.filter((x) => a.allowed('session', x.Node, 'read'));
    Acl.markFiltered(ctx, out.length < list.length);
    return out;
  };
  const ownerCheck = async (ctx: RequestContext, id: string): Promise<void> => {
    if (!acl.enabled) return;
    const s = await sessions.info(id);
    if (s) mayWrite(await acl.authorize(ctx), s.Node);
  };

  server.route('PUT', '/v1/session/create', async (ctx) => {
    const raw = await rawJsonBody(ctx);
    const b = await jsonBody(ctx, createSchema, 'session', true);
    // A TTL of zero is no TTL, as in Consul.
    const ttlMs = b.TTL ? durationMs(b.TTL, 'TTL', 0) || undefined : undefined;
    if (ttlMs !== undefined && (ttlMs < limits.ttlMinMs || ttlMs > limits.ttlMaxMs)) {
      throw new CorralError('INVALID_ARGUMENT', `TTL must be between ${limits.ttlMinMs / 1000}s and ${limits.ttlMaxMs / 1000}s`);
    }
    const delayMs = lockDelayMs(b.LockDelay);
    if (delayMs > 60_000) throw new CorralError('INVALID_ARGUMENT', 'LockDelay may be at most 60s');
    const listed = hasMember(raw, 'Checks') || hasMember(raw, 'NodeChecks');
    const checks = listed ? (b.Checks ?? b.NodeChecks ?? []) : DEFAULT_SESSION_CHECKS;
    mayWrite(await acl.authorize(ctx), b.Node ?? nodeName);
    const id = await sessions.create({ name: b.Name ?? '', node: b.Node ?? nodeName, lockDelayMs: delayMs, behavior: b.Behavior || 'release', ttlMs, ttlText: ttlMs ? b.TTL : undefined, checks });
    return { ID: id };
  });

  server.route('PUT', '/v1/session/destroy/*', async (ctx) => {
    const id = requiredPathParam(ctx, 'session ID');
    await ownerCheck(ctx, id);
    await sessions.destroy(id);
    return true;
  });

  server.route('PUT', '/v1/session/renew/*', async (ctx) => {
    const id = requiredPathParam(ctx, 'session ID');
    await ownerCheck(ctx, id);
    const s = await sessions.renew(id);
    if (!s) throw new CorralError('NOT_FOUND', 'session not found');
    return [s];
  });

  server.route('GET', '/v1/session/info/*', async (ctx) => {
    const s = await sessions.info(requiredPathParam(ctx, 'session ID'));
    setIndex(ctx, s?.ModifyIndex ?? (await store.currentRevision()));
    return readable(ctx, await acl.authorize(ctx), s ? [s] : []);
  });

  server.route('GET', '/v1/session/list', async (ctx) => {
    const r = await sessions.list();
    setIndex(ctx, r.revision);
    return readable(ctx, await acl.authorize(ctx), r.sessions);
  });

  server.route('GET', '/v1/session/node/*', async (ctx) => {
    const node = requiredPathParam(ctx, 'node');
    const r = await sessions.list();
    setIndex(ctx, r.revision);
    return readable(
      ctx,
      await acl.authorize(ctx),
      r.sessions.filter((s) => s.Node === node),
    );
  });
}
