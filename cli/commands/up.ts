/**
 * corral up / corral down — a working single-node corral in one command.
 */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { CorralError } from '../../common/errors.js';
import { OperatorClient } from '../../core-scheduler/src/client/operator-client.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { V1AgentSummary, V1FrameworkSummary, V1Resource } from '../../core-scheduler/src/protocol/v1.js';
import { intOption } from '../parse.js';
import { renderTable, progress } from '../output.js';
import { paths, supervise } from '../up/supervisor.js';
import { ensureSecurityFile, credentialOf } from '../up/security.js';
import { narrate } from '../up/watch.js';

const DEFAULT_WORK_DIR = '/var/lib/corral';

/** The supervisor's pid if it is alive and really ours (never signal a stranger that reused the pid). */
function runningSupervisor(workDir: string): number | undefined {
  const file = paths(workDir).pid;
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return cmdline.includes('supervise') && state !== 'Z' ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitHealthy(url: string, child: { exitCode: number | null }, log: string, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new CorralError('UNAVAILABLE', `the cluster did not come up; last log lines from ${log}:\n${tail}`);
}

const amount = (list: V1Resource[] | undefined, name: string): number => Resources.fromV1(list ?? []).scalar(name);

async function summary(url: string, cred: { principal: string; secret: string }): Promise<string> {
  const ops = new OperatorClient({ master: url, ...cred });
  try {
    const agents = (await ops.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS')).get_agents.agents;
    const fws = (await ops.call<{ get_frameworks: { frameworks: V1FrameworkSummary[] } }>('GET_FRAMEWORKS')).get_frameworks.frameworks;
    const roles = (await ops.call<{ get_roles: { roles: Array<{ name: string; weight: number; share: number; allocated: V1Resource[] }> } }>('GET_ROLES')).get_roles.roles;
    const lines = [
      '',
      renderTable(agents, [
        { header: 'AGENT', value: (a) => a.agent_info.hostname },
        { header: 'CPUS USED', value: (a) => `${amount(a.allocated_resources, 'cpus')}/${amount(a.total_resources, 'cpus')}` },
        { header: 'MEM USED', value: (a) => `${amount(a.allocated_resources, 'mem')}/${amount(a.total_resources, 'mem')}` },
      ]),
      '',
      renderTable(roles.filter((r) => r.name !== '*'), [
        { header: 'ROLE', value: (r) => r.name },
        { header: 'WEIGHT', value: (r) => r.weight },
        { header: 'CPUS', value: (r) => amount(r.allocated, 'cpus') },
        { header: 'WEIGHTED SHARE', value: (r) => r.share.toFixed(3) },
      ]),
      '',
      renderTable(fws, [
        { header: 'FRAMEWORK', value: (f) => f.framework_info.name },
        { header: 'ID', value: (f) => f.framework_info.id.value },
        { header: 'CPUS', value: (f) => amount(f.allocated_resources, 'cpus') },
      ]),
    ];
    return lines.join('\n');
  } finally {
    await ops.close();
  }
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('bring up a single-node corral (master, agents, demo frameworks) and show it placing tasks')
    .option('--work-dir <dir>', 'where state, logs and credentials go', DEFAULT_WORK_DIR)
    .option('--port <n>', 'master port', intOption('--port', 1, 65535), 5050)
    .option('--agents <n>', 'simulated agents to start', intOption('--agents', 1, 1000), 3)
    .option('--agent-resources <text>', 'resources of each simulated agent', 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]')
    .action(async (o: { workDir: string; port: number; agents: number; agentResources: string }) => {
      parseResources(o.agentResources); // fail fast on a typo, before anything starts
      mkdirSync(o.workDir, { recursive: true, mode: 0o700 });
      const p = paths(o.workDir);
      const url = `http://127.0.0.1:${o.port}`;
      const admin = credentialOf(ensureSecurityFile(p.security), 'admin');
      if (runningSupervisor(o.workDir)) {
        progress(`corral is already up (supervisor pid ${runningSupervisor(o.workDir)})`);
      } else {
        progress(`starting corral in ${o.workDir} (logs: ${p.log})`);
        const log = openSync(p.log, 'a');
        const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'supervise', '--work-dir', o.workDir, '--port', String(o.port), '--agents', String(o.agents), '--agent-resources', o.agentResources], {
          detached: true,
          stdio: ['ignore', log, log],
        });
        child.unref();
        await waitHealthy(url, child, p.log);
        progress(`master is up at ${url}; watching the cluster:`);
        const running = await narrate(url, admin, (line) => process.stdout.write(`  ${line}\n`));
        progress(`${running} tasks running`);
      }
      process.stdout.write((await summary(url, admin)) + '\n\n');
      process.stdout.write(
        [
          `corral is up. Where to look:`,
          `  API:          ${url}  (scheduler: POST /api/v1/scheduler, operator: POST /api/v1, metrics: GET /metrics)`,
          `  credentials:  ${p.security}  (operator principal "admin")`,
          `  logs:         ${p.log}`,
          `  try:          corral agents ls | corral frameworks ls | corral tasks ls | corral roles ls`,
          `  stop:         corral down`,
          '',
        ].join('\n'),
      );
    });

  program
    .command('down')
    .description('stop what corral up started and remove its state')
    .option('--work-dir <dir>', 'the directory given to corral up', DEFAULT_WORK_DIR)
    .option('--keep-data', 'keep the work directory')
    .action(async (o: { workDir: string; keepData?: boolean }) => {
      const pid = runningSupervisor(o.workDir);
      if (pid) {
        process.kill(pid, 'SIGTERM');
        const start = Date.now();
        while (runningSupervisor(o.workDir) && Date.now() - start < 15_000) await new Promise((r) => setTimeout(r, 100));
        if (runningSupervisor(o.workDir)) process.kill(pid, 'SIGKILL');
        progress(`stopped supervisor ${pid}`);
      } else {
        progress('corral is not running');
      }
      if (!o.keepData && existsSync(o.workDir)) {
        rmSync(o.workDir, { recursive: true, force: true });
        progress(`removed ${o.workDir}`);
      }
    });

  program
    .command('supervise', { hidden: true })
    .requiredOption('--work-dir <dir>')
    .option('--port <n>', 'master port', intOption('--port', 1, 65535), 5050)
    .option('--agents <n>', 'simulated agents', intOption('--agents', 1, 1000), 3)
    .option('--agent-resources <text>', 'resources of each simulated agent', 'cpus:4;mem:8192;disk:20000;ports:[31000-32000]')
    .action(async (o: { workDir: string; port: number; agents: number; agentResources: string }) => {
      await supervise(o);
    });
}
