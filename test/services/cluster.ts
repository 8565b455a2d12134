/**
 * A small real cluster for service framework tests and benchmarks: an
 * in-process master, simulated agents (speaking the agent protocol over
 * HTTP) whose tasks report container IPs, and the services daemon with its
 * HTTP API and client. Everything lives under TEST_ROOT and goes with dispose().
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { testDir } from '../harness/resources.js';
import { SimAgent, type SimAgentOptions } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import type { V1Task } from '../../contracts/v1/v1.js';
import { startServices, type RunningServices } from '../../core-scheduler/src/services/daemon.js';
import type { ServicesConfigInput } from '../../core-scheduler/src/services/config.js';
import { ServicesClient } from '../../core-scheduler/src/services/client.js';
import type { AppView } from '../../core-scheduler/src/services/views.js';
import { until } from '../harness/wait.js';

export { until };

export interface ServicesCluster {
  dir: string;
  master: TestMaster;
  agents: SimAgent[];
  services: RunningServices;
  client: ServicesClient;
  addAgent(opts?: Partial<SimAgentOptions>): Promise<SimAgent>;
  /** Stop the daemon and start it again on the same Store (framework failover). */
  restartServices(): Promise<RunningServices>;
  /** Poll GET /v1/apps/:id until `pred` holds. */
  waitFor(id: string, pred: (v: AppView) => boolean, ms?: number, what?: string): Promise<AppView>;
  /** The agent a task runs on (by the sim's own bookkeeping). */
  agentOf(taskId: string): SimAgent | undefined;
  /** Tasks the master knows for the services framework. */
  masterTasks(): Promise<V1Task[]>;
  ipOf(taskId: string): string;
  dispose(): Promise<void>;
}

let ipCounter = 0;

export interface ClusterOptions {
  agents?: number;
  agentResources?: string;
  services?: Partial<ServicesConfigInput>;
}

export async function startServicesCluster(opts: ClusterOptions = {}): Promise<ServicesCluster> {
  const dir = testDir('services');
  const cleanups: Array<() => Promise<unknown>> = [];
  const dispose = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const master = await startTestMaster({}, join(dir, 'master'));
    cleanups.push(() => master.dispose());
    const ips = new Map<string, string>();
    const ipOf = (taskId: string): string => {
      let ip = ips.get(taskId);
      if (!ip) {
        const n = ++ipCounter;
        ips.set(taskId, (ip = `100.64.${(n >> 8) & 0xff}.${n & 0xff}`));
      }
      return ip;
    };
    const agents: SimAgent[] = [];
    const addAgent = async (o: Partial<SimAgentOptions> = {}): Promise<SimAgent> => {
      const agent = new SimAgent({
        master: master.url,
        hostname: `h${agents.length + 1}`,
        resources: opts.agentResources ?? 'cpus:4;mem:4096;disk:1000;ports:[31000-31100]',
        updateRetryMs: 300,
        statusExtras: (task) => ({ container_status: { network_infos: [{ name: 'corral', ip_addresses: [{ protocol: 'IPv4', ip_address: ipOf(task.task_id.value) }] }] } }),
        ...o,
      });
      cleanups.push(() => agent.stop());
      await agent.start();
      agents.push(agent);
      return agent;
    };
    for (let i = 0; i < (opts.agents ?? 1); i++) await addAgent();
    const config: ServicesConfigInput = {
      host: '127.0.0.1',
      port: 0,
      workDir: join(dir, 'services'),
      noAuth: true,
      insecure: true,
      store: { backend: 'embedded', path: join(dir, 'services', 'services.db'), sync: 'normal' },
      master: { url: master.url, reconnectInitialMs: 50, reconnectMaxMs: 500 },
      offers: { refuseSeconds: 0.2, idleRefuseSeconds: 2 },
      reconcile: { intervalSeconds: 2 },
      unreachable: { replaceAfterSeconds: 0.3 },
      ...opts.services,
    };
    let services = await startServices(config);
    cleanups.push(() => services.close());
    const client = new ServicesClient({ url: services.url });
    const cluster: ServicesCluster = {
      dir,
      master,
      agents,
      services,
      client,
      addAgent,
      async restartServices() {
        await services.close();
        // Same port, so the client keeps working.
        services = await startServices({ ...config, port: services.port });
        cluster.services = services;
        return services;
      },
      async waitFor(id, pred, ms = 10_000, what = 'app state') {
        let last: AppView | undefined;
        await until(
          async () => {
            last = await client.get(id).catch(() => undefined);
            return last !== undefined && pred(last);
          },
          ms,
          `${what} (last: ${last ? `${last.status}: ${last.message}` : 'none'})`,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\n${JSON.stringify(last?.tasks ?? [], null, 1).slice(0, 3000)}`);
        });
        return last!;
      },
      agentOf: (taskId) => agents.find((a) => [...a.tasks.values()].some((t) => t.info.task_id.value === taskId && t.state !== 'TASK_KILLED')),
      async masterTasks() {
        const ops = new OperatorClient({ master: master.url });
        try {
          const r = await ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS');
          return r.get_tasks.tasks.filter((t) => t.framework_id.value === services.frameworkId);
        } finally {
          await ops.close();
        }
      },
      ipOf,
      dispose,
    };
    return cluster;
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** Running instances of a view, by index. */
export const runningTasks = (v: AppView): AppView['tasks'] => v.tasks.filter((t) => t.phase === 'running');
