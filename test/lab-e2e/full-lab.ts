/**
 * The full namespace lab for end-to-end tests and benchmarks: a control node
 * (master, services daemon, discovery, a memstore Ceph) and N agent hosts
 * (agent, rbd volume driver, CNI node daemon + exabgp), each provisioned by
 * `corral node up` inside its namespace. The lab's addresses (198.18.0.0/24)
 * exist only inside the lab's namespaces, so every call to a lab service
 * runs as a process in one of them (`nsenter --net`): curl for HTTP, dig for
 * DNS, ip for routes. Nothing touches the root namespace.
 *
 * The app under test is a tiny HTTP store: PUT writes the body to
 * `data/payload` (its rbd volume, fsynced), GET answers its instance index
 * and what the volume holds.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DISCOVERY_TOKEN_FILE } from '../../provision/src/plan.js';
import { labStatus, labUp, type LabState, type LabUpOptions } from '../../lab/lab.js';
import { run } from '../harness/resources.js';

export { sleep, untilValue as until } from '../harness/wait.js';
import { sleep, untilValue as until } from '../harness/wait.js';

/** A program run inside a lab namespace (argument arrays only). */
export const nsRun = (netns: string, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> => run('nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args], { timeoutMs });

/**
 * curl's arguments for the lab operator: its config file (the lab CA and admin's Basic credentials, read by
 * `curl -K`, so no secret is on a command line). Every lab API is HTTPS with authentication by default.
 */
export const operatorCurl = (state: LabState): string[] => (state.plan.operator ? ['-K', state.plan.operator.curlrc] : []);

/** An operator call made from a control node to the master on it, following a redirect to the leader (curl -L keeps the POST). */
export async function operatorCall<T>(state: LabState, from: { netns: string; ip: string }, type: string): Promise<T> {
  const scheme = new URL(state.plan.masterUrl).protocol;
  const body = JSON.stringify({ type });
  const args = [...operatorCurl(state), '-sSL', '--max-time', '5', '-X', 'POST', '-H', 'content-type: application/json', '-d', body, `${scheme}//${from.ip}:5050/api/v1`];
  return JSON.parse(await nsRun(from.netns, 'curl', args)) as T;
}

/**
 * curl's arguments for a discovery API call with the control node's management token (node up writes it 0600 in
 * discovery's directory): a header file read by `curl -H @FILE`, beside the operator's files.
 */
export function discoveryCurl(state: LabState): string[] {
  const token = join(state.plan.services.nodeDir, 'discovery', DISCOVERY_TOKEN_FILE);
  if (!existsSync(token)) return [];
  const header = join(state.plan.options.dir, 'operator', 'consul-token.header');
  mkdirSync(dirname(header), { recursive: true, mode: 0o700 });
  writeFileSync(header, `X-Consul-Token: ${readFileSync(token, 'utf8').trim()}\n`, { mode: 0o600 });
  return ['-H', `@${header}`];
}

export const STORE_SCRIPT = [
  "const h=require('http'),fs=require('fs');",
  'h.createServer((q,s)=>{',
  "if(q.method==='PUT'){let b='';q.on('data',c=>b+=c);q.on('end',()=>{const fd=fs.openSync('data/payload','w');fs.writeSync(fd,b);fs.fsyncSync(fd);fs.closeSync(fd);s.end('ok')});return}",
  "s.end(JSON.stringify({index:Number(process.env.CORRAL_INSTANCE_INDEX),payload:fs.existsSync('data/payload')?fs.readFileSync('data/payload','utf8'):null}))",
  '}).listen(8080)',
].join('');

/** The app: `instances` copies of the store, one per host, each with its own 64 MiB rbd volume, on the lab's CNI network. */
export function storeApp(id: string, instances: number): Record<string, unknown> {
  return {
    id,
    instances,
    cpus: 0.2,
    mem: 128,
    network: 'lab',
    constraints: ['hostname UNIQUE'],
    volumes: [{ containerPath: 'data', options: { size: '64M' } }],
    args: [process.execPath, '-e', STORE_SCRIPT],
    killGracePeriodSeconds: 1,
  };
}

export interface InstanceView {
  index: number;
  phase: string;
  taskId?: string;
  host?: string;
  ips: string[];
  volumes: string[];
  lastError?: { state?: string; taskId?: string };
}

export interface FullLab {
  state: LabState;
  /** The services API, called from the services namespace. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  app(id: string): Promise<{ status: string; tasks: InstanceView[] }>;
  /** A-record answers of the lab DNS, asked with dig from `netns`. */
  dig(fromNetns: string, name: string): Promise<string[]>;
  /** HTTP from a namespace; undefined when nothing answers within 1 s. */
  get(fromNetns: string, url: string): Promise<string | undefined>;
  put(fromNetns: string, url: string, body: string): Promise<string>;
  /** Every host's BGP sessions up and a route to every other live host's block. */
  converged(liveHosts?: string[]): Promise<boolean>;
  /** Host (h1…) of an agent hostname (its underlay address). */
  hostByIp(ip: string): string;
  netnsOf(host: string): string;
}

export function fullLab(state: LabState): FullLab {
  const { plan } = state;
  const svc = plan.services.netns;
  const lab: FullLab = {
    state,
    async api<T>(method: string, path: string, body?: unknown): Promise<T> {
      // With three control nodes, any service framework daemon will do: a standby's 307 is followed (-L keeps the method
      // and body on a 307), and a daemon that is down is skipped.
      const urls = plan.servicesUrls ?? [plan.servicesUrl];
      let lastError: unknown;
      for (const url of urls) {
        const args = [...operatorCurl(state), '-sS', '-L', '--max-time', '5', '-X', method, '-H', 'content-type: application/json', `${url}${path}`];
        if (body !== undefined) args.push('--data-binary', JSON.stringify(body));
        let out: string;
        try {
          out = await nsRun(svc, 'curl', args);
        } catch (err) {
          lastError = err;
          continue;
        }
        return (out.trim() ? JSON.parse(out) : undefined) as T;
      }
      throw lastError;
    },
    app: (id) => lab.api('GET', `/v1/apps/${id}`),
    async dig(fromNetns, name) {
      const out = await nsRun(fromNetns, 'dig', [`@${plan.dns.address}`, '-p', String(plan.dns.port), '+short', '+time=1', '+tries=1', name, 'A']);
      return out
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l))
        .sort();
    },
    async get(fromNetns, url) {
      return nsRun(fromNetns, 'curl', ['-sf', '--max-time', '1', url]).catch(() => undefined);
    },
    put: (fromNetns, url, body) => nsRun(fromNetns, 'curl', ['-sSf', '--max-time', '5', '-X', 'PUT', '--data-binary', body, url]),
    async converged(liveHosts) {
      const live = liveHosts ?? plan.hosts.map((h) => h.name);
      const status = await labStatus(plan.options.dir);
      return status.filter((s) => live.includes(s.host)).every((s) => s.daemon && s.sessionsUp >= live.length - 1 && s.routes >= live.length - 1);
    },
    hostByIp(ip) {
      const h = plan.hosts.find((x) => x.ip === ip);
      if (!h) throw new Error(`no lab host has address ${ip}`);
      return h.name;
    },
    netnsOf: (host) => plan.hosts.find((h) => h.name === host)!.netns,
  };
  return lab;
}

