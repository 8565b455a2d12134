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
 */
import { CorralError, invalid } from '../../../contracts/errors.js';
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import { parseInput, z } from '../../../common/validate.js';
import type { Authority } from '../master/auth.js';
import { appIdSchema, parseAppSpec, readAppText } from './app-spec.js';
import type { FrameworkLink } from './framework-link.js';
import type { ServiceManager } from './manager.js';
import { restartStrategySchema, type AppRecord } from './model.js';
import { appSummary, appView } from './views.js';

const scaleSchema = z.strictObject({ instances: z.number().int().min(0).max(10_000) });
const restartSchema = z.strictObject({ strategy: restartStrategySchema.default('rolling') });

interface ApiDeps {
  manager: ServiceManager;
  link: FrameworkLink;
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
    const text = (await ctx.body()).toString('utf8');
    if (!text.trim()) throw new CorralError('MALFORMED_REQUEST', 'request body is empty; expected an app definition');
    return readAppText(text, 'request body');
  }
  return ctx.json();
}

/** A body that may be left out (restart). */
async function optionalJson(ctx: RequestContext): Promise<unknown> {
  const buf = await ctx.body();
  return buf.length === 0 ? {} : ctx.json();
}

export function mountServicesApi(server: HttpServer, d: ApiDeps): void {
  const { manager } = d;
  const guard = (handler: (ctx: RequestContext) => unknown) => async (ctx: RequestContext) => {
    d.auth.authorizeOperator(d.auth.authenticate(ctx.req));
    return handler(ctx);
  };
  const view = (app: AppRecord): unknown => appView(app, manager.instancesOf(app.spec.id), manager.refusals.get(app.spec.id));

  server.route('GET', '/health', () => ({ ok: true, connected: d.link.connected }));
  server.route(
    'GET',
    '/v1/info',
    guard(() => ({
      framework: {
        name: d.frameworkName,
        id: d.link.frameworkId ?? null,
        connected: d.link.connected,
        roles: d.link.roles,
        superseded: d.link.isSuperseded,
        lastError: d.link.lastError ?? null,
        subscribedAt: d.link.subscribedAt ? new Date(d.link.subscribedAt).toISOString() : null,
      },
      master: d.masterUrl,
      apps: manager.listApps().length,
    })),
  );
  server.route(
    'GET',
    '/v1/apps',
    guard(() => manager.listApps().map((a) => appSummary(a, manager.instancesOf(a.spec.id), manager.refusals.get(a.spec.id)))),
  );

  server.route(
    'GET',
    '/v1/apps/*',
    guard((ctx) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: GET ${ctx.path}`);
      return view(manager.getApp(appId(ctx.rest)));
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'PUT',
    '/v1/apps/*',
    guard(async (ctx) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: PUT ${ctx.path}`);
      const id = appId(ctx.rest);
      const body = await appBody(ctx);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be one app definition (a JSON object)');
      const given = (body as { id?: unknown }).id;
      if (given !== undefined && given !== id) throw invalid(`the body's id "${String(given).slice(0, 80)}" does not match the path's "${id}"`);
      const spec = parseAppSpec({ ...body, id });
      const { created, app } = await manager.deploy(spec);
      ctx.res.statusCode = created ? 201 : 200;
      return view(app);
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'DELETE',
    '/v1/apps/*',
    guard(async (ctx) => {
      if (ctx.rest.includes('/')) throw new CorralError('NOT_FOUND', `no such endpoint: DELETE ${ctx.path}`);
      const id = appId(ctx.rest);
      const app = await manager.remove(id);
      ctx.res.statusCode = 202;
      return view(app);
    }),
    { name: '/v1/apps/:id' },
  );

  server.route(
    'POST',
    '/v1/apps/*',
    guard(async (ctx) => {
      const [raw = '', action, ...more] = ctx.rest.split('/');
      if (more.length || (action !== 'scale' && action !== 'restart')) throw new CorralError('NOT_FOUND', `no such endpoint: POST ${ctx.path}; use /v1/apps/:id/scale or /v1/apps/:id/restart`);
      const id = appId(raw);
      if (action === 'scale') {
        const { instances } = parseInput(scaleSchema, await ctx.json(), 'scale request');
        return view(await manager.scale(id, instances));
      }
      const { strategy } = parseInput(restartSchema, await optionalJson(ctx), 'restart request');
      const app = await manager.restart(id, strategy);
      ctx.res.statusCode = 202;
      return view(app);
    }),
    { name: '/v1/apps/:id/action' },
  );
}
