/**
 * The lab's plan, computed before anything is created: names, addresses and
 * the node file of every machine. Pure. Each machine is then provisioned by
 * `corral node up --config <its node file>` (provision/), run inside its
 * namespace: the same step vagrant/ runs on each VM.
 *
 *   underlay 198.18.0.0/24 (a bridge in its own namespace)
 *     .1    services. CNI-only lab: etcd (IPAM store; provisioned, see
 *           servicesNodeConfig) and a master with one simulated agent per
 *           host (the lab's own process, lab/services.ts). Full lab
 *           (`full`): the control node (master, services, discovery, a
 *           memstore Ceph).
 *     .2-.3 full lab with `controls: 3`: two more control nodes; each of the
 *           three runs an etcd member, a master and a service framework daemon
 *           (replicated, one of each leading) and a discovery replica; Ceph
 *           stays on .1.
 *     .10+  hosts. CNI-only: node daemon + exabgp. Full: also the volume
 *           driver (rbd) and a real agent (native containerizer).
 *     .250  optional bird2 route reflector
 */
import { join } from 'node:path';
import { formatIp, parseCidr } from '../common/netkit/ipv4.js';
import type { NodeConfigInput } from '../provision/src/index.js';
import { cephClientFiles } from '../provision/src/index.js';
import { labOperatorFiles } from './security.js';

export interface LabOptions {
  /** Namespace name prefix ("ct-…" in tests). */
  prefix: string;
  hosts: number;
  dir: string;
  /** Peer through a bird2 route reflector instead of a full mesh. */
  routeReflector: boolean;
  pool: string;
  pool2: string;
  blockSize: number;
  underlay: string;
  asn: number;
  holdTime: number;
  masterPort: number;
  etcdPort: number;
  /** The whole stack per host (agent, volume driver, CNI) and a control node with Ceph, instead of CNI only. */
  full: boolean;
  /** Full lab: agent-loss detection at the master (heartbeat period, missed heartbeats, then unreachable after). */
  heartbeatMs: number;
  missedHeartbeats: number;
  unreachableMs: number;
  /** Full lab: resources each agent offers (Mesos text form). */
  agentResources: string;
  /** Full lab: control nodes, 1 or 3 (replicated masters on a three-member etcd). */
  controls: number;
  /**
   * Plain HTTP and no authentication (for debugging only). By default every daemon
   * speaks HTTPS with a certificate of the lab's CA and checks credentials
   * (lab/security.ts), each machine holding only its own; in the CNI-only lab,
   * etcd too (client certificates, authentication on).
   */
  insecure: boolean;
}

export const LAB_DEFAULTS = {
  pool: '100.96.0.0/16',
  pool2: '100.97.0.0/16',
  blockSize: 26,
  underlay: '198.18.0.0/24',
  asn: 64512,
  holdTime: 9,
  masterPort: 5050,
  etcdPort: 2379,
  full: false,
  heartbeatMs: 500,
  missedHeartbeats: 2,
  unreachableMs: 1000,
  agentResources: 'cpus:2;mem:1024;disk:2048;ports:[31000-31999]',
  controls: 1,
  insecure: false,
};

export interface ControlPlan {
  name: string;
  netns: string;
  ip: string;
  dir: string;
  nodeDir: string;
  nodeFile: string;
}

export interface HostPlan {
  index: number;
  name: string;
  netns: string;
  ip: string;
  dir: string;
  socket: string;
  /** Its node file (provision/). */
  configFile: string;
  binDir: string;
  confDir: string;
  /** Full lab: the agent's cgroup root and API. */
  cgroupRoot: string;
  agentUrl: string;
}

