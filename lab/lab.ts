/**
 * A multi-host lab on one machine: every host a network namespace cabled to
 * an underlay bridge; a services namespace; an optional bird2 route
 * reflector; test containers as namespaces wired by a real CNI ADD through
 * the installed shim.
 *
 * Every machine of the lab is provisioned by the per-machine step
 * (provision/, `corral node up --config NODE_FILE`), run inside its
 * namespace with `nsenter --net` (not `ip netns exec`, which remounts /sys
 * and hides the cgroup tree the agent needs), exactly as vagrant/ runs it on
 * each VM:
 *  - CNI-only lab (default): hosts run the node daemon + exabgp; the
 *    services namespace holds etcd (provisioned) and a master with
 *    simulated agents (the lab's own process).
 *  - Full lab (`full`): the services namespace is a control node (master,
 *    services daemon, discovery, a memstore Ceph bound to its underlay
 *    address); each host runs the node daemon, the rbd volume driver and a
 *    real agent with the native containerizer, its own cgroup root, run dir,
 *    work dir and sockets.
 *
 * Long-running processes are detached. The lab's own are recorded in
 * DIR/lab.json, each node's in its DIR/…/node-state.json, so `corral lab
 * down` (or a test's cleanup) stops exactly what was started.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, errorMessage } from '../contracts/errors.js';
import { deleteNamedNetns, namedNetnsPath, createNamedNetns, netnsPids } from '../common/netkit/netns.js';
import { daemonRequest } from '../plugins/cni-calico-like/src/index.js';
import { corralCommand } from '../common/sys/paths.js';
import { CniRuntime, loadConfFile, type NetworkConfList } from '../common/cni-runtime/index.js';
import { inNamespace, signalProcess as signal, tail, waitDead } from '../common/sys/process.js';
import { waitUntil } from '../common/sys/wait.js';
import { run } from '../common/sys/exec.js';
import { ip } from '../common/sys/ip.js';
import {
  planLab,
  hostNodeConfig,
  controlNodeConfig,
  servicesNodeConfig,
  servicesBundleNode,
  birdReflectorConfig,
  labSecure,
  LAB_DEFAULTS,
  type LabOptions,
  type LabPlan,
  type HostPlan,
} from './topology.js';
import { machinePrincipals, secureLab } from './security.js';
import { cable, createUnderlay } from './underlay.js';
import { writeLabServicesSettings } from './services.js';
import { killNode, loadNodeState, nodeDown, ours, startDaemon, stopProcesses, type NodeProcess, type NodeState } from '../provision/src/index.js';

/** The lab's own processes (the simulated-agent master, bird), recorded as the node lifecycle records daemons. */
export type LabProcess = NodeProcess;

export interface LabContainer {
  id: string;
  host: string;
  netns: string;
  ip: string;
}

export interface LabState {
  plan: LabPlan;
  processes: LabProcess[];
  containers: LabContainer[];
  /** Hosts killed with `killHost` (their namespaces stay, cut off, until `down`). */
  killed?: string[];
}

const stateFile = (dir: string): string => join(dir, 'lab.json');

export function loadLab(dir: string): LabState {
  if (!existsSync(stateFile(dir))) throw new CorralError('NOT_FOUND', `no lab in ${dir}`);
  return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState;
}

function saveLab(s: LabState): void {
  writeFileSync(stateFile(s.plan.options.dir), JSON.stringify(s, null, 2));
}

/** Starts a detached process in a namespace, output to logFile (the node lifecycle's start, recorded by pid and start time). */
function launch(name: string, netns: string, argv: string[], logFile: string, onPid?: (name: string, pid: number) => void): LabProcess {
  const { process: p } = startDaemon({ name, argv, outFile: logFile, netns, ready: async () => '' }, { detached: true });
  onPid?.(name, p.pid);
  return p;
}

export interface LabUpOptions extends Partial<Omit<LabOptions, 'prefix' | 'hosts' | 'dir'>> {
  prefix: string;
  hosts: number;
  dir: string;
  /** Test containers per host. */
  containers?: number;
  /** Called with every long-running pid (tests record them for cleanup). */
  onPid?(name: string, pid: number): void;
}

