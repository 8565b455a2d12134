/**
 * Registrations made through the HTTP API, kept in the Store so they survive
 * a restart: services (with the checks this daemon runs) registered on the
 * agent API, and external nodes/services/checks registered on the catalog
 * API. Each write goes to the Store first, then into the in-memory catalog.
 *
 * Replicas sharing one Store: catalog registrations made through any of them
 * reach all (`follow()` watches the catalog prefix). Agent-API services stay
 * on the replica (the Consul agent node) they were registered with, which
 * runs their checks, as in Consul.
 */
import { CorralError, errorMessage, isCorralError } from '../../../contracts/errors.js';
import { getJson, putJson, rangeJson } from '../../../common/store/json.js';
import type { Store, Watch, WatchEvent } from '../../../contracts/store/types.js';
import type { Logger } from '../../../common/log.js';
import { z } from '../../../common/validate.js';
import { parseDuration } from '../consul/http-util.js';
import type { Catalog, CheckInput, ServiceInput } from './catalog.js';
import type { CheckDef, CheckRunner } from './checks.js';
import { Authorizer } from '../acl/authorizer.js';
import { permissionDenied } from '../acl/request.js';

/** What a caller without ACLs may do: everything, except what the rules below keep for the master's feed. */
const OPEN = Authorizer.OPEN;

const PREFIX = 'corral/discovery/';

const name = z.string().min(1).max(256);
const meta = z.record(z.string().max(128), z.string().max(512)).optional();
const tags = z.array(z.string().max(256)).max(64).optional();
const status = z.enum(['passing', 'warning', 'critical']);
const duration = z
  .string()
  .max(32)
  .refine((s) => parseDuration(s) !== undefined, 'must be a duration like "10s"');

export const checkBodySchema = z.looseObject({
  ID: z.string().max(256).optional(),
  CheckID: z.string().max(256).optional(),
  Name: z.string().max(256).optional(),
  ServiceID: z.string().max(256).optional(),
  Notes: z.string().max(4096).optional(),
  HTTP: z.url().max(4096).optional(),
  Method: z.enum(['GET', 'HEAD', 'POST', 'PUT']).optional(),
  TCP: z.string().max(300).optional(),
  TTL: duration.optional(),
  Interval: duration.optional(),
  Timeout: duration.optional(),
  Status: status.optional(),
});
type CheckBody = z.output<typeof checkBodySchema>;

export const agentServiceSchema = z.looseObject({
  ID: z.string().max(256).optional(),
  Name: name,
  Tags: tags,
  Address: z.string().max(256).optional(),
  Port: z.number().int().min(0).max(65535).optional(),
  Meta: meta,
  Check: checkBodySchema.optional(),
  Checks: z.array(checkBodySchema).max(32).optional(),
});

/** A check as a catalog registration carries it (Check, or each of Checks). */
const catalogCheckSchema = z.looseObject({
  CheckID: z.string().max(256).optional(),
  Name: z.string().max(256).optional(),
  Status: status.optional(),
  Notes: z.string().max(4096).optional(),
  Output: z.string().max(65536).optional(),
  ServiceID: z.string().max(256).optional(),
});

export const catalogRegisterSchema = z.looseObject({
  Node: name,
  Address: z.string().min(1).max(256),
  NodeMeta: meta,
  Service: z
    .looseObject({ ID: z.string().max(256).optional(), Service: name, Tags: tags, Address: z.string().max(256).optional(), Port: z.number().int().min(0).max(65535).optional(), Meta: meta })
    .optional(),
  Check: catalogCheckSchema.optional(),
  Checks: z.array(catalogCheckSchema).max(32).optional(),
});

export const catalogDeregisterSchema = z.looseObject({ Node: name, ServiceID: z.string().max(256).optional(), CheckID: z.string().max(256).optional() });

interface AgentServiceDoc {
  service: ServiceInput;
  checks: CheckDef[];
}

interface CatalogNodeDoc {
  Node: string;
  Address: string;
  Meta: Record<string, string>;
  services: Record<string, ServiceInput>;
  checks: Record<string, CheckInput>;
}

