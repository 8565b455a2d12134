/**
 * The service catalog in Consul's shapes: nodes, the services on them and
 * health checks. Entries come from three sources — the cluster (agents are
 * nodes, running tasks are service instances), the catalog API (external
 * services) and the agent API (services whose checks this daemon runs) — and
 * each source only ever replaces or removes its own entries.
 *
 * Every change raises one catalog-wide index; blocking queries wait on it and
 * the DNS projector is told which node or instance changed.
 */

export type CheckStatus = 'passing' | 'warning' | 'critical';
type Source = 'cluster' | 'catalog' | 'agent';

export interface CatalogNode {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface CatalogService {
  ID: string;
  Service: string;
  Tags: string[];
  Address: string;
  Port: number;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface CatalogCheck {
  Node: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  CreateIndex: number;
  ModifyIndex: number;
}

interface NodeEntry {
  node: CatalogNode;
  sources: Set<Source>;
  services: Map<string, { svc: CatalogService; source: Source }>;
  checks: Map<string, { check: CatalogCheck; source: Source }>;
}

export interface ServiceInput {
  ID: string;
  Service: string;
  Tags?: string[];
  Address?: string;
  Port?: number;
  Meta?: Record<string, string>;
}

export interface CheckInput {
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes?: string;
  Output?: string;
  ServiceID?: string;
  Type?: string;
}

interface CatalogListener {
  node(node: string): void;
  instance(node: string, serviceId: string): void;
}

export interface Instance {
  node: CatalogNode;
  service: CatalogService;
  checks: CatalogCheck[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class Catalog {
  private readonly nodes = new Map<string, NodeEntry>();
  private waiters = new Set<() => void>();
  private readonly listeners = new Set<CatalogListener>();

  constructor(
    readonly datacenter: string,
    /** Starting index (the Store revision at start-up, so indexes never go backwards across restarts). */
    public index: number,
  ) {
    this.index = Math.max(1, index);
  }

  listen(l: CatalogListener): void {
    this.listeners.add(l);
  }

  private bump(): number {
    this.index++;
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
    return this.index;
  }

  /** Resolve when the index passes `after`, or after `ms` (whichever comes first). */
  waitForChange(after: number, ms: number): Promise<void> {
    if (this.index > after || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  // ---- writes -------------------------------------------------------------

  upsertNode(name: string, address: string, source: Source, meta: Record<string, string> = {}): void {
    const e = this.nodes.get(name);
    if (e) {
      e.sources.add(source);
      if (e.node.Address === address && same(e.node.Meta, meta)) return;
      e.node.Address = address;
      e.node.TaggedAddresses = { lan: address, wan: address };
      e.node.Meta = meta;
      e.node.ModifyIndex = this.bump();
    } else {
      const idx = this.bump();
      this.nodes.set(name, {
        node: { ID: '', Node: name, Address: address, Datacenter: this.datacenter, TaggedAddresses: { lan: address, wan: address }, Meta: meta, CreateIndex: idx, ModifyIndex: idx },
        sources: new Set([source]),
        services: new Map(),
        checks: new Map(),
      });
    }
    for (const l of this.listeners) l.node(name);
  }

  /** Add or replace a service on a node (the node must exist). */
  upsertService(nodeName: string, input: ServiceInput, source: Source): void {
    const e = this.nodes.get(nodeName);
    if (!e) return;
    const want = { Tags: input.Tags ?? [], Address: input.Address ?? '', Port: input.Port ?? 0, Meta: input.Meta ?? {} };
    const prev = e.services.get(input.ID);
    if (prev && prev.svc.Service === input.Service && same({ Tags: prev.svc.Tags, Address: prev.svc.Address, Port: prev.svc.Port, Meta: prev.svc.Meta }, want)) return;
    const idx = this.bump();
    e.services.set(input.ID, { svc: { ID: input.ID, Service: input.Service, ...want, CreateIndex: prev?.svc.CreateIndex ?? idx, ModifyIndex: idx }, source });
    for (const c of e.checks.values())
      if (c.check.ServiceID === input.ID) {
        c.check.ServiceName = input.Service;
        c.check.ServiceTags = want.Tags;
      }
    for (const l of this.listeners) l.instance(nodeName, input.ID);
  }

  upsertCheck(nodeName: string, input: CheckInput, source: Source): void {
    const e = this.nodes.get(nodeName);
    if (!e) return;
    const svc = input.ServiceID ? e.services.get(input.ServiceID)?.svc : undefined;
    const prev = e.checks.get(input.CheckID)?.check;
    const next = {
      Node: nodeName,
      CheckID: input.CheckID,
      Name: input.Name,
      Status: input.Status,
      Notes: input.Notes ?? '',
      Output: input.Output ?? '',
      ServiceID: input.ServiceID ?? '',
      ServiceName: svc?.Service ?? '',
      ServiceTags: svc?.Tags ?? [],
      Type: input.Type ?? '',
    };
    if (prev && same({ ...prev, CreateIndex: 0, ModifyIndex: 0 }, { ...next, CreateIndex: 0, ModifyIndex: 0 })) return;
    const idx = this.bump();
    e.checks.set(input.CheckID, { check: { ...next, CreateIndex: prev?.CreateIndex ?? idx, ModifyIndex: idx }, source });
    this.healthChanged(e, next.ServiceID);
  }

  /** Set just a check's status and output (the check runner's path). */
  setCheckStatus(nodeName: string, checkId: string, status: CheckStatus, output: string): void {
    const c = this.nodes.get(nodeName)?.checks.get(checkId);
    if (!c) return;
    this.upsertCheck(nodeName, { ...c.check, Status: status, Output: output }, c.source);
  }

  removeService(nodeName: string, serviceId: string): boolean {
    const e = this.nodes.get(nodeName);
    if (!e?.services.delete(serviceId)) return false;
    for (const [id, c] of e.checks) if (c.check.ServiceID === serviceId) e.checks.delete(id);
    this.bump();
    for (const l of this.listeners) l.instance(nodeName, serviceId);
    return true;
  }

  removeCheck(nodeName: string, checkId: string): boolean {
    const e = this.nodes.get(nodeName);
    const c = e?.checks.get(checkId);
    if (!e || !c) return false;
    e.checks.delete(checkId);
    this.bump();
    this.healthChanged(e, c.check.ServiceID);
    return true;
  }

  /** Drop what one source put on a node, and the node itself once no source holds it. */
  removeSource(nodeName: string, source: Source): void {
    const e = this.nodes.get(nodeName);
    if (!e) return;
    for (const [id, s] of [...e.services]) if (s.source === source) this.removeService(nodeName, id);
    for (const [id, c] of [...e.checks]) if (c.source === source) this.removeCheck(nodeName, id);
    e.sources.delete(source);
    if (e.sources.size === 0) {
      this.nodes.delete(nodeName);
      this.bump();
      for (const l of this.listeners) l.node(nodeName);
    }
  }

  private healthChanged(e: NodeEntry, serviceId: string): void {
    // A node-level check (no ServiceID) is part of every instance's health on that node.
    const ids = serviceId ? [serviceId] : [...e.services.keys()];
    for (const id of ids) for (const l of this.listeners) l.instance(e.node.Node, id);
  }

  // ---- reads --------------------------------------------------------------

  node(name: string): CatalogNode | undefined {
    return this.nodes.get(name)?.node;
  }

  nodeList(): CatalogNode[] {
    return [...this.nodes.values()].map((e) => e.node).sort((a, b) => a.Node.localeCompare(b.Node));
  }

  nodeServices(name: string): CatalogService[] {
    return [...(this.nodes.get(name)?.services.values() ?? [])].map((s) => s.svc);
  }

  nodeChecks(name: string): CatalogCheck[] {
    return [...(this.nodes.get(name)?.checks.values() ?? [])].map((c) => c.check);
  }

  /** How names become DNS labels (set by the daemon), so that "WEB" or "web_" count as the name "web". */
  dnsLabel: (name: string) => string = (name) => name;

  /**
   * True when a running task (the master's feed) provides instances of a
   * service with this name — or one DNS would answer under the same label.
   */
  clusterOwns(serviceName: string): boolean {
    const label = this.dnsLabel(serviceName);
    for (const e of this.nodes.values())
      for (const { svc, source } of e.services.values()) if (source === 'cluster' && (svc.Service === serviceName || (label !== '' && this.dnsLabel(svc.Service) === label))) return true;
    return false;
  }

  /** True when the cluster (an agent of the master's feed) holds this node, or one whose DNS label is the same. */
  clusterNode(nodeName: string): boolean {
    if (this.nodes.get(nodeName)?.sources.has('cluster')) return true;
    const label = this.dnsLabel(nodeName);
    if (label === '') return false;
    for (const e of this.nodes.values()) if (e.sources.has('cluster') && e.node.Node !== nodeName && this.dnsLabel(e.node.Node) === label) return true;
    return false;
  }

  serviceSource(nodeName: string, serviceId: string): Source | undefined {
    return this.nodes.get(nodeName)?.services.get(serviceId)?.source;
  }

  checkSource(nodeName: string, checkId: string): Source | undefined {
    return this.nodes.get(nodeName)?.checks.get(checkId)?.source;
  }

  /** service name → union of tags */
  services(): Record<string, string[]> {
    const out = new Map<string, Set<string>>();
    for (const e of this.nodes.values()) {
      for (const { svc } of e.services.values()) {
        let tags = out.get(svc.Service);
        if (!tags) out.set(svc.Service, (tags = new Set()));
        for (const t of svc.Tags) tags.add(t);
      }
    }
    return Object.fromEntries([...out].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort()]));
  }

  instance(nodeName: string, serviceId: string): Instance | undefined {
    const e = this.nodes.get(nodeName);
    const s = e?.services.get(serviceId);
    if (!e || !s) return undefined;
    const checks = [...e.checks.values()].map((c) => c.check).filter((c) => c.ServiceID === '' || c.ServiceID === serviceId);
    return { node: e.node, service: s.svc, checks };
  }

  instances(serviceName: string, tag?: string): Instance[] {
    const out: Instance[] = [];
    for (const e of this.nodes.values()) {
      for (const { svc } of e.services.values()) {
        if (svc.Service !== serviceName || (tag !== undefined && !svc.Tags.includes(tag))) continue;
        out.push(this.instance(e.node.Node, svc.ID)!);
      }
    }
    return out.sort((a, b) => a.node.Node.localeCompare(b.node.Node) || a.service.ID.localeCompare(b.service.ID));
  }

  checks(filter: (c: CatalogCheck) => boolean = () => true): CatalogCheck[] {
    const out: CatalogCheck[] = [];
    for (const e of this.nodes.values()) for (const { check } of e.checks.values()) if (filter(check)) out.push(check);
    return out;
  }
}

/** The worst status among checks; passing when there are none. */
export function aggregateStatus(checks: CatalogCheck[]): CheckStatus {
  if (checks.some((c) => c.Status === 'critical')) return 'critical';
  if (checks.some((c) => c.Status === 'warning')) return 'warning';
  return 'passing';
}
