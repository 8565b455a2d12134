import { describe, it, expect } from 'vitest';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { untilValue } from '../harness/wait.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { V1Connection } from '../../contracts/client/connection.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import type { V1Offer, V1Resource } from '../../contracts/v1/v1.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

const withRole = (list: V1Resource[], role: string): V1Resource[] => list.map((r) => ({ ...r, allocation_info: { role } }));
const dyn = (text: string, role: string, principal?: string): V1Resource[] =>
  resourcesJson(text).map((r) => ({ ...r, reservations: [{ type: 'DYNAMIC' as const, role, ...(principal ? { principal } : {}) }] }));

async function nextOffer(f: TestFramework, pred: (o: V1Offer) => boolean = () => true): Promise<V1Offer> {
  for (;;) {
    for (const o of await f.offers()) if (pred(o)) return o;
  }
}

describe('operations through offers', () => {
  it('RESERVE, CREATE a volume, LAUNCH on it; the volume comes back in offers; DESTROY and UNRESERVE', async () => {
    master = await startTestMaster();
    const a = new SimAgent({ master: master.url, hostname: 'h', resources: 'cpus:4;mem:4096;disk:1000', taskDurationMs: (t) => (t.task_id.value === 'writer' ? 200 : undefined) });
    cleanup.push(() => a.stop());
    await a.start();
    const f = new TestFramework(master.url, { name: 'db', roles: ['db'], capabilities: [{ type: 'MULTI_ROLE' }], principal: 'dbp' });
    cleanup.push(() => f.client.close());
    await f.subscribe();
    const o1 = await nextOffer(f);
    // Reservations made through offers carry the framework's principal; later operations name it too.
    const reserved = dyn('cpus:1;mem:256;disk:200', 'db', 'dbp');
    const volume = dyn('disk:200', 'db', 'dbp').map((r) => ({ ...r, disk: { persistence: { id: 'v1' }, volume: { container_path: 'data', mode: 'RW' as const } } }));
    const taskRes = withRole([...dyn('cpus:1;mem:256', 'db', 'dbp'), ...volume], 'db');
    await f.client.accept(
      [o1.id.value],
      [
        { type: 'RESERVE', reserve: { resources: withRole(reserved, 'db') } },
        { type: 'CREATE', create: { volumes: withRole(volume, 'db') } },
        { type: 'LAUNCH', launch: { task_infos: [{ name: 'writer', task_id: { value: 'writer' }, agent_id: o1.agent_id, resources: taskRes, command: { value: 'write' } }] } },
      ],
      0,
    );
    // The agent is told about its checkpointed reservation and volume (on its own stream, once the registry holds them).
    const applied = await untilValue('APPLY_OPERATIONS to reach the agent', async () => a.received.findLast((e) => e.type === 'APPLY_OPERATIONS'), 10_000);
    expect(
      applied &&
        Resources.fromV1(applied.type === 'APPLY_OPERATIONS' ? applied.apply_operations.checkpointed_resources : [])
          .persistentVolumes()
          .isEmpty(),
    ).toBe(false);
    await f.update('writer', 'TASK_FINISHED');
    // The finished task's volume is offered again to the role, with its data id.
    const o2 = await nextOffer(f, (o) => !Resources.fromV1(o.resources).persistentVolumes().isEmpty());
    expect(Resources.fromV1(o2.resources).persistentVolumes().toV1()[0]!.disk?.persistence?.id).toBe('v1');
    // A second volume with the same id is refused.
    await expect(f.client.accept([o2.id.value], [{ type: 'CREATE', create: { volumes: withRole(volume, 'db') } }])).rejects.toThrow(/already used/);
    // Unreserving a volume's disk directly is refused: destroy first.
    await expect(f.client.accept([o2.id.value], [{ type: 'UNRESERVE', unreserve: { resources: withRole(volume, 'db') } }])).rejects.toThrow(/DESTROY it first/);
    await f.client.accept(
      [o2.id.value],
      [
        { type: 'DESTROY', destroy: { volumes: withRole(volume, 'db') } },
        { type: 'UNRESERVE', unreserve: { resources: withRole(reserved, 'db') } },
      ],
      0,
    );
    const view = master.master.allocator.agentView(a.id!)!;
    expect(view.total.reserved().isEmpty()).toBe(true);
    expect(view.total.equals(Resources.fromV1(resourcesJson('cpus:4;mem:4096;disk:1000')))).toBe(true);
  });

  it('offers revocable resources only to frameworks that opted in', async () => {
    master = await startTestMaster();
    const a = new SimAgent({ master: master.url, hostname: 'h', resources: 'cpus:1;mem:1024' });
    cleanup.push(() => a.stop());
    await a.start();
    const rev = resourcesJson('cpus:2;mem:2048').map((r) => ({ ...r, revocable: {} }));
    await a.session.call({ type: 'UPDATE_OVERSUBSCRIBED', update_oversubscribed: { resources: rev } });
    const plain = new TestFramework(master.url, { name: 'plain' });
    const optIn = new TestFramework(master.url, { name: 'opt-in', capabilities: [{ type: 'REVOCABLE_RESOURCES' }] });
    cleanup.push(
      () => plain.client.close(),
      () => optIn.client.close(),
    );
    await plain.subscribe();
    const [p] = await plain.offers();
    expect(p!.resources.some((r) => r.revocable)).toBe(false);
    await optIn.subscribe();
    const [o] = await optIn.offers();
    expect(Resources.fromV1(o!.resources).revocable().scalar('cpus')).toBe(2);
  });
});

