/**
 * From a node file to what the machine runs: every daemon's configuration
 * file, command line, log file and readiness probe, computed before anything
 * starts. Pure (no I/O), so `corral node plan` can print it, the vagrant test
 * can check it for both roles, and `corral node up` (run.ts) just carries it
 * out. The daemons are the ordinary corral commands with `--config FILE`.
 */
import { join } from 'node:path';
import type { AgentConfigInput } from '../../core-scheduler/src/index.js';
import type { MasterConfigInput } from '../../core-scheduler/src/index.js';
import type { ServicesConfigInput } from '../../core-scheduler/src/index.js';
import type { DiscoveryConfigInput } from '../../discovery/src/index.js';
import type { DaemonConfigInput } from '../../plugins/cni-calico-like/src/index.js';
import { componentsOf, type Component, type NodeConfig } from './config.js';

export type Readiness = { kind: 'http'; url: string } | { kind: 'unix'; socket: string; path: string };

export interface DaemonPlan {
  name: Component;
  /** Arguments after `corral`. */
  args: string[];
  configFile: string;
  config: unknown;
  /** stdout and stderr of the process (the daemon's own structured log goes to its log file). */
  outFile: string;
  ready: Readiness;
}

export interface CephPlan {
  dir: string;
  address: string;
  monPort: number;
  memstoreBytes: number;
  pools: string[];
  publishDir: string | undefined;
}

export interface CniInstallPlan {
  binDir: string;
  confDir: string;
  network: string;
  socket: string;
}

export interface NodePlan {
  node: NodeConfig;
  components: Component[];
  runDir: string;
  /** The node's own record of what it started (pids), for `corral node down|status`. */
  stateFile: string;
  ceph: CephPlan | undefined;
  cni: CniInstallPlan | undefined;
  /** In start order. */
  daemons: DaemonPlan[];
  urls: { master: string; services: string; discoveryHttp: string; dns: string };
  /** Client files of the cluster's Ceph, as this node uses them. */
  cephClient: { confFile: string; keyring: string } | undefined;
}

/** Where a control node's bootstrapped Ceph puts its client files (so other nodes of the same machine can name them). */
export const cephClientFiles = (controlDir: string): { confFile: string; keyring: string } => ({
  confFile: join(controlDir, 'ceph', 'ceph.client.conf'),
  keyring: join(controlDir, 'ceph', 'keyring'),
});

