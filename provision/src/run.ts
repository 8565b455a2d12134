/**
 * Carrying out a node plan on this machine: `corral node up` writes every
 * daemon's configuration, bootstraps the lab Ceph on a control node that
 * asks for it, installs the CNI plugin, starts the daemons detached (they
 * outlive the command; their output goes to files), records them in
 * DIR/node-state.json and returns once each answers its readiness probe.
 * `down` stops exactly the recorded processes (pid and start time must
 * match); `down --purge` also wipes the node's tasks, volumes and cgroups.
 *
 * Network namespaces are not this module's business: the namespace lab runs
 * `nsenter --net=/run/netns/HOST corral node up …`, so every daemon started
 * here inherits the host's namespace, exactly as on a VM every daemon runs in
 * the machine's own.
 */
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import http from 'node:http';
import { CorralError } from '../../contracts/errors.js';
import { installCni } from '../../plugins/cni-calico-like/src/index.js';
import { corralCommand } from '../../common/sys/paths.js';
import { processAlive as isAlive, procStartTime, signalProcess as signal, tail, waitDead } from '../../common/sys/process.js';
import { bootstrapCeph } from './ceph.js';
import type { NodeConfig } from './config.js';
import { planNode, type NodePlan, type Readiness } from './plan.js';
import { cgroupPids, helperPids, netnsNamesWithPrefix, removeCgroupRoot, teardownVolumes } from './teardown.js';
import { exec } from '../../common/sys/exec.js';

export interface NodeProcess {
  name: string;
  pid: number;
  /** /proc start time: a recycled pid is never taken for ours. */
  startTime: string;
  logFile: string;
}

export interface NodeState {
  name: string;
  role: NodeConfig['role'];
  cgroupRoot: string | undefined;
  netnsPrefix: string | undefined;
  volumesDir: string | undefined;
  processes: NodeProcess[];
}

export function loadNodeState(file: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

function saveNodeState(file: string, s: NodeState): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2));
  renameSync(`${file}.tmp`, file);
}

export const ours = (p: NodeProcess): boolean => isAlive(p.pid) && procStartTime(p.pid) === p.startTime;

/** Node's own environment minus what slows every start (extra CA certificates: a lab talks plain HTTP). */
function daemonEnv(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _drop, ...rest } = process.env;
  return rest;
}

function startDetached(name: string, argv: string[], outFile: string): NodeProcess {
  mkdirSync(dirname(outFile), { recursive: true });
  const out = openSync(outFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], detached: true, env: daemonEnv() });
  closeSync(out);
  child.unref();
  if (!child.pid) throw new CorralError('INTERNAL', `could not start ${name} (${argv[0]})`);
  return { name, pid: child.pid, startTime: procStartTime(child.pid) ?? '', logFile: outFile };
}

