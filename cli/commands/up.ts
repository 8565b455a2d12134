/**
 * corral up / corral down — a working single-node corral in one command:
 * master, agent, volume plugin, CNI node daemon, discovery and the service
 * framework under one supervisor, plus a demo app; `down` removes all of it.
 * `--simulate` keeps the old demo: the master with simulated agents.
 */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { CorralError } from '../../contracts/errors.js';
import { parseResources } from '../../core-scheduler/src/index.js';
import { intOption } from '../parse.js';
import { DEFAULT_SECURITY_FILE } from '../context.js';
import { progress } from '../output.js';
import { DEFAULT_NAME, DEFAULT_WORK_DIR, MARKER_ENV, loadPlan, makePlan, missingDirs, savePlan, type UpPlan } from '../up/plan.js';
import { childEnv, instanceScope, readStatus, selfCommand, superviseSimulated, superviseStack, type SupervisorStatus } from '../up/supervisor.js';
import { tail } from '../../common/sys/process.js';
import { isClean, killScope, scopeLeftovers, sweepScope, type NodeScope } from '../../provision/src/index.js';
import { ensureSecurityFile, credentialOf } from '../up/security.js';
import { ensureUpCertificates } from '../up/tls.js';
import { narrate } from '../up/watch.js';
import { simulatedSummary } from '../up/summary.js';
import { preflight } from '../up/preflight.js';
import { ours, readPid, stopProcess } from '../up/procs.js';
import { deployDemo, renderTour, takeTour, DEMO_APP_ID } from '../up/demo.js';
import { setTimeout as sleep } from 'node:timers/promises';

const SIM_RESOURCES = 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]';

/** What the instance owns on the host (provision's scope of its node, plus its marker and run-time directories). */
const scopeOf = (plan: UpPlan): NodeScope => instanceScope(plan);

/** The supervisor's pid if it is alive and really ours (never signal a stranger that reused the pid). */
function runningSupervisor(plan: UpPlan): number | undefined {
  const pid = readPid(plan.paths.supervisorPid);
  return pid !== undefined && ours(pid, plan.marker) ? pid : undefined;
}

/** Follows status.json, printing each daemon as it becomes ready; resolves when all are, throws on failure. */
async function followStartup(plan: UpPlan, supervisor: { exitCode: number | null }, timeoutMs: number): Promise<void> {
  const said = new Set<string>();
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s: SupervisorStatus | undefined = readStatus(plan);
    for (const c of s?.components ?? []) {
      const key = `${c.name}:${c.state}`;
      if (c.state === 'ready' && !said.has(key)) {
        said.add(key);
        progress(`  ready: ${c.what}${c.detail ? ` — ${c.detail}` : ''}`);
      }
    }
    if (s?.state === 'ready') return;
    if (s?.state === 'failed' || s?.state === 'stopped' || s?.state === 'stopping') throw new CorralError('UNAVAILABLE', s.error ?? 'the supervisor stopped during start-up');
    if (supervisor.exitCode !== null && !s) throw new CorralError('UNAVAILABLE', `the supervisor exited during start-up; last lines of ${plan.paths.log}:\n${tail(plan.paths.log)}`);
    if (Date.now() > end) throw new CorralError('TIMEOUT', `corral did not come up within ${timeoutMs / 1000} s; see ${plan.paths.logs}`);
    await sleep(100);
  }
}

/** Stops the supervisor (it drains tasks and stops its daemons), then whatever is left of the instance. */
async function stopInstance(plan: UpPlan): Promise<{ supervisor?: number; killed: number[] }> {
  const pid = runningSupervisor(plan);
  if (pid) await stopProcess(pid, plan.marker, 120_000);
  const killed = await killScope({ dirs: [], marker: { env: MARKER_ENV, value: plan.marker } });
  return { ...(pid ? { supervisor: pid } : {}), killed };
}

