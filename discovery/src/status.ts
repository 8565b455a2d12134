/**
 * corral's own view of a discovery daemon: GET /v1/corral/status (feed
 * freshness, DNS counters) and GET /v1/corral/dns/records (every served
 * record, for `corral dns records`), plus the Prometheus gauges behind them.
 */
import type { HttpServer } from '../../common/http/server.js';
import type { Metrics } from '../../common/metrics.js';
import type { DiscoveryConfig } from './config.js';
import type { Projector } from './records/projector.js';
import type { DnsServer } from './dns/server.js';
import type { MasterFeed } from './cluster/feed.js';
import type { Catalog } from './catalog/catalog.js';
import type { ClusterView } from './cluster/view.js';
import type { RR } from './dns/wire.js';

export interface ServedRecord {
  name: string;
  type: RR['type'];
  data: string;
}

function rrData(rr: RR): string {
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return rr.ip;
    case 'SRV':
      return `${rr.priority} ${rr.weight} ${rr.port} ${rr.target}.`;
    case 'NS':
      return `${rr.host}.`;
    case 'SOA':
      return `${rr.mname}. ${rr.rname}. ${rr.serial} ${rr.refresh} ${rr.retry} ${rr.expire} ${rr.minimum}`;
  }
}

export function servedRecords(projector: Projector): ServedRecord[] {
  const out: ServedRecord[] = [];
  for (const [name, rrs] of projector.table.snapshot()) for (const rr of rrs ?? []) out.push({ name, type: rr.type, data: rrData(rr) });
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type) || a.data.localeCompare(b.data));
}

interface Parts {
  projector: Projector;
  dns: DnsServer;
  feed: MasterFeed | undefined;
  catalog: Catalog;
}

export function mountCorralApi(server: HttpServer, p: Parts & { config: DiscoveryConfig }): void {
  server.route('GET', '/v1/corral/status', () => ({
    domain: p.config.domain,
    datacenter: p.config.datacenter,
    master: p.feed
      ? {
          url: p.config.master.url,
          connected: p.feed.connected,
          staleSeconds: p.feed.staleSeconds,
          lastContact: p.feed.lastContact ? new Date(p.feed.lastContact).toISOString() : null,
          reconnects: p.feed.reconnects,
        }
      : null,
    dns: { port: p.dns.port, names: p.dns.responder.zone.size, workers: p.dns.workerPids.length, stats: p.dns.stats() },
    catalogIndex: p.catalog.index,
  }));
  server.route('GET', '/v1/corral/dns/records', () => servedRecords(p.projector));
}

export function registerDiscoveryMetrics(metrics: Metrics, p: Parts & { view: ClusterView }): void {
  metrics.gauge('master_connected', '1 while the master event stream is up', [], (g) => g.set(p.feed?.connected ? 1 : 0));
  metrics.gauge('state_stale_seconds', 'How long the served state may lag the master (0 while connected)', [], (g) => g.set(p.feed?.staleSeconds ?? 0));
  metrics.gauge('master_reconnects', 'Reconnections to the master event stream since start', [], (g) => g.set(p.feed?.reconnects ?? 0));
  metrics.gauge('dns_names', 'Names served (including empty non-terminals)', [], (g) => g.set(p.projector.table.nameCount));
  metrics.gauge('tasks', 'Tasks known from the master', [], (g) => g.set(p.view.tasks.size));
  metrics.gauge('catalog_index', 'Catalog index (raises on every catalog or health change)', [], (g) => g.set(p.catalog.index));
  metrics.gauge('dns_responses', 'DNS responses by outcome since start (all processes)', ['outcome'], (g) => {
    const s = p.dns.stats();
    for (const [k, v] of Object.entries(s)) g.set({ outcome: k }, v);
  });
}
