/**
 * A node file from a few facts about a machine (`corral node init`): its
 * role, name and address, and where the control node is. Secure by default:
 * TLS on every API and authentication against the node's security file
 * (docs/security.md); plain HTTP without authentication only with `insecure`. vagrant/provision.sh
 * writes each VM's /etc/corral/node.json with it; the namespace lab builds
 * its node files from its own plan (lab/topology.ts).
 * Either way `corral node up` is what runs them.
 */
import { parseInput } from '../../common/validate.js';
import { CorralError } from '../../contracts/errors.js';
import { nodeConfigSchema, type NodeConfig, type NodeConfigInput } from './config.js';
import { bundleFiles } from './bundle.js';

export interface NodeInitOptions {
  role: 'control' | 'agent';
  name: string;
  address: string;
  /** The control node's address (required for an agent); with replicated masters every control node's, comma-separated. */
  control?: string;
  /** Default /var/lib/corral/node. */
  dir?: string;
  /** Default /run/corral/node. */
  runDir?: string;
  /** Control: bootstrap the lab Ceph (one mon, one memstore OSD) on this node. */
  ceph?: boolean;
  /** Control with `ceph`: the agents whose volume drivers use it, each given its own least-privilege client and keyring. */
  cephClients?: string[];
  /** Agent: the cluster's Ceph client files (rbd volumes); without them volumes are local. The keyring is the agent's own (client.corral-volumes-<name>). */
  cephConf?: string;
  cephKeyring?: string;
  /** Container address pool (default 100.96.0.0/16, /26 blocks). */
  pool?: string;
  /** Agent-loss detection: a silent agent's tasks are unreachable after heartbeat × 3 + this (default 5000 ms). */
  agentTimeoutMs?: number;
  heartbeatMs?: number;
  /** BGP hold time in seconds (default 9). */
  holdTime?: number;
  /** Agent resources (default: detected). */
  resources?: string;
  attributes?: string;
  /**
   * Control: the control plane's nodes (name=address each, this one among
   * them) for replicated masters: every control node runs an etcd member of
   * one cluster, a master keeping its registry there and a service framework
   * daemon keeping its state there (one of each leading), and discovery.
   */
  controlPlane?: Array<{ name: string; address: string }>;
  /**
   * TLS on every API (the default): the node's certificate directory (default DIR/tls) and, on the
   * node that keeps the cluster CA (a control node), the CA's directory (default DIR/ca): `corral
   * node up` makes the CA there and issues the node's certificates. `caDir: false` leaves it unset:
   * the node is handed its certificates (an operator's bundle, `corral node bundle`).
   */
  tls?: { dir?: string; caDir?: string | false };
  /** Authentication (the default): the node's security file (default DIR/security.yaml). */
  security?: string;
  /**
   * A host provisioned from the operator's bundle (`corral node bundle --out DIR`, copied here):
   * certificates in DIR/tls, the security file DIR/security.yaml, no CA on the node.
   */
  bundle?: string;
  /** Plain HTTP without authentication (a lab on a private network, debugging): no TLS and no security file. */
  insecure?: boolean;
}

/** Options that contradict each other, each pair named as on the command line. */
function contradiction(o: NodeInitOptions): string | undefined {
  const given = (k: keyof NodeInitOptions): boolean => o[k] !== undefined && o[k] !== false;
  const tlsParts = [...(o.tls?.dir !== undefined ? ['--tls-dir'] : []), ...(o.tls?.caDir !== undefined ? [o.tls.caDir === false ? '--no-ca-dir' : '--ca-dir'] : [])];
  if (o.insecure) {
    const secure = [...tlsParts, ...(given('security') ? ['--security'] : []), ...(given('bundle') ? ['--bundle'] : [])];
    if (secure.length) return `--insecure (plain HTTP, no authentication) contradicts ${secure.join(', ')}: leave --insecure out for a secure node`;
  }
  if (given('bundle')) {
    const set = [...tlsParts, ...(given('security') ? ['--security'] : [])];
    if (set.length) return `--bundle sets the certificate directory, the security file and no CA: it contradicts ${set.join(', ')}`;
  }
  return undefined;
}

