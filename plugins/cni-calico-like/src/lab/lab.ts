/**
 * A multi-host lab on one machine: every host a network namespace cabled to
 * an underlay bridge, each running the real node daemon + exabgp; etcd and a
 * master (with one simulated agent per host) in a services namespace; an
 * optional bird2 route reflector; test containers as namespaces wired by a
 * real CNI ADD through the installed shim. The steps are the provisioning a
 * Vagrant lab runs on real VMs: plan, cable, start services, per host
 * (install CNI, write config, start daemon), then containers.
 *
 * Long-running processes are detached and recorded in DIR/lab.json, so
 * `corral lab down` (or a test's cleanup) stops exactly what was started.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError } from '../../../../common/errors.js';
import { deleteNamedNetns, namedNetnsPath, createNamedNetns, netnsPids } from '../netkit/netns.js';
import { installCni } from '../install.js';
import { daemonRequest } from '../daemon/client.js';
import { corralCommand, execPlugin, inNamespace, tail } from './processes.js';
import { planLab, hostDaemonConfig, birdReflectorConfig, LAB_DEFAULTS, type LabOptions, type LabPlan, type HostPlan } from './topology.js';
import { cable, createUnderlay } from './underlay.js';

export interface LabProcess {
  name: string;
  pid: number;
  /** Text in its command line that proves the pid is still ours. */
  marker: string;
}

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
}

const stateFile = (dir: string): string => join(dir, 'lab.json');

export function loadLab(dir: string): LabState {
  if (!existsSync(stateFile(dir))) throw new CorralError('NOT_FOUND', `no lab in ${dir}`);
  return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState;
}

function saveLab(s: LabState): void {
  writeFileSync(stateFile(s.plan.options.dir), JSON.stringify(s, null, 2));
}

function ownedPid(p: LabProcess): boolean {
  try {
    const state = readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z' && readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes(p.marker);
  } catch {
    return false;
  }
}

/** Starts a detached process in a namespace, output to logFile. */
function launch(name: string, netns: string, argv: string[], logFile: string, marker: string, onPid?: (name: string, pid: number) => void): LabProcess {
  const full = inNamespace(netns, argv);
  const out = openSync(logFile, 'a');
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  if (!child.pid) throw new CorralError('INTERNAL', `could not start ${name}`);
  onPid?.(name, child.pid);
  return { name, pid: child.pid, marker };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, log?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new CorralError('TIMEOUT', `${what} not ready after ${timeoutMs} ms${log ? `: ${tail(log)}` : ''}`);
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

export async function labUp(o: LabUpOptions): Promise<LabState> {
  const plan = planLab({ ...LAB_DEFAULTS, routeReflector: false, ...o });
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const state: LabState = { plan, processes: [], containers: [] };
  saveLab(state);
  const { prefixLen } = plan;
  // 1. Underlay and cables.
  await createUnderlay(plan.underlayNetns);
  await cable({ underlay: plan.underlayNetns, node: plan.services.netns, port: 'psvc', address: plan.services.ip, prefixLen });
  for (const h of plan.hosts) {
    await cable({ underlay: plan.underlayNetns, node: h.netns, port: `p${h.name}`, address: h.ip, prefixLen, gateway: plan.services.ip });
  }
  if (plan.reflector) await cable({ underlay: plan.underlayNetns, node: plan.reflector.netns, port: 'prr', address: plan.reflector.ip, prefixLen });
  // 2. Services: etcd and the master with one agent per host.
  const svc = plan.services;
  mkdirSync(svc.dir, { recursive: true });
  const etcdUrl = plan.etcdUrl;
  const peerUrl = `http://${svc.ip}:${plan.options.etcdPort + 1}`;
  const etcdData = join(svc.dir, 'etcd');
  state.processes.push(launch('etcd', svc.netns, [
    process.env.CORRAL_ETCD_BIN ?? '/usr/bin/etcd', '--name', 'lab', '--data-dir', etcdData,
    '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `lab=${peerUrl}`,
    '--log-level', 'warn',
  ], join(svc.dir, 'etcd.log'), etcdData, o.onPid));
  const servicesDir = join(svc.dir, 'cluster');
  state.processes.push(launch('master', svc.netns, [
    ...corralCommand(), 'lab', 'services', '--listen', svc.ip, '--port', String(plan.options.masterPort), '--dir', servicesDir, '--agents', plan.hosts.map((h) => h.ip).join(','),
  ], join(svc.dir, 'services.log'), servicesDir, o.onPid));
  saveLab(state);
  await waitFor('etcd', () => inNetnsFetch(svc.netns, `${etcdUrl}/health`), 20_000, join(svc.dir, 'etcd.log'));
  // 3. Optional route reflector.
  if (plan.reflector) {
    const rr = plan.reflector;
    mkdirSync(rr.dir, { recursive: true });
    const conf = join(rr.dir, 'bird.conf');
    writeFileSync(conf, birdReflectorConfig(plan));
    state.processes.push(launch('bird', rr.netns, ['bird', '-f', '-c', conf, '-s', join(rr.dir, 'bird.ctl'), '-P', join(rr.dir, 'bird.pid')], join(rr.dir, 'bird.log'), conf, o.onPid));
    saveLab(state);
  }
  // 4. Hosts: install the plugin, write the daemon config, start the daemon.
  for (const h of plan.hosts) {
    mkdirSync(h.dir, { recursive: true });
    installCni({ binDir: h.binDir, confDir: h.confDir, network: 'lab', socket: h.socket, chain: [] });
    writeFileSync(h.configFile, JSON.stringify(hostDaemonConfig(plan, h), null, 2));
    state.processes.push(launch(`daemon-${h.name}`, h.netns, [...corralCommand(), 'cni', 'daemon', '--config', h.configFile], join(h.dir, 'daemon.out'), h.configFile, o.onPid));
    saveLab(state);
  }
  for (const h of plan.hosts) {
    await waitFor(`node daemon on ${h.name}`, async () => existsSync(h.socket) && !!(await daemonRequest(h.socket, 'GET', '/v1/status', undefined, 2000)), 60_000, join(h.dir, 'daemon.out'));
  }
  // 5. Test containers.
  for (let j = 1; j <= (o.containers ?? 0); j++) {
    for (const h of plan.hosts) await addContainer(state, h.name, `${h.name}c${j}`);
  }
  return state;
}

async function inNetnsFetch(netns: string, url: string): Promise<boolean> {
  const argv = inNamespace(netns, ['curl', '-sf', '--max-time', '1', url]);
  return new Promise((resolve) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    c.on('exit', (code) => resolve(code === 0));
    c.on('error', () => resolve(false));
  });
}

