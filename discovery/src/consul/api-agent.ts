/**
 * /v1/agent/* (services and checks on this daemon's node, whose checks it
 * runs) and /v1/status/* (the address of the leading server).
 */
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import { z } from '../../../common/validate.js';
import type { Catalog, CheckStatus } from '../catalog/catalog.js';
import type { CheckRunner } from '../catalog/checks.js';
import { agentServiceSchema, checkBodySchema, type Registrations } from '../catalog/registrations.js';
import { jsonBody, requiredPathParam } from './http-util.js';
import { Acl } from '../acl/request.js';

const updateSchema = z.looseObject({ Status: z.enum(['passing', 'warning', 'critical']), Output: z.string().max(65536).optional() });

/** Consul answers agent writes with 200 and an empty body (not 204). */
function emptyOk(ctx: RequestContext): undefined {
  ctx.res.statusCode = 200;
  ctx.res.end();
  return undefined;
}

interface AgentIdentity {
  nodeName: string;
  datacenter: string;
  /** host:port of this server, reported as the Raft leader. */
  serverAddress: string;
}

export function mountAgent(server: HttpServer, catalog: Catalog, registrations: Registrations, checks: CheckRunner, id: AgentIdentity, acl: Acl): void {
  const node = id.nodeName;

  server.route('GET', '/v1/agent/self', () => ({
    Config: { Datacenter: id.datacenter, NodeName: node, Server: true, Version: 'corral' },
    Member: { Name: node, Addr: catalog.node(node)?.Address ?? '', Status: 1 },
  }));

  server.route('GET', '/v1/agent/services', async (ctx) => {
    const a = await acl.authorize(ctx);
    const mine = catalog.nodeServices(node).filter((s) => catalog.serviceSource(node, s.ID) === 'agent');
    const readable = mine.filter((s) => a.allowed('service', s.Service, 'read'));
    Acl.markFiltered(ctx, readable.length < mine.length);
    return Object.fromEntries(readable.map((s) => [s.ID, s]));
  });

  server.route('GET', '/v1/agent/checks', async (ctx) => {
    const a = await acl.authorize(ctx);
    const mine = catalog.nodeChecks(node).filter((c) => catalog.checkSource(node, c.CheckID) === 'agent');
    const readable = mine.filter((c) => (c.ServiceName ? a.allowed('service', c.ServiceName, 'read') : a.allowed('node', node, 'read')));
    Acl.markFiltered(ctx, readable.length < mine.length);
    return Object.fromEntries(readable.map((c) => [c.CheckID, c]));
  });

  server.route('PUT', '/v1/agent/service/register', async (ctx) => {
    const a = await acl.authorize(ctx);
    await registrations.registerAgentService(await jsonBody(ctx, agentServiceSchema, 'service registration'), ctx.query.has('replace-existing-checks'), a);
    return emptyOk(ctx);
  });

  server.route('PUT', '/v1/agent/service/deregister/*', async (ctx) => {
    await registrations.deregisterAgentService(requiredPathParam(ctx, 'service ID'), await acl.authorize(ctx));
    return emptyOk(ctx);
  });

  server.route('PUT', '/v1/agent/check/register', async (ctx) => {
    const a = await acl.authorize(ctx);
    await registrations.registerAgentCheck(await jsonBody(ctx, checkBodySchema, 'check registration'), a);
    return emptyOk(ctx);
  });

  server.route('PUT', '/v1/agent/check/deregister/*', async (ctx) => {
    await registrations.deregisterAgentCheck(requiredPathParam(ctx, 'check ID'), await acl.authorize(ctx));
    return emptyOk(ctx);
  });

  const report = (status: CheckStatus) => async (ctx: RequestContext) => {
    const checkId = requiredPathParam(ctx, 'check ID');
    registrations.mayUpdateAgentCheck(await acl.authorize(ctx), checkId);
    checks.report(checkId, status, ctx.query.get('note') ?? '');
    return emptyOk(ctx);
  };
  server.route('PUT', '/v1/agent/check/pass/*', report('passing'));
  server.route('PUT', '/v1/agent/check/warn/*', report('warning'));
  server.route('PUT', '/v1/agent/check/fail/*', report('critical'));
  server.route('PUT', '/v1/agent/check/update/*', async (ctx) => {
    const b = await jsonBody(ctx, updateSchema, 'check update');
    const checkId = requiredPathParam(ctx, 'check ID');
    registrations.mayUpdateAgentCheck(await acl.authorize(ctx), checkId);
    checks.report(checkId, b.Status, b.Output ?? '');
    return emptyOk(ctx);
  });

  server.route('GET', '/v1/status/leader', () => id.serverAddress);
  server.route('GET', '/v1/status/peers', () => [id.serverAddress]);
}