/** Brings up the full lab and waits until the BGP mesh has converged. */
export async function startFullLab(o: Omit<LabUpOptions, 'full'>): Promise<FullLab> {
  const state = await labUp({ holdTime: 3, ...o, full: true });
  const lab = fullLab(state);
  await until('BGP mesh converged', () => lab.converged(), 60_000, 200);
  return lab;
}

/** Running instances of an app with an address, by index. */
export const runningWithIp = (tasks: InstanceView[]): InstanceView[] => tasks.filter((t) => t.phase === 'running' && t.ips.length > 0);

export const instanceUrl = (ip: string): string => `http://${ip}:8080/`;

/** The app's DNS name (Mesos-DNS style: app.framework.domain). */
export const appName = (app: string): string => `${app}.corral-services.corral`;

/** One instance's own name (stable across re-placements). */
export const instanceName = (app: string, index: number): string => `${app}-${index}.${appName(app)}`;

/** Kernel routes of a host namespace learned over BGP (proto 77), as "dst via gw". */
export async function learnedRoutes(netns: string): Promise<Array<{ dst: string; gateway?: string }>> {
  return JSON.parse(await run('ip', ['-n', netns, '-j', 'route', 'show', 'proto', '77'])) as Array<{ dst: string; gateway?: string }>;
}

