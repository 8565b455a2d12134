import { describe, it, expect, afterEach } from 'vitest';
import { rmSync } from 'node:fs';
import { MasterProcess } from '../harness/master-process.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { testDir } from '../harness/resources.js';
import { freePort } from '../harness/ports.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import type { V1AgentSummary, V1Task, V1Resource } from '../../contracts/v1/v1.js';
import { until } from '../harness/wait.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

describe('master SIGKILL and restart', () => {
  it('keeps agents, frameworks, reservations, volumes, weights and quota; agents re-register and no task is lost', async () => {
    const workDir = testDir('master-restart');
    const port = await freePort();
    const master = new MasterProcess(workDir, port);
    cleanup.push(async () => {
      await master.kill();
      rmSync(workDir, { recursive: true, force: true });
    });
    await master.start();
    const ops = new OperatorClient({ master: master.url });
    cleanup.push(() => ops.close());

    const agent = new SimAgent({ master: master.url, hostname: 'db-host', resources: 'cpus:4;mem:4096;disk:1000' });
    cleanup.push(() => agent.stop());
    const agentId = await agent.start();

    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'db', weight: 3 }] } });
    await ops.call('UPDATE_QUOTA', { update_quota: { quota_configs: [{ role: 'db', guarantees: { cpus: { value: 1 } } }] } });
    const reserved = (text: string): V1Resource[] => resourcesJson(text).map((r) => ({ ...r, reservations: [{ type: 'DYNAMIC' as const, role: 'db' }] }));
    await ops.call('RESERVE_RESOURCES', { reserve_resources: { agent_id: { value: agentId }, resources: reserved('cpus:1;mem:256;disk:100') } });
    const volume = reserved('disk:100').map((r) => ({ ...r, disk: { persistence: { id: 'pg-data' }, volume: { container_path: 'data', mode: 'RW' as const } } }));
    await ops.call('CREATE_VOLUMES', { create_volumes: { agent_id: { value: agentId }, volumes: volume } });

    // A framework in role db launches a task on its reservation and the volume.
    const f = new TestFramework(master.url, { name: 'db', roles: ['db'], capabilities: [{ type: 'MULTI_ROLE' }], failover_timeout: 3600 });
    cleanup.push(() => f.client.close());
    await f.subscribe();
    const [offer] = await f.offers();
    const offered = Resources.fromV1(offer!.resources);
    expect(offered.persistentVolumes().isEmpty()).toBe(false);
    const taskResources = [...reserved('cpus:1;mem:256'), ...volume].map((r) => ({ ...r, allocation_info: { role: 'db' } }));
    await f.client.accept(
      [offer!.id.value],
      [{ type: 'LAUNCH', launch: { task_infos: [{ name: 'pg', task_id: { value: 'pg' }, agent_id: offer!.agent_id, resources: taskResources, command: { value: 'postgres' } }] } }],
    );
    await f.update('pg', 'TASK_RUNNING');
    const frameworkId = f.id;

    await master.kill('SIGKILL');
    f.client.disconnect();
    await master.start();

    // The agent reconnects by itself and reports its task.
    await until(async () => {
      const r = await ops.call<{ get_tasks: { tasks: V1Task[] } }>('GET_TASKS');
      return r.get_tasks.tasks.some((t) => t.task_id.value === 'pg' && t.state === 'TASK_RUNNING');
    });
    const agents = (await ops.call<{ get_agents: { agents: V1AgentSummary[] } }>('GET_AGENTS')).get_agents.agents;
    expect(agents.map((a) => a.agent_info.id.value)).toEqual([agentId]);
    const total = Resources.fromV1(agents[0]!.total_resources);
    expect(total.reserved('db').scalar('cpus')).toBe(1);
    expect(total.persistentVolumes().toV1()[0]!.disk?.persistence?.id).toBe('pg-data');
    const weights = await ops.call<{ get_weights: { weight_infos: Array<{ role: string; weight: number }> } }>('GET_WEIGHTS');
    expect(weights.get_weights.weight_infos).toEqual([{ role: 'db', weight: 3 }]);
    const quota = await ops.call<{ get_quota: { status: { infos: Array<{ role: string; guarantees?: Record<string, { value: number }> }> } } }>('GET_QUOTA');
    expect(quota.get_quota.status.infos[0]).toMatchObject({ role: 'db', guarantees: { cpus: { value: 1 } } });

    // The framework fails over to the new master with its id and still owns its task.
    const f2 = new TestFramework(master.url, { name: 'db', roles: ['db'], capabilities: [{ type: 'MULTI_ROLE' }], failover_timeout: 3600, id: { value: frameworkId } });
    cleanup.push(() => f2.client.close());
    await f2.subscribe();
    expect(f2.id).toBe(frameworkId);
    await f2.client.reconcile();
    await f2.update('pg', 'TASK_RUNNING');
  });
});