function whereToLook(plan: UpPlan, demo: boolean): string {
  // Whether the clients' defaults (corral app/volume/cni/dns … without flags) reach this instance.
  const isDefault =
    plan.paths.security === DEFAULT_SECURITY_FILE &&
    plan.ports.master === 5050 &&
    plan.ports.services === 5052 &&
    plan.ports.discovery === 8500 &&
    plan.paths.volumeSocket === '/run/docker/plugins/corral.sock' &&
    plan.paths.cniSocket === '/run/corral/cni.sock';
  const env = isDefault
    ? []
    : [
        `  clients:       export CORRAL_CREDENTIALS=${plan.paths.security} CORRAL_MASTER=${plan.urls.master} CORRAL_SERVICES=${plan.urls.services} \\`,
        `                        CORRAL_DISCOVERY=${plan.urls.discovery} CORRAL_VOLUME_SOCKET=${plan.paths.volumeSocket} CORRAL_CNI_SOCKET=${plan.paths.cniSocket}${plan.tls ? ' \\' : ''}`,
        ...(plan.tls ? [`                        CORRAL_TLS_CA=${plan.tls.caFile}`] : []),
      ];
  const down = `corral down${plan.workDir === DEFAULT_WORK_DIR ? '' : ` --work-dir ${plan.workDir}`}`;
  if (plan.simulate) {
    return [
      'corral is up (simulated agents and demo frameworks). Where to look:',
      `  master API:    ${plan.urls.master}  (scheduler POST /api/v1/scheduler, operator POST /api/v1, GET /metrics)`,
      `  credentials:   ${plan.paths.security}  (operator principal "admin")`,
      `  logs:          ${plan.paths.log}`,
      ...(isDefault ? [] : [`  clients:       export CORRAL_CREDENTIALS=${plan.paths.security} CORRAL_MASTER=${plan.urls.master}`]),
      '  try:           corral agents ls | corral frameworks ls | corral tasks ls | corral roles ls',
      `  stop:          ${down}`,
      '',
    ].join('\n');
  }
  return [
    'corral is up. Where to look:',
    `  master API:    ${plan.urls.master}  (scheduler POST /api/v1/scheduler, operator POST /api/v1, GET /metrics)`,
    `  services API:  ${plan.urls.services}  (corral app deploy|ls|show|scale|restart|rm)`,
    `  agent API:     ${plan.urls.agent}`,
    `  DNS:           127.0.0.1:${plan.ports.dns} (zone corral)   Consul API: ${plan.urls.discovery}`,
    `  network:       ${plan.hostNetwork ? 'host namespace' : `netns ${plan.netns.node}`}, pool ${plan.pool.cidr}  (corral cni ipam)`,
    `  volumes:       ${plan.paths.volumes}  (corral volume ls)`,
    `  credentials:   ${plan.paths.security}  (operator principal "admin")`,
    plan.tls ? `  TLS:           every API is HTTPS; cluster CA ${plan.tls.caFile} (curl --cacert), daemons' certificates in ${plan.tls.dir}` : '  TLS:           off (--insecure): plain HTTP',
    `  logs:          ${plan.paths.log}, ${plan.paths.logs}/<daemon>.log`,
    ...env,
    `  try:           corral app ls | corral app show ${demo ? DEMO_APP_ID : '<app>'} | corral app scale ${demo ? DEMO_APP_ID : '<app>'} 3 | corral tasks ls | corral dns records`,
    `  stop:          ${down}`,
    '',
  ].join('\n');
}

interface UpOptions {
  workDir: string;
  name: string;
  cgroupRoot?: string;
  runDir?: string;
  port: number;
  agentPort: number;
  servicesPort: number;
  dnsPort: number;
  discoveryPort: number;
  pool: string;
  blockSize: number;
  agentResources?: string;
  hostNetwork?: boolean;
  demo: boolean;
  wait: number;
  simulate?: boolean;
  agents: number;
  insecure?: boolean;
}

