/**
 * The process `corral up` leaves running (`corral supervise`, detached): it
 * starts the instance's daemons in order, waits for each to serve, restarts
 * any that dies (with backoff), and on SIGTERM (`corral down`) drains the
 * tasks and stops the daemons in reverse order. Its state is in
 * `<workDir>/status.json`, which `corral up` follows while it narrates.
 *
 * With `--simulate` it instead runs the master in-process with simulated
 * agents and demo frameworks (no root, no containers).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, logger } from '../../common/log.js';
import { errorMessage } from '../../contracts/errors.js';
import { masterConfigSchema } from '../../core-scheduler/src/index.js';
import { startMaster } from '../../core-scheduler/src/index.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { upClientTls } from './tls.js';
import type { V1FrameworkSummary } from '../../contracts/v1/v1.js';
import { Demo } from '../../core-scheduler/src/index.js';
import { repoRoot } from '../../common/sys/paths.js';
import { ensureSecurityFile, credentialOf, planSecretsOf } from './security.js';
import { MARKER_ENV, upNodeConfig, upScope, type UpPlan } from './plan.js';
import { prepareNodeNetns } from './host.js';
import { daemonSpec, nodeConfigSchema, planNode, superviseNode, writeNodeFiles, type NodePlan, type NodeScope, type Supervision } from '../../provision/src/index.js';
import { setTimeout as sleep } from 'node:timers/promises';

export type ComponentState = 'pending' | 'starting' | 'ready' | 'restarting' | 'failed' | 'stopped';

export interface SupervisorStatus {
  state: 'starting' | 'ready' | 'failed' | 'stopping' | 'stopped';
  pid: number;
  error?: string;
  components: Array<{ name: string; what: string; state: ComponentState; pid?: number; restarts: number; detail?: string; log: string }>;
}

export function readStatus(plan: UpPlan): SupervisorStatus | undefined {
  try {
    return JSON.parse(readFileSync(plan.paths.status, 'utf8')) as SupervisorStatus;
  } catch {
    return undefined;
  }
}

/** The corral CLI as this process runs it (from source with tsx, or compiled). */
export function selfCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

/** Variables a user's shell may hold for the CLI as a client; the daemons get their settings from their files instead. */
const CLIENT_ENV = [
  'CORRAL_TLS_CA',
  'CORRAL_TLS_CERT',
  'CORRAL_TLS_KEY',
  'CORRAL_MASTER',
  'CORRAL_PRINCIPAL',
  'CORRAL_SECRET',
  'CORRAL_CREDENTIALS',
  'CORRAL_SERVICES',
  'CORRAL_DISCOVERY',
  'CORRAL_VOLUME_SOCKET',
  'CORRAL_CNI_SOCKET',
];

export function childEnv(plan: UpPlan): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_ENV]: plan.marker };
  for (const k of CLIENT_ENV) delete env[k];
  return env;
}

/** The instance's node plan: its node file through provision's planner, with the credentials of its security file. */
export function instanceNode(plan: UpPlan): { node: NodePlan; scope: NodeScope } {
  // Each client daemon its own credential; the master (and the daemons' APIs) only the hashes.
  const node = planNode(nodeConfigSchema.parse(upNodeConfig(plan)), planSecretsOf(ensureSecurityFile(plan.paths.security)));
  return { node, scope: upScope(plan, node.scope) };
}

/** What the instance owns on the host. It names no secret, so it is planned with placeholders: works once the work dir is gone too. */
export function instanceScope(plan: UpPlan): NodeScope {
  const none = { principal: '-', secret: '-' };
  return upScope(plan, planNode(nodeConfigSchema.parse(upNodeConfig(plan)), { admin: none, frameworks: none, agents: none }).scope);
}

const START_TIMEOUT_MS = 90_000;

/**
 * The instance's node, run by provision's lifecycle in the foreground
 * (superviseNode: in order, each once ready, restarted with backoff if it
 * dies), narrated through status.json; SIGTERM drains the tasks and stops it.
 */
