/**
 * Where everything of one `corral up` instance lives: every name (network
 * namespaces, cgroup root), socket, port and directory derives from the work
 * directory, the instance name and a few flags, so two instances (a user's and
 * a test's) never touch each other's things. `up` writes the plan to
 * `<workDir>/up.json`; `supervise` and `down` read it back, so `down` removes
 * exactly what `up` made.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CorralError } from '../../contracts/errors.js';
import { z } from '../../common/validate.js';
import { parseCidr } from '../../common/netkit/ipv4.js';
import type { NodeConfigInput, NodeScope } from '../../provision/src/index.js';
import { masterSecurityFile } from './security.js';

export const DEFAULT_WORK_DIR = '/var/lib/corral';
export const DEFAULT_NAME = 'corral';
/** The CNI network every corral up instance defines (apps say `network: corral`). */
export const NETWORK = 'corral';
/** The volume driver name apps use (`driver: corral`); the plugin socket's file name. */
export const VOLUME_DRIVER = 'corral';
/**
 * The address of the node namespace's loopback: the gateway every container
 * already routes to (169.254.1.1, Calico style). Owning it gives clients in the
 * node namespace (`ip netns exec <node netns> curl …`) a source address
 * containers can answer without any route in the root namespace.
 */
export const NODE_ADDRESS = '169.254.1.1';

const port = z.number().int().min(1).max(65535);
const absPath = z.string().refine((p) => isAbsolute(p) && p !== '/' && !/[\0\n]/.test(p), 'must be an absolute path other than "/"');

/** Flags of `corral up`, validated before anything starts. */
const upFlagsSchema = z.strictObject({
  workDir: absPath,
  /** Instance name: the node netns is `<name>-node`, task netns `<name>-<container>`, cgroups under `<name>`. */
  name: z.string().regex(/^[a-z][a-z0-9-]{0,22}$/, 'must be 1-23 lower-case letters, digits and "-", starting with a letter'),
  cgroupRoot: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be one cgroup directory name (letters, digits, "_", ".", "-")')
    .optional(),
  runDir: absPath.optional(),
  masterPort: port,
  agentPort: port,
  servicesPort: port,
  dnsPort: port,
  discoveryPort: port,
  pool: z.string().refine((s) => {
    try {
      const c = parseCidr(s);
      return c.prefix <= 24;
    } catch {
      return false;
    }
  }, 'must be an IPv4 CIDR with host bits zero and a prefix of /24 or shorter, e.g. 100.96.0.0/12'),
  blockSize: z.number().int().min(20).max(30),
  agentResources: z.string().min(1).max(4096).optional(),
  hostNetwork: z.boolean(),
  /** Plain HTTP instead of TLS on every API (--insecure). */
  insecure: z.boolean().default(false),
  /** Simulated agents and demo frameworks instead of the real stack (no root needed). */
  simulate: z.strictObject({ agents: z.number().int().min(1).max(1000), agentResources: z.string().min(1).max(4096) }).optional(),
});

export interface UpPlan {
  version: 1;
  workDir: string;
  name: string;
  runDir: string;
  /** Set in every process the supervisor starts (inherited by their children): how `down` recognises ours. */
  marker: string;
  hostNetwork: boolean;
  simulate?: { agents: number; agentResources: string };
  /**
   * TLS (unless --insecure): the CA's directory (its key stays there), the daemons' certificate
   * directory, and the CA certificate clients trust.
   */
  tls?: { caDir: string; dir: string; caFile: string };
  /** Directories outside the work dir that did not exist before this instance (removed by down when empty). */
  madeDirs: string[];
  netns: { node: string; nodePath: string; taskPrefix: string };
  cgroupRoot: string;
  ports: { master: number; agent: number; services: number; dns: number; discovery: number };
  urls: { master: string; agent: string; services: string; discovery: string };
  pool: { cidr: string; blockSize: number };
  agentResources: string | undefined;
  paths: {
    plan: string;
    security: string;
    log: string;
    supervisorPid: string;
    status: string;
    /** The node's record of its daemons and scope (provision's lifecycle). */
    nodeState: string;
    logs: string;
    master: string;
    agent: string;
    volumes: string;
    volumeSocket: string;
    /** The agent API on a unix socket: the CNI daemon's leak reconciler reaches it from the node namespace. */
    agentSocket: string;
    cniState: string;
    cniConfDir: string;
    cniSocket: string;
    containerizerRun: string;
    discovery: string;
    services: string;
    demo: string;
  };
}

