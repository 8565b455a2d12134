/**
 * From cluster state and catalog to DNS records (and, for tasks, to catalog
 * entries). Each task, agent, catalog instance and node owns its records in
 * the table, so one change recomputes only what it touches.
 *
 * Names (domain `corral`):
 *  Mesos-DNS   task.framework.corral A, task-<hash>.framework.corral A (unique),
 *              task-<i>.task.framework.corral A (instance i of a task labelled
 *              corral.instance=i, as the services framework does: stable
 *              across re-placements, like a StatefulSet's pod names),
 *              _task._tcp|_udp.framework.corral SRV, leader|master.corral A,
 *              _leader._tcp.corral SRV, agent|slave.corral A
 *  Consul      name.service.corral A/SRV, tag.name.service.corral A,
 *              _name._tcp|_tag.service.corral SRV, node.node.corral A,
 *              <hex ip>.addr.corral A (SRV targets)
 *  Zone apex   corral SOA/NS, ns1.corral A
 */
import { isIP, isIPv6 } from 'node:net';
import type { RR } from '../dns/wire.js';
import { RecordTable, type OwnedRecord } from './table.js';
import { addrLabel, instanceLabel, sanitizeLabel, shortHash, srvLabel, type LabelRule } from './names.js';
import type { AgentView, ClusterView, TaskView } from '../cluster/view.js';
import type { AddressBook } from '../cluster/addresses.js';
import { Catalog, type Instance } from '../catalog/catalog.js';

interface ProjectorOptions {
  domain: string;
  labelRule: LabelRule;
  /** Address of this DNS server, published as ns1.<domain>. */
  nsAddress: string;
  negativeTtl: number;
  serial: number;
}

const TASK_CHECK_PREFIX = 'corral-task-health:';
/** Task label carrying an instance's index (set by the services framework). */
const INSTANCE_LABEL = 'corral.instance';

const addrRR = (ip: string): RR => (isIPv6(ip) ? { type: 'AAAA', ip } : { type: 'A', ip });

/** Tags of a task: its discovery port names and the values of labels named `tag` or `tags` (comma-separated). */
function taskTags(t: TaskView): string[] {
  const tags = new Set<string>();
  for (const p of t.ports) if (p.name) tags.add(p.name);
  for (const l of t.labels) {
    if ((l.key === 'tag' || l.key === 'tags') && l.value) for (const v of l.value.split(',')) if (v.trim()) tags.add(v.trim());
  }
  return [...tags];
}

export class Projector {
  readonly table: RecordTable;
  private readonly domain: string;
  private leader: { ip: string; port: number } | undefined;

  constructor(
    private readonly opts: ProjectorOptions,
    private readonly view: ClusterView,
    private readonly catalog: Catalog,
    private readonly addresses: AddressBook,
  ) {
    this.domain = opts.domain;
    this.table = new RecordTable(opts.domain);
    this.table.set('apex', [
      {
        name: this.domain,
        rr: { type: 'SOA', mname: `ns1.${this.domain}`, rname: `hostmaster.${this.domain}`, serial: opts.serial, refresh: 60, retry: 30, expire: 86400, minimum: opts.negativeTtl },
      },
      { name: this.domain, rr: { type: 'NS', host: `ns1.${this.domain}` } },
      { name: `ns1.${this.domain}`, rr: addrRR(opts.nsAddress) },
    ]);
    catalog.listen({ node: (n) => this.node(n), instance: (n, id) => this.instance(n, id) });
  }

  /** Which catalog entries DNS may answer (ACLs: the anonymous token's read rights); everything by default. */
  private visible: { service(name: string): boolean; node(name: string): boolean } = { service: () => true, node: () => true };

  setVisibility(v: { service(name: string): boolean; node(name: string): boolean }): void {
    this.visible = v;
    this.refreshCatalog();
  }