export async function superviseStack(plan: UpPlan): Promise<void> {
  configureLogging({ level: 'info', file: plan.paths.log });
  const log = logger('supervisor');
  mkdirSync(plan.paths.logs, { recursive: true });
  const security = ensureSecurityFile(plan.paths.security);
  const admin = credentialOf(security, 'admin');
  writeFileSync(plan.paths.supervisorPid, `${process.pid}\n`);
  let overall: SupervisorStatus['state'] = 'starting';
  let error: string | undefined;
  let supervision: Supervision | undefined;
  let stopping = false;

  const writeStatus = (): void => {
    const status: SupervisorStatus = {
      state: overall,
      pid: process.pid,
      ...(error ? { error } : {}),
      components: (supervision?.daemons ?? []).map((d) => ({
        name: d.spec.name,
        what: d.spec.what ?? d.spec.name,
        state: d.state,
        ...(d.pid ? { pid: d.pid } : {}),
        restarts: d.restarts,
        ...(d.detail ? { detail: d.detail } : {}),
        log: d.spec.outFile,
      })),
    };
    writeFileSync(`${plan.paths.status}.tmp`, JSON.stringify(status, null, 2));
    renameSync(`${plan.paths.status}.tmp`, plan.paths.status);
  };

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    overall = 'stopping';
    writeStatus();
    log.info('stopping: draining tasks, then the daemons in reverse order');
    const agentUp = supervision?.daemons.find((d) => d.spec.name === 'agent')?.state === 'ready';
    await supervision?.stop({
      before: async () => {
        // The service framework first (it would relaunch), then every framework's tasks, while the node still serves them.
        await supervision?.stopDaemon('services');
        await drain(plan, admin, agentUp, log).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'drain failed; corral down sweeps what is left'));
      },
    });
    overall = error ? 'failed' : 'stopped';
    writeStatus();
    rmSync(plan.paths.supervisorPid, { force: true });
    log.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stopAll());
  process.once('SIGINT', () => void stopAll());

  try {
    await prepareNodeNetns(plan);
    const { node, scope } = instanceNode(plan);
    writeNodeFiles(node);
    supervision = superviseNode({
      stateFile: plan.paths.nodeState,
      name: plan.name,
      role: 'up',
      scope,
      daemons: node.daemons.map((d) => daemonSpec(d, selfCommand(), { env: childEnv(plan), cwd: repoRoot() })),
      timeoutMs: START_TIMEOUT_MS,
      onChange: () => writeStatus(),
      onReady: (d, detail) => log.info({ component: d.name, detail }, 'component ready'),
      log: (msg, fields) => log.warn(fields, msg),
    });
    writeStatus();
    await supervision.started;
    overall = 'ready';
    writeStatus();
    log.info('corral is up');
  } catch (err) {
    error = errorMessage(err);
    log.error({ err: error }, 'start-up failed');
    overall = 'failed';
    writeStatus();
    await stopAll();
  }
}

/**
 * Ends every task before the daemons go, so each container's teardown runs
 * while the CNI daemon and the volume plugin still serve it: the service
 * framework is already stopped (it would relaunch), every framework is torn
 * down at the master (its tasks are killed), then we wait until the agent's
 * containerizer has no container left (its checkpoint goes last in destroy).
 */
async function drain(plan: UpPlan, admin: { principal: string; secret: string }, agentUp: boolean, log: ReturnType<typeof logger>): Promise<void> {
  const ops = new OperatorClient({ master: plan.urls.master, ...admin, tls: upClientTls(plan) });
  try {
    const fws = (await ops.call<{ get_frameworks: { frameworks: V1FrameworkSummary[] } }>('GET_FRAMEWORKS')).get_frameworks.frameworks;
    for (const f of fws) {
      await ops.call('TEARDOWN', { teardown: { framework_id: f.framework_info.id } }).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'teardown failed'));
    }
  } finally {
    await ops.close();
  }
  if (!agentUp) return;
  const containers = join(plan.paths.containerizerRun, 'containers');
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const left = existsSync(containers) ? readdirSync(containers).length : 0;
    if (left === 0) return;
    await sleep(200);
  }
  log.warn('containers still present after 60 s; corral down removes them');
}

/** The simulated cluster: master in-process, simulated agents and demo frameworks. */
export async function superviseSimulated(plan: UpPlan, o: { agents: number; agentResources: string }): Promise<void> {
  configureLogging({ level: 'info', file: plan.paths.log });
  const log = logger('supervisor');
  const security = ensureSecurityFile(plan.paths.security);
  const master = await startMaster(
    masterConfigSchema.parse({
      host: '127.0.0.1',
      port: plan.ports.master,
      workDir: plan.paths.master,
      credentials: security.masterFile,
      // The simulated cluster is a local demo of the scheduler: plain HTTP, said explicitly.
      insecure: true,
      log: { level: 'info', file: plan.paths.log },
      // Up to 1,000 simulated agents share this host's address: each has a stream and a connection or two.
      limits: { maxConnectionsPerClient: 4096, maxStreamsPerClient: 2048 },
    }),
  );
  writeFileSync(plan.paths.supervisorPid, `${process.pid}\n`);
  const admin = credentialOf(security, 'admin');
  const ops = new OperatorClient({ master: master.url, ...admin });
  await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } });
  await ops.close();
  const demo = new Demo({
    master: master.url,
    agents: o.agents,
    agentResources: o.agentResources,
    credentials: { framework: credentialOf(security, 'frameworks'), agent: credentialOf(security, 'agent') },
  });
  await demo.start();
  log.info({ url: master.url }, 'corral is up (simulated agents)');
  const stop = async (): Promise<void> => {
    log.info('stopping');
    await demo.stop();
    await master.close();
    rmSync(plan.paths.supervisorPid, { force: true });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
