/**
 * /v1/catalog/* and /v1/health/*: what runs where and whether it is healthy,
 * in Consul's JSON shapes. Reads can block on the catalog index.
 */
import type { HttpServer, RequestContext } from '../../../common/http/server.js';
import { CorralError } from '../../../contracts/errors.js';
import { aggregateStatus, type Catalog, type CatalogCheck, type Instance } from '../catalog/catalog.js';
import { catalogDeregisterSchema, catalogRegisterSchema, type Registrations } from '../catalog/registrations.js';
import { Acl } from '../acl/request.js';
import type { Authorizer } from '../acl/authorizer.js';
import { blockingParams, boolParam, jsonBody, requiredPathParam, setIndex } from './http-util.js';

/** Answer a read after an optional blocking wait on the catalog index. */
async function blockingRead<T>(ctx: RequestContext, catalog: Catalog, read: () => T): Promise<T> {
  const b = blockingParams(ctx);
  if (b.index !== undefined) {
    // A waiting query counts against the server's caps on long-lived requests (429/503 over them).
    ctx.admit('blocking');
    await catalog.waitForChange(b.index, b.waitMs);
  }
  setIndex(ctx, catalog.index);
  return read();
}

function catalogServiceEntry(i: Instance): Record<string, unknown> {
  return {
    ID: i.node.ID,
    Node: i.node.Node,
    Address: i.node.Address,
    Datacenter: i.node.Datacenter,
    TaggedAddresses: i.node.TaggedAddresses,
    NodeMeta: i.node.Meta,
    ServiceID: i.service.ID,
    ServiceName: i.service.Service,
    ServiceTags: i.service.Tags,
    ServiceAddress: i.service.Address,
    ServicePort: i.service.Port,
    ServiceMeta: i.service.Meta,
    ServiceEnableTagOverride: false,
    CreateIndex: i.service.CreateIndex,
    ModifyIndex: i.service.ModifyIndex,
  };
}

const STATES = new Set(['any', 'passing', 'warning', 'critical']);

/**
 * Instances of a service carrying every `?tag` given (the parameter may
 * repeat), compared without regard to case, as Consul's serviceTagsFilter does.
 */
function taggedInstances(catalog: Catalog, name: string, tags: string[]): Instance[] {
  const want = tags.map((t) => t.toLowerCase());
  const all = catalog.instances(name);
  if (want.length === 0) return all;
  return all.filter((i) => {
    const have = new Set(i.service.Tags.map((t) => t.toLowerCase()));
    return want.every((t) => have.has(t));
  });
}

/**
 * Reads show only what the token may read, as Consul's ACL filter does: an
 * instance needs service:read on its name and node:read on its node; a check
 * needs node:read, and service:read when it belongs to a service.
 */
function filtered<T>(ctx: RequestContext, items: T[], keep: (t: T) => boolean): T[] {
  const out = items.filter(keep);
  Acl.markFiltered(ctx, out.length < items.length);
  return out;
}

const instanceReadable = (a: Authorizer) => (i: Instance) => a.allowed('service', i.service.Service, 'read') && a.allowed('node', i.node.Node, 'read');
const checkReadable = (a: Authorizer) => (c: CatalogCheck) => a.allowed('node', c.Node, 'read') && (c.ServiceName === '' || a.allowed('service', c.ServiceName, 'read'));

export function mountCatalog(server: HttpServer, catalog: Catalog, registrations: Registrations, acl: Acl): void {
  server.route('GET', '/v1/catalog/datacenters', () => [catalog.datacenter]);

  server.route('GET', '/v1/catalog/services', async (ctx) => {
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () => Object.fromEntries(filtered(ctx, Object.entries(catalog.services()), ([name]) => a.allowed('service', name, 'read'))));
  });

  server.route('GET', '/v1/catalog/service/*', async (ctx) => {
    const name = requiredPathParam(ctx, 'service name');
    const tags = ctx.query.getAll('tag');
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () => filtered(ctx, taggedInstances(catalog, name, tags), instanceReadable(a)).map(catalogServiceEntry));
  });

  server.route('GET', '/v1/catalog/nodes', async (ctx) => {
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () => filtered(ctx, catalog.nodeList(), (n) => a.allowed('node', n.Node, 'read')));
  });

  server.route('GET', '/v1/catalog/node/*', async (ctx) => {
    const name = requiredPathParam(ctx, 'node name');
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () => {
      const node = catalog.node(name);
      if (!node) return null;
      if (!a.allowed('node', name, 'read')) {
        Acl.markFiltered(ctx, true);
        return null;
      }
      return { Node: node, Services: Object.fromEntries(filtered(ctx, catalog.nodeServices(name), (s) => a.allowed('service', s.Service, 'read')).map((s) => [s.ID, s])) };
    });
  });

  server.route('PUT', '/v1/catalog/register', async (ctx) => {
    const a = await acl.authorize(ctx);
    await registrations.catalogRegister(await jsonBody(ctx, catalogRegisterSchema, 'catalog registration'), a);
    return true;
  });

  server.route('PUT', '/v1/catalog/deregister', async (ctx) => {
    const a = await acl.authorize(ctx);
    await registrations.catalogDeregister(await jsonBody(ctx, catalogDeregisterSchema, 'catalog deregistration'), a);
    return true;
  });

  server.route('GET', '/v1/health/service/*', async (ctx) => {
    const name = requiredPathParam(ctx, 'service name');
    const tags = ctx.query.getAll('tag');
    const passing = boolParam(ctx, 'passing');
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () =>
      filtered(ctx, taggedInstances(catalog, name, tags), instanceReadable(a))
        .filter((i) => !passing || aggregateStatus(i.checks) === 'passing')
        .map((i) => ({ Node: i.node, Service: i.service, Checks: i.checks })),
    );
  });

  server.route('GET', '/v1/health/checks/*', async (ctx) => {
    const name = requiredPathParam(ctx, 'service name');
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () =>
      filtered(
        ctx,
        catalog.checks((c) => c.ServiceName === name),
        checkReadable(a),
      ),
    );
  });

  server.route('GET', '/v1/health/node/*', async (ctx) => {
    const name = requiredPathParam(ctx, 'node name');
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () => filtered(ctx, catalog.nodeChecks(name), checkReadable(a)));
  });

  server.route('GET', '/v1/health/state/*', async (ctx) => {
    const state = requiredPathParam(ctx, 'state');
    if (!STATES.has(state)) throw new CorralError('INVALID_ARGUMENT', `state must be any, passing, warning or critical, got "${state.slice(0, 40)}"`);
    const a = await acl.authorize(ctx);
    return blockingRead(ctx, catalog, () =>
      filtered(
        ctx,
        catalog.checks((c: CatalogCheck) => state === 'any' || c.Status === state),
        checkReadable(a),
      ),
    );
  });
}