export interface LabPlan {
  options: LabOptions;
  underlayNetns: string;
  services: { netns: string; ip: string; dir: string; nodeDir: string; nodeFile: string };
  /** Every control node, the first being `services` (one unless `controls: 3`). */
  controls: ControlPlan[];
  /** Every master's URL (the list clients follow the leader with). */
  masterUrls: string[];
  reflector: { netns: string; ip: string; dir: string } | undefined;
  hosts: HostPlan[];
  prefixLen: number;
  /** The CNI-only lab's etcd (the IPAM store): https, client certificates required, unless `insecure`. */
  etcdUrl: string;
  masterUrl: string;
  servicesUrl: string;
  /** Every service framework daemon's URL (one per control node; the leader among them serves). */
  servicesUrls: string[];
  /** Discovery: DNS server (address, port) and HTTP API. */
  dns: { address: string; port: number };
  /** Every discovery replica's DNS server (one per control node). */
  dnsServers: Array<{ address: string; port: number }>;
  discoveryUrl: string;
  /**
   * The operator's side of a secure lab (undefined with `insecure`): the
   * cluster CA's certificate, the operator credential file and curl's config (`curl -K`: CA and
   * admin's credentials), all in DIR/operator, which holds the CA's key and is no machine's.
   */
  operator: { ca: string; credentials: string; curlrc: string } | undefined;
}

/** Whether the lab's daemons (and the CNI-only lab's etcd) run with TLS and authentication: unless `insecure`. */
export const labSecure = (o: LabOptions): boolean => !o.insecure;

export function planLab(o: LabOptions): LabPlan {
  const ul = parseCidr(o.underlay);
  if (ul.prefix > 24) throw new Error('the lab underlay needs at least a /24');
  if (o.hosts < 1 || o.hosts > 200) throw new Error('a lab has 1 to 200 hosts');
  if (o.prefix.length > 10) throw new Error('lab prefix too long (at most 10 characters)');
  if (o.controls !== 1 && o.controls !== 3) throw new Error('a lab has 1 or 3 control nodes');
  if (o.controls > 1 && !o.full) throw new Error('replicated masters (3 control nodes) need the full lab');
  const at = (n: number): string => formatIp((ul.base + n) >>> 0);
  const servicesIp = at(1);
  // Every daemon of the lab (and the CNI-only lab's etcd) speaks TLS unless the lab is insecure.
  const scheme = labSecure(o) ? 'https' : 'http';
  const op = labOperatorFiles(o.dir);
  const hosts: HostPlan[] = Array.from({ length: o.hosts }, (_, i) => {
    const dir = join(o.dir, `h${i + 1}`);
    return {
      index: i + 1,
      name: `h${i + 1}`,
      netns: `${o.prefix}-h${i + 1}`,
      ip: at(10 + i),
      dir,
      socket: join(dir, 'run', 'cni.sock'),
      configFile: join(dir, 'node.json'),
      binDir: join(dir, 'cni', 'bin'),
      confDir: join(dir, 'cni', 'net.d'),
      cgroupRoot: `${o.prefix}-h${i + 1}`,
      agentUrl: `${scheme}://${at(10 + i)}:5051`,
    };
  });
  const servicesDir = join(o.dir, 'services');
  const services = { netns: `${o.prefix}-svc`, ip: servicesIp, dir: servicesDir, nodeDir: join(servicesDir, 'control'), nodeFile: join(servicesDir, 'node.json') };
  const controls: ControlPlan[] = [
    { name: 'control', ...services },
    ...Array.from({ length: o.controls - 1 }, (_, i) => {
      const dir = join(o.dir, `c${i + 2}`);
      return { name: `control${i + 2}`, netns: `${o.prefix}-c${i + 2}`, ip: at(i + 2), dir, nodeDir: join(dir, 'control'), nodeFile: join(dir, 'node.json') };
    }),
  ];
  return {
    options: o,
    underlayNetns: `${o.prefix}-ul`,
    services,
    controls,
    masterUrls: controls.map((c) => `${scheme}://${c.ip}:${o.masterPort}`),
    reflector: o.routeReflector ? { netns: `${o.prefix}-rr`, ip: at(250), dir: join(o.dir, 'rr') } : undefined,
    hosts,
    prefixLen: ul.prefix,
    etcdUrl: `${scheme}://${servicesIp}:${o.etcdPort}`,
    masterUrl: `${scheme}://${servicesIp}:${o.masterPort}`,
    servicesUrl: `${scheme}://${servicesIp}:5052`,
    servicesUrls: controls.map((c) => `${scheme}://${c.ip}:5052`),
    dns: { address: servicesIp, port: 8600 },
    dnsServers: controls.map((c) => ({ address: c.ip, port: 8600 })),
    discoveryUrl: `${scheme}://${servicesIp}:8500`,
    operator: labSecure(o) ? { ca: op.ca, credentials: op.credentials, curlrc: op.curlrc } : undefined,
  };
}