/** A Consul check definition to what the runner needs; INVALID_ARGUMENT when it is not one we can run. */
function checkDef(b: CheckBody, fallbackId: string, serviceId: string | undefined): CheckDef {
  const id = b.CheckID ?? b.ID ?? fallbackId;
  const common = { CheckID: id, Name: b.Name ?? (serviceId ? `Service '${serviceId}' check` : id), ServiceID: b.ServiceID ?? serviceId, Notes: b.Notes, initial: b.Status ?? ('critical' as const) };
  const interval = b.Interval ? parseDuration(b.Interval)! : undefined;
  const timeoutMs = b.Timeout ? parseDuration(b.Timeout)! : 10_000;
  if (b.TTL) return { ...common, kind: 'ttl', ttlMs: Math.max(1, parseDuration(b.TTL)!), intervalMs: 0, timeoutMs };
  if ((b.HTTP || b.TCP) && (!interval || interval < 100)) throw new CorralError('INVALID_ARGUMENT', `check "${id}": HTTP and TCP checks need an Interval of at least 100ms`);
  if (b.HTTP) return { ...common, kind: 'http', target: b.HTTP, method: b.Method, intervalMs: interval!, timeoutMs };
  if (b.TCP) {
    if (!/^\[?[^\]\s]+\]?:\d{1,5}$/.test(b.TCP)) throw new CorralError('INVALID_ARGUMENT', `check "${id}": TCP must be host:port`);
    return { ...common, kind: 'tcp', target: b.TCP, intervalMs: interval!, timeoutMs };
  }
  throw new CorralError('INVALID_ARGUMENT', `check "${id}" needs HTTP, TCP or TTL (script checks are not run)`);
}

export class Registrations {
  constructor(
    private readonly store: Store,
    private readonly catalog: Catalog,
    private readonly checks: CheckRunner,
    private readonly nodeName: string,
  ) {}

  private agentKey(kind: 'services' | 'checks', id: string): string {
    return `${PREFIX}agent/${this.nodeName}/${kind}/${id}`;
  }

  /** Bring back everything registered before a restart; returns the Store revision the catalog was read at. */
  async load(): Promise<number> {
    for (const e of (await rangeJson<AgentServiceDoc>(this.store, `${PREFIX}agent/${this.nodeName}/services/`)).entries) this.applyAgentService(e.value);
    for (const e of (await rangeJson<CheckDef>(this.store, `${PREFIX}agent/${this.nodeName}/checks/`)).entries) this.checks.add(e.value);
    const catalog = await rangeJson<CatalogNodeDoc>(this.store, `${PREFIX}catalog/`);
    for (const e of catalog.entries) this.applyCatalogNode(e.value);
    return catalog.revision;
  }

  /**
   * Keep the catalog registrations in step with the Store from `afterRevision`
   * on: what other replicas register or deregister shows here too (our own
   * writes come back as well; applying them again changes nothing). A watch
   * that ends (compaction, Store trouble) is replaced after a full re-read.
   */
  follow(afterRevision: number, log: Logger): { cancel(): void } {
    let watch: Watch | undefined;
    let stopped = false;
    const start = (from: number): void => {
      if (stopped) return;
      watch = this.store.watch({
        prefix: `${PREFIX}catalog/`,
        fromRevision: from + 1,
        onEvents: (events) => {
          for (const e of events) this.onCatalogEvent(e);
        },
        onError: (err) => {
          if (stopped || isCorralError(err, 'STORE_CLOSED')) return;
          log.warn({ err: errorMessage(err) }, 'catalog registrations watch ended; reading them again');
          setTimeout(() => void this.resync().then(start, () => start(from)), 500).unref();
        },
      });
    };
    start(afterRevision);
    return {
      cancel: () => {
        stopped = true;
        watch?.cancel();
      },
    };
  }

  private onCatalogEvent(e: WatchEvent): void {
    const node = e.kv.key.slice(`${PREFIX}catalog/`.length);
    if (e.type === 'delete') {
      this.catalog.removeSource(node, 'catalog');
      return;
    }
    let doc: CatalogNodeDoc;
    try {
      doc = JSON.parse(e.kv.value.toString('utf8')) as CatalogNodeDoc;
    } catch {
      return;
    }
    this.syncCatalogNode(doc);
  }

  /** Everything from the Store again (after a lost watch); returns the revision read at. */
  private async resync(): Promise<number> {
    const { entries, revision } = await rangeJson<CatalogNodeDoc>(this.store, `${PREFIX}catalog/`);
    const present = new Set(entries.map((e) => e.value.Node));
    for (const n of this.catalog.nodeList()) if (!present.has(n.Node)) this.catalog.removeSource(n.Node, 'catalog');
    for (const e of entries) this.syncCatalogNode(e.value);
    return revision;
  }