/** Where a host sends packets for `ip`: the next hop, or "local" when the address is its own container's. */
export async function nextHop(netns: string, ip: string): Promise<string> {
  const r = JSON.parse(await run('ip', ['-n', netns, '-j', 'route', 'get', ip])) as Array<{ gateway?: string; dev?: string }>;
  return r[0]?.gateway ?? 'local';
}

export const cephClientArgs = (state: LabState): string[] => [
  '-c',
  join(state.plan.services.nodeDir, 'ceph', 'ceph.conf'),
  '--keyring',
  join(state.plan.services.nodeDir, 'ceph', 'keyring'),
  '--connect-timeout',
  '5',
];

export interface DeployResult {
  /** PUT → every instance RUNNING with an address. */
  runningMs: number;
  /** PUT → the app's name answers every instance's address. */
  resolvableMs: number;
  tasks: InstanceView[];
}

/** Deploys `app` and measures until every instance runs and its name answers all of them (asked from `fromHost`). */
export async function deployAndWait(lab: FullLab, app: Record<string, unknown>, fromHost: string, timeoutMs = 90_000): Promise<DeployResult> {
  const id = String(app.id);
  const want = Number(app.instances);
  const t0 = Date.now();
  await lab.api('PUT', `/v1/apps/${id}`, app);
  const tasks = await until(
    `${want} instances of ${id} running`,
    async () => {
      const v = await lab.app(id);
      const r = runningWithIp(v.tasks);
      return r.length === want ? r : undefined;
    },
    timeoutMs,
    100,
  );
  const runningMs = Date.now() - t0;
  const ips = tasks.map((t) => t.ips[0]!).sort();
  await until(`${appName(id)} answering every instance`, async () => JSON.stringify(await lab.dig(lab.netnsOf(fromHost), appName(id))) === JSON.stringify(ips), timeoutMs, 50);
  return { runningMs, resolvableMs: Date.now() - t0, tasks };
}

export interface FailoverResult {
  index: number;
  victim: string;
  spare: string;
  observer: string;
  oldIp: string;
  newIp: string;
  /** From the kill (link deleted) to: the instance no longer RUNNING at the framework (agent loss detected). */
  detectedMs: number;
  /** …the replacement RUNNING on the spare host with its address. */
  runningMs: number;
  /** …the app's name answering the new address and no longer the old one. */
  resolvableMs: number;
  /** …the replacement serving the data written before the kill (its volume attached on the spare). */
  dataMs: number;
  /** …every surviving host routing the new address via the spare and nothing via the dead host. */
  routesMs: number;
  /** Running + resolvable + data verified: the failover time. */
  totalMs: number;
}

/**
 * Writes `payload` through instance `index`, kills its host (processes and
 * link), and measures until the instance runs elsewhere with its volume,
 * its name and its routes. The observer is a surviving host that is not
 * the spare.
 */
