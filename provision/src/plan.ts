/**
 * From a node file to what the machine runs: every daemon's configuration
 * file, command line, log file and readiness probe, computed before anything
 * starts. Pure (no I/O), so `corral node plan` can print it, the vagrant test
 * can check it for both roles, and `corral node up` (run.ts) just carries it
 * out. The daemons are the ordinary corral commands with `--config FILE`.
 */
import { join } from 'node:path';
import type { AgentConfigInput } from '../../core-scheduler/src/index.js';
import { MASTER_NODE_FLAGS, type MasterConfigInput } from '../../core-scheduler/src/index.js';
import type { ServicesConfigInput } from '../../core-scheduler/src/index.js';
import type { DiscoveryConfigInput } from '../../discovery/src/index.js';
import type { DaemonConfigInput } from '../../plugins/cni-calico-like/src/index.js';
import { volumeClientName } from './ceph.js';
import { componentsOf, etcdEndpoints, type Component, type NodeConfig } from './config.js';

/** The etcd server program (Debian's etcd-server). */
const ETCD_BINARY = process.env.CORRAL_ETCD_BIN ?? '/usr/bin/etcd';
import type { NodeScope } from './scope.js';
import { CorralError } from '../../contracts/errors.js';
import { nodeTlsFiles, type TlsDaemon } from './tls.js';
import { ETCD_NAMESPACE, etcdClientStore, etcdHealthBase, etcdMemberTlsConfig } from './etcd-tls.js';

/**
 * How to tell a daemon serves: a 2xx answer, and (`expect`) a JSON field
 * with the given value — an agent registered, discovery following the
 * master. `show` names the field a progress line quotes ("{}" is replaced).
 */
export type Readiness = ({ kind: 'http'; url: string; /** CA file to verify an https daemon by. */ ca?: string } | { kind: 'unix'; socket: string; path: string }) & {
  expect?: { field: string[]; equals: unknown; waiting: string };
  show?: { field: string[]; text: string };
};

/**
 * Credentials the daemons that are clients use, by use: `admin` discovery
 * (follows the master: needs acls.view), `frameworks` the services daemon,
 * `agents` the agent, `cni` the CNI daemon's store access on the master
 * (default: the agent's). Each goes only into
 * the config file (0600) of the daemons that use it; the master and the
 * daemons' APIs read the node's security file, which on a provisioned host
 * holds hashes for every principal and plain text only for the host's own
 * (provision/src/run.ts secretsOf picks them).
 */
export interface PlanSecrets {
  admin?: { principal: string; secret: string } | undefined;
  frameworks?: { principal: string; secret: string } | undefined;
  agents?: { principal: string; secret: string } | undefined;
  cni?: { principal: string; secret: string } | undefined;
}

export interface DaemonPlan {
  name: Component;
  /** What it is, for people. */
  what: string;
  /** Run inside this named network namespace. */
  netns?: string;
  /** Arguments after `corral` (or after `program`). */
  args: string[];
  /** A program other than corral (an etcd member), with the arguments after it. */
  program?: string;
  /** Flags for the node process that runs a corral daemon (before the CLI's script), e.g. the master's heap sizing. */
  nodeFlags?: readonly string[];
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
  /** Each volume host's least-privilege client and where its conf and keyring go (nothing of client.admin). */
  clients: CephClientPlan[];
}

interface CephClientPlan {
  host: string;
  /** client.corral-volumes-<host>. */
  name: string;
  /** Receives ceph.client.conf and keyring (0600). */
  dir: string;
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
  /** What the node owns on the machine besides its daemons (for down --purge and the sweeper). */
  scope: NodeScope;
}

/** A host's own Ceph client files, in the directory the control node writes them to (the host's `ceph/` by default). */
export const cephClientFiles = (clientDir: string): { confFile: string; keyring: string } => ({
  confFile: join(clientDir, 'ceph.client.conf'),
  keyring: join(clientDir, 'keyring'),
});