  /** A node's catalog registration as the Store has it: what it no longer names goes, the rest is applied. */
  private syncCatalogNode(doc: CatalogNodeDoc): void {
    for (const s of this.catalog.nodeServices(doc.Node)) if (this.catalog.serviceSource(doc.Node, s.ID) === 'catalog' && !doc.services[s.ID]) this.catalog.removeService(doc.Node, s.ID);
    for (const c of this.catalog.nodeChecks(doc.Node)) if (this.catalog.checkSource(doc.Node, c.CheckID) === 'catalog' && !doc.checks[c.CheckID]) this.catalog.removeCheck(doc.Node, c.CheckID);
    this.applyCatalogNode(doc);
  }

  private applyAgentService(doc: AgentServiceDoc): void {
    this.catalog.upsertService(this.nodeName, doc.service, 'agent');
    for (const c of doc.checks) this.checks.add(c);
  }

  /**
   * Register (or re-register) a service on this node. As in Consul, checks
   * of an earlier registration that the new one does not name keep running,
   * unless `replaceExistingChecks` (`?replace-existing-checks`) is asked for.
   */
  async registerAgentService(body: z.output<typeof agentServiceSchema>, replaceExistingChecks = false, authz: Authorizer = OPEN): Promise<void> {
    const id = body.ID || body.Name;
    if (this.catalog.serviceSource(this.nodeName, id) === 'cluster') throw new CorralError('CONFLICT', 'that service ID belongs to a running task; the cluster manages it');
    this.mayWriteService(authz, body.Name);
    const existing = this.catalog.nodeServices(this.nodeName).find((s) => s.ID === id);
    if (existing && existing.Service !== body.Name) this.mayWriteService(authz, existing.Service);
    const bodies = [...(body.Check ? [body.Check] : []), ...(body.Checks ?? [])];
    const defs = bodies.map((c, i) => checkDef(c, bodies.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`, id));
    const prev = await getJson<AgentServiceDoc>(this.store, this.agentKey('services', id));
    const dropped = (prev?.value.checks ?? []).filter((c) => !defs.some((d) => d.CheckID === c.CheckID));
    const checks = replaceExistingChecks ? defs : [...defs, ...dropped];
    const doc: AgentServiceDoc = { service: { ID: id, Service: body.Name, Tags: body.Tags ?? [], Address: body.Address ?? '', Port: body.Port ?? 0, Meta: body.Meta ?? {} }, checks };
    await putJson(this.store, this.agentKey('services', id), doc);
    if (replaceExistingChecks) for (const c of dropped) this.checks.remove(c.CheckID);
    // Kept checks run on untouched, with the status they have.
    this.catalog.upsertService(this.nodeName, doc.service, 'agent');
    for (const c of defs) this.checks.add(c);
  }

  async deregisterAgentService(id: string, authz: Authorizer = OPEN): Promise<void> {
    const prev = await getJson<AgentServiceDoc>(this.store, this.agentKey('services', id));
    if (!prev && this.catalog.serviceSource(this.nodeName, id) !== 'agent') throw new CorralError('NOT_FOUND', `unknown service ID "${id}"`);
    const name = prev?.value.service.Service ?? this.catalog.nodeServices(this.nodeName).find((s) => s.ID === id)?.Service ?? id;
    if (!authz.allowed('service', name, 'write')) throw permissionDenied(authz, 'service:write', name);
    await this.store.delete(this.agentKey('services', id));
    for (const c of prev?.value.checks ?? []) this.checks.remove(c.CheckID);
    if (this.catalog.serviceSource(this.nodeName, id) === 'agent') this.catalog.removeService(this.nodeName, id);
  }

  async registerAgentCheck(body: CheckBody, authz: Authorizer = OPEN): Promise<void> {
    if (!body.Name) throw new CorralError('INVALID_ARGUMENT', 'check Name is required');
    if (body.ServiceID && !this.catalog.nodeServices(this.nodeName).some((s) => s.ID === body.ServiceID)) throw new CorralError('INVALID_ARGUMENT', `unknown ServiceID "${body.ServiceID}"`);
    this.mayWriteCheckOn(authz, this.nodeName, body.ServiceID ?? '');
    const existing = this.catalog.nodeChecks(this.nodeName).find((c) => c.CheckID === (body.CheckID ?? body.ID ?? body.Name));
    if (existing && this.catalog.checkSource(this.nodeName, existing.CheckID) !== 'agent') throw new CorralError('CONFLICT', `check "${existing.CheckID}" is not this agent's`);
    const def = checkDef(body, body.Name, body.ServiceID);
    await putJson(this.store, this.agentKey('checks', def.CheckID), def);
    this.checks.add(def);
  }

  async deregisterAgentCheck(id: string, authz: Authorizer = OPEN): Promise<void> {
    if (!this.checks.has(id)) throw new CorralError('NOT_FOUND', `unknown check "${id}"`);
    this.mayUpdateAgentCheck(authz, id);
    await this.store.delete(this.agentKey('checks', id));
    this.checks.remove(id);
  }

  private applyCatalogNode(doc: CatalogNodeDoc): void {
    this.catalog.upsertNode(doc.Node, doc.Address, 'catalog', doc.Meta);
    for (const s of Object.values(doc.services)) this.catalog.upsertService(doc.Node, s, 'catalog');
    for (const c of Object.values(doc.checks)) this.catalog.upsertCheck(doc.Node, c, 'catalog');
  }

  /**
   * service:write for a name — and names of running tasks come only from
   * the master's feed: registering one needs a token whose own rules grant
   * service:write on it (neither the default policy nor ACLs being off
   * count), and even then the task's instances stay and keep answering.
   */
  private mayWriteService(authz: Authorizer, name: string): void {
    if (!authz.allowed('service', name, 'write')) throw permissionDenied(authz, 'service:write', name);
    if (this.catalog.clusterOwns(name) && !authz.grantsExplicitly('service', name, 'write'))
      throw new CorralError('FORBIDDEN', `Permission denied: service name ${JSON.stringify(name)} belongs to a task of the master's feed; registering it needs a token with service:write on it`);
  }

  /** A check guards a service (service:write on its name) or the node (node:write); none may touch what the cluster manages. */
  private mayWriteCheckOn(authz: Authorizer, node: string, serviceId: string, doc?: CatalogNodeDoc): void {
    if (serviceId) {
      if (this.catalog.serviceSource(node, serviceId) === 'cluster') throw new CorralError('CONFLICT', 'that service belongs to a running task; the cluster manages its checks');
      const name = doc?.services[serviceId]?.Service ?? this.catalog.nodeServices(node).find((s) => s.ID === serviceId)?.Service ?? serviceId;
      if (!authz.allowed('service', name, 'write')) throw permissionDenied(authz, 'service:write', name);
      return;
    }
    // A node-level check is part of every instance's health on the node: on an agent it could hide tasks from DNS.
    if (this.catalog.clusterNode(node) && node !== this.nodeName) throw new CorralError('CONFLICT', `node "${node}" is a cluster agent; its health comes from the master`);
    if (!authz.allowed('node', node, 'write')) throw permissionDenied(authz, 'node:write', node);
  }

  /** Updating or removing an agent check: the right of what it guards. */
  mayUpdateAgentCheck(authz: Authorizer, checkId: string): void {
    const c = this.catalog.nodeChecks(this.nodeName).find((x) => x.CheckID === checkId);
    if (!c) return;
    if (c.ServiceName ? !authz.allowed('service', c.ServiceName, 'write') : !authz.allowed('node', this.nodeName, 'write'))
      throw permissionDenied(authz, c.ServiceName ? 'service:write' : 'node:write', c.ServiceName || this.nodeName);
  }

  private vetCatalogRegister(b: z.output<typeof catalogRegisterSchema>, prev: CatalogNodeDoc | undefined, authz: Authorizer): void {
    const node = this.catalog.node(b.Node);
    const nodeChanges = !node || node.Address !== b.Address || (b.NodeMeta !== undefined && JSON.stringify(b.NodeMeta) !== JSON.stringify(node.Meta));
    // An agent's address and metadata are the master's: a registration may add services beside its tasks, never move it
    // (nor shadow its <name>.node name with another node of the same DNS label).
    if (nodeChanges && this.catalog.clusterNode(b.Node)) throw new CorralError('CONFLICT', `node "${b.Node}" is (or is named in DNS like) a cluster agent; its address comes from the master`);
    if (nodeChanges && !authz.allowed('node', b.Node, 'write')) throw permissionDenied(authz, 'node:write', b.Node);
    let serviceId: string | undefined;
    if (b.Service) {
      serviceId = b.Service.ID || b.Service.Service;
      this.mayWriteService(authz, b.Service.Service);
      const old = prev?.services[serviceId];
      if (old && old.Service !== b.Service.Service) this.mayWriteService(authz, old.Service);
    }
    for (const c of [...(b.Check ? [b.Check] : []), ...(b.Checks ?? [])]) {
      const sid = c.ServiceID ?? '';
      if (sid && sid === serviceId) continue;
      this.mayWriteCheckOn(authz, b.Node, sid, prev);
    }
  }

  private catalogKey(node: string): string {
    return `${PREFIX}catalog/${node}`;
  }

  async catalogRegister(b: z.output<typeof catalogRegisterSchema>, authz: Authorizer = OPEN): Promise<void> {
    if (this.catalog.serviceSource(b.Node, b.Service?.ID || b.Service?.Service || '') === 'cluster')
      throw new CorralError('CONFLICT', 'that service belongs to a running task; the cluster manages it');
    const prev = (await getJson<CatalogNodeDoc>(this.store, this.catalogKey(b.Node)))?.value;
    this.vetCatalogRegister(b, prev, authz);
    const doc: CatalogNodeDoc = { Node: b.Node, Address: b.Address, Meta: b.NodeMeta ?? prev?.Meta ?? {}, services: prev?.services ?? {}, checks: prev?.checks ?? {} };
    if (b.Service) {
      const id = b.Service.ID || b.Service.Service;
      doc.services[id] = { ID: id, Service: b.Service.Service, Tags: b.Service.Tags ?? [], Address: b.Service.Address ?? '', Port: b.Service.Port ?? 0, Meta: b.Service.Meta ?? {} };
    }
    for (const c of [...(b.Check ? [b.Check] : []), ...(b.Checks ?? [])]) {
      const id = c.CheckID ?? c.Name;
      if (!id) throw new CorralError('INVALID_ARGUMENT', 'a catalog check needs a CheckID or a Name');
      doc.checks[id] = { CheckID: id, Name: c.Name ?? id, Status: c.Status ?? 'critical', Notes: c.Notes ?? '', Output: c.Output ?? '', ServiceID: c.ServiceID ?? '' };
    }
    await putJson(this.store, this.catalogKey(b.Node), doc);
    this.applyCatalogNode(doc);
  }

  async catalogDeregister(b: z.output<typeof catalogDeregisterSchema>, authz: Authorizer = OPEN): Promise<void> {
    const prev = (await getJson<CatalogNodeDoc>(this.store, this.catalogKey(b.Node)))?.value;
    // As Consul: a service needs service:write on its name, a check the right of what it guards, the whole node node:write.
    if (b.ServiceID) {
      const name = prev?.services[b.ServiceID]?.Service;
      if (name === undefined ? !authz.allowed('node', b.Node, 'write') : !authz.allowed('service', name, 'write'))
        throw permissionDenied(authz, name === undefined ? 'node:write' : 'service:write', name ?? b.Node);
    } else if (b.CheckID) {
      const c = prev?.checks[b.CheckID];
      this.mayWriteCheckOn(authz, b.Node, c?.ServiceID ?? '', prev);
    } else if (!authz.allowed('node', b.Node, 'write')) throw permissionDenied(authz, 'node:write', b.Node);
    if (!prev) return;
    // Only the catalog's own entries go: a task's service or check on the same node is the cluster's.
    if (b.ServiceID) {
      delete prev.services[b.ServiceID];
      for (const [id, c] of Object.entries(prev.checks)) if (c.ServiceID === b.ServiceID) delete prev.checks[id];
      await putJson(this.store, this.catalogKey(b.Node), prev);
      if (this.catalog.serviceSource(b.Node, b.ServiceID) === 'catalog') this.catalog.removeService(b.Node, b.ServiceID);
    } else if (b.CheckID) {
      delete prev.checks[b.CheckID];
      await putJson(this.store, this.catalogKey(b.Node), prev);
      if (this.catalog.checkSource(b.Node, b.CheckID) === 'catalog') this.catalog.removeCheck(b.Node, b.CheckID);
    } else {
      await this.store.delete(this.catalogKey(b.Node));
      this.catalog.removeSource(b.Node, 'catalog');
    }
  }
}