export function nodeFileFor(o: NodeInitOptions): NodeConfigInput {
  const problem = contradiction(o);
  if (problem) throw new CorralError('INVALID_ARGUMENT', problem);
  const dir = o.dir ?? '/var/lib/corral/node';
  // Secure by default: TLS and authentication unless asked for plain HTTP.
  const t = o.bundle ? { dir: bundleFiles(o.bundle).tls, caDir: false as const } : (o.tls ?? {});
  const tls = !o.insecure && {
    dir: t.dir ?? `${dir}/tls`,
    ...(t.caDir !== false && (t.caDir ?? o.role === 'control') ? { caDir: typeof t.caDir === 'string' ? t.caDir : `${dir}/ca` } : {}),
  };
  const security = !o.insecure && { file: o.bundle ? bundleFiles(o.bundle).security : (o.security ?? `${dir}/security.yaml`) };
  const runDir = o.runDir ?? '/run/corral/node';
  const common = { name: o.name, address: o.address, dir, runDir, ...(tls ? { tls } : {}), ...(security ? { security } : {}) };
  if (o.role === 'control') {
    return {
      role: 'control',
      ...common,
      // With a control plane, every control node runs a service framework daemon (one leading) and a discovery replica.
      components: [...(o.ceph ? (['ceph'] as const) : []), ...(o.controlPlane ? (['etcd'] as const) : []), 'master', 'services', 'discovery'],
      ...(o.controlPlane ? { etcd: { members: o.controlPlane }, control: { addresses: o.controlPlane.map((m) => m.address) } } : {}),
      master: {
        heartbeatIntervalMs: o.heartbeatMs ?? 1000,
        maxMissedHeartbeats: 3,
        unreachableTimeoutMs: o.agentTimeoutMs ?? 5000,
        ...(o.controlPlane ? { registry: 'etcd' as const, ha: true } : {}),
      },
      services: { replaceAfterSeconds: 0, refuseSeconds: 1, idleRefuseSeconds: 5, reconcileSeconds: 30 },
      ...(o.ceph ? { ceph: { bootstrap: { monPort: 3300, memstoreMiB: 1024, pools: ['corral'], clients: (o.cephClients ?? []).map((host) => ({ host })) } } } : {}),
    };
  }
  if (!o.control) throw new CorralError('INVALID_ARGUMENT', "an agent node needs the control node's address (--control)");
  return {
    role: 'agent',
    ...common,
    // --control may list every control node (replicated masters, service framework daemons and discovery replicas on each).
    control: o.control.includes(',') ? { address: o.control.split(',')[0]!.trim(), addresses: o.control.split(',').map((a) => a.trim()) } : { address: o.control },
    cni: { network: 'corral', pools: [{ name: 'default', cidr: o.pool ?? '100.96.0.0/16', blockSize: 26 }], holdTime: o.holdTime ?? 9 },
    ...(o.cephConf ? { ceph: { confFile: o.cephConf, ...(o.cephKeyring ? { keyring: o.cephKeyring } : {}) } } : {}),
    // The agent API also on a unix socket: node-local readers of its live containers (the volume driver, the CNI
    // daemon's reconciler) reach it there in plain HTTP, guarded by the socket's mode, whether or not its port is HTTPS.
    agent: { ...(o.resources ? { resources: o.resources } : {}), attributes: o.attributes ?? '', apiSocket: `${runDir}/agent.sock` },
  };
}

/** The node file, validated: what `corral node up` will accept. */
export function initNode(o: NodeInitOptions): NodeConfig {
  return parseInput(nodeConfigSchema, nodeFileFor(o), 'node file');
}