describe('operator API', () => {
  it('reports state, roles, weights and quota, and streams events', async () => {
    master = await startTestMaster();
    const ops = new OperatorClient({ master: master.url });
    cleanup.push(() => ops.close());
    const events: Array<{ type: string }> = [];
    const conn = new V1Connection({ master: master.url, path: '/api/v1' });
    cleanup.push(() => conn.close());
    await conn.subscribe({ type: 'SUBSCRIBE' }, (e) => events.push(e as { type: string }));
    const a = new SimAgent({ master: master.url, hostname: 'h', resources: 'cpus:2;mem:2048' });
    cleanup.push(() => a.stop());
    await a.start();
    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 2.5 }] } });
    await ops.call('UPDATE_QUOTA', { update_quota: { quota_configs: [{ role: 'web', guarantees: { cpus: { value: 1 } }, limits: { cpus: { value: 2 } } }] } });
    const f = new TestFramework(master.url, { name: 'w', roles: ['web'], capabilities: [{ type: 'MULTI_ROLE' }] });
    cleanup.push(() => f.client.close());
    await f.subscribe();
    const [offer] = await f.offers();
    await f.launch(offer!, [{ id: 'w1', resources: 'cpus:1;mem:128' }]);
    await f.update('w1', 'TASK_RUNNING');
    const roles = (await ops.call<{ get_roles: { roles: Array<{ name: string; weight: number; frameworks: unknown[]; allocated: V1Resource[]; quota?: unknown }> } }>('GET_ROLES')).get_roles.roles;
    const web = roles.find((r) => r.name === 'web')!;
    expect(web.weight).toBe(2.5);
    expect(web.frameworks).toHaveLength(1);
    expect(Resources.fromV1(web.allocated).scalar('cpus')).toBe(1);
    expect(web.quota).toMatchObject({ guarantees: { cpus: { value: 1 } } });
    const state = await ops.call<{ get_state: { get_agents: { agents: unknown[] }; get_frameworks: { frameworks: unknown[] }; get_tasks: { tasks: unknown[] } } }>('GET_STATE');
    expect(state.get_state.get_agents.agents).toHaveLength(1);
    expect(state.get_state.get_frameworks.frameworks).toHaveLength(1);
    expect(state.get_state.get_tasks.tasks).toHaveLength(1);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('SUBSCRIBED');
    for (const t of ['AGENT_ADDED', 'FRAMEWORK_ADDED', 'TASK_ADDED', 'TASK_UPDATED']) expect(types).toContain(t);
    // Quota removal and gone agents.
    await ops.call('UPDATE_QUOTA', { update_quota: { quota_configs: [{ role: 'web' }] } });
    expect((await ops.call<{ get_quota: { status: { infos: unknown[] } } }>('GET_QUOTA')).get_quota.status.infos).toHaveLength(0);
    await ops.call('MARK_AGENT_GONE', { mark_agent_gone: { agent_id: { value: a.id } } });
    await f.update('w1', 'TASK_GONE_BY_OPERATOR');
    expect(types.includes('AGENT_REMOVED') || events.some((e) => e.type === 'AGENT_REMOVED')).toBe(true);
  });
});