function hostOf(state: LabState, host: string): HostPlan {
  const h = state.plan.hosts.find((x) => x.name === host);
  if (!h) throw new CorralError('NOT_FOUND', `no host ${host} in the lab (hosts: ${state.plan.hosts.map((x) => x.name).join(', ')})`);
  return h;
}

/** A test container: a namespace wired by a real CNI ADD through the host's installed plugin. */
export async function addContainer(state: LabState, host: string, id: string, pools?: string[]): Promise<LabContainer> {
  const h = hostOf(state, host);
  const netns = `${state.plan.options.prefix}-${id}`;
  await createNamedNetns(netns);
  const conf = JSON.parse(readFileSync(join(h.confDir, '10-lab.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  const res = await execPlugin(join(h.binDir, 'corral'), { command: 'ADD', containerId: id, netns: namedNetnsPath(netns), ifname: 'eth0' }, { cniVersion: conf.cniVersion, name: conf.name, ...conf.plugins[0], ...(pools ? { pools } : {}) });
  if (res.code !== 0) throw new CorralError('INTERNAL', `CNI ADD of ${id} on ${host} failed: ${res.stdout}${res.stderr}`);
  const ip = (res.json as { ips: Array<{ address: string }> }).ips[0]!.address.split('/')[0]!;
  const c: LabContainer = { id, host, netns, ip };
  state.containers.push(c);
  saveLab(state);
  return c;
}

export async function removeContainer(state: LabState, id: string): Promise<void> {
  const c = state.containers.find((x) => x.id === id);
  if (!c) return;
  const h = hostOf(state, c.host);
  const conf = JSON.parse(readFileSync(join(h.confDir, '10-lab.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  await execPlugin(join(h.binDir, 'corral'), { command: 'DEL', containerId: c.id, netns: namedNetnsPath(c.netns), ifname: 'eth0' }, { cniVersion: conf.cniVersion, name: conf.name, ...conf.plugins[0] });
  await deleteNamedNetns(c.netns);
  state.containers = state.containers.filter((x) => x.id !== id);
  saveLab(state);
}

/** Stops everything the lab started and removes its namespaces and files. Safe to call twice. */
export async function labDown(dir: string): Promise<void> {
  if (!existsSync(stateFile(dir))) return;
  const state = loadLab(dir);
  for (const p of [...state.processes].reverse()) {
    if (ownedPid(p)) process.kill(p.pid, 'SIGTERM');
  }
  const deadline = Date.now() + 10_000;
  while (state.processes.some(ownedPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of state.processes) if (ownedPid(p)) process.kill(p.pid, 'SIGKILL');
  const { plan } = state;
  const names = [
    ...state.containers.map((c) => c.netns),
    ...plan.hosts.map((h) => h.netns),
    plan.services.netns,
    ...(plan.reflector ? [plan.reflector.netns] : []),
    plan.underlayNetns,
  ];
  for (const n of names) {
    // Anything still inside (a helper a test started) is ours: the namespace is the lab's.
    for (const pid of await netnsPids(n)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await deleteNamedNetns(n);
  }
  rmSync(dir, { recursive: true, force: true });
}

export interface HostStatus {
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
    const proc = state.processes.find((p) => p.name === `daemon-${h.name}`);
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
    out.push({ host: h.name, ip: h.ip, daemon: !!proc && ownedPid(proc), sessionsUp, peers, routes, containers: state.containers.filter((c) => c.host === h.name).length });
  }
  return out;
}

/** The namespace of a lab host or container, by name (h1, h1c1, rr, svc, ul). */
export function labNetns(state: LabState, name: string): string {
  const p = state.plan;
  if (name === 'svc') return p.services.netns;
  if (name === 'ul') return p.underlayNetns;
  if (name === 'rr' && p.reflector) return p.reflector.netns;
  const h = p.hosts.find((x) => x.name === name);
  if (h) return h.netns;
  const c = state.containers.find((x) => x.id === name);
  if (c) return c.netns;
  throw new CorralError('NOT_FOUND', `nothing named ${name} in the lab`);
}

