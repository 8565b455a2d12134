/**
 * The summary `corral up --simulate` prints once the simulated cluster
 * settles: agents, roles with their weighted shares, frameworks.
 */
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { Resources } from '../../core-scheduler/src/index.js';
import type { V1AgentSummary, V1FrameworkSummary, V1Resource } from '../../contracts/v1/v1.js';
import { renderTable } from '../output.js';

const amount = (list: V1Resource[] | undefined, name: string): number => Resources.fromV1(list ?? []).scalar(name);

export async function simulatedSummary(url: string, cred: { principal: string; secret: string }): Promise<string> {
  const ops = new OperatorClient({ master: url, ...cred });
  try {
    const agents = (await ops.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS')).get_agents.agents;
    const fws = (await ops.call<{ get_frameworks: { frameworks: V1FrameworkSummary[] } }>('GET_FRAMEWORKS')).get_frameworks.frameworks;
    const roles = (await ops.call<{ get_roles: { roles: Array<{ name: string; weight: number; share: number; allocated: V1Resource[] }> } }>('GET_ROLES')).get_roles.roles;
    return [
      '',
      renderTable(agents, [
        { header: 'AGENT', value: (a) => a.agent_info.hostname },
        { header: 'CPUS USED', value: (a) => `${amount(a.allocated_resources, 'cpus')}/${amount(a.total_resources, 'cpus')}` },
        { header: 'MEM USED', value: (a) => `${amount(a.allocated_resources, 'mem')}/${amount(a.total_resources, 'mem')}` },
      ]),
      '',
      renderTable(
        roles.filter((r) => r.name !== '*'),
        [
          { header: 'ROLE', value: (r) => r.name },
          { header: 'WEIGHT', value: (r) => r.weight },
          { header: 'CPUS', value: (r) => amount(r.allocated, 'cpus') },
          { header: 'WEIGHTED SHARE', value: (r) => r.share.toFixed(3) },
        ],
      ),
      '',
      renderTable(fws, [
        { header: 'FRAMEWORK', value: (f) => f.framework_info.name },
        { header: 'ID', value: (f) => f.framework_info.id.value },
        { header: 'CPUS', value: (f) => amount(f.allocated_resources, 'cpus') },
      ]),
    ].join('\n');
  } finally {
    await ops.close();
  }
}