export async function failover(lab: FullLab, appId: string, index: number, payload: string, kill: (host: string) => Promise<number>, timeoutMs = 60_000): Promise<FailoverResult> {
  const before = await lab.app(appId);
  const victimTask = before.tasks.find((t) => t.index === index && t.phase === 'running')!;
  const oldIp = victimTask.ips[0]!;
  const victim = lab.hostByIp(victimTask.host!);
  const used = new Set(before.tasks.map((t) => lab.hostByIp(t.host!)));
  const hosts = lab.state.plan.hosts;
  const spare = hosts.find((h) => !used.has(h.name))!;
  const observer = hosts.find((h) => h.name !== victim && h.name !== spare.name)!;
  const victimIp = hosts.find((h) => h.name === victim)!.ip;
  expectEqual(await lab.put(observer.netns, instanceUrl(oldIp), payload), 'ok', 'write through the instance');
  const read = JSON.parse((await lab.get(observer.netns, instanceUrl(oldIp))) ?? '{}') as { payload?: string };
  expectEqual(read.payload, payload, 'read back before the kill');

  const killedAt = await kill(victim);
  const since = () => Date.now() - killedAt;
  const r: Partial<FailoverResult> = { index, victim, spare: spare.name, observer: observer.name, oldIp };
  const survivors = hosts.filter((h) => h.name !== victim);
  const deadline = killedAt + timeoutMs;
  while (r.detectedMs === undefined || r.runningMs === undefined || r.resolvableMs === undefined || r.dataMs === undefined || r.routesMs === undefined) {
    if (Date.now() > deadline) throw new Error(`failover not complete after ${timeoutMs} ms: ${JSON.stringify(r)}`);
    const checks: Promise<void>[] = [];
    if (r.detectedMs === undefined || r.runningMs === undefined) {
      checks.push(
        lab.app(appId).then((v) => {
          const t = v.tasks.find((x) => x.index === index);
          if (r.detectedMs === undefined && t && t.taskId !== victimTask.taskId) r.detectedMs = since();
          if (r.detectedMs === undefined && t && t.phase !== 'running') r.detectedMs = since();
          if (t && t.phase === 'running' && t.taskId !== victimTask.taskId && t.ips.length) {
            if (lab.hostByIp(t.host!) !== spare.name) throw new Error(`instance ${index} moved to ${t.host}, not the spare ${spare.ip}`);
            r.detectedMs ??= since();
            r.runningMs = since();
            r.newIp = t.ips[0]!;
          }
        }),
      );
    }
    const newIp = r.newIp;
    if (newIp && r.resolvableMs === undefined) {
      checks.push(
        lab.dig(observer.netns, appName(appId)).then((ips) => {
          if (ips.includes(newIp) && !ips.includes(oldIp)) r.resolvableMs = since();
        }),
      );
    }
    if (newIp && r.dataMs === undefined) {
      checks.push(
        lab.get(observer.netns, instanceUrl(newIp)).then((body) => {
          const got = body ? (JSON.parse(body) as { index: number; payload: string | null }) : undefined;
          if (got && got.index === index && got.payload === payload) r.dataMs = since();
        }),
      );
    }
    if (newIp && r.routesMs === undefined) {
      checks.push(
        Promise.all(
          survivors.map(async (h) => {
            const viaDead = (await learnedRoutes(h.netns)).some((x) => x.gateway === victimIp);
            const hop = await nextHop(h.netns, newIp);
            return !viaDead && (h.name === spare.name ? hop === 'local' : hop === spare.ip);
          }),
        ).then((ok) => {
          if (ok.every(Boolean)) r.routesMs = since();
        }),
      );
    }
    await Promise.all(checks.map((c) => c.catch(() => undefined)));
    await sleep(100);
  }
  return { ...(r as FailoverResult), totalMs: Math.max(r.runningMs!, r.resolvableMs!, r.dataMs!) };
}

function expectEqual(got: unknown, want: unknown, what: string): void {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}
