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
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configureLogging, logger } from '../../common/log.js';
import { errorMessage } from '../../contracts/errors.js';
import { masterConfigSchema } from '../../core-scheduler/src/index.js';
import { startMaster } from '../../core-scheduler/src/index.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import type { V1FrameworkSummary } from '../../contracts/v1/v1.js';
import { Demo } from '../../core-scheduler/src/index.js';
import { repoRoot } from '../../common/sys/paths.js';
import { ensureSecurityFile, credentialOf } from './security.js';
import { MARKER_ENV, type UpPlan } from './plan.js';
import { buildStack, type Component, type StackCredentials } from './stack.js';
import { prepareNodeNetns } from './host.js';
import { forgetPid, stopProcess, writePid } from './procs.js';
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
const CLIENT_ENV = ['CORRAL_MASTER', 'CORRAL_PRINCIPAL', 'CORRAL_SECRET', 'CORRAL_CREDENTIALS', 'CORRAL_SERVICES', 'CORRAL_DISCOVERY', 'CORRAL_VOLUME_SOCKET', 'CORRAL_CNI_SOCKET'];

export function childEnv(plan: UpPlan): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_ENV]: plan.marker };
  for (const k of CLIENT_ENV) delete env[k];
  return env;
}

interface Child {
  comp: Component;
  state: ComponentState;
  proc?: ChildProcess;
  restarts: number;
  startedAt: number;
  detail?: string;
  timer?: NodeJS.Timeout;
}

const START_TIMEOUT_MS = 90_000;