/**
 * The node file of a full lab's control node: master, service framework,
 * discovery, and on the first also Ceph, with short failure timers. With
 * three control nodes each also runs an etcd member, the masters keep their
 * registry there (one leading), the service framework daemons their state
 * (one leading), and the discovery replicas their KV and registrations.
 */
export function controlNodeConfig(plan: LabPlan, c: ControlPlan = plan.controls[0]!): NodeConfigInput {
  const o = plan.options;
  const first = c === plan.controls[0];
  const replicated = plan.controls.length > 1;
  return {
    role: 'control',
    name: c.name,
    address: c.ip,
    dir: c.nodeDir,
    components: [...(first ? (['ceph'] as const) : []), ...(replicated ? (['etcd'] as const) : []), 'master', 'services', 'discovery'],
    control: { masterPort: o.masterPort, ...(replicated ? { addresses: plan.controls.map((x) => x.ip) } : {}) },
    ...(replicated ? { etcd: { members: plan.controls.map((x) => ({ name: x.name, address: x.ip })), token: o.prefix } } : {}),
    master: {
      heartbeatIntervalMs: o.heartbeatMs,
      maxMissedHeartbeats: o.missedHeartbeats,
      unreachableTimeoutMs: o.unreachableMs,
      allocationIntervalMs: 500,
      ...(replicated ? { registry: 'etcd' as const, ha: true } : {}),
    },
    // Replace an instance as soon as its agent is unreachable; offers come back quickly in a lab.
    services: { replaceAfterSeconds: 0, refuseSeconds: 0.5, idleRefuseSeconds: 2, reconcileSeconds: 10 },
    // Each host its own least-privilege Ceph client, its keyring written into the host's own directory.
    ...(first ? { ceph: { bootstrap: { monPort: 3300, memstoreMiB: 512, pools: ['corral'], clients: plan.hosts.map((h) => ({ host: h.name, dir: hostCephDir(h) })) } } } : {}),
    // With three control nodes the first turns etcd's authentication on, which takes the CA's directory (etcd's
    // root password is kept there): the operator's, never under the node's own directory.
    ...secureNode(plan, c.dir, first && replicated),
  };
}

/** Where the control node writes a host's Ceph client files: the host's own directory (never client.admin's keyring). */
const hostCephDir = (h: HostPlan): string => join(h.dir, 'ceph');

/**
 * The node file of the CNI-only lab's services machine: `corral node up`
 * starts its etcd (TLS with client certificates, and authentication with a
 * user per daemon, unless the lab is insecure: provision/src/etcd-tls.ts);
 * the CA's directory is the operator's, where etcd's root password is kept.
 * The master and the simulated agents beside it are the lab's own process
 * (`corral lab services`, lab/services.ts), which reads this machine's
 * certificates and security file: see servicesBundleNode.
 */
export function servicesNodeConfig(plan: LabPlan): NodeConfigInput {
  const o = plan.options;
  const svc = plan.services;
  return {
    role: 'control',
    name: 'control',
    address: svc.ip,
    dir: svc.nodeDir,
    components: ['etcd'],
    etcd: { members: [{ name: 'control', address: svc.ip }], clientPort: o.etcdPort, peerPort: o.etcdPort + 1, metricsPort: o.etcdPort + 2, token: o.prefix },
    ...secureNode(plan, svc.dir, true),
  };
}

/**
 * What the CNI-only lab's services machine is bundled as (lab/security.ts):
 * its etcd, and the master and simulated agents `corral lab services` runs,
 * so it gets the master's server certificate and an agent certificate (CN
 * `agent-control`, the principal every simulated agent presents).
 */
export function servicesBundleNode(plan: LabPlan): NodeConfigInput {
  const node = servicesNodeConfig(plan);
  return { ...node, components: [...(node.components ?? []), 'master', 'agent'] };
}

