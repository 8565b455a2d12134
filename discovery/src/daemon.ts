/**
 * Starting and stopping a discovery daemon: Store, live cluster feed,
 * catalog, DNS server (with workers) and the Consul-compatible HTTP API.
 * `startDiscovery(config)` is the programmatic entry point (`corral up` and
 * tests use it; `corral discovery` wraps it).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { HttpServer, type ErrorFormatter } from '../../common/http/server.js';
import { daemonClientTls, daemonTls } from '../../common/tls/config.js';
import { CorralError } from '../../contracts/errors.js';
import { Metrics } from '../../common/metrics.js';
import { logger } from '../../common/log.js';
import { openStore } from '../../common/store/json.js';
import type { Store } from '../../contracts/store/types.js';
import { parseInput } from '../../common/validate.js';
import { discoveryConfigSchema, type DiscoveryConfig, type DiscoveryConfigInput } from './config.js';
import { ClusterView } from './cluster/view.js';
import { MasterFeed } from './cluster/feed.js';
import { AddressBook } from './cluster/addresses.js';
import { Catalog } from './catalog/catalog.js';
import { CheckRunner } from './catalog/checks.js';
import { Registrations } from './catalog/registrations.js';
import { Projector } from './records/projector.js';
import { sanitizeLabel } from './records/names.js';
import { DnsServer } from './dns/server.js';
import { parseUpstream } from './dns/forwarder.js';
import { Sessions } from './consul/sessions.js';
import { mountKv } from './consul/api-kv.js';
import { mountSessions } from './consul/api-session.js';
import { mountCatalog } from './consul/api-catalog.js';
import { mountAgent } from './consul/api-agent.js';
import { mountCorralApi, registerDiscoveryMetrics } from './status.js';
import { mountAcl } from './consul/api-acl.js';
import { Acl } from './acl/request.js';
import { AclState } from './acl/state.js';
import { parseRules } from './acl/rules.js';

export interface RunningDiscovery {
  config: DiscoveryConfig;
  dnsPort: number;
  httpPort: number;
  /** http://host:port of the Consul-compatible API. */
  httpUrl: string;
  dnsWorkerPids: number[];
  store: Store;
  catalog: Catalog;
  projector: Projector;
  dns: DnsServer;
  feed: MasterFeed | undefined;
  close(): Promise<void>;
}

/**
 * Consul answers a refused request with 403 and the reason as plain text
 * ("Permission denied: …", "ACL not found"), which its clients show as is;
 * every other error keeps corral's JSON shape.
 */
const consulErrors: ErrorFormatter = (err) =>
  err.code === 'FORBIDDEN' || err.code === 'UNAUTHENTICATED'
    ? { status: err.httpStatus, body: err.message, contentType: 'text/plain; charset=utf-8' }
    : { status: err.httpStatus, body: JSON.stringify(err.toJSON()), contentType: 'application/json' };

/** The configured bootstrap token: from its file (trailing newline ignored) or the config/environment value. */
function bootstrapToken(c: DiscoveryConfig): string | undefined {
  if (c.acl.bootstrapTokenFile) {
    let text: string;
    try {
      text = readFileSync(c.acl.bootstrapTokenFile, 'utf8');
    } catch (err) {
      throw new CorralError('INVALID_ARGUMENT', `cannot read acl.bootstrapTokenFile ${c.acl.bootstrapTokenFile}: ${(err as Error).message}`);
    }
    const t = text.trim();
    if (t.length < 16 || t.length > 128 || /\s/.test(t)) throw new CorralError('INVALID_ARGUMENT', `acl.bootstrapTokenFile ${c.acl.bootstrapTokenFile} must hold one token of 16 to 128 characters`);
    return t;
  }
  return c.acl.bootstrapToken;
}

function nsAddress(c: DiscoveryConfig): string {
  if (c.dns.advertiseAddress) return c.dns.advertiseAddress;
  return isIP(c.dns.host) && c.dns.host !== '0.0.0.0' && c.dns.host !== '::' ? c.dns.host : '127.0.0.1';
}