/**
 * The per-machine step, inside the machine's namespace: `corral node up
 * --config FILE` with the namespace entered by nsenter, so every daemon it
 * starts lives there. Resolves once the node reports every daemon ready.
 */
export async function provisionNode(netns: string, nodeFile: string, logFile: string, onPid?: (name: string, pid: number) => void, timeoutMs = 180_000): Promise<NodeState> {
  const argv = inNamespace(netns, [...corralCommand(), 'node', 'up', '--config', nodeFile]);
  const out = openSync(logFile, 'a');
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
    child.on('error', () => resolve(-1));
  });
  closeSync(out);
  const state = loadNodeState(join(JSON.parse(readFileSync(nodeFile, 'utf8')).dir as string, 'node-state.json'));
  for (const p of state?.processes ?? []) onPid?.(`${p.name}`, p.pid);
  if (code !== 0) throw new CorralError('UNAVAILABLE', `corral node up (${nodeFile}) in ${netns} failed (exit ${code}):\n${tail(logFile, 30)}`);
  return state!;
}

export async function labUp(o: LabUpOptions): Promise<LabState> {
  const plan = planLab({ ...LAB_DEFAULTS, routeReflector: false, ...o });
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const state: LabState = { plan, processes: [], containers: [] };
  saveLab(state);
  const { prefixLen } = plan;
  const full = plan.options.full;
  // 1. Underlay and cables.
  await createUnderlay(plan.underlayNetns);
  await cable({ underlay: plan.underlayNetns, node: plan.services.netns, port: 'psvc', address: plan.services.ip, prefixLen });
  for (const c of plan.controls.slice(1)) await cable({ underlay: plan.underlayNetns, node: c.netns, port: `p${c.name.replace('control', 'c')}`, address: c.ip, prefixLen });
  for (const h of plan.hosts) {
    await cable({ underlay: plan.underlayNetns, node: h.netns, port: `p${h.name}`, address: h.ip, prefixLen, gateway: plan.services.ip });
  }
  if (plan.reflector) await cable({ underlay: plan.underlayNetns, node: plan.reflector.netns, port: 'prr', address: plan.reflector.ip, prefixLen });
  const svc = plan.services;
  mkdirSync(svc.dir, { recursive: true });
  // The secure configuration, before any machine starts: the CA in the operator's directory, each machine its own
  // certificates and credentials (lab/security.ts).
  if (labSecure(plan.options)) {
    const controls = full ? plan.controls.map((c) => controlNodeConfig(plan, c)) : [servicesBundleNode(plan)];
    await secureLab(
      plan.options.dir,
      [...controls, ...plan.hosts.map((h) => hostNodeConfig(plan, h))].map((node) => ({ node, own: machinePrincipals(node) })),
    );
  }
  if (full) {
    // 2. The control nodes (Ceph, master, services, discovery; with three, an etcd member each): all at once, since
    // an etcd member is ready only once the cluster has a quorum.
    await Promise.all(
      plan.controls.map(async (c) => {
        mkdirSync(c.dir, { recursive: true });
        writeFileSync(c.nodeFile, JSON.stringify(controlNodeConfig(plan, c), null, 2));
        await provisionNode(c.netns, c.nodeFile, join(c.dir, 'node-up.log'), o.onPid);
      }),
    );
  } else {
    // 2. Services: etcd, provisioned like any machine (secure unless the lab is insecure), then the lab's master with
    // one simulated agent per host, with the services machine's certificates and security file.
    const node = servicesNodeConfig(plan);
    writeFileSync(svc.nodeFile, JSON.stringify(node, null, 2));
    await provisionNode(svc.netns, svc.nodeFile, join(svc.dir, 'node-up.log'), o.onPid);
    const servicesDir = join(svc.dir, 'cluster');
    writeLabServicesSettings(servicesDir, node.tls && node.security ? { tlsDir: node.tls.dir, security: node.security.file } : { insecure: true });
    state.processes.push(
      launch(
        'master',
        svc.netns,
        [...corralCommand(), 'lab', 'services', '--listen', svc.ip, '--port', String(plan.options.masterPort), '--dir', servicesDir, '--agents', plan.hosts.map((h) => h.ip).join(',')],
        join(svc.dir, 'services.log'),
        o.onPid,
      ),
    );
    saveLab(state);
    // The hosts' daemons would wait for it too; a master that cannot start is said here, with its log.
    const trust = plan.operator ? ['--cacert', plan.operator.ca] : [];
    await waitUntil(() => inNetnsFetch(svc.netns, [...trust, `${plan.masterUrl}/health`]), { what: 'the lab master to answer', timeoutMs: 30_000, detail: () => tail(join(svc.dir, 'services.log')) });
  }
  // 3. Optional route reflector.
  if (plan.reflector) {
    const rr = plan.reflector;
    mkdirSync(rr.dir, { recursive: true });
    const conf = join(rr.dir, 'bird.conf');
    writeFileSync(conf, birdReflectorConfig(plan));
    state.processes.push(launch('bird', rr.netns, ['bird', '-f', '-c', conf, '-s', join(rr.dir, 'bird.ctl'), '-P', join(rr.dir, 'bird.pid')], join(rr.dir, 'bird.log'), o.onPid));
    saveLab(state);
  }
  // 4. Hosts: each provisioned by the per-machine step in its namespace, all at once.
  await Promise.all(
    plan.hosts.map(async (h) => {
      mkdirSync(h.dir, { recursive: true });
      writeFileSync(h.configFile, JSON.stringify(hostNodeConfig(plan, h), null, 2));
      await provisionNode(h.netns, h.configFile, join(h.dir, 'node-up.log'), o.onPid);
    }),
  );
  // 5. Test containers.
  for (let j = 1; j <= (o.containers ?? 0); j++) {
    for (const h of plan.hosts) await addContainer(state, h.name, `${h.name}c${j}`);
  }
  return state;
}

