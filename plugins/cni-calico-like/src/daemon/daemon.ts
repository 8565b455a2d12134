/**
 * The node daemon: owns this host's IPAM, dataplane and BGP speaker, and
 * serves the CNI shim on a root-only unix socket. It runs in the host's
 * network namespace (in the lab: the host's netns) and opens netlink sockets
 * inside container namespaces as it wires them.
 *
 * Desired state flows one way: IPAM's owned blocks and borrowed addresses
 * become blackhole routes and BGP announcements; BGP updates become learned
 * routes. Both are re-derived whenever IPAM reports a change.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../../../../common/log.js';
import { Metrics } from '../../../../common/metrics.js';
import { HttpServer } from '../../../../common/http/server.js';
import { openStore, type Store } from '../../../../common/store/index.js';
import { daemonClientTls, daemonTls } from '../../../../common/tls/config.js';
import { CorralError, errorMessage } from '../../../../contracts/errors.js';
import { Rtnl } from '../../../../common/netkit/rtnl.js';
import { LinkReaper } from '../../../../common/netkit/reaper.js';
import { parseCidr } from '../../../../common/netkit/ipv4.js';
import { Ipam } from '../ipam/allocator.js';
import { HttpLiveContainers, NetnsLiveContainers, type LiveContainers } from '../../../../common/live-containers.js';
import { Dataplane } from '../dataplane/wiring.js';
import { RouteProgrammer } from '../dataplane/routes.js';
import { BgpSpeaker } from '../bgp/speaker.js';
import { CniService } from '../cni/service.js';
import type { DaemonConfig } from './config.js';
import { LeakReconciler } from './reconciler.js';
import { mountApi } from './api.js';

interface NodeDaemon {
  config: DaemonConfig;
  ipam: Ipam;
  service: CniService;
  reconciler: LeakReconciler;
  speaker: BgpSpeaker | undefined;
  close(): Promise<void>;
}

export async function startNodeDaemon(config: DaemonConfig): Promise<NodeDaemon> {
  const log = logger('cni-daemon');
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  if (config.ipForward) writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');

  const closers: Array<() => Promise<unknown> | unknown> = [];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'error while stopping'));
  };
  try {
    const cluster: Store = await openStore(config.store, { remoteTls: storeTls(config) });
    closers.push(() => cluster.close());
    const local: Store = await openStore({ backend: 'embedded', path: join(config.stateDir, 'local.db'), sync: 'normal' });
    closers.push(() => local.close());
    const ipam = await Ipam.open({ host: config.node, pools: config.pools, cluster, local, prefix: config.storePrefix, loanTimeoutMs: config.loanTimeoutMs, log });
    closers.push(() => ipam.close());
    const host = Rtnl.open();
    closers.push(() => host.close());
    const routes = new RouteProgrammer(host, config.bgp.routeProtocol, log);
    const reaper = new LinkReaper(host, `${config.hostIfacePrefix}z`, log);
    await reaper.flush();
    closers.push(() => reaper.close());
    const dataplane = new Dataplane(host, config.bgp.routeProtocol, reaper);
    const defaultPools = config.defaultPools ?? [config.pools[0]!.name];

    const own = (): Set<string> => new Set([...ipam.ownedBlocks().map((b) => b.cidr), ...ipam.borrowedAddresses().map((ip) => `${ip}/32`)]);
    let speaker: BgpSpeaker | undefined;
    if (config.bgp.enabled) {
      speaker = await BgpSpeaker.start({
        config: config.bgp,
        dir: join(config.stateDir, 'bgp'),
        pools: config.pools.map((p) => parseCidr(p.cidr)),
        routes,
        log,
        own,
        masterTls: daemonClientTls(config),
      });
      closers.push(() => speaker!.stop());
    }
    let syncing: Promise<void> = Promise.resolve();
    const syncOwned = (): void => {
      syncing = syncing
        .then(async () => {
          await routes.syncBlackholes(ipam.ownedBlocks().map((b) => b.cidr));
          speaker?.setAnnouncements(own());
        })
        .catch((err: unknown) => log.error({ err }, 'could not sync block routes'));
    };
    ipam.onChange(syncOwned);
    syncOwned();
    await ipam.warmUp(defaultPools).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'could not claim a first block yet'));

    const service = new CniService({
      ipam,
      dataplane,
      defaultPools,
      defaultMtu: config.mtu,
      hostIfacePrefix: config.hostIfacePrefix,
      log,
      delayAfterAssignMs: config.faults.delayAfterAssignMs,
      health: () => {
        const s = speaker;
        const connectivity = !s || s.peerCount === 0 || s.established() > 0;
        return {
          ready: !ipam.exhausted,
          ...(ipam.exhausted ? { reason: 'the IP pools are exhausted' } : {}),
          connectivity,
          ...(connectivity ? {} : { connectivityReason: 'no BGP session is established' }),
        };
      },
    });

    const metrics = new Metrics('corral_cni');
    const calls = metrics.counter('calls_total', 'CNI calls by command and result (ok or CNI error code)', ['command', 'result']);
    const latency = metrics.histogram('call_seconds', 'CNI call latency in the daemon', [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1], ['command']);
    const reclaimed = metrics.counter('reclaimed_total', 'addresses reclaimed from containers that are gone');
    metrics.gauge('allocations', 'addresses in use on this host', [], (g) => g.set(ipam.allocations().length));
    metrics.gauge('blocks', 'blocks owned by this host', [], (g) => g.set(ipam.ownedBlocks().length));
    metrics.gauge('bgp_sessions_established', 'BGP sessions up', [], (g) => g.set(speaker?.established() ?? 0));
    metrics.gauge('bgp_routes', 'routes learned over BGP and installed', [], (g) => g.set(speaker?.rib.routes().size ?? 0));

    const sources: LiveContainers[] = config.reconcile.sources.map((s) =>
      s.type === 'netns' ? new NetnsLiveContainers(() => ipam.allocations()) : new HttpLiveContainers(s.url, s.timeoutMs, s.socketPath),
    );
    const reconciler = new LeakReconciler({
      ipam,
      service,
      sources,
      log,
      intervalMs: config.reconcile.intervalMs,
      graceMs: config.reconcile.graceMs,
      releaseEmptyBlocksAfterMs: config.reconcile.releaseEmptyBlocksAfterMs,
      keepEmptyBlocks: config.reconcile.keepEmptyBlocks,
      onFreed: (n) => reclaimed.inc(n),
    });
    reconciler.start();
    closers.push(() => reconciler.stop());

    const server = new HttpServer({ name: 'cni-daemon', metrics, log, limits: config.limits, limitsHint: { configPath: 'limits', envPrefix: 'CORRAL_CNI_' } });
    mountApi(server, {
      service,
      log,
      metrics: { calls, latency },
      status: () => ({
        node: config.node,
        health: service.health(),
        allocations: ipam.allocations().length,
        blocks: ipam.ownedBlocks(),
        bgp: speaker ? { sessions: speaker.sessions(), exabgpPid: speaker.exabgpPid, exabgpRestarts: speaker.exabgpRestarts } : undefined,
      }),
      ipam: () => ({ node: config.node, pools: ipam.stats(), blocks: ipam.ownedBlocks(), allocations: ipam.allocations() }),
      routes: () => ({ learned: Object.fromEntries(speaker?.rib.routes() ?? []), announced: [...own()] }),
      reconcile: () => reconciler.runOnce(),
    });
    metrics.serve(server);
    await server.listen({ socketPath: config.socket, mode: 0o600 });
    closers.push(() => server.close());
    if (config.metrics) {
      const tls = daemonTls(config, { daemon: 'the CNI daemon (metrics listener)', envPrefix: 'CORRAL_CNI_' });
      const tcp = new HttpServer({ name: 'cni-metrics', log, tls: tls && { material: tls } });
      metrics.serve(tcp);
      await tcp.listen({ host: config.metrics.host, port: config.metrics.port });
      closers.push(() => tcp.close());
    }
    closers.push(() => syncing);
    log.info({ socket: config.socket, node: config.node, pools: config.pools.map((p) => p.name), bgp: config.bgp.enabled }, 'CNI node daemon ready');
    return { config, ipam, service, reconciler, speaker, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The remote store's TLS: https masters need the CA; a plain http:// master only with `insecure`. */
function storeTls(config: DaemonConfig): ReturnType<typeof daemonClientTls> {
  if (config.store.backend !== 'remote') return undefined;
  const plain = (config.store.url ?? '').split(',').some((u) => u.trim().startsWith('http://'));
  if (plain && !config.insecure) {
    throw new CorralError(
      'INVALID_ARGUMENT',
      `the CNI daemon will not reach the store API over plain HTTP (${config.store.url}) unless told to: use the master's https:// URL with tls.ca, or pass insecure: true (CORRAL_CNI_INSECURE=true) for local use only`,
    );
  }
  return daemonClientTls(config);
}