/** The discovery daemon's management token, in its directory (written by node up, mode 0600). */
export const DISCOVERY_TOKEN_FILE = 'acl-bootstrap-token';

export function planNode(n: NodeConfig, secrets?: PlanSecrets): NodePlan {
  const components = componentsOf(n);
  const has = (c: Component): boolean => components.includes(c);
  const runDir = n.runDir ?? join(n.dir, 'run');
  // The node's own daemons (the volume driver's fencing, the CNI daemon's address reclaim) ask the agent over its unix socket:
  // no TLS or credentials to hand them, and the agent's TCP port may be HTTPS.
  const agentApiSocket = n.agent.apiSocket ?? join(runDir, 'agent.sock');
  const controlIp = n.control.address ?? (n.role === 'control' ? n.address : undefined);
  if (!controlIp) throw new CorralError('INVALID_ARGUMENT', `node ${n.name}: control.address is required for an agent node`);
  if (n.security && !secrets) throw new CorralError('INVALID_ARGUMENT', `node ${n.name}: a node with a security file needs its credentials to plan`);
  const sec = n.security ? secrets : undefined;
  const auth = (client?: { principal: string; secret: string }) => (n.security ? { credentials: n.security.file, ...(client ?? {}) } : { noAuth: true });
  // TLS: each daemon its own certificate from the node's directory (tls.ts), or plain HTTP said explicitly.
  const tlsOf = (daemon: TlsDaemon) => (n.tls ? { tls: nodeTlsFiles(n.tls.dir, daemon) } : { insecure: true });
  const scheme = n.tls ? 'https' : 'http';
  const ca = n.tls ? { ca: nodeTlsFiles(n.tls.dir, 'master').ca } : {};
  // Replicated masters: the daemons that are clients get the whole list and follow the leader.
  const masterIps = n.control.addresses ?? [controlIp];
  const ownMaster = `${scheme}://${n.address}:${n.control.masterPort}`;
  // Replicated control plane: a services daemon (one leading) and a discovery replica on every control node.
  const servicesIps = n.master.ha ? masterIps : [controlIp];
  const urls = {
    master: masterIps.map((a) => `${scheme}://${a}:${n.control.masterPort}`).join(','),
    services: servicesIps.map((a) => `${scheme}://${a}:${n.control.servicesPort}`).join(','),
    discoveryHttp: `${scheme}://${controlIp}:${n.control.discoveryHttpPort}`,
    dns: `${controlIp}:${n.control.dnsPort}`,
  };
  // With log.dir, a daemon logs to its output, which goes to LOGDIR/<daemon>.log; else to DIR/<daemon>/<file>.log beside its .out.
  const logFile = (dir: string, name: string) => (n.log.dir ? { level: n.log.level } : { level: n.log.level, file: join(dir, `${name}.log`) });
  const daemons: DaemonPlan[] = [];
  const add = (name: Component, what: string, dir: string, subcommand: string[], config: unknown, ready: Readiness, o: { netns?: string | undefined; nodeFlags?: readonly string[] } = {}): void => {
    const configFile = join(dir, `${name}.json`);
    const outFile = n.log.dir ? join(n.log.dir, `${name}.log`) : join(dir, `${name}.out`);
    daemons.push({
      name,
      what,
      args: [...subcommand, '--config', configFile],
      configFile,
      config,
      outFile,
      ready,
      ...(o.netns ? { netns: o.netns } : {}),
      ...(o.nodeFlags ? { nodeFlags: o.nodeFlags } : {}),
    });
  };

  let ceph: CephPlan | undefined;
  if (has('ceph')) {
    if (n.role !== 'control') throw new Error(`node ${n.name}: only a control node runs the lab Ceph`);
    const b = n.ceph.bootstrap ?? { monPort: 3300, memstoreMiB: 1024, pools: [n.ceph.pool], clients: [] };
    const dir = join(n.dir, 'ceph');
    const publishDir = 'publishDir' in b ? b.publishDir : undefined;
    // Each host its own client; this node too when it runs a volume driver itself.
    const hosts = [...b.clients, ...(has('volumes') && !b.clients.some((c) => c.host === n.name) ? [{ host: n.name }] : [])];
    const clients = hosts.map((c) => ({
      host: c.host,
      name: volumeClientName(c.host),
      dir: ('dir' in c ? c.dir : undefined) ?? (publishDir ? join(publishDir, c.host) : join(dir, 'clients', c.host)),
    }));
    ceph = { dir, address: n.address, monPort: b.monPort, memstoreBytes: b.memstoreMiB * 1024 * 1024, pools: b.pools, publishDir, clients };
  }
  const ownClient = ceph?.clients.find((c) => c.host === n.name);
  const cephClient = ownClient ? cephClientFiles(ownClient.dir) : n.ceph.confFile ? { confFile: n.ceph.confFile, keyring: n.ceph.keyring ?? join(n.dir, 'ceph', 'keyring') } : undefined;

  if (has('etcd')) {
    const dir = join(n.dir, 'etcd');
    // With TLS, clients and peers alike: certificates of the cluster CA on both sides (etcd-tls.ts).
    const etcdScheme = n.tls ? 'https' : 'http';
    const peer = (address: string): string => `${etcdScheme}://${address}:${n.etcd.peerPort}`;
    const client = `${etcdScheme}://${n.address}:${n.etcd.clientPort}`;
    // etcd's own configuration file (YAML; JSON is YAML): one member of the control plane's cluster.
    const config = {
      name: n.name,
      'data-dir': join(dir, 'data'),
      'listen-client-urls': client,
      'advertise-client-urls': client,
      'listen-peer-urls': peer(n.address),
      'initial-advertise-peer-urls': peer(n.address),
      'initial-cluster': n.etcd.members.map((m) => `${m.name}=${peer(m.address)}`).join(','),
      'initial-cluster-token': n.etcd.token,
      'initial-cluster-state': 'new',
      'log-level': n.log.level === 'debug' || n.log.level === 'trace' ? 'debug' : 'warn',
      ...etcdMemberTlsConfig(n),
    };
    const configFile = join(dir, 'etcd.json');
    daemons.push({
      name: 'etcd',
      what: `etcd member ${n.name} on ${client} (cluster of ${n.etcd.members.length})`,
      program: ETCD_BINARY,
      args: ['--config-file', configFile],
      configFile,
      config,
      outFile: n.log.dir ? join(n.log.dir, 'etcd.log') : join(dir, 'etcd.out'),
      // A member is ready once the cluster has a leader (its /health says true): with 3 members, once 2 run.
      ready: { kind: 'http', url: `${etcdHealthBase(n)}/health`, expect: { field: ['health'], equals: 'true', waiting: 'the etcd cluster has no quorum yet' }, show: { field: [], text: client } },
    });
  }
  if (has('master')) {
    const dir = join(n.dir, 'master');
    const config: MasterConfigInput = {
      host: n.address,
      port: n.control.masterPort,
      workDir: dir,
      // Without a security file, a lab on a private network: no credentials (documented in provision/README.md).
      ...auth(),
      ...tlsOf('master'),
      store:
        n.master.registry === 'etcd'
          ? { backend: 'etcd', etcdEndpoints: etcdEndpoints(n), namespace: ETCD_NAMESPACE, ...etcdClientStore(n) }
          : { backend: 'embedded', path: join(dir, 'registry.db'), sync: 'normal' },
      // Replicated masters: one leads, elected in etcd; the others redirect to it.
      ...(n.master.ha ? { ha: { enabled: true } } : {}),
      allocation: { intervalMs: n.master.allocationIntervalMs },
      agents: { heartbeatIntervalMs: n.master.heartbeatIntervalMs, maxMissedHeartbeats: n.master.maxMissedHeartbeats, unreachableTimeoutMs: n.master.unreachableTimeoutMs },
      log: logFile(dir, 'master'),
    };
    add('master', `master on ${ownMaster}`, dir, ['master'], config, { kind: 'http', url: `${ownMaster}/health`, ...ca, show: { field: [], text: ownMaster } }, { nodeFlags: MASTER_NODE_FLAGS });
  }
  // With the registry on etcd, the service framework and discovery keep their state there too: every replica shares it.
  // Each connects as its own etcd user (its own client certificate), confined to its own keys.
  const sharedStore = (daemon: 'services' | 'discovery') =>
    n.master.registry === 'etcd' ? { backend: 'etcd' as const, etcdEndpoints: etcdEndpoints(n), namespace: ETCD_NAMESPACE, ...etcdClientStore(n, daemon) } : undefined;
  if (has('services')) {
    const dir = join(n.dir, 'services');
    const ownServices = `${scheme}://${n.address}:${n.control.servicesPort}`;
    const config: ServicesConfigInput = {
      host: n.address,
      port: n.control.servicesPort,
      workDir: dir,
      ...(sharedStore('services') ? { store: sharedStore('services') } : {}),
      // Replicated: every control node's daemon stands for election; the leader runs the framework, the others redirect to it.
      ...(n.master.ha ? { ha: { enabled: true } } : {}),
      ...(n.security ? { credentials: n.security.file } : { noAuth: true }),
      ...tlsOf('services'),
      master: { url: urls.master, reconnectInitialMs: 100, reconnectMaxMs: 2000, ...(sec ? sec.frameworks : {}) },
      offers: { refuseSeconds: n.services.refuseSeconds, idleRefuseSeconds: n.services.idleRefuseSeconds },
      reconcile: { intervalSeconds: n.services.reconcileSeconds },
      unreachable: { replaceAfterSeconds: n.services.replaceAfterSeconds },
      log: logFile(dir, 'services'),
    };
    add('services', n.master.ha ? `service framework daemon on ${ownServices} (one of ${servicesIps.length}, one leading)` : `service framework on ${ownServices}`, dir, ['services'], config, {
      kind: 'http',
      url: `${ownServices}/health`,
      ...ca,
      // ready: the leader (or a daemon alone) is subscribed, or a standby knows the leader.
      expect: { field: ['ready'], equals: true, waiting: n.master.ha ? 'service framework: no subscribed leader known yet' : 'service framework not subscribed yet' },
      show: { field: [], text: n.master.ha ? 'leading or following the leader' : 'subscribed to the master' },
    });
  }
  if (has('discovery')) {
    const dir = join(n.dir, 'discovery');
    const config: DiscoveryConfigInput = {
      domain: n.discovery.domain,
      nodeName: n.name,
      workDir: dir,
      ...tlsOf('discovery'),
      // Replicas serve the same KV, sessions and registrations: they share the Store.
      ...(sharedStore('discovery') ? { store: sharedStore('discovery') } : {}),
      master: { url: urls.master, initialBackoffMs: 100, maxBackoffMs: 2000, ...(sec ? sec.admin : {}) },
      dns: { host: n.address, port: n.control.dnsPort, workers: n.discovery.dnsWorkers },
      http: { host: n.address, port: n.control.discoveryHttpPort },
      // The bootstrap (management) token comes from a 0600 file that node up writes once, never from a flag.
      ...(n.discovery.acl.enabled ? { acl: { enabled: true, defaultPolicy: n.discovery.acl.defaultPolicy, bootstrapTokenFile: join(dir, DISCOVERY_TOKEN_FILE) } } : {}),
      log: logFile(dir, 'discovery'),
    };
    add('discovery', `discovery: DNS on ${urls.dns}, Consul API on ${urls.discoveryHttp}`, dir, ['discovery'], config, {
      kind: 'http',
      url: `${urls.discoveryHttp}/v1/corral/status`,
      ...ca,
      expect: { field: ['master', 'connected'], equals: true, waiting: 'discovery not following the master yet' },
      show: { field: ['domain'], text: 'zone {}' },
    });
  }

  let cni: CniInstallPlan | undefined;
  if (has('cni')) {
    const dir = join(n.dir, 'cni');
    cni = { binDir: join(dir, 'bin'), confDir: join(dir, 'net.d'), network: n.cni.network, socket: join(runDir, 'cni.sock') };
    const store: DaemonConfigInput['store'] =
      n.cni.store === 'master'
        ? { backend: 'remote', url: urls.master, ...(sec ? (sec.cni ?? sec.agents) : {}) }
        : n.cni.store === 'embedded'
          ? // Blocks claimed in a Store of the node's own: a node alone shares its pool with nobody.
            { backend: 'embedded', path: join(dir, 'cluster.db') }
          : // An https etcd is the cluster CA's: the daemon presents its own certificate (user corral-cni, the IPAM keys only).
            {
              backend: 'etcd',
              etcdEndpoints: n.cni.store.etcdEndpoints,
              namespace: n.cni.store.namespace,
              ...(n.cni.store.etcdEndpoints.every((e) => e.startsWith('https://')) ? etcdClientStore(n, 'cni') : {}),
            };
    // Leaked addresses are reclaimed against the containers' namespaces and, over its unix socket, the agent's live containers.
    const agentSocket = has('agent') ? agentApiSocket : undefined;
    const sources = [{ type: 'netns' as const }, ...(agentSocket ? [{ type: 'http' as const, url: 'http://agent/api/v1/containers', socketPath: agentSocket }] : [])];
    const config: DaemonConfigInput = {
      node: n.name,
      socket: cni.socket,
      stateDir: n.cni.stateDir ?? join(dir, 'state'),
      store,
      ...tlsOf('cni'),
      pools: n.cni.pools.map((p) => ({ name: p.name, cidr: p.cidr, blockSize: p.blockSize })),
      reconcile: { intervalMs: n.cni.reconcileIntervalMs, graceMs: 5_000, releaseEmptyBlocksAfterMs: 60_000, keepEmptyBlocks: 1, sources },
      bgp: !n.cni.bgp
        ? { enabled: false }
        : {
            enabled: true,
            asn: n.cni.asn,
            localAddress: n.address,
            holdTime: n.cni.holdTime,
            restart: { initialMs: 100, maxMs: 5000 },
            // The mesh reads the master's agent list (GET_AGENTS): with authentication, as the CNI daemon's principal (acls.view).
            ...(n.cni.routeReflectors.length
              ? { routeReflectors: n.cni.routeReflectors }
              : { master: { url: n.cni.meshMaster ?? urls.master, pollMs: n.cni.meshPollMs, ...(sec ? (sec.cni ?? sec.agents) : {}) } }),
          },
      log: logFile(dir, 'daemon'),
    };
    add(
      'cni',
      `CNI node daemon in ${n.cni.netns ? `netns ${n.cni.netns}` : "the node's network namespace"}`,
      dir,
      ['cni', 'daemon'],
      config,
      { kind: 'unix', socket: cni.socket, path: '/v1/status', show: { field: [], text: `pools ${n.cni.pools.map((p) => `${p.cidr} (/${p.blockSize} blocks)`).join(', ')}, socket ${cni.socket}` } },
      { netns: n.cni.netns ? `/run/netns/${n.cni.netns}` : undefined },
    );
  }
  const agentCgroupRoot = n.agent.cgroupRoot ?? `corral-${n.name}`;
  const agentNetnsPrefix = n.agent.netnsPrefix ?? `corral-${n.name}-`;
  const volumeSocket = n.volumes.socket ?? join(runDir, 'volumes.sock');
  const volumesDir = n.volumes.dataDir ?? join(n.dir, 'volumes');
  if (has('volumes')) {
    const dir = join(n.dir, 'volumes');
    const config = {
      hostId: n.name,
      socket: volumeSocket,
      dataDir: n.volumes.dataDir ?? join(dir, 'data'),
      defaultBackend: cephClient ? 'rbd' : 'local',
      rbd: cephClient
        ? {
            enabled: true,
            confFile: cephClient.confFile,
            keyring: cephClient.keyring,
            clientName: n.ceph.clientName ?? volumeClientName(n.name),
            pool: n.ceph.pool,
            attach: n.volumes.attach,
            timeoutSeconds: n.volumes.timeoutSeconds,
          }
        : { enabled: false },
      // Detaches converge: a task's reference whose unmount was lost is released once this node's agent no longer runs it.
      ...(has('agent')
        ? {
            reconcile: {
              liveContainers: { url: 'http://agent/api/v1/containers', socketPath: agentApiSocket },
            },
          }
        : {}),
      log: logFile(dir, 'driver'),
    };
    add('volumes', `volume plugin (${config.defaultBackend} backend) on ${config.socket}`, dir, ['volume-driver'], config, {
      kind: 'unix',
      socket: config.socket,
      path: '/v1/status',
      show: { field: ['defaultBackend'], text: `backend {}, data in ${config.dataDir}` },
    });
  }
  if (has('agent')) {
    const dir = join(n.dir, 'agent');
    const attributes = [`host:${n.name}`, ...n.agent.attributes.split(';').filter(Boolean)].join(';');
    const config: AgentConfigInput = {
      master: urls.master,
      host: n.address,
      port: n.agent.port,
      apiSocket: agentApiSocket,
      advertiseHost: n.address,
      workDir: dir,
      ...(n.agent.resources ? { resources: n.agent.resources } : {}),
      attributes,
      containerizers: ['MESOS'],
      cniConfDir: cni?.confDir ?? '/etc/cni/net.d',
      volumeSocket,
      // Its own credential in its own config file (0600); the security file only verifies operators on its API.
      ...auth(sec?.agents),
      // Its certificate serves its API and is its client certificate at the master (CN = its principal).
      ...tlsOf('agent'),
      mesos: {
        runDir: join(runDir, 'containerizer'),
        workDir: join(n.dir, 'containerizer'),
        cgroupRoot: agentCgroupRoot,
        netnsPrefix: agentNetnsPrefix,
        // Volume mounts of this node (and of any other node sharing the kernel) must not be pinned by tasks.
        maskedPaths: ['/run/netns', volumesDir, ...n.agent.maskedPaths],
        externalVolumeChown: n.agent.externalVolumeChown,
      },
      tasks: { defaultGracePeriodMs: 2000, pidsLimit: 4096 },
      log: logFile(dir, 'agent'),
    };
    add('agent', `agent on ${scheme}://${n.address}:${n.agent.port}`, dir, ['agent'], config, {
      kind: 'http',
      url: `${scheme}://${n.address}:${n.agent.port}/health`,
      ...ca,
      expect: { field: ['connected'], equals: true, waiting: 'agent not registered with the master yet' },
      show: { field: ['agent_id'], text: 'agent {} registered' },
    });
  }
  const scope: NodeScope = {
    dirs: [n.dir, runDir],
    ...(has('volumes') ? { volumesDir } : {}),
    ...(has('agent') ? { cgroupRoots: [agentCgroupRoot], netnsPrefix: agentNetnsPrefix } : {}),
    ...(n.cni.netns && has('cni') ? { netns: [n.cni.netns] } : {}),
    sockets: [...(cni ? [cni.socket] : []), ...(has('volumes') ? [volumeSocket] : []), ...(has('agent') ? [agentApiSocket] : [])],
  };
  return { node: n, components, runDir, stateFile: join(n.dir, 'node-state.json'), ceph, cni, daemons, urls, cephClient, scope };
}