async function up(o: UpOptions): Promise<void> {
  if (o.agentResources) parseResources(o.agentResources); // fail fast on a typo, before anything starts
  if (!o.simulate && o.agents !== 3) throw new CorralError('INVALID_ARGUMENT', '--agents only applies with --simulate (the real stack runs one agent: this host)');
  const plan = makePlan({
    workDir: o.workDir,
    name: o.name,
    cgroupRoot: o.cgroupRoot,
    runDir: o.runDir,
    masterPort: o.port,
    agentPort: o.agentPort,
    servicesPort: o.servicesPort,
    dnsPort: o.dnsPort,
    discoveryPort: o.discoveryPort,
    pool: o.pool,
    blockSize: o.blockSize,
    agentResources: o.agentResources,
    hostNetwork: o.hostNetwork ?? false,
    insecure: o.insecure ?? false,
    ...(o.simulate ? { simulate: { agents: o.agents, agentResources: o.agentResources ?? SIM_RESOURCES } } : {}),
  });
  const saved = loadPlan(plan.workDir);
  const admin = (p: UpPlan) => credentialOf(ensureSecurityFile(p.paths.security), 'admin');
  if (saved && runningSupervisor(saved)) {
    progress(`corral is already up in ${saved.workDir} (supervisor pid ${runningSupervisor(saved)}); its settings are kept`);
    if (saved.simulate) process.stdout.write((await simulatedSummary(saved.urls.master, admin(saved))) + '\n\n' + whereToLook(saved, false));
    else {
      if (
        o.demo &&
        (await takeTour(saved, admin(saved)).then(
          (t) => (process.stdout.write(renderTour(saved, t) + '\n\n'), true),
          () => false,
        )) === false
      )
        progress(`(the demo app is not running: corral app show ${DEMO_APP_ID})`);
      process.stdout.write(whereToLook(saved, o.demo));
    }
    return;
  }
  if (saved) {
    // A previous instance that crashed or was killed: clear what is left of it first (its data stays).
    const stopped = await stopInstance(saved);
    if (!saved.simulate) await sweepScope(scopeOf(saved));
    if (stopped.killed.length) progress(`stopped ${stopped.killed.length} leftover process(es) of an earlier run`);
  }
  if (!plan.simulate) await preflight(plan);
  // Remember which run-time directories are ours to remove again (the work dir goes as a whole).
  plan.madeDirs = [...new Set([...(saved?.madeDirs ?? []), ...missingDirs([plan.runDir, dirname(plan.paths.volumeSocket), dirname(plan.paths.cniSocket)])])];
  mkdirSync(plan.workDir, { recursive: true, mode: 0o700 });
  savePlan(plan);
  ensureSecurityFile(plan.paths.security);
  const issued = await ensureUpCertificates(plan);
  if (issued.length) progress(`issued TLS certificates for ${issued.join(', ')} (cluster CA ${plan.tls!.caFile})`);
  rmSync(plan.paths.status, { force: true });
  progress(`starting corral in ${plan.workDir} (logs: ${plan.paths.log}, ${plan.paths.logs}/)`);
  const log = openSync(plan.paths.log, 'a');
  const child = spawn(selfCommand()[0]!, [...selfCommand().slice(1), 'supervise', '--work-dir', plan.workDir], { detached: true, stdio: ['ignore', log, log], env: childEnv(plan) });
  closeSync(log);
  child.unref();

  if (plan.simulate) {
    await followSimulated(plan, child);
    progress(`master is up at ${plan.urls.master}; watching the cluster:`);
    const running = await narrate(plan.urls.master, admin(plan), (line) => process.stdout.write(`  ${line}\n`));
    progress(`${running} tasks running`);
    process.stdout.write((await simulatedSummary(plan.urls.master, admin(plan))) + '\n\n' + whereToLook(plan, false));
    return;
  }

  try {
    await followStartup(plan, child, 180_000);
  } catch (err) {
    progress(`corral up failed: ${(err as Error).message}`);
    progress('stopping what was started…');
    await stopInstance(plan);
    const report = await sweepScope(scopeOf(plan));
    const left = scopeLeftovers(scopeOf(plan));
    progress(isClean(left) ? `nothing is left running; logs stay in ${plan.paths.logs}` : `some things are left (run corral down --work-dir ${plan.workDir}): ${JSON.stringify(left)}`);
    if (report.errors.length) progress(`cleanup errors: ${report.errors.join('; ')}`);
    throw new CorralError('UNAVAILABLE', 'corral up failed (see above)');
  }
  if (o.demo) {
    progress(`deploying the demo app "${DEMO_APP_ID}":`);
    try {
      await deployDemo(plan, admin(plan), o.wait, (line) => progress(`  ${line}`));
    } catch (err) {
      // The cluster is up: leave it for a look (corral app show, the daemons' logs) rather than tear it down.
      process.stdout.write('\n' + whereToLook(plan, true));
      throw new CorralError('UNAVAILABLE', `the demo app did not come up: ${(err as Error).message}; the cluster stays up for a look (corral app show ${DEMO_APP_ID}; logs in ${plan.paths.logs})`);
    }
  }
  process.stdout.write('\n');
  if (o.demo) process.stdout.write(renderTour(plan, await takeTour(plan, admin(plan))) + '\n\n');
  process.stdout.write(whereToLook(plan, o.demo));
}