export const MARKER_ENV = 'CORRAL_UP_INSTANCE';

/** Schema keys → the flags users typed, for error messages. */
const FLAG_OF: Record<string, string> = {
  workDir: '--work-dir',
  name: '--name',
  cgroupRoot: '--cgroup-root',
  runDir: '--run-dir',
  masterPort: '--port',
  agentPort: '--agent-port',
  servicesPort: '--services-port',
  dnsPort: '--dns-port',
  discoveryPort: '--discovery-port',
  pool: '--pool',
  blockSize: '--block-size',
  agentResources: '--agent-resources',
  hostNetwork: '--host-network',
  insecure: '--insecure',
  simulate: '--simulate',
};

export function makePlan(input: unknown): UpPlan {
  const parsed = upFlagsSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${FLAG_OF[String(i.path[0])] ?? i.path.join('.')}: ${i.message}`);
    throw new CorralError('INVALID_ARGUMENT', `invalid option ${issues.join('; ')}`);
  }
  const f = parsed.data;
  const workDir = resolve(f.workDir);
  if (f.blockSize < parseCidr(f.pool).prefix) throw new CorralError('INVALID_ARGUMENT', `--block-size /${f.blockSize} is larger than the pool ${f.pool}`);
  const isDefault = f.name === DEFAULT_NAME;
  // The default instance uses every component's own defaults (/run/corral, cgroup "corral", netns "corral-…").
  const runDir = f.runDir ? resolve(f.runDir) : isDefault ? '/run/corral' : `/run/corral-${f.name}`;
  const cniSocket = join(runDir, 'cni.sock');
  // The default instance's plugin is where Docker and `corral volume` look for it; others keep theirs in their run dir.
  const volumeSocket = isDefault && !f.runDir ? `/run/docker/plugins/${VOLUME_DRIVER}.sock` : join(runDir, 'plugins', `${VOLUME_DRIVER}.sock`);
  const agentSocket = join(runDir, 'agent.sock');
  for (const s of [cniSocket, volumeSocket, agentSocket]) {
    if (Buffer.byteLength(s) > 107) throw new CorralError('INVALID_ARGUMENT', `socket path ${s} is longer than 107 bytes: choose a shorter --run-dir`);
  }
  const node = `${f.name}-node`;
  // The simulated cluster stays plain HTTP: an in-process demo of the scheduler, not a deployment.
  const secure = !f.insecure && !f.simulate;
  const http = (p: number): string => `${secure ? 'https' : 'http'}://127.0.0.1:${p}`;
  return {
    version: 1,
    workDir,
    name: f.name,
    runDir,
    marker: workDir,
    hostNetwork: f.hostNetwork,
    ...(f.simulate ? { simulate: f.simulate } : {}),
    ...(secure ? { tls: { caDir: join(workDir, 'ca'), dir: join(workDir, 'tls'), caFile: join(workDir, 'tls', 'ca.crt') } } : {}),
    madeDirs: [],
    netns: { node, nodePath: `/run/netns/${node}`, taskPrefix: `${f.name}-` },
    cgroupRoot: f.cgroupRoot ?? f.name,
    ports: { master: f.masterPort, agent: f.agentPort, services: f.servicesPort, dns: f.dnsPort, discovery: f.discoveryPort },
    urls: { master: http(f.masterPort), agent: http(f.agentPort), services: http(f.servicesPort), discovery: http(f.discoveryPort) },
    pool: { cidr: f.pool, blockSize: f.blockSize },
    agentResources: f.agentResources,
    paths: {
      plan: join(workDir, 'up.json'),
      security: join(workDir, 'security.yaml'),
      log: join(workDir, 'corral.log'),
      supervisorPid: join(workDir, 'supervisor.pid'),
      status: join(workDir, 'status.json'),
      nodeState: join(workDir, 'node-state.json'),
      logs: join(workDir, 'logs'),
      master: join(workDir, 'master'),
      agent: join(workDir, 'agent'),
      volumes: join(workDir, 'volumes'),
      volumeSocket,
      agentSocket,
      cniState: join(workDir, 'cni'),
      cniConfDir: join(workDir, 'cni', 'net.d'),
      cniSocket,
      containerizerRun: join(runDir, 'containerizer'),
      discovery: join(workDir, 'discovery'),
      services: join(workDir, 'services'),
      demo: join(workDir, 'demo'),
    },
  };
}

