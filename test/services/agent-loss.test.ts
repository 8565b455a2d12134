/**
 * An agent dies: its instance (TASK_UNREACHABLE, the framework is
 * partition-aware) is replaced on the spare host after the configured wait,
 * with the same instance index and the same external volume name; when the
 * dead agent comes back with the old task, that task is killed.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { startServicesCluster, runningTasks, until, type ServicesCluster } from './cluster.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import type { V1TaskInfo } from '../../contracts/v1/v1.js';

let c: ServicesCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

const db = {
  id: 'db',
  cmd: 'run-db --data /data',
  cpus: 1,
  mem: 256,
  instances: 3,
  constraints: ['hostname UNIQUE'],
  volumes: [{ containerPath: '/data', driver: 'rbd', options: { size: '1G' } }],
};

const volumeOf = (info: V1TaskInfo | undefined): { name?: string; driver?: string; options?: unknown } | undefined => {
  const dv = info?.container?.volumes?.[0]?.source?.docker_volume as { name?: string; driver?: string; driver_options?: unknown } | undefined;
  return dv && { name: dv.name, driver: dv.driver, options: dv.driver_options };
};

describe('losing an agent', () => {
  it('replaces its instance on the spare host with the same index and volume, and kills the old task when the agent returns', async () => {
    c = await startServicesCluster({ agents: 4 });
    await c.client.deploy(db);
    const before = await c.waitFor('db', (v) => runningTasks(v).length === 3);
    expect(before.tasks.map((t) => t.volumes)).toEqual([['db-0'], ['db-1'], ['db-2']]);
    for (const t of before.tasks) {
      const info = [...c.agentOf(t.taskId!)!.tasks.values()].find((x) => x.info.task_id.value === t.taskId)!.info;
      expect(volumeOf(info)).toEqual({ name: `db-${t.index}`, driver: 'rbd', options: { parameter: [{ key: 'size', value: '1G' }] } });
    }

    const victim = before.tasks[1]!;
    const deadAgent = c.agentOf(victim.taskId!)!;
    const spare = c.agents.find((a) => !before.tasks.map((t) => t.agentId).includes(a.id))!;
    await deadAgent.crash();

    const after = await c.waitFor('db', (v) => runningTasks(v).length === 3 && v.tasks[1]!.taskId !== victim.taskId, 15_000, 'instance 1 replaced');
    const moved = after.tasks[1]!;
    expect(moved.index).toBe(1);
    expect(moved.agentId).toBe(spare.id);
    expect(moved.volumes).toEqual(['db-1']);
    expect(moved.lastError).toMatchObject({ taskId: victim.taskId, state: 'TASK_UNREACHABLE' });
    const movedInfo = [...spare.tasks.values()].find((x) => x.info.task_id.value === moved.taskId)!.info;
    expect(volumeOf(movedInfo)?.name).toBe('db-1');
    expect(volumeOf(movedInfo)?.driver).toBe('rbd');
    // The other instances did not move.
    expect([after.tasks[0]!.taskId, after.tasks[2]!.taskId]).toEqual([before.tasks[0]!.taskId, before.tasks[2]!.taskId]);

    // The dead agent comes back with its task still "running": it no longer owns a slot and is killed.
    const back = new SimAgent({ master: c.master.url, hostname: 'h-back', resources: 'cpus:4;mem:4096;disk:1000;ports:[31000-31100]', agentId: deadAgent.id!, updateRetryMs: 300 });
    for (const [k, t] of deadAgent.tasks) back.tasks.set(k, t);
    await back.start();
    try {
      await until(() => back.received.some((e) => e.type === 'KILL' && e.kill.task_id.value === victim.taskId), 10_000, 'old task killed');
      await until(async () => (await c!.masterTasks()).filter((t) => t.state === 'TASK_RUNNING').length === 3, 5000, 'three running at the master');
      const final = await c.client.get('db');
      expect(runningTasks(final).map((t) => t.taskId)).toEqual(after.tasks.map((t) => t.taskId));
    } finally {
      await back.stop();
    }
  });

  it('replaces an instance whose task is reported lost right away, without backoff', async () => {
    c = await startServicesCluster({ agents: 2 });
    await c.client.deploy({ id: 'cache', cmd: 'cache', mem: 32, instances: 1 });
    const v = await c.waitFor('cache', (x) => runningTasks(x).length === 1);
    const t = v.tasks[0]!;
    c.agentOf(t.taskId!)!.end(c.services.frameworkId!, t.taskId!, 'TASK_GONE', 'host wiped');
    const again = await c.waitFor('cache', (x) => runningTasks(x).length === 1 && x.tasks[0]!.taskId !== t.taskId);
    expect(again.tasks[0]!.failures).toBe(0);
    expect(again.tasks[0]!.lastError).toMatchObject({ state: 'TASK_GONE', taskId: t.taskId });
  });
});