export async function startDiscovery(input: DiscoveryConfigInput): Promise<RunningDiscovery> {
  const config = parseInput(discoveryConfigSchema, input, 'discovery config');
  const log = logger('discovery');
  const tls = daemonTls(config, { daemon: 'the discovery daemon', envPrefix: 'CORRAL_' });
  const clientTls = daemonClientTls(config);
  const upstreams = config.dns.upstreams.map(parseUpstream);
  mkdirSync(config.workDir, { recursive: true });
  const store = await openStore(config.store ?? { backend: 'embedded', path: join(config.workDir, 'discovery.db') }, { remoteTls: clientTls });
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => store.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch((err: unknown) => log.warn({ err }, 'error while stopping'));
  };
  try {
    const metrics = new Metrics('corral_discovery');
    const catalog = new Catalog(config.datacenter, await store.currentRevision());
    let projector!: Projector;
    const addresses = new AddressBook(config.agentAddresses, (host) => projector.hostResolved(host));
    const view = new ClusterView({
      task: (key) => projector.task(key),
      agent: (id) => projector.agent(id),
      framework: (id) => projector.tasksWhere((t) => t.frameworkId === id),
    });
    const address = nsAddress(config);
    projector = new Projector(
      { domain: config.domain, labelRule: config.dns.labelRule, nsAddress: address, negativeTtl: config.dns.negativeTtl, serial: Math.floor(Date.now() / 1000) },
      view,
      catalog,
      addresses,
    );

    // Records contributed so far (the zone apex) go to DNS in its first snapshot.
    projector.table.flush();
    const workers = config.dns.workers === 'auto' ? Math.max(0, availableParallelism() - 1) : config.dns.workers;
    const dns = await DnsServer.start(
      {
        host: config.dns.host,
        port: config.dns.port,
        domain: config.domain,
        datacenter: config.datacenter,
        upstreams,
        forwardTimeoutMs: config.dns.forwardTimeoutMs,
        workers,
        tcpIdleMs: config.dns.tcpIdleMs,
        tcpMaxConnections: config.dns.tcpMaxConnections,
        log,
        ttl: config.dns.ttl,
        maxUdpPayload: config.dns.maxUdpPayload,
        recursionAvailable: upstreams.length > 0,
        maxRotations: config.dns.maxRotations,
        forwarding: upstreams.length > 0,
        fastPath: config.dns.fastPath,
      },
      projector.table.snapshot(),
    );
    cleanups.push(() => dns.close());
    const updateLatency = metrics.histogram('update_seconds', 'From a cluster or catalog change to DNS serving it', [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5]);
    let pendingSince: number | undefined;
    const markPending = (): void => {
      pendingSince ??= performance.now();
    };
    projector.table.onChange((deltas) => {
      dns.apply(deltas);
      if (pendingSince !== undefined) updateLatency.observe((performance.now() - pendingSince) / 1000);
      pendingSince = undefined;
    });

    catalog.dnsLabel = (name) => sanitizeLabel(name, config.dns.labelRule);
    catalog.upsertNode(config.nodeName, address, 'agent');
    const checks = new CheckRunner(catalog, config.nodeName);
    cleanups.push(() => checks.stopAll());
    const registrations = new Registrations(store, catalog, checks, config.nodeName);
    const catalogRevision = await registrations.load();
    // Replicas on one Store: catalog registrations made through any of them show on all.
    const following = registrations.follow(catalogRevision, log);
    cleanups.push(() => following.cancel());
    let aclState: AclState | undefined;
    if (config.acl.enabled) {
      aclState = new AclState(store, { defaultPolicy: config.acl.defaultPolicy, anonymousRules: parseRules(config.acl.anonymousRules) }, log);
      await aclState.start();
      cleanups.push(() => aclState!.stop());
      const token = bootstrapToken(config);
      if (token) await aclState.ensureConfiguredToken(token);
    }
    const acl = new Acl(aclState);
    // DNS answers what the anonymous token may read (Consul's DNS uses the agent's default, else the anonymous, token).
    if (aclState) {
      projector.setVisibility({ service: (n) => acl.anonymous().allowed('service', n, 'read'), node: (n) => acl.anonymous().allowed('node', n, 'read') });
      aclState.onChange(() => projector.refreshCatalog());
    }
    const sessions = new Sessions(store, log);
    sessions.start();
    cleanups.push(() => sessions.stop());

    let feed: MasterFeed | undefined;
    if (config.master.url) {
      feed = new MasterFeed({
        url: config.master.url,
        principal: config.master.principal,
        secret: config.master.secret,
        tls: clientTls,
        initialBackoffMs: config.master.initialBackoffMs,
        maxBackoffMs: config.master.maxBackoffMs,
        log,
        onEvent: (e) => {
          markPending();
          view.apply(e);
        },
        onLeader: (l) => projector.setLeader(l),
      });
    }

    const server = new HttpServer({
      name: 'discovery',
      metrics,
      log,
      maxBodyBytes: 2 * 1024 * 1024,
      formatError: consulErrors,
      limits: config.http.limits,
      limitsHint: { configPath: 'http.limits', envPrefix: 'CORRAL_' },
      tls: tls && { material: tls },
    });
    const kvMetrics = {
      blockingWaiting: metrics.gauge('kv_blocking_queries', 'Blocking KV reads waiting for a change'),
      writes: metrics.counter('kv_writes_total', 'KV writes by operation', ['op']),
    };
    mountKv(server, store, acl, kvMetrics);
    mountSessions(server, store, sessions, config.nodeName, { ttlMinMs: config.sessions.ttlMinSeconds * 1000, ttlMaxMs: config.sessions.ttlMaxSeconds * 1000 }, acl);
    mountCatalog(server, catalog, registrations, acl);
    mountAcl(server, acl);
    const httpUrl = await server.listen({ host: config.http.host, port: config.http.port });
    cleanups.push(() => server.close());
    mountAgent(server, catalog, registrations, checks, { nodeName: config.nodeName, datacenter: config.datacenter, serverAddress: `${address}:${server.port}` }, acl);
    mountCorralApi(server, { projector, dns, feed, catalog, config });
    registerDiscoveryMetrics(metrics, { projector, dns, feed, catalog, view });
    metrics.serve(server);

    if (feed) {
      feed.start();
      cleanups.push(() => feed.stop());
    }
    log.info(
      { dns: `${config.dns.host}:${dns.port}`, http: httpUrl, workers, domain: config.domain, master: config.master.url ?? null, acl: config.acl.enabled ? config.acl.defaultPolicy : 'off' },
      'discovery listening',
    );
    return {
      config,
      dnsPort: dns.port,
      httpPort: server.port,
      httpUrl,
      dnsWorkerPids: dns.workerPids,
      store,
      catalog,
      projector,
      dns,
      feed,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
