/**
 * A small real cluster for discovery tests and benchmarks: an in-process
 * master, simulated agents whose tasks report container IPs, a framework
 * that launches the tasks it is asked for, and a discovery daemon following
 * the master. Everything lives under TEST_ROOT and is torn down by dispose().
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { testDir } from '../harness/resources.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { SchedulerClient, isUpdate } from '../../contracts/client/scheduler-client.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { V1TaskInfo, V1TaskStatus } from '../../contracts/v1/v1.js';
import { startDiscovery, type RunningDiscovery } from '../../discovery/src/daemon.js';
import type { DiscoveryConfigInput } from '../../discovery/src/config.js';
import { Agent as UndiciAgent } from 'undici';
import { createClusterCa, issueCertificate, writeTlsFiles } from '../../common/tls/index.js';

/** PEM files of one daemon, as a `tls` config block. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface TaskSpec {
  id: string;
  name: string;
  /** Becomes DiscoveryInfo (name, ports, labels). */
  discovery?: V1TaskInfo['discovery'];
  labels?: V1TaskInfo['labels'];
  /** Host networking: no container IP in the status. */
  hostNetwork?: boolean;
}

export interface TestCluster {
  master: TestMaster;
  agents: SimAgent[];
  framework: SchedulerClient;
  frameworkId: string;
  discovery: RunningDiscovery;
  dir: string;
  /** With `tls: true`: the cluster CA's PEM and the discovery daemons' files (client and server use). */
  tls?: { caPem: string; discovery: TlsFiles };
  /** IP the task with this id got (deterministic per id). */
  ipOf(taskId: string): string;
  /** Queue a task; the framework launches it on the next fitting offer. Resolves when RUNNING reaches the framework. */
  launch(spec: TaskSpec): Promise<V1TaskStatus>;
  agentOf(taskId: string): SimAgent;
  /** Called with (taskId, state) when an agent reports a status (for freshness timing). */
  onReport?: (taskId: string, state: string) => void;
  dispose(): Promise<void>;
}

let ipCounter = 0;

/**
 * `tls: true`: a cluster CA of the test's own, the master on HTTPS, the
 * simulated agents presenting a client certificate, the framework verifying
 * the master, discovery's API on HTTPS following the master over HTTPS.
 * Default: plain HTTP everywhere (`insecure`).
 */