  /** Project every catalog node and instance again (after the visibility rules changed). */
  refreshCatalog(): void {
    for (const n of this.catalog.nodeList()) this.node(n.Node);
  }

  private label(raw: string): string {
    return sanitizeLabel(raw, this.opts.labelRule);
  }

  // ---- cluster → records and catalog --------------------------------------

  setLeader(leader: { ip: string; port: number }): void {
    this.leader = leader;
    const d = this.domain;
    this.table.set('master', [
      { name: `leader.${d}`, rr: addrRR(leader.ip) },
      { name: `master.${d}`, rr: addrRR(leader.ip) },
      { name: `_leader._tcp.${d}`, rr: { type: 'SRV', priority: 0, weight: 1, port: leader.port, target: `leader.${d}` } },
    ]);
  }

  get leaderAddress(): { ip: string; port: number } | undefined {
    return this.leader;
  }

  /** Address a task answers on: its own (CNI) IP, else its agent's. */
  taskAddress(t: TaskView): string | undefined {
    if (t.ips.length) return t.ips[0];
    const agent = this.view.agents.get(t.agentId);
    return agent ? this.addresses.get(agent.hostname) : undefined;
  }

  task(key: string): void {
    const t = this.view.tasks.get(key);
    const fwName = t ? this.view.frameworks.get(t.frameworkId) : undefined;
    const ip = t ? this.taskAddress(t) : undefined;
    const agent = t ? this.view.agents.get(t.agentId) : undefined;
    const running = t?.state === 'TASK_RUNNING';
    // The catalog lists a running task even when unhealthy (with a critical check); DNS does not answer for it.
    if (t && running && ip && agent) this.catalogTask(t, agent, ip);
    else this.uncatalogTask(key);
    if (!t || !running || t.healthy === false || !ip || fwName === undefined) {
      this.table.delete(`task:${key}`);
      return;
    }
    const task = this.label(t.serviceName ?? t.name);
    const fw = this.label(fwName);
    if (!task || !fw) {
      this.table.delete(`task:${key}`);
      return;
    }
    const base = `${fw}.${this.domain}`;
    const unique = `${task}-${shortHash(t.id)}.${base}`;
    const recs: OwnedRecord[] = [
      { name: `${task}.${base}`, rr: addrRR(ip) },
      { name: unique, rr: addrRR(ip) },
    ];
    const index = t.labels.find((l) => l.key === INSTANCE_LABEL)?.value;
    const instance = index !== undefined && /^\d{1,9}$/.test(index) ? instanceLabel(task, String(Number(index)), this.opts.labelRule) : '';
    if (instance) recs.push({ name: `${instance}.${task}.${base}`, rr: addrRR(ip) });
    for (const p of t.ports) recs.push({ name: `${srvLabel(task)}._${p.protocol}.${base}`, rr: { type: 'SRV', priority: 0, weight: 1, port: p.number, target: unique } });
    this.table.set(`task:${key}`, recs);
  }

  /** All tasks of a framework (its name changed) or an agent (its address changed). */
  tasksWhere(pred: (t: TaskView) => boolean): void {
    for (const t of this.view.tasks.values()) if (pred(t)) this.task(t.key);
  }

  agent(id: string): void {
    const a = this.view.agents.get(id);
    const prevHost = this.agentHosts.get(id);
    if (prevHost && prevHost !== a?.hostname) {
      this.agentHosts.delete(id);
      // Another agent (a re-registration) may still live on that host.
      if (![...this.agentHosts.values()].includes(prevHost)) this.catalog.removeSource(prevHost, 'cluster');
    }
    const ip = a ? this.addresses.get(a.hostname) : undefined;
    if (a && ip) {
      this.agentHosts.set(id, a.hostname);
      this.catalog.upsertNode(a.hostname, ip, 'cluster', { 'corral-agent-id': id });
      this.table.set(`agent:${id}`, [
        { name: `agent.${this.domain}`, rr: addrRR(ip) },
        { name: `slave.${this.domain}`, rr: addrRR(ip) },
      ]);
    } else {
      this.table.delete(`agent:${id}`);
    }
    this.tasksWhere((t) => t.agentId === id);
  }