async function followSimulated(plan: UpPlan, child: { exitCode: number | null }): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end && child.exitCode === null) {
    try {
      if ((await fetch(`${plan.urls.master}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new CorralError('UNAVAILABLE', `the cluster did not come up; last log lines from ${plan.paths.log}:\n${tail(plan.paths.log)}`);
}

async function down(o: { workDir: string; keepData?: boolean }): Promise<void> {
  const plan = loadPlan(o.workDir);
  if (!plan) {
    if (existsSync(o.workDir)) throw new CorralError('FAILED_PRECONDITION', `${o.workDir} holds no corral up instance (no up.json); nothing was stopped or removed`);
    progress(`nothing to do: no corral up instance in ${o.workDir}`);
    return;
  }
  const stopped = await stopInstance(plan);
  progress(stopped.supervisor ? `stopped the supervisor (pid ${stopped.supervisor}) and its daemons` : 'the supervisor was not running');
  if (stopped.killed.length) progress(`killed ${stopped.killed.length} leftover process(es): ${stopped.killed.join(' ')}`);
  if (plan.simulate) {
    // Nothing on the host but processes (all gone now) and the work dir.
    if (!o.keepData) rmSync(plan.workDir, { recursive: true, force: true });
    progress(o.keepData ? `kept ${plan.workDir}` : `removed ${plan.workDir}`);
    return;
  }
  const scope = scopeOf(plan);
  const report = await sweepScope(scope);
  if (report.killed.length) progress(`killed ${report.killed.length} task process(es) left in cgroups`);
  if (report.unmounted.length) progress(`unmounted ${report.unmounted.join(', ')}`);
  if (report.loopDevices.length) progress(`detached ${report.loopDevices.join(', ')}`);
  for (const p of report.pinned) {
    progress(`${p.dev} is released but still held by mount namespaces of processes that are not this instance's (${p.holders.join(' ') || 'unknown'}); the kernel frees it when they end`);
  }
  if (report.netns.length) progress(`deleted network namespaces ${report.netns.join(', ')}`);
  if (report.cgroups.length) progress(`removed cgroups ${report.cgroups.join(', ')}`);
  const left = scopeLeftovers(scope);
  if (!isClean(left)) {
    throw new CorralError('INTERNAL', `corral down could not remove everything: ${JSON.stringify(left)}${report.errors.length ? `; errors: ${report.errors.join('; ')}` : ''}`);
  }
  if (o.keepData) {
    for (const f of [plan.paths.status, plan.paths.supervisorPid]) rmSync(f, { force: true });
    progress(`kept ${plan.workDir} (state, volumes, logs)`);
  } else {
    rmSync(plan.workDir, { recursive: true, force: true });
    progress(`removed ${plan.workDir}`);
  }
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('bring up a single-node corral: master, agent, volume plugin, CNI, discovery, service framework, and a demo app')
    .option('--work-dir <dir>', 'state, logs, volumes and credentials', DEFAULT_WORK_DIR)
    .option('--name <name>', 'instance name: node netns <name>-node, task netns <name>-…, cgroups <name>', DEFAULT_NAME)
    .option('--cgroup-root <name>', 'cgroup directory of the tasks (default: the instance name)')
    .option('--run-dir <dir>', 'sockets and container checkpoints (default /run/corral, or /run/corral-<name>)')
    .option('--port <n>', 'master port', intOption('--port', 1, 65535), 5050)
    .option('--agent-port <n>', 'agent API port', intOption('--agent-port', 1, 65535), 5051)
    .option('--services-port <n>', 'service framework API port', intOption('--services-port', 1, 65535), 5052)
    .option('--dns-port <n>', 'DNS port (UDP and TCP)', intOption('--dns-port', 1, 65535), 8600)
    .option('--discovery-port <n>', 'discovery (Consul) API port', intOption('--discovery-port', 1, 65535), 8500)
    .option('--pool <cidr>', 'container IP pool', '100.96.0.0/12')
    .option('--block-size <n>', "prefix length of the pool's blocks", intOption('--block-size', 20, 30), 26)
    .option('--agent-resources <text>', 'override the agent\'s detected resources, e.g. "cpus:8;mem:8192" (with --simulate: each simulated agent\'s)')
    .option('--insecure', 'plain HTTP on every API instead of TLS with a cluster CA of its own (local use only)')
    .option('--host-network', 'route containers in the host network namespace (changes its routes: for real deployments only)')
    .option('--no-demo', 'do not deploy the demo app')
    .option('--wait <seconds>', 'how long to wait for the demo app', intOption('--wait', 1, 3600), 120)
    .option('--simulate', 'simulated agents and demo frameworks instead of the real stack (no root needed)')
    .option('--agents <n>', 'simulated agents (with --simulate)', intOption('--agents', 1, 1000), 3)
    .action(async (o: UpOptions) => up(o));

  program
    .command('down')
    .description("stop everything corral up started and remove what it made (processes, tasks, volumes' mounts, namespaces, cgroups, state)")
    .option('--work-dir <dir>', 'the directory given to corral up', DEFAULT_WORK_DIR)
    .option('--keep-data', 'keep the work directory (state, volume data, logs)')
    .action(async (o: { workDir: string; keepData?: boolean }) => down(o));

  program
    .command('supervise', { hidden: true })
    .requiredOption('--work-dir <dir>')
    .action(async (o: { workDir: string }) => {
      const plan = loadPlan(o.workDir);
      if (!plan) throw new CorralError('FAILED_PRECONDITION', `no corral up plan in ${o.workDir}`);
      if (plan.simulate) await superviseSimulated(plan, plan.simulate);
      else await superviseStack(plan);
    });
}