export async function startCluster(opts: { agents?: number; framework?: string; discovery?: Partial<DiscoveryConfigInput>; tls?: boolean } = {}): Promise<TestCluster> {
  const dir = testDir('discovery');
  const cleanups: Array<() => Promise<unknown>> = [];
  const dispose = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const cluster: Partial<TestCluster> = {};
  try {
    const tls = opts.tls ? await clusterTls(join(dir, 'tls')) : undefined;
    const master = await startTestMaster(tls ? { tls: tls.master } : {}, join(dir, 'master'));
    // A test may swap in a restarted master: dispose whichever is current.
    cleanups.push(() => (cluster.master ?? master).dispose());
    const ips = new Map<string, string>();
    const hostNet = new Set<string>();
    const ipOf = (taskId: string): string => {
      let ip = ips.get(taskId);
      if (!ip) {
        const n = ++ipCounter;
        ip = `100.96.${(n >> 8) & 0xff}.${n & 0xff}`;
        ips.set(taskId, ip);
      }
      return ip;
    };
    const agents: SimAgent[] = [];
    // Agents speak mutual TLS to an https master: one dispatcher with the agents' client certificate.
    const agentDispatcher = tls ? new UndiciAgent({ connect: { ca: tls.caPem, cert: tls.agentPem.cert, key: tls.agentPem.key } }) : undefined;
    if (agentDispatcher) cleanups.push(() => agentDispatcher.close());
    for (let i = 0; i < (opts.agents ?? 1); i++) {
      const agent = new SimAgent({
        master: master.url,
        hostname: `198.18.0.${i + 1}`,
        resources: 'cpus:64;mem:65536;ports:[31000-32000]',
        ...(agentDispatcher ? { dispatcher: agentDispatcher, streamDispatcher: agentDispatcher } : {}),
        // The agent channel's connection presents the certificate too.
        ...(tls ? { tls: { ca: tls.caPem, cert: tls.agentPem.cert, key: tls.agentPem.key } } : {}),
        statusExtras: (task, state) => {
          cluster.onReport?.(task.task_id.value, state);
          if (hostNet.has(task.task_id.value)) return {};
          return { container_status: { network_infos: [{ name: 'corral', ip_addresses: [{ protocol: 'IPv4', ip_address: ipOf(task.task_id.value) }] }] } };
        },
      });
      cleanups.push(() => agent.stop());
      await agent.start();
      agents.push(agent);
    }
    const queue: TaskSpec[] = [];
    const waiting = new Map<string, (s: V1TaskStatus) => void>();
    const need = parseResources('cpus:0.01;mem:1;ports:[31000-31000]');
    const framework = new SchedulerClient({
      master: master.url,
      ...(tls ? { tls: { ca: tls.caPem } } : {}),
      framework: { user: 'test', name: opts.framework ?? 'marathon' },
      onEvent: (e, c) => {
        if (e.type === 'OFFERS') {
          for (const offer of e.offers.offers) {
            const specs = queue.splice(0);
            if (specs.length === 0) {
              void c.decline([offer.id.value], 0.05).catch(() => undefined);
              continue;
            }
            const offered = Resources.fromV1(offer.resources);
            const ports = offered.toV1().find((r) => r.name === 'ports')?.ranges?.range[0];
            let next = ports?.begin ?? 31000;
            const infos = specs.map((s) => ({
              name: s.name,
              task_id: { value: s.id },
              agent_id: offer.agent_id,
              resources: [...need.toV1().filter((r) => r.name !== 'ports'), { name: 'ports', type: 'RANGES' as const, ranges: { range: [{ begin: next, end: next++ }] } }],
              command: { value: 'sleep 1000' },
              ...(s.discovery ? { discovery: s.discovery } : {}),
              ...(s.labels ? { labels: s.labels } : {}),
            }));
            void c.accept([offer.id.value], [{ type: 'LAUNCH', launch: { task_infos: infos } }], 0.05).catch(() => undefined);
          }
        } else if (isUpdate(e)) {
          const s = e.update.status;
          if (s.uuid) void c.acknowledge(s).catch(() => undefined);
          if (s.state === 'TASK_RUNNING') waiting.get(s.task_id.value)?.(s);
        }
      },
    });
    cleanups.push(() => framework.close());
    const frameworkId = await framework.subscribe();
    const discovery = await startDiscovery({
      ...(tls ? { tls: tls.discovery } : { insecure: true }),
      workDir: join(dir, 'discovery'),
      store: { backend: 'embedded', path: join(dir, 'discovery', 'kv.db'), sync: 'normal' },
      nodeName: 'discovery-node',
      http: { port: 0 },
      sessions: { ttlMinSeconds: 1 },
      ...opts.discovery,
      master: { url: master.url, ...opts.discovery?.master },
      dns: { port: 0, workers: 0, ...opts.discovery?.dns },
    });
    cleanups.push(() => discovery.close());
    Object.assign(cluster, {
      master,
      agents,
      framework,
      frameworkId,
      discovery,
      dir,
      ...(tls ? { tls: { caPem: tls.caPem, discovery: tls.discovery } } : {}),
      ipOf,
      agentOf: (taskId: string) => agents.find((a) => [...a.tasks.values()].some((t) => t.info.task_id.value === taskId))!,
      launch: (spec: TaskSpec) => {
        if (spec.hostNetwork) hostNet.add(spec.id);
        return new Promise<V1TaskStatus>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`task ${spec.id} did not start within 15 s`)), 15_000);
          waiting.set(spec.id, (s) => {
            clearTimeout(timer);
            waiting.delete(spec.id);
            resolve(s);
          });
          queue.push(spec);
          void framework.revive().catch(() => undefined);
        });
      },
      dispose,
    });
    return cluster as TestCluster;
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** The CA and the master's, the agents' and discovery's certificates, valid a day, for 127.0.0.1. */
async function clusterTls(dir: string): Promise<{ caPem: string; master: TlsFiles; discovery: TlsFiles; agentPem: { cert: string; key: string } }> {
  const ca = await createClusterCa({ commonName: 'discovery test CA', validDays: 2 });
  const caFile = writeTlsFiles(dir, 'ca', ca).cert;
  const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 1 };
  const master = writeTlsFiles(dir, 'master', await issueCertificate(ca, { commonName: 'master', ...names, usage: 'server' }));
  const discovery = writeTlsFiles(dir, 'discovery', await issueCertificate(ca, { commonName: 'discovery', ...names, usage: 'both' }));
  const agent = await issueCertificate(ca, { commonName: 'agent', ...names, usage: 'client' });
  return { caPem: ca.certPem, master: { ca: caFile, ...master }, discovery: { ca: caFile, ...discovery }, agentPem: { cert: agent.certPem, key: agent.keyPem } };
}

/** A second discovery replica on the cluster's Store, following the same master (DNS on a port of its own). */
export function startReplica(c: TestCluster, store: NonNullable<DiscoveryConfigInput['store']>, extra: Partial<DiscoveryConfigInput> = {}): Promise<RunningDiscovery> {
  return startDiscovery({ insecure: true, workDir: join(c.dir, 'discovery2'), store, nodeName: 'control2', http: { port: 0 }, master: { url: c.master.url }, dns: { port: 0, workers: 0 }, ...extra });
}
