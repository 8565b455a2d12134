/**
 * Carrying out a node plan on this machine: `corral node up` writes every
 * daemon's configuration, bootstraps the lab Ceph on a control node that
 * asks for it, installs the CNI plugin, and reconciles the node to
 * `running` (lifecycle.ts: daemons started detached, in order, recorded in
 * DIR/node-state.json with the node's scope). `down` reconciles to
 * `stopped` (exactly the recorded processes: pid and start time must
 * match); `down --purge` to `purged` (the node's tasks, volumes, mounts,
 * namespaces and cgroups too).
 *
 * Network namespaces are not this module's business: the namespace lab runs
 * `nsenter --net=/run/netns/HOST corral node up …`, so every daemon started
 * here inherits the host's namespace, exactly as on a VM every daemon runs in
 * the machine's own.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { randomUUID } from 'node:crypto';
import { installCni } from '../../plugins/cni-calico-like/src/index.js';
import { loadSecurity, ownCredential } from '../../core-scheduler/src/index.js';
import { CorralError } from '../../contracts/errors.js';
import { corralCommand } from '../../common/sys/paths.js';
import { processAlive, signalProcess, tail } from '../../common/sys/process.js';
import { bootstrapCeph, cephAdminArgs, ensureRbdClient, listVolumeClients, removeRbdClient, writeKeyring } from './ceph.js';
import { componentsOf, type NodeConfig } from './config.js';
import { cephClientFiles, planNode, type CephPlan, type DaemonPlan, type NodePlan, type PlanSecrets, type Readiness } from './plan.js';
import { ensureNodeCertificates } from './tls.js';
import { ensureEtcdCertificates, secureEtcd } from './etcd-tls.js';
import { killNodeProcesses, loadNodeState, ours, reconcileNode, saveNodeState, startDaemon, type DaemonSpec, type NodeState } from './lifecycle.js';

function httpGet(o: { url?: string; ca?: string | undefined; socketPath?: string; path?: string }, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const onRes = (res: http.IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c.length + body.length <= 65536 ? c : ''));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    // An https daemon is checked against the node's CA (readiness.ca), as its clients check it.
    const req = o.url
      ? o.url.startsWith('https:')
        ? https.get(o.url, { timeout: timeoutMs, ...(o.ca !== undefined && { ca: readFileSync(o.ca) }) }, onRes)
        : http.get(o.url, { timeout: timeoutMs }, onRes)
      : http.get({ socketPath: o.socketPath, path: o.path, timeout: timeoutMs }, onRes);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const field = (body: string, path: string[]): unknown => {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
};

/** Throws while the daemon does not serve as its plan says; resolves with a short description once it does. */
async function checkReady(r: Readiness, timeoutMs = 2000): Promise<string> {
  if (r.kind === 'unix' && !existsSync(r.socket)) throw new Error(`no socket ${r.socket} yet`);
  const res = r.kind === 'http' ? await httpGet({ url: r.url, ca: r.ca }, timeoutMs) : await httpGet({ socketPath: r.socket, path: r.path }, timeoutMs);
  if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
  if (r.expect && field(res.body, r.expect.field) !== r.expect.equals) throw new Error(r.expect.waiting);
  const shown = r.show ? field(res.body, r.show.field) : undefined;
  return r.show ? r.show.text.replace('{}', String(shown)) : r.kind === 'http' ? r.url : r.socket;
}

async function probe(r: Readiness, timeoutMs = 1000): Promise<boolean> {
  return checkReady(r, timeoutMs).then(
    () => true,
    () => false,
  );
}

/** Node's own environment minus what slows every start (extra CA certificates: a lab talks plain HTTP). */
function daemonEnv(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _drop, ...rest } = process.env;
  return rest;
}

/** A planned daemon as the lifecycle runs it: the corral command, its output file, its probe. */
export function daemonSpec(d: DaemonPlan, corral: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; globalArgs?: string[] } = {}): DaemonSpec {
  return {
    name: d.name,
    what: d.what,
    // `corral` starts with the node executable (corralCommand, the CLI's own command line): node's flags go right after it.
    argv: d.program ? [d.program, ...d.args] : [corral[0]!, ...(d.nodeFlags ?? []), ...corral.slice(1), ...(o.globalArgs ?? []), ...d.args],
    outFile: d.outFile,
    ...(d.netns ? { netns: d.netns } : {}),
    env: o.env ?? daemonEnv(),
    ...(o.cwd ? { cwd: o.cwd } : {}),
    ready: () => checkReady(d.ready),
  };
}

/** Writes every daemon's configuration (0600: it may hold credentials) and the CNI network. */
export function writeNodeFiles(plan: NodePlan): void {
  mkdirSync(plan.node.dir, { recursive: true, mode: 0o755 });
  mkdirSync(plan.runDir, { recursive: true, mode: 0o700 });
  if (plan.cni) installCni({ binDir: plan.cni.binDir, confDir: plan.cni.confDir, network: plan.cni.network, socket: plan.cni.socket, chain: [] });
  for (const d of plan.daemons) {
    mkdirSync(dirname(d.configFile), { recursive: true });
    writeFileSync(d.configFile, JSON.stringify(d.config, null, 2) + '\n', { mode: 0o600 });
    chmodSync(d.configFile, 0o600);
  }
  writeDiscoveryToken(plan);
}