  private readonly agentHosts = new Map<string, string>();
  private readonly taskNodes = new Map<string, string>();

  /** Agents whose host name just resolved. */
  hostResolved(hostname: string): void {
    for (const a of this.view.agents.values()) if (a.hostname === hostname) this.agent(a.id);
  }

  private catalogTask(t: TaskView, agent: AgentView, ip: string): void {
    const prevNode = this.taskNodes.get(t.key);
    if (prevNode && prevNode !== agent.hostname) this.uncatalogTask(t.key);
    if (!this.catalog.node(agent.hostname)) return;
    this.taskNodes.set(t.key, agent.hostname);
    this.catalog.upsertService(
      agent.hostname,
      {
        ID: t.id,
        Service: t.serviceName ?? t.name,
        Tags: taskTags(t),
        Address: ip,
        Port: t.ports[0]?.number ?? 0,
        Meta: { 'corral-framework': this.view.frameworks.get(t.frameworkId) ?? t.frameworkId, 'corral-task-id': t.id },
      },
      'cluster',
    );
    if (t.healthy !== undefined) {
      this.catalog.upsertCheck(agent.hostname, { CheckID: TASK_CHECK_PREFIX + t.id, Name: 'Task health', Status: t.healthy ? 'passing' : 'critical', ServiceID: t.id, Type: 'corral-task' }, 'cluster');
    }
  }

  private uncatalogTask(key: string): void {
    const node = this.taskNodes.get(key);
    if (!node) return;
    this.taskNodes.delete(key);
    this.catalog.removeService(node, key.slice(key.indexOf('/') + 1));
  }

  // ---- catalog → records --------------------------------------------------

  private node(name: string): void {
    const n = this.catalog.node(name);
    const label = this.label(name);
    if (!n || !label || !isIP(n.Address) || !this.visible.node(name)) this.table.delete(`node:${name}`);
    else this.table.set(`node:${name}`, [{ name: `${label}.node.${this.domain}`, rr: addrRR(n.Address) }]);
    for (const s of this.catalog.nodeServices(name)) this.instance(name, s.ID);
  }

  private instance(nodeName: string, serviceId: string): void {
    const owner = `svc:${nodeName}/${serviceId}`;
    const inst = this.catalog.instance(nodeName, serviceId);
    if (!inst || inst.checks.some((c) => c.Status === 'critical') || !this.visible.service(inst.service.Service) || !this.visible.node(nodeName)) {
      this.table.delete(owner);
      return;
    }
    this.table.set(owner, this.instanceRecords(inst));
  }

  private instanceRecords(inst: Instance): OwnedRecord[] {
    const svc = this.label(inst.service.Service);
    const ip = inst.service.Address || inst.node.Address;
    if (!svc || !isIP(ip)) return [];
    const base = `${svc}.service.${this.domain}`;
    const addr = `${addrLabel(ip)}.addr.${this.domain}`;
    const recs: OwnedRecord[] = [
      { name: base, rr: addrRR(ip) },
      { name: addr, rr: addrRR(ip) },
    ];
    const port = inst.service.Port;
    const tags = inst.service.Tags.map((t) => this.label(t)).filter(Boolean);
    for (const tag of tags) recs.push({ name: `${tag}.${base}`, rr: addrRR(ip) });
    if (port > 0) {
      const srv: RR = { type: 'SRV', priority: 1, weight: 1, port, target: addr };
      recs.push({ name: base, rr: srv }, { name: `${srvLabel(svc)}._tcp.service.${this.domain}`, rr: srv });
      for (const tag of tags) recs.push({ name: `${srvLabel(svc)}.${srvLabel(tag)}.service.${this.domain}`, rr: srv });
    }
    return recs;
  }
}
