/**
 * The service framework's HTTP API (JSON; app bodies may also be YAML):
 *
 *   GET    /v1/apps                 every app, summarised
 *   GET    /v1/apps/:id             one app with its instances
 *   PUT    /v1/apps/:id             create or update (201 / 200)
 *   DELETE /v1/apps/:id             kill every instance, then forget the app (202)
 *   POST   /v1/apps/:id/scale       { "instances": N }
 *   POST   /v1/apps/:id/restart     { "strategy": "rolling" | "all" } (optional; 202)
 *   GET    /v1/info                 framework id, connection, roles
 *   GET    /health, GET /metrics    (no credentials needed)
 *
 * Every /v1 call needs an operator credential (HTTP Basic) unless auth is off.
 *
 * Replicated daemons: only the leader serves /v1; a standby answers as a
 * non-leading master does — 307 with `Location: <leader URL><same path and
 * query>`, or 503 while no leader is known. /health answers on every daemon
 * and names the leader.
 */
import { CorralError, invalid } from '../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import { parseInput, z } from '../../../common/validate.js';
import type { Authority } from '../master/auth.js';
import { appIdSchema, parseAppSpec, readAppText } from './app-spec.js';
import type { FrameworkLink } from './framework-link.js';
import { notLeading, type ServicesLeadership } from './leadership.js';
import type { ServiceManager } from './manager.js';
import { restartStrategySchema, type AppRecord } from './model.js';
import { appSummary, appView } from './views.js';

const scaleSchema = z.strictObject({ instances: z.number().int().min(0).max(10_000) });
const restartSchema = z.strictObject({ strategy: restartStrategySchema.default('rolling') });

/** What serves the API while this daemon runs the framework. */
export interface ServingTerm {
  manager: ServiceManager;
  link: FrameworkLink;
}

interface ApiDeps {
  /** The running framework; undefined on a standby (or while a new leader loads its state). */
  serving(): ServingTerm | undefined;
  /** The election, for replicated daemons. */
  leadership(): ServicesLeadership | undefined;
  auth: Authority;
  frameworkName: string;
  masterUrl: string;
}

function appId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw invalid('app id in the path is not valid percent-encoding');
  }
  return parseInput(appIdSchema, id, 'app id in the path');
}

/** An app body: JSON, or YAML when the client says so. */
async function appBody(ctx: RequestContext): Promise<unknown> {
  const type = String(ctx.req.headers['content-type'] ?? '');
  if (/yaml/i.test(type)) {
    const text = await ctx.text();
    if (!text.trim()) throw new CorralError('MALFORMED_REQUEST', 'request body is empty; expected an app definition');
    return readAppText(text, 'request body');
  }
  return ctx.json();
}

/** A body that may be left out (restart). */
async function optionalJson(ctx: RequestContext): Promise<unknown> {
  return (await ctx.text()).length === 0 ? {} : ctx.json();
}