/** Discovery's ACL bootstrap token: made once per node (a random UUID), readable by root only, kept across node ups. */
function writeDiscoveryToken(plan: NodePlan): void {
  const d = plan.daemons.find((x) => x.name === 'discovery');
  const file = (d?.config as { acl?: { bootstrapTokenFile?: string } } | undefined)?.acl?.bootstrapTokenFile;
  if (!file) return;
  if (!existsSync(file)) writeFileSync(file, `${randomUUID()}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

interface NodeUpOptions {
  /** How to run corral (default: as this process runs, see corralCommand). */
  corral?: string[];
  timeoutMs?: number;
  secrets?: PlanSecrets;
  /** Called with every process started (tests record the pids for their cleanup script). */
  onPid?(name: string, pid: number): void;
}

/**
 * The credentials a node's client daemons use, from its security file: a host
 * holds the secrets of its own principals in plain text and everyone else's
 * as hashes only, so the plain-text credential the ACLs allow each use is
 * this host's. By use: `agents` (agent) in acls.agents, `frameworks`
 * (services daemon) in register_frameworks, `admin` (discovery, which follows
 * the master) in acls.view or acls.operators, `cni` (the CNI daemon's store
 * access) one named `cni` or in an explicit acls.store, else the agent's. A
 * principal named like the use (the older layout: admin, frameworks, agents)
 * comes first. Only the uses of the daemons the node runs are looked for: an
 * agent host holds no framework's or discovery's secret.
 */
export function secretsOf(config: NodeConfig): PlanSecrets | undefined {
  if (!config.security) return undefined;
  const sec = loadSecurity(config.security.file);
  const listed = (list: 'ANY' | string[] | undefined, p: string): boolean => list === 'ANY' || (list ?? []).includes(p);
  const cred = (use: keyof PlanSecrets, acl: string, allowed: (p: string) => boolean): { principal: string; secret: string } => {
    const c = ownCredential(sec, (p) => p === use) ?? ownCredential(sec, allowed);
    if (!c)
      throw new CorralError(
        'INVALID_ARGUMENT',
        `node ${config.name}: the security file ${config.security!.file} has no credential for "${use}" (a principal with its secret in plain text, allowed by ${acl})`,
      );
    return c;
  };
  // Only the uses of the daemons this node runs: a host is handed its own credentials, not the control plane's.
  const runs = componentsOf(config);
  const admin = runs.includes('discovery') ? cred('admin', 'acls.view or acls.operators', (p) => listed(sec.acls.view, p) || listed(sec.acls.operators, p)) : undefined;
  const frameworks = runs.includes('services') ? cred('frameworks', 'acls.register_frameworks', (p) => sec.acls.register_frameworks.some((r) => listed(r.principals, p))) : undefined;
  const agents = runs.includes('agent') ? cred('agents', 'acls.agents', (p) => listed(sec.acls.agents, p)) : undefined;
  // Its own: not one another daemon of the host already uses.
  const taken = new Set([admin?.principal, frameworks?.principal, agents?.principal]);
  const cni = runs.includes('cni') ? (ownCredential(sec, (p) => p === 'cni') ?? (sec.acls.store ? ownCredential(sec, (p) => !taken.has(p) && listed(sec.acls.store, p)) : undefined)) : undefined;
  return { ...(admin ? { admin } : {}), ...(frameworks ? { frameworks } : {}), ...(agents ? { agents } : {}), ...(cni ? { cni } : {}) };
}

export async function nodeUp(config: NodeConfig, o: NodeUpOptions = {}): Promise<NodePlan> {
  const secrets = o.secrets ?? secretsOf(config);
  await ensureNodeCertificates(config, secrets?.agents?.principal);
  await ensureEtcdCertificates(config);
  const plan = planNode(config, secrets);
  const corral = o.corral ?? corralCommand();
  writeNodeFiles(plan);
  const previous = loadNodeState(plan.stateFile);
  // A cluster already running (a node brought up again): etcd learns its users before daemons start as them.
  await secureEtcd(config, { ifRunning: true });
  if (plan.ceph && !previous?.processes.some((p) => p.name === 'ceph-mon.a' && ours(p))) await bootstrapNodeCeph(plan, previous, o.onPid);
  if (plan.ceph) await handOutCephClients(plan.ceph);
  await reconcileNode('running', {
    stateFile: plan.stateFile,
    name: config.name,
    role: config.role,
    scope: plan.scope,
    daemons: plan.daemons.map((d) => daemonSpec(d, corral)),
    timeoutMs: o.timeoutMs ?? 90_000,
    unmanaged: (name) => name.startsWith('ceph-'),
    ...(o.onPid ? { onPid: o.onPid } : {}),
    logOf: (d) => (plan.daemons.find((x) => x.name === d.name)?.config as { log?: { file?: string } } | undefined)?.log?.file,
  });
  // The etcd cluster has quorum (its members are ready): authentication on, each daemon confined to its own keys.
  await secureEtcd(config);
  return plan;
}

/** A memstore cluster whose daemons are gone has lost its data: start over rather than mkfs over old files. */
async function bootstrapNodeCeph(plan: NodePlan, previous: NodeState | undefined, onPid?: (name: string, pid: number) => void): Promise<void> {
  const c = plan.ceph!;
  const state: NodeState = { name: plan.node.name, role: plan.node.role, processes: (previous?.processes ?? []).filter(ours), scope: plan.scope };
  for (const p of state.processes.filter((x) => x.name.startsWith('ceph-'))) signalProcess(p.pid, 'SIGKILL');
  state.processes = state.processes.filter((x) => !x.name.startsWith('ceph-'));
  rmSync(c.dir, { recursive: true, force: true });
  const cluster = await bootstrapCeph({ dir: c.dir, address: c.address, basePort: c.monPort, pools: c.pools, memstoreBytes: c.memstoreBytes }, (name, program, args) => {
    const outFile = join(c.dir, 'log', `${name}.out`);
    const { process: p } = startDaemon({ name: `ceph-${name}`, argv: [program, ...args], outFile, env: daemonEnv(), ready: async () => '' }, { detached: true });
    state.processes.push(p);
    saveNodeState(plan.stateFile, state);
    onPid?.(p.name, p.pid);
    return { pid: p.pid, exited: () => (processAlive(p.pid) ? undefined : `exited: ${tail(p.logFile)}`) };
  });
  // The cluster's keyring (mon., client.admin, osd.0) never leaves this node.
  chmodSync(cluster.keyring, 0o600);
}

/**
 * Each volume host its own client (`profile rbd` on the lab's pools) and its
 * own keyring, written with the client conf into that host's directory, on
 * every node up (get-or-create: the same key again; a rebootstrapped cluster
 * gets new ones). A corral volume client no longer listed is revoked. The
 * publish directory gets the client conf only: keyrings go per host.
 */
export async function handOutCephClients(c: CephPlan): Promise<void> {
  const admin = cephAdminArgs(c.dir);
  const conf = readFileSync(join(c.dir, 'ceph.client.conf'));
  for (const client of c.clients) {
    const keyring = await ensureRbdClient(admin, client.name, c.pools);
    mkdirSync(client.dir, { recursive: true, mode: 0o700 });
    chmodSync(client.dir, 0o700);
    const files = cephClientFiles(client.dir);
    writeFileSync(files.confFile, conf);
    writeKeyring(files.keyring, keyring);
  }
  const wanted = new Set(c.clients.map((x) => x.name));
  for (const name of await listVolumeClients(admin)) {
    if (!wanted.has(name)) await removeRbdClient(admin, name);
  }
  if (c.publishDir) {
    mkdirSync(c.publishDir, { recursive: true });
    copyFileSync(join(c.dir, 'ceph.client.conf'), join(c.publishDir, 'ceph.client.conf'));
    // Earlier versions published client.admin's keyring here.
    rmSync(join(c.publishDir, 'keyring'), { force: true });
  }
}

const stateFileOf = (dir: string): string => join(dir, 'node-state.json');

/**
 * Kills the node at once, as a power cut would: every recorded daemon, every
 * task (by the agent's cgroup root) and every rbd-fuse helper, all SIGKILL.
 * Mounts and cgroups stay, as they would on a dead machine, until a purge.
 */
export const killNode = (dir: string): Promise<number[]> => killNodeProcesses(stateFileOf(dir));

/** `corral node down`: stop the daemons (tasks keep running, as with any agent stop), or with `purge` wipe the node too. */
export async function nodeDown(dir: string, o: { purge?: boolean; graceMs?: number } = {}): Promise<NodeState | undefined> {
  const previous = loadNodeState(stateFileOf(dir));
  if (!previous) return undefined;
  await reconcileNode(o.purge ? 'purged' : 'stopped', { stateFile: stateFileOf(dir), name: previous.name, ...(o.graceMs !== undefined ? { graceMs: o.graceMs } : {}) });
  return previous;
}

interface DaemonStatus {
  name: string;
  pid: number;
  running: boolean;
  ready: boolean | undefined;
}

export async function nodeStatus(config: NodeConfig): Promise<DaemonStatus[]> {
  const plan = planNode(config, secretsOf(config));
  const state = loadNodeState(plan.stateFile);
  const out: DaemonStatus[] = [];
  for (const p of state?.processes ?? []) {
    const d = plan.daemons.find((x) => x.name === p.name);
    const running = ours(p);
    out.push({ name: p.name, pid: p.pid, running, ready: d && running ? await probe(d.ready) : undefined });
  }
  return out;
}
