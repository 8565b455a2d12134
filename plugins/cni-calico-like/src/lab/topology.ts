/**
 * The lab's plan, computed before anything is created: names, addresses and
 * every generated configuration. Pure, so the same plan drives the
 * namespace lab here and (with other runners) a Vagrant lab of real VMs.
 *
 *   underlay 198.18.0.0/24 (a bridge in its own namespace)
 *     .1    services: etcd (IPAM store) and the master with one agent per host
 *     .10+  hosts: node daemon + exabgp each, containers behind them
 *     .250  optional bird2 route reflector
 */
import { join } from 'node:path';
import { formatIp, parseCidr } from '../netkit/ipv4.js';
import type { DaemonConfigInput } from '../daemon/config.js';

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
}

export const LAB_DEFAULTS = { pool: '100.96.0.0/16', pool2: '100.97.0.0/16', blockSize: 26, underlay: '198.18.0.0/24', asn: 64512, holdTime: 9, masterPort: 5050, etcdPort: 2379 };

export interface HostPlan {
  index: number;
  name: string;
  netns: string;
  ip: string;
  dir: string;
  socket: string;
  configFile: string;
  binDir: string;
  confDir: string;
}

export interface LabPlan {
  options: LabOptions;
  underlayNetns: string;
  services: { netns: string; ip: string; dir: string };
  reflector: { netns: string; ip: string; dir: string } | undefined;
  hosts: HostPlan[];
  prefixLen: number;
  etcdUrl: string;
  masterUrl: string;
}

export function planLab(o: LabOptions): LabPlan {
  const ul = parseCidr(o.underlay);
  if (ul.prefix > 24) throw new Error('the lab underlay needs at least a /24');
  if (o.hosts < 1 || o.hosts > 200) throw new Error('a lab has 1 to 200 hosts');
  if (o.prefix.length > 10) throw new Error('lab prefix too long (at most 10 characters)');
  const at = (n: number): string => formatIp((ul.base + n) >>> 0);
  const servicesIp = at(1);
  const hosts: HostPlan[] = Array.from({ length: o.hosts }, (_, i) => {
    const dir = join(o.dir, `h${i + 1}`);
    return {
      index: i + 1, name: `h${i + 1}`, netns: `${o.prefix}-h${i + 1}`, ip: at(10 + i), dir,
      socket: join(dir, 'cni.sock'), configFile: join(dir, 'daemon.json'), binDir: join(dir, 'cni', 'bin'), confDir: join(dir, 'cni', 'net.d'),
    };
  });
  return {
    options: o,
    underlayNetns: `${o.prefix}-ul`,
    services: { netns: `${o.prefix}-svc`, ip: servicesIp, dir: join(o.dir, 'services') },
    reflector: o.routeReflector ? { netns: `${o.prefix}-rr`, ip: at(250), dir: join(o.dir, 'rr') } : undefined,
    hosts,
    prefixLen: ul.prefix,
    etcdUrl: `http://${servicesIp}:${o.etcdPort}`,
    masterUrl: `http://${servicesIp}:${o.masterPort}`,
  };
}

/** The node daemon's configuration for one lab host. */
export function hostDaemonConfig(plan: LabPlan, h: HostPlan): DaemonConfigInput {
  const o = plan.options;
  return {
    node: h.name,
    socket: h.socket,
    stateDir: join(h.dir, 'state'),
    store: { backend: 'etcd', etcdEndpoints: [plan.etcdUrl], namespace: `${o.prefix}/` },
    // A second pool lets a benchmark make every host claim a fresh block on demand.
    pools: [{ name: 'lab', cidr: o.pool, blockSize: o.blockSize }, { name: 'lab2', cidr: o.pool2, blockSize: o.blockSize }],
    reconcile: { intervalMs: 10_000, graceMs: 5_000, releaseEmptyBlocksAfterMs: 60_000, keepEmptyBlocks: 1, sources: [{ type: 'netns' }] },
    bgp: {
      enabled: true,
      asn: o.asn,
      localAddress: h.ip,
      holdTime: o.holdTime,
      restart: { initialMs: 100, maxMs: 5000 },
      ...(plan.reflector ? { routeReflectors: [plan.reflector.ip] } : { master: { url: plan.masterUrl, pollMs: 1000 } }),
    },
    log: { level: 'info', file: join(h.dir, 'daemon.log') },
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
