/**
 * Operator commands against a running master: list agents, frameworks,
 * tasks and roles; set weights and quota; reserve resources; mark agents gone.
 */
import type { Command } from 'commander';
import { Resources } from '../../core-scheduler/src/index.js';
import { parseResources } from '../../core-scheduler/src/index.js';
import type { V1AgentSummary, V1FrameworkSummary, V1Resource, V1Task } from '../../contracts/v1/v1.js';
import { CorralError } from '../../contracts/errors.js';
import { globals, operatorClient } from '../context.js';
import { output } from '../output.js';
import { scalarMap } from '../parse.js';
import { validateRoleName } from '../../contracts/v1/v1-schema.js';

const amount = (list: V1Resource[] | undefined, name: string): number => Resources.fromV1(list ?? []).scalar(name);
const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2));

async function withClient<T>(cmd: Command, fn: (c: ReturnType<typeof operatorClient>) => Promise<T>): Promise<T> {
  const c = operatorClient(cmd);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

export function registerCluster(program: Command): void {
  const agents = program.command('agents').description('agents known to the master');
  agents
    .command('ls')
    .description('list agents with their resources (allocated/total)')
    .action(async (_o, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS'));
      output(
        globals(cmd),
        r.get_agents.agents,
        [
          { header: 'ID', value: (a) => a.agent_info.id.value },
          { header: 'HOSTNAME', value: (a) => a.agent_info.hostname },
          { header: 'ACTIVE', value: (a) => a.active },
          { header: 'CPUS', value: (a) => `${fmt(amount(a.allocated_resources, 'cpus'))}/${fmt(amount(a.total_resources, 'cpus'))}` },
          { header: 'MEM', value: (a) => `${fmt(amount(a.allocated_resources, 'mem'))}/${fmt(amount(a.total_resources, 'mem'))}` },
          { header: 'DISK', value: (a) => `${fmt(amount(a.allocated_resources, 'disk'))}/${fmt(amount(a.total_resources, 'disk'))}` },
        ],
        r.get_agents,
      );
    });
  agents
    .command('gone <agent-id>')
    .description('mark an agent gone for good: its tasks are GONE_BY_OPERATOR and it may not return')
    .action(async (id: string, _o, cmd: Command) => {
      await withClient(cmd, (c) => c.call('MARK_AGENT_GONE', { mark_agent_gone: { agent_id: { value: id } } }));
      process.stdout.write(`agent ${id} marked gone\n`);
    });

  const frameworks = program.command('frameworks').description('frameworks subscribed to the master');
  frameworks
    .command('ls')
    .description('list frameworks')
    .action(async (_o, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ get_frameworks: { frameworks: V1FrameworkSummary[] } }>('GET_FRAMEWORKS'));
      output(
        globals(cmd),
        r.get_frameworks.frameworks,
        [
          { header: 'ID', value: (f) => f.framework_info.id.value },
          { header: 'NAME', value: (f) => f.framework_info.name },
          { header: 'ROLES', value: (f) => (f.framework_info.roles ?? [f.framework_info.role ?? '*']).join(',') },
          { header: 'CONNECTED', value: (f) => f.connected },
          { header: 'CPUS', value: (f) => fmt(amount(f.allocated_resources, 'cpus')) },
          { header: 'MEM', value: (f) => fmt(amount(f.allocated_resources, 'mem')) },
          { header: 'OFFERS', value: (f) => f.offers.length },
        ],
        r.get_frameworks,
      );
    });
  frameworks
    .command('teardown <framework-id>')
    .description('remove a framework and kill its tasks')
    .action(async (id: string, _o, cmd: Command) => {
      await withClient(cmd, (c) => c.call('TEARDOWN', { teardown: { framework_id: { value: id } } }));
      process.stdout.write(`framework ${id} torn down\n`);
    });

  program
    .command('tasks')
    .description('tasks known to the master')
    .command('ls')
    .option('--framework <id>', 'only this framework')
    .option('--all', 'include completed tasks')
    .action(async (o: { framework?: string; all?: boolean }, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call<{ get_tasks: { tasks: V1Task[]; unreachable_tasks: V1Task[]; completed_tasks: V1Task[] } }>('GET_TASKS'));
      const t = r.get_tasks;
      const rows = [...t.tasks, ...t.unreachable_tasks, ...(o.all ? t.completed_tasks : [])].filter((x) => !o.framework || x.framework_id.value === o.framework);
      output(
        globals(cmd),
        rows,
        [
          { header: 'ID', value: (x) => x.task_id.value },
          { header: 'NAME', value: (x) => x.name },
          { header: 'STATE', value: (x) => x.state.replace('TASK_', '') },
          { header: 'FRAMEWORK', value: (x) => x.framework_id.value },
          { header: 'AGENT', value: (x) => x.agent_id.value },
          { header: 'CPUS', value: (x) => fmt(amount(x.resources, 'cpus')) },
          { header: 'MEM', value: (x) => fmt(amount(x.resources, 'mem')) },
        ],
        rows,
      );
    });

  program
    .command('roles')
    .description('roles: weights, shares, quota')
    .command('ls')
    .action(async (_o, cmd: Command) => {
      const r = await withClient(cmd, (c) =>
        c.call<{
          get_roles: { roles: Array<{ name: string; weight: number; share: number; frameworks: unknown[]; allocated: V1Resource[]; quota?: { guarantees?: Record<string, { value: number }> } }> };
        }>('GET_ROLES'),
      );
      output(
        globals(cmd),
        r.get_roles.roles,
        [
          { header: 'ROLE', value: (x) => x.name },
          { header: 'WEIGHT', value: (x) => x.weight },
          { header: 'SHARE', value: (x) => x.share.toFixed(3) },
          { header: 'FRAMEWORKS', value: (x) => x.frameworks.length },
          { header: 'CPUS', value: (x) => fmt(amount(x.allocated, 'cpus')) },
          { header: 'MEM', value: (x) => fmt(amount(x.allocated, 'mem')) },
          {
            header: 'GUARANTEE',
            value: (x) =>
              Object.entries(x.quota?.guarantees ?? {})
                .map(([k, v]) => `${k}=${v.value}`)
                .join(','),
          },
        ],
        r.get_roles,
      );
    });

  program
    .command('weights')
    .description('role weights')
    .command('set <role=weight...>')
    .action(async (pairs: string[], _o, cmd: Command) => {
      const infos = pairs.map((p) => {
        const m = /^([^=]+)=(\d+(\.\d+)?)$/.exec(p);
        if (!m) throw new CorralError('INVALID_ARGUMENT', `expected role=weight, got "${p}"`);
        const why = validateRoleName(m[1]!);
        if (why) throw new CorralError('INVALID_ARGUMENT', why);
        return { role: m[1]!, weight: Number(m[2]) };
      });
      await withClient(cmd, (c) => c.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: infos } }));
      process.stdout.write(`weights updated: ${pairs.join(' ')}\n`);
    });

  const quota = program.command('quota').description('role quota (guarantees and limits)');
  quota
    .command('set <role>')
    .option('--guarantee <name=value,...>', 'resources the role is guaranteed', scalarMap('--guarantee'))
    .option('--limit <name=value,...>', 'most the role may get', scalarMap('--limit'))
    .option('--force', 'set it even if the cluster cannot satisfy it now')
    .action(async (role: string, o: { guarantee?: Record<string, { value: number }>; limit?: Record<string, { value: number }>; force?: boolean }, cmd: Command) => {
      if (!o.guarantee && !o.limit) throw new CorralError('INVALID_ARGUMENT', 'give --guarantee and/or --limit');
      await withClient(cmd, (c) =>
        c.call('UPDATE_QUOTA', { update_quota: { force: o.force ?? false, quota_configs: [{ role, ...(o.guarantee ? { guarantees: o.guarantee } : {}), ...(o.limit ? { limits: o.limit } : {}) }] } }),
      );
      process.stdout.write(`quota of ${role} updated\n`);
    });
  quota.command('rm <role>').action(async (role: string, _o, cmd: Command) => {
    await withClient(cmd, (c) => c.call('UPDATE_QUOTA', { update_quota: { quota_configs: [{ role }] } }));
    process.stdout.write(`quota of ${role} removed\n`);
  });

  program
    .command('reserve <agent-id> <resources>')
    .description('dynamically reserve free resources of an agent for a role, e.g. reserve S1 "cpus:2;mem:1024" --role db')
    .requiredOption('--role <role>', 'role to reserve for')
    .action(async (agent: string, text: string, o: { role: string }, cmd: Command) => {
      const res = parseResources(text).map(() => ({ reservations: [{ type: 'DYNAMIC' as const, role: o.role }] }));
      await withClient(cmd, (c) => c.call('RESERVE_RESOURCES', { reserve_resources: { agent_id: { value: agent }, resources: res.toV1() } }));
      process.stdout.write(`reserved ${res} on ${agent}\n`);
    });
  program
    .command('unreserve <agent-id> <resources>')
    .description('undo a dynamic reservation, e.g. unreserve S1 "cpus(db):2"')
    .action(async (agent: string, text: string, _o, cmd: Command) => {
      const res = parseResources(text).map((e) => ({ reservations: e.reservations.map((r) => ({ ...r, type: 'DYNAMIC' as const })) }));
      await withClient(cmd, (c) => c.call('UNRESERVE_RESOURCES', { unreserve_resources: { agent_id: { value: agent }, resources: res.toV1() } }));
      process.stdout.write(`unreserved ${res} on ${agent}\n`);
    });

  program
    .command('state')
    .description("the master's whole state as JSON (GET_STATE)")
    .action(async (_o, cmd: Command) => {
      const r = await withClient(cmd, (c) => c.call('GET_STATE'));
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    });
}