function httpGet(o: { url?: string; socketPath?: string; path?: string }, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = o.url
      ? http.get(o.url, { timeout: timeoutMs }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
      : http.get({ socketPath: o.socketPath, path: o.path, timeout: timeoutMs }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function probe(r: Readiness, timeoutMs = 1000): Promise<boolean> {
  try {
    const status = r.kind === 'http' ? await httpGet({ url: r.url }, timeoutMs) : existsSync(r.socket) ? await httpGet({ socketPath: r.socket, path: r.path }, timeoutMs) : 0;
    return status >= 200 && status < 300;
  } catch {
    return false;
  }
}

export interface NodeUpOptions {
  /** How to run corral (default: as this process runs, see corralCommand). */
  corral?: string[];
  timeoutMs?: number;
  /** Called with every process started (tests record the pids for their cleanup script). */
  onPid?(name: string, pid: number): void;
}

export async function nodeUp(config: NodeConfig, o: NodeUpOptions = {}): Promise<NodePlan> {
  const plan = planNode(config);
  const corral = o.corral ?? corralCommand();
  mkdirSync(config.dir, { recursive: true, mode: 0o755 });
  mkdirSync(plan.runDir, { recursive: true, mode: 0o700 });
  const agent = plan.daemons.find((d) => d.name === 'agent');
  const mesos = (agent?.config as { mesos?: { cgroupRoot?: string; netnsPrefix?: string } } | undefined)?.mesos;
  const previous = loadNodeState(plan.stateFile);
  const state: NodeState = {
    name: config.name,
    role: config.role,
    cgroupRoot: mesos?.cgroupRoot,
    netnsPrefix: mesos?.netnsPrefix,
    volumesDir: plan.components.includes('volumes') ? join(config.dir, 'volumes') : undefined,
    // Re-running `up` keeps what still runs and starts only what is missing.
    processes: (previous?.processes ?? []).filter(ours),
  };
  saveNodeState(plan.stateFile, state);
  const running = (name: string) => state.processes.some((p) => p.name === name);
  const started = (p: NodeProcess) => {
    state.processes.push(p);
    saveNodeState(plan.stateFile, state);
    o.onPid?.(p.name, p.pid);
  };

  if (plan.ceph && !running('ceph-mon.a')) {
    const c = plan.ceph;
    // A memstore cluster whose daemons are gone has lost its data: start over rather than mkfs over old files.
    for (const p of state.processes.filter((x) => x.name.startsWith('ceph-'))) signal(p.pid, 'SIGKILL');
    state.processes = state.processes.filter((x) => !x.name.startsWith('ceph-'));
    rmSync(c.dir, { recursive: true, force: true });
    const cluster = await bootstrapCeph({ dir: c.dir, address: c.address, basePort: c.monPort, pools: c.pools, memstoreBytes: c.memstoreBytes }, (name, program, args) => {
      const p = startDetached(`ceph-${name}`, [program, ...args], join(c.dir, 'log', `${name}.out`));
      started(p);
      return { pid: p.pid, exited: () => (isAlive(p.pid) ? undefined : `exited: ${tail(p.logFile)}`) };
    });
    chmodSync(cluster.keyring, 0o600);
    if (c.publishDir) {
      mkdirSync(c.publishDir, { recursive: true });
      copyFileSync(cluster.clientConfFile, join(c.publishDir, 'ceph.client.conf'));
      copyFileSync(cluster.keyring, join(c.publishDir, 'keyring'));
    }
  }
  if (plan.cni) installCni({ binDir: plan.cni.binDir, confDir: plan.cni.confDir, network: plan.cni.network, socket: plan.cni.socket, chain: [] });
  for (const d of plan.daemons) {
    mkdirSync(dirname(d.configFile), { recursive: true });
    writeFileSync(d.configFile, JSON.stringify(d.config, null, 2) + '\n');
    if (!running(d.name)) started(startDetached(d.name, [...corral, ...d.args], d.outFile));
  }
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  await Promise.all(
    plan.daemons.map(async (d) => {
      const p = state.processes.find((x) => x.name === d.name)!;
      for (;;) {
        if (await probe(d.ready)) return;
        const logFile = (d.config as { log?: { file?: string } }).log?.file;
        if (!ours(p)) throw new CorralError('UNAVAILABLE', `${config.name}: ${d.name} exited during start-up:\n${tail(d.outFile)}\n${logFile ? tail(logFile, 10) : ''}`);
        if (Date.now() > deadline) throw new CorralError('TIMEOUT', `${config.name}: ${d.name} not ready after ${o.timeoutMs ?? 90_000} ms:\n${tail(d.outFile)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }),
  );
  return plan;
}

/** Stops the recorded processes, newest first: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcesses(processes: NodeProcess[], graceMs = 10_000): Promise<void> {
  const live = [...processes].reverse().filter(ours);
  for (const p of live) signal(p.pid, 'SIGTERM');
  if (!(await waitDead(live.map((p) => p.pid), graceMs))) {
    for (const p of live) if (isAlive(p.pid)) signal(p.pid, 'SIGKILL');
    await waitDead(live.map((p) => p.pid), 5000);
  }
}

/**
 * Kills the node at once, as a power cut would: every recorded daemon, every
 * task (by the agent's cgroup root) and every rbd-fuse helper, all SIGKILL.
 * Mounts and cgroups stay, as they would on a dead machine, until `wipeNode`.
 */
export async function killNode(dir: string): Promise<number[]> {
  const state = loadNodeState(join(dir, 'node-state.json'));
  if (!state) return [];
  const pids = [
    ...state.processes.filter(ours).map((p) => p.pid),
    ...(state.cgroupRoot ? cgroupPids(state.cgroupRoot) : []),
    ...(state.volumesDir ? helperPids(state.volumesDir) : []),
  ];
  for (const pid of pids) signal(pid, 'SIGKILL');
  await waitDead(pids, 5000);
  return pids;
}

/** After the daemons are gone: tasks, volume mounts (safe order), container namespaces and cgroups of the node. */
export async function wipeNode(dir: string): Promise<void> {
  const state = loadNodeState(join(dir, 'node-state.json'));
  if (!state) return;
  if (state.cgroupRoot) {
    const tasks = cgroupPids(state.cgroupRoot);
    for (const pid of tasks) signal(pid, 'SIGKILL');
    await waitDead(tasks, 5000);
  }
  if (state.volumesDir) {
    const volumesDir = state.volumesDir;
    await teardownVolumes(volumesDir, () => helperPids(volumesDir));
  }
  for (const ns of netnsNamesWithPrefix(state.netnsPrefix ?? '')) await exec('ip', ['netns', 'delete', ns], { timeoutMs: 10_000 }).catch(() => undefined);
  if (state.cgroupRoot) await removeCgroupRoot(state.cgroupRoot);
}

/** `corral node down`: stop the daemons (tasks keep running, as with any agent stop), or with `purge` wipe the node too. */
export async function nodeDown(dir: string, o: { purge?: boolean; graceMs?: number } = {}): Promise<NodeState | undefined> {
  const file = join(dir, 'node-state.json');
  const state = loadNodeState(file);
  if (!state) return undefined;
  if (o.purge) await killNode(dir);
  else await stopProcesses(state.processes, o.graceMs);
  if (o.purge) await wipeNode(dir);
  saveNodeState(file, { ...state, processes: state.processes.filter(ours) });
  return state;
}

export interface DaemonStatus {
  name: string;
  pid: number;
  running: boolean;
  ready: boolean | undefined;
}

export async function nodeStatus(config: NodeConfig): Promise<DaemonStatus[]> {
  const plan = planNode(config);
  const state = loadNodeState(plan.stateFile);
  const out: DaemonStatus[] = [];
  for (const p of state?.processes ?? []) {
    const d = plan.daemons.find((x) => x.name === p.name);
    const running = ours(p);
    out.push({ name: p.name, pid: p.pid, running, ready: d && running ? await probe(d.ready) : undefined });
  }
  return out;
}