/** Ancestors of `dirs` (up to, not including, `/run` or `/`) that do not exist yet, deepest first. */
export function missingDirs(dirs: string[]): string[] {
  const out = new Set<string>();
  for (let d of dirs) {
    while (d !== '/' && d !== '/run' && !existsSync(d)) {
      out.add(d);
      d = dirname(d);
    }
  }
  return [...out].sort((a, b) => b.length - a.length);
}

export function savePlan(plan: UpPlan): void {
  writeFileSync(plan.paths.plan, JSON.stringify(plan, null, 2) + '\n', { mode: 0o600 });
}

/** The plan of the instance in `workDir`, or undefined when `corral up` never ran there. */
export function loadPlan(workDir: string): UpPlan | undefined {
  const file = join(resolve(workDir), 'up.json');
  if (!existsSync(file)) return undefined;
  let plan: UpPlan;
  try {
    plan = JSON.parse(readFileSync(file, 'utf8')) as UpPlan;
  } catch (err) {
    throw new CorralError('FAILED_PRECONDITION', `${file} is not readable JSON (${(err as Error).message}); remove it by hand`);
  }
  if (plan.version !== 1 || plan.workDir !== resolve(workDir)) throw new CorralError('FAILED_PRECONDITION', `${file} does not describe ${resolve(workDir)}`);
  return plan;
}

/**
 * The instance as a one-node node file: every daemon on 127.0.0.1, the
 * security file on, the CNI daemon in the node namespace with its own
 * embedded Store and no BGP (one node has no peers), volumes on the local
 * backend where Docker looks for the plugin. provision's planner turns it
 * into the daemons' configurations, like any node's.
 */
export function upNodeConfig(plan: UpPlan): NodeConfigInput {
  return {
    role: 'control',
    components: ['master', 'volumes', 'cni', 'agent', 'discovery', 'services'],
    name: plan.name,
    address: '127.0.0.1',
    dir: plan.workDir,
    runDir: plan.runDir,
    // The master's file (hashes and ACLs); the operator's own is plan.paths.security (cli/up/security.ts).
    security: { file: masterSecurityFile(plan.paths.security) },
    ...(plan.tls ? { tls: { dir: plan.tls.dir } } : {}),
    control: { address: '127.0.0.1', masterPort: plan.ports.master, servicesPort: plan.ports.services, dnsPort: plan.ports.dns, discoveryHttpPort: plan.ports.discovery },
    discovery: { domain: 'corral', dnsWorkers: 'auto' },
    cni: {
      network: NETWORK,
      pools: [{ name: 'default', cidr: plan.pool.cidr, blockSize: plan.pool.blockSize }],
      store: 'embedded',
      bgp: false,
      ...(plan.hostNetwork ? {} : { netns: plan.netns.node }),
    },
    volumes: { socket: plan.paths.volumeSocket, dataDir: plan.paths.volumes },
    agent: {
      port: plan.ports.agent,
      apiSocket: plan.paths.agentSocket,
      ...(plan.agentResources ? { resources: plan.agentResources } : {}),
      cgroupRoot: plan.cgroupRoot,
      netnsPrefix: plan.netns.taskPrefix,
      // One host, one user's demo: the demo app's volume goes to the user its task runs as (nobody).
      externalVolumeChown: true,
    },
    log: { level: 'info', dir: plan.paths.logs },
  };
}

/** What the instance owns on the host: its node's scope plus the marker of its processes and the run-time directories it made. */
export function upScope(plan: UpPlan, node: NodeScope): NodeScope {
  const ownDirs = [dirname(plan.paths.volumeSocket), plan.runDir].filter((d) => d === plan.runDir || d.startsWith(`${plan.runDir}/`));
  return {
    ...node,
    // The node namespace goes with the instance unless containers are routed in the host's.
    netns: plan.hostNetwork ? [] : [plan.netns.node],
    marker: { env: MARKER_ENV, value: plan.marker },
    trees: [plan.paths.containerizerRun],
    emptyDirs: [...ownDirs, ...(plan.madeDirs ?? [])],
  };
}