export function planNode(n: NodeConfig): NodePlan {
  const components = componentsOf(n);
  const has = (c: Component): boolean => components.includes(c);
  const runDir = n.runDir ?? join(n.dir, 'run');
  const controlIp = n.control.address ?? (n.role === 'control' ? n.address : undefined);
  if (!controlIp) throw new Error(`node ${n.name}: control.address is required for an agent node`);
  const urls = {
    master: `http://${controlIp}:${n.control.masterPort}`,
    services: `http://${controlIp}:${n.control.servicesPort}`,
    discoveryHttp: `http://${controlIp}:${n.control.discoveryHttpPort}`,
    dns: `${controlIp}:${n.control.dnsPort}`,
  };
  const logFile = (dir: string, name: string) => ({ level: n.log.level, file: join(dir, `${name}.log`) });
  const daemons: DaemonPlan[] = [];
  const add = (name: Component, dir: string, subcommand: string[], config: unknown, ready: Readiness): void => {
    const configFile = join(dir, `${name}.json`);
    daemons.push({ name, args: [...subcommand, '--config', configFile], configFile, config, outFile: join(dir, `${name}.out`), ready });
  };

  let ceph: CephPlan | undefined;
  if (has('ceph')) {
    if (n.role !== 'control') throw new Error(`node ${n.name}: only a control node runs the lab Ceph`);
    const b = n.ceph.bootstrap ?? { monPort: 3300, memstoreMiB: 1024, pools: [n.ceph.pool] };
    ceph = { dir: join(n.dir, 'ceph'), address: n.address, monPort: b.monPort, memstoreBytes: b.memstoreMiB * 1024 * 1024, pools: b.pools, publishDir: 'publishDir' in b ? b.publishDir : undefined };
  }
  const cephClient = ceph ? cephClientFiles(n.dir) : n.ceph.confFile ? { confFile: n.ceph.confFile, keyring: n.ceph.keyring ?? join(n.dir, 'ceph', 'keyring') } : undefined;

  if (has('master')) {
    const dir = join(n.dir, 'master');
    const config: MasterConfigInput = {
      host: n.address,
      port: n.control.masterPort,
      workDir: dir,
      // A lab on a private network: no credentials (documented in provision/README.md).
      noAuth: true,
      store: { backend: 'embedded', path: join(dir, 'registry.db'), sync: 'normal' },
      allocation: { intervalMs: n.master.allocationIntervalMs },
      agents: { heartbeatIntervalMs: n.master.heartbeatIntervalMs, maxMissedHeartbeats: n.master.maxMissedHeartbeats, unreachableTimeoutMs: n.master.unreachableTimeoutMs },
      log: logFile(dir, 'master'),
    };
    add('master', dir, ['master'], config, { kind: 'http', url: `${urls.master}/health` });
  }
  if (has('services')) {
    const dir = join(n.dir, 'services');
    const config: ServicesConfigInput = {
      host: n.address,
      port: n.control.servicesPort,
      workDir: dir,
      noAuth: true,
      master: { url: urls.master, reconnectInitialMs: 100, reconnectMaxMs: 2000 },
      offers: { refuseSeconds: n.services.refuseSeconds, idleRefuseSeconds: n.services.idleRefuseSeconds },
      reconcile: { intervalSeconds: n.services.reconcileSeconds },
      unreachable: { replaceAfterSeconds: n.services.replaceAfterSeconds },
      log: logFile(dir, 'services'),
    };
    add('services', dir, ['services'], config, { kind: 'http', url: `${urls.services}/health` });
  }
  if (has('discovery')) {
    const dir = join(n.dir, 'discovery');
    const config: DiscoveryConfigInput = {
      domain: n.discovery.domain,
      nodeName: n.name,
      workDir: dir,
      master: { url: urls.master, initialBackoffMs: 100, maxBackoffMs: 2000 },
      // One process: a lab machine has few cores and many daemons.
      dns: { host: n.address, port: n.control.dnsPort, workers: 0 },
      http: { host: n.address, port: n.control.discoveryHttpPort },
      log: logFile(dir, 'discovery'),
    };
    add('discovery', dir, ['discovery'], config, { kind: 'http', url: `${urls.discoveryHttp}/v1/status/leader` });
  }

  let cni: CniInstallPlan | undefined;
  if (has('cni')) {
    const dir = join(n.dir, 'cni');
    cni = { binDir: join(dir, 'bin'), confDir: join(dir, 'net.d'), network: n.cni.network, socket: join(runDir, 'cni.sock') };
    const store: DaemonConfigInput['store'] =
      n.cni.store === 'master' ? { backend: 'remote', url: urls.master } : { backend: 'etcd', etcdEndpoints: n.cni.store.etcdEndpoints, namespace: n.cni.store.namespace };
    const config: DaemonConfigInput = {
      node: n.name,
      socket: cni.socket,
      stateDir: n.cni.stateDir ?? join(dir, 'state'),
      store,
      pools: n.cni.pools.map((p) => ({ name: p.name, cidr: p.cidr, blockSize: p.blockSize })),
      reconcile: { intervalMs: n.cni.reconcileIntervalMs, graceMs: 5_000, releaseEmptyBlocksAfterMs: 60_000, keepEmptyBlocks: 1, sources: [{ type: 'netns' }] },
      bgp: {
        enabled: true,
        asn: n.cni.asn,
        localAddress: n.address,
        holdTime: n.cni.holdTime,
        restart: { initialMs: 100, maxMs: 5000 },
        ...(n.cni.routeReflectors.length ? { routeReflectors: n.cni.routeReflectors } : { master: { url: n.cni.meshMaster ?? urls.master, pollMs: n.cni.meshPollMs } }),
      },
      log: logFile(dir, 'daemon'),
    };
    add('cni', dir, ['cni', 'daemon'], config, { kind: 'unix', socket: cni.socket, path: '/v1/status' });
  }
  if (has('volumes')) {
    const dir = join(n.dir, 'volumes');
    const config = {
      hostId: n.name,
      socket: join(runDir, 'volumes.sock'),
      dataDir: join(dir, 'data'),
      defaultBackend: cephClient ? 'rbd' : 'local',
      rbd: cephClient
        ? { enabled: true, confFile: cephClient.confFile, keyring: cephClient.keyring, clientName: n.ceph.clientName, pool: n.ceph.pool, attach: n.volumes.attach, timeoutSeconds: n.volumes.timeoutSeconds }
        : { enabled: false },
      // Detaches converge: a task's reference whose unmount was lost is released once this node's agent no longer runs it.
      ...(has('agent') ? { reconcile: { liveContainers: { url: `http://${n.address}:${n.agent.port}/api/v1/containers` } } } : {}),
      log: logFile(dir, 'driver'),
    };
    add('volumes', dir, ['volume-driver'], config, { kind: 'unix', socket: config.socket, path: '/v1/status' });
  }
  if (has('agent')) {
    const dir = join(n.dir, 'agent');
    const attributes = [`host:${n.name}`, ...n.agent.attributes.split(';').filter(Boolean)].join(';');
    const config: AgentConfigInput = {
      master: urls.master,
      host: n.address,
      port: n.agent.port,
      advertiseHost: n.address,
      workDir: dir,
      ...(n.agent.resources ? { resources: n.agent.resources } : {}),
      attributes,
      containerizers: ['MESOS'],
      cniConfDir: cni?.confDir ?? '/etc/cni/net.d',
      volumeSocket: join(runDir, 'volumes.sock'),
      noAuth: true,
      mesos: {
        runDir: join(runDir, 'containerizer'),
        workDir: join(n.dir, 'containerizer'),
        cgroupRoot: n.agent.cgroupRoot ?? `corral-${n.name}`,
        netnsPrefix: n.agent.netnsPrefix ?? `corral-${n.name}-`,
        // Volume mounts of this node (and of any other node sharing the kernel) must not be pinned by tasks.
        maskedPaths: ['/run/netns', join(n.dir, 'volumes'), ...n.agent.maskedPaths],
      },
      tasks: { defaultGracePeriodMs: 2000, pidsLimit: 4096 },
      log: logFile(dir, 'agent'),
    };
    add('agent', dir, ['agent'], config, { kind: 'http', url: `http://${n.address}:${n.agent.port}/health` });
  }
  return { node: n, components, runDir, stateFile: join(n.dir, 'node-state.json'), ceph, cni, daemons, urls, cephClient };
}