/** A standby's answer: 307 to the leader, else 503. */
function refer(ctx: RequestContext, leadership: ServicesLeadership | undefined): void {
  const leader = leadership?.leader;
  if (!leadership || !leader || leadership.leading) throw leadership ? notLeading(leadership) : new CorralError('UNAVAILABLE', 'the service framework is starting; retry shortly');
  // The request target as sent (path and query); an absolute-form target keeps only its path.
  const target = ctx.req.url?.startsWith('/') ? ctx.req.url : ctx.path;
  const location = leader.url.replace(/\/+$/, '') + target;
  const body = JSON.stringify({ code: 'TEMPORARY_REDIRECT', message: `served by the leading service framework daemon: ${location}`, location });
  ctx.res.writeHead(307, { Location: location, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  ctx.res.end(body);
  // Leave a keep-alive connection usable: the unread request body is drained, not parsed.
  if (!ctx.req.readableEnded) ctx.req.resume();
}

export function mountServicesApi(server: HttpServer, d: ApiDeps): void {
  // Handlers get the term that serves them: a standby has none and refers the call to the leader.
  const guard = (handler: (ctx: RequestContext, t: ServingTerm) => unknown) => async (ctx: RequestContext) => {
    const term = d.serving();
    if (!term) {
      refer(ctx, d.leadership());
      return undefined;
    }
    d.auth.authorizeOperator(await d.auth.authenticate(ctx.req));
    return handler(ctx, term);
  };
  const view = (manager: ServiceManager, app: AppRecord): unknown => appView(app, manager.instancesOf(app.spec.id), manager.refusals.get(app.spec.id));

  server.route('GET', '/health', () => {
    const term = d.serving();
    const l = d.leadership();
    // ready: the leader (or a daemon alone) is subscribed, or a standby knows whom to send calls to.
    const connected = term?.link.connected ?? false;
    const ready = l ? (l.serving ? connected : l.leader !== undefined && !l.leading) : connected;
    // `id` names this process: a standby probing the leader's /health tells a restarted daemon from the one it knew.
    return { ok: true, ready, connected, ...(l ? { id: l.self.id, ...l.status() } : { leading: term !== undefined, state: term ? 'leading' : 'starting', leader: null }) };
  });
  server.route(
    'GET',
    '/v1/info',
    guard((_ctx, { manager, link }) => ({
      framework: {
        name: d.frameworkName,
        id: link.frameworkId ?? null,
        connected: link.connected,
        roles: link.roles,
        superseded: link.isSuperseded,
        lastError: link.lastError ?? null,
        subscribedAt: link.subscribedAt ? new Date(link.subscribedAt).toISOString() : null,
      },
      master: d.masterUrl,
      apps: manager.listApps().length,
    })),
  );
  server.route(
    'GET',
    '/v1/apps',
    guard((_ctx, { manager }) => manager.listApps().map((a) => appSummary(a, manager.instancesOf(a.spec.id), manager.refusals.get(a.spec.id)))),
  );

  server.route(
    'GET',
    '/v1/apps/*',
    guard((ctx, { manager }) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: GET ${ctx.path}`);
      return view(manager, manager.getApp(appId(ctx.rest)));
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'PUT',
    '/v1/apps/*',
    guard(async (ctx, { manager }) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: PUT ${ctx.path}`);
      const id = appId(ctx.rest);
      const body = await appBody(ctx);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be one app definition (a JSON object)');
      const given = (body as { id?: unknown }).id;
      if (given !== undefined && given !== id) throw invalid(`the body's id "${String(given).slice(0, 80)}" does not match the path's "${id}"`);
      const spec = parseAppSpec({ ...body, id });
      const { created, app } = await manager.deploy(spec);
      ctx.res.statusCode = created ? 201 : 200;
      return view(manager, app);
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'DELETE',
    '/v1/apps/*',
    guard(async (ctx, { manager }) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: DELETE ${ctx.path}`);
      const id = appId(ctx.rest);
      const app = await manager.remove(id);
      ctx.res.statusCode = 202;
      return view(manager, app);
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'POST',
    '/v1/apps/*',
    guard(async (ctx, { manager }) => {
      const [raw = '', action, ...more] = ctx.rest.split('/');
      if (more.length || (action !== 'scale' && action !== 'restart')) throw new CorralError('NOT_FOUND', `no such endpoint: POST ${ctx.path}; use /v1/apps/:id/scale or /v1/apps/:id/restart`);
      const id = appId(raw);
      if (action === 'scale') {
        const { instances } = parseInput(scaleSchema, await ctx.json(), 'scale request');
        return view(manager, await manager.scale(id, instances));
      }
      const { strategy } = parseInput(restartSchema, await optionalJson(ctx), 'restart request');
      const app = await manager.restart(id, strategy);
      ctx.res.statusCode = 202;
      return view(manager, app);
    }),
    { name: '/v1/apps/:id/action' },
  );
}