async function inNetnsFetch(netns: string, curlArgs: string[]): Promise<boolean> {
  const argv = inNamespace(netns, ['curl', '-sf', '--max-time', '1', ...curlArgs]);
  return (await run(argv[0]!, argv.slice(1), { timeoutMs: 5000 })).code === 0;
}

function hostOf(state: LabState, host: string): HostPlan {
  const h = state.plan.hosts.find((x) => x.name === host);
  if (!h) throw new CorralError('NOT_FOUND', `no host ${host} in the lab (hosts: ${state.plan.hosts.map((x) => x.name).join(', ')})`);
  return h;
}

/** The network `corral node up` installed on a lab host, and a CNI runtime over its plugin directory. */
const labNetwork = (h: HostPlan): NetworkConfList => loadConfFile(join(h.confDir, '10-lab.conflist'));
const labRuntime = (h: HostPlan): CniRuntime => new CniRuntime({ binDirs: [h.binDir], cacheDir: join(h.dir, 'cni', 'cache') });

/** A test container: a namespace wired by a real CNI ADD through the host's installed plugin. */
export async function addContainer(state: LabState, host: string, id: string, pools?: string[]): Promise<LabContainer> {
  const h = hostOf(state, host);
  const netns = `${state.plan.options.prefix}-${id}`;
  await createNamedNetns(netns);
  const list = labNetwork(h);
  // A container may ask for other pools than the network's: they go to the first plugin (corral's).
  const net = pools ? { ...list, plugins: [{ ...list.plugins[0]!, pools }, ...list.plugins.slice(1)] } : list;
  const res = await labRuntime(h)
    .add(net, { containerId: id, netns: namedNetnsPath(netns), ifname: 'eth0' })
    .catch((err: unknown) => {
      throw new CorralError('INTERNAL', `CNI ADD of ${id} on ${host} failed: ${errorMessage(err)}`);
    });
  const ip = (res as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
  const c: LabContainer = { id, host, netns, ip };
  state.containers.push(c);
  saveLab(state);
  return c;
}

async function killNetnsMembers(netns: string): Promise<number[]> {
  const pids = await netnsPids(netns).catch(() => [] as number[]);
  for (const pid of pids) signal(pid, 'SIGKILL');
  await waitDead(pids, 5000);
  return pids;
}

/**
 * A host dies, as a power cut would take it: SIGKILL every process of the
 * host (its daemons, exabgp, rbd-fuse, the task launcher and supervisors:
 * everything in its namespace; its tasks: everything in its agent's cgroup
 * root), then its underlay link is deleted, so peers see silence, not a
 * goodbye. Its mounts stay, as on a dead machine, until `labDown`.
 * Resolves with the time the host was dead (after the link went).
 */
export async function killHost(state: LabState, host: string): Promise<number> {
  const h = hostOf(state, host);
  // Cut the cable first: nothing the dying processes send (FIN, BGP notification) may reach a peer.
  await ip(['-n', state.plan.underlayNetns, 'link', 'del', `p${h.name}`]).catch(() => undefined);
  const killedAt = Date.now();
  await killNode(h.dir);
  await killNetnsMembers(h.netns);
  state.killed = [...(state.killed ?? []), host];
  saveLab(state);
  return killedAt;
}

/** Stops everything the lab started and removes its namespaces and files. Safe to call twice. */
export async function labDown(dir: string): Promise<void> {
  if (!existsSync(stateFile(dir))) return;
  const state = loadLab(dir);
  const { plan } = state;
  // Hosts first, all at once: their tasks and data paths must be gone before Ceph or the Store.
  for (const h of plan.hosts) {
    await killNode(h.dir);
    await killNetnsMembers(h.netns);
  }
  for (const h of plan.hosts) await nodeDown(h.dir, { purge: true });
  // Then the control node (newest first: discovery, services, master, the OSD, the mon), then the lab's own.
  const controls = plan.controls ?? [{ ...plan.services, name: 'control' }];
  for (const c of [...controls].reverse()) await nodeDown(c.nodeDir);
  await stopProcesses(state.processes);
  const names = [...state.containers.map((c) => c.netns), ...plan.hosts.map((h) => h.netns), ...controls.map((c) => c.netns), ...(plan.reflector ? [plan.reflector.netns] : []), plan.underlayNetns];
  for (const n of names) {
    // Anything still inside (a helper a test started) is ours: the namespace is the lab's.
    await killNetnsMembers(n);
    await deleteNamedNetns(n);
  }
  rmSync(dir, { recursive: true, force: true });
}

interface HostStatus {
  host: string;
  ip: string;
  daemon: boolean;
  sessionsUp: number;
  peers: number;
  routes: number;
  containers: number;
}

export async function labStatus(dir: string): Promise<HostStatus[]> {
  const state = loadLab(dir);
  const out: HostStatus[] = [];
  for (const h of state.plan.hosts) {
    const proc = loadNodeState(join(h.dir, 'node-state.json'))?.processes.find((p) => p.name === 'cni');
    let sessionsUp = 0;
    let peers = 0;
    let routes = 0;
    try {
      const s = await daemonRequest<{ bgp?: { sessions: Array<{ state: string }> } }>(h.socket, 'GET', '/v1/status', undefined, 2000);
      peers = s.bgp?.sessions.length ?? 0;
      sessionsUp = s.bgp?.sessions.filter((x) => x.state === 'up').length ?? 0;
      const r = await daemonRequest<{ learned: Record<string, string> }>(h.socket, 'GET', '/v1/routes', undefined, 2000);
      routes = Object.keys(r.learned).length;
    } catch {
      // daemon down: zeros
    }
    out.push({ host: h.name, ip: h.ip, daemon: !!proc && ours(proc), sessionsUp, peers, routes, containers: state.containers.filter((c) => c.host === h.name).length });
  }
  return out;
}

/** The namespace of a lab host or container, by name (h1, h1c1, rr, svc, ul). */
export function labNetns(state: LabState, name: string): string {
  const p = state.plan;
  if (name === 'svc') return p.services.netns;
  const control = p.controls?.find((c) => c.name === name || c.netns === `${p.options.prefix}-${name}`);
  if (control) return control.netns;
  if (name === 'ul') return p.underlayNetns;
  if (name === 'rr' && p.reflector) return p.reflector.netns;
  const h = p.hosts.find((x) => x.name === name);
  if (h) return h.netns;
  const c = state.containers.find((x) => x.id === name);
  if (c) return c.netns;
  throw new CorralError('NOT_FOUND', `nothing named ${name} in the lab`);
}