export async function superviseStack(plan: UpPlan): Promise<void> {
  configureLogging({ level: 'info', file: plan.paths.log });
  const log = logger('supervisor');
  mkdirSync(plan.paths.logs, { recursive: true });
  const security = ensureSecurityFile(plan.paths.security);
  const cred: StackCredentials = { admin: credentialOf(security, 'admin'), frameworks: credentialOf(security, 'frameworks'), agents: credentialOf(security, 'agents') };
  writeFileSync(plan.paths.supervisorPid, `${process.pid}\n`);
  let overall: SupervisorStatus['state'] = 'starting';
  let error: string | undefined;
  let children: Child[] = [];
  let stopping = false;

  const logFile = (name: string): string => join(plan.paths.logs, `${name}.log`);
  const writeStatus = (): void => {
    const status: SupervisorStatus = {
      state: overall,
      pid: process.pid,
      ...(error ? { error } : {}),
      components: children.map((c) => ({ name: c.comp.name, what: c.comp.what, state: c.state, ...(c.proc?.pid ? { pid: c.proc.pid } : {}), restarts: c.restarts, ...(c.detail ? { detail: c.detail } : {}), log: logFile(c.comp.name) })),
    };
    writeFileSync(`${plan.paths.status}.tmp`, JSON.stringify(status, null, 2));
    renameSync(`${plan.paths.status}.tmp`, plan.paths.status);
  };

  const spawnChild = (c: Child): void => {
    const base = [...selfCommand(), '--master', plan.urls.master, ...(c.comp.name === 'discovery' ? ['--credentials', plan.paths.security] : []), ...c.comp.args];
    const argv = c.comp.netns ? ['nsenter', `--net=${c.comp.netns}`, '--', ...base] : base;
    const out = openSync(logFile(c.comp.name), 'a');
    const proc = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot(), env: childEnv(plan), stdio: ['ignore', out, out] });
    closeSync(out);
    c.proc = proc;
    c.startedAt = Date.now();
    if (proc.pid) writePid(plan.paths.pids, c.comp.name, proc.pid);
    proc.once('exit', (code, signal) => {
      forgetPid(plan.paths.pids, c.comp.name);
      if (stopping || c.proc !== proc) return;
      const why = signal ? `killed by ${signal}` : `exited with ${code}`;
      if (overall === 'starting') return; // start-up reports it
      // Restart with backoff; a daemon that ran a while starts the count over.
      if (Date.now() - c.startedAt > 60_000) c.restarts = 0;
      const delay = Math.min(30_000, 1000 * 2 ** c.restarts);
      c.restarts++;
      c.state = 'restarting';
      c.detail = `${why}; restarting in ${delay / 1000} s`;
      log.error({ component: c.comp.name, code, signal, delay }, 'component died; restarting');
      writeStatus();
      c.timer = setTimeout(() => {
        if (stopping) return;
        spawnChild(c);
        void waitReady(c, START_TIMEOUT_MS).then(
          (detail) => ((c.state = 'ready'), (c.detail = detail), writeStatus()),
          (err: unknown) => log.error({ component: c.comp.name, err: errorMessage(err) }, 'restarted component is not ready'),
        );
      }, delay);
    });
  };

  const waitReady = async (c: Child, timeoutMs: number): Promise<string> => {
    const end = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const p = c.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) {
        throw new Error(`${c.comp.name} exited during start-up (${p?.signalCode ?? `code ${p?.exitCode}`}); last lines of ${logFile(c.comp.name)}:\n${tail(logFile(c.comp.name))}`);
      }
      try {
        return await c.comp.ready();
      } catch (err) {
        last = errorMessage(err);
      }
      if (Date.now() > end) throw new Error(`${c.comp.name} did not become ready within ${timeoutMs / 1000} s (${last}); last lines of ${logFile(c.comp.name)}:\n${tail(logFile(c.comp.name))}`);
      await sleep(100);
    }
  };

  const stopChild = async (c: Child): Promise<void> => {
    clearTimeout(c.timer);
    const p = c.proc;
    if (p?.pid && p.exitCode === null && p.signalCode === null) await stopProcess(p.pid, plan.marker, 15_000);
    forgetPid(plan.paths.pids, c.comp.name);
    c.state = 'stopped';
  };

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    overall = 'stopping';
    writeStatus();
    log.info('stopping: draining tasks, then the daemons in reverse order');
    const services = children.find((c) => c.comp.name === 'services');
    if (services) await stopChild(services);
    await drain(plan, cred, children.find((c) => c.comp.name === 'agent')?.state === 'ready', log).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'drain failed; corral down sweeps what is left'));
    for (const c of [...children].reverse()) await stopChild(c);
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
    children = buildStack(plan, cred).map((comp) => ({ comp, state: 'pending', restarts: 0, startedAt: 0 }));
    writeStatus();
    for (const c of children) {
      if (stopping) return;
      c.state = 'starting';
      writeStatus();
      spawnChild(c);
      c.detail = await waitReady(c, START_TIMEOUT_MS);
      c.state = 'ready';
      log.info({ component: c.comp.name, detail: c.detail }, 'component ready');
      writeStatus();
    }
    overall = 'ready';
    writeStatus();
    log.info('corral is up');
  } catch (err) {
    error = errorMessage(err);
    const failed = children.find((c) => c.state === 'starting');
    if (failed) failed.state = 'failed';
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
async function drain(plan: UpPlan, cred: StackCredentials, agentUp: boolean, log: ReturnType<typeof logger>): Promise<void> {
  const ops = new OperatorClient({ master: plan.urls.master, ...cred.admin });
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

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The simulated cluster: master in-process, simulated agents and demo frameworks. */
export async function superviseSimulated(plan: UpPlan, o: { agents: number; agentResources: string }): Promise<void> {
  configureLogging({ level: 'info', file: plan.paths.log });
  const log = logger('supervisor');
  const security = ensureSecurityFile(plan.paths.security);
  const master = await startMaster(masterConfigSchema.parse({ host: '127.0.0.1', port: plan.ports.master, workDir: plan.paths.master, credentials: plan.paths.security, log: { level: 'info', file: plan.paths.log } }));
  writeFileSync(plan.paths.supervisorPid, `${process.pid}\n`);
  const admin = credentialOf(security, 'admin');
  const ops = new OperatorClient({ master: master.url, ...admin });
  await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } });
  await ops.close();
  const demo = new Demo({
    master: master.url,
    agents: o.agents,
    agentResources: o.agentResources,
    credentials: { framework: credentialOf(security, 'frameworks'), agent: credentialOf(security, 'agents') },
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