/** The node file of one lab host: CNI only, or (full lab) the whole agent stack. */
export function hostNodeConfig(plan: LabPlan, h: HostPlan): NodeConfigInput {
  const o = plan.options;
  return {
    role: 'agent',
    name: h.name,
    address: h.ip,
    dir: h.dir,
    components: o.full ? ['cni', 'volumes', 'agent'] : ['cni'],
    control: { address: plan.services.ip, masterPort: o.masterPort, ...(plan.controls.length > 1 ? { addresses: plan.controls.map((c) => c.ip) } : {}) },
    cni: {
      network: 'lab',
      // A second pool lets a benchmark make every host claim a fresh block on demand.
      pools: [
        { name: 'lab', cidr: o.pool, blockSize: o.blockSize },
        { name: 'lab2', cidr: o.pool2, blockSize: o.blockSize },
      ],
      // CNI-only: the lab's own etcd, its keys where etcd's corral-cni user may write them (corral/ipam/, no namespace).
      store: o.full ? 'master' : { etcdEndpoints: [plan.etcdUrl] },
      asn: o.asn,
      holdTime: o.holdTime,
      routeReflectors: plan.reflector ? [plan.reflector.ip] : [],
      meshMaster: plan.masterUrls.join(','),
      meshPollMs: o.full ? 500 : 1000,
      stateDir: join(h.dir, 'state'),
    },
    ...(o.full
      ? {
          ceph: cephClientFiles(hostCephDir(h)),
          volumes: { attach: 'rbd-fuse' as const, timeoutSeconds: 5 },
          agent: {
            resources: o.agentResources,
            cgroupRoot: h.cgroupRoot,
            netnsPrefix: `${h.netns}-`,
            // Every host shares this kernel: no task may pin another host's volume mounts. (Not the whole lab
            // dir: a task's own sandbox, and the volume bound into it, live under it.)
            maskedPaths: plan.hosts.filter((x) => x !== h).map((x) => join(x.dir, 'volumes')),
            // Tasks run as the agent's unprivileged default user: their rbd volumes' mount points are given to it.
            externalVolumeChown: true,
          },
        }
      : {}),
    ...secureNode(plan, h.dir, false),
  };
}

/** A machine's TLS directory and security file in its own directory (lab/security.ts fills them), unless the lab is insecure. */
function secureNode(plan: LabPlan, machineDir: string, holdsCa: boolean): Pick<NodeConfigInput, 'tls' | 'security'> {
  if (!labSecure(plan.options)) return {};
  return {
    tls: { dir: join(machineDir, 'tls'), ...(holdsCa ? { caDir: labOperatorFiles(plan.options.dir).caDir } : {}) },
    security: { file: join(machineDir, 'security.yaml') },
  };
}

/** bird2 as a route reflector for every lab host; imports and exports only pool prefixes. */
export function birdReflectorConfig(plan: LabPlan): string {
  const rr = plan.reflector!;
  const o = plan.options;
  const pool = parseCidr(o.pool);
  return [
    `router id ${rr.ip};`,
    'protocol device { scan time 10; }',
    // A peer that exports its underlay must never reach the hosts: only pool prefixes pass.
    `filter corral_pools { if net ~ [ ${o.pool}{${pool.prefix},32}, ${o.pool2}{${parseCidr(o.pool2).prefix},32} ] then accept; reject; }`,
    'template bgp corral_host {',
    `  local ${rr.ip} as ${o.asn};`,
    '  direct;',
    '  rr client;',
    `  rr cluster id ${rr.ip};`,
    `  hold time ${o.holdTime};`,
    '  connect retry time 1;',
    // bird's default error wait time leaves a peer idle for ~60 s after one failure.
    '  error wait time 1, 10;',
    '  ipv4 { import filter corral_pools; export filter corral_pools; gateway direct; };',
    '}',
    ...plan.hosts.map((h) => `protocol bgp ${h.name} from corral_host { neighbor ${h.ip} as ${o.asn}; }`),
    '',
  ].join('\n');
}
