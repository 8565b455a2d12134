/**
 * The daemon restarted on the same Store fails over: it re-subscribes with
 * its framework id, reconciles, keeps its tasks (no duplicates, the count
 * still right), and catches up with what happened while it was away.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { join } from 'node:path';
import { openStore } from '../../common/store/json.js';
import { startServicesCluster, runningTasks, until, type ServicesCluster } from './cluster.js';

let c: ServicesCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

describe('service framework failover', () => {
  it('keeps its tasks across a restart and catches up with changes made while it was down', async () => {
    c = await startServicesCluster({ agents: 2 });
    await c.client.deploy({ id: 'api', cmd: 'serve', mem: 32, instances: 3, ports: [{ name: 'http' }] });
    await c.client.deploy({ id: 'worker', cmd: 'work', mem: 32, instances: 2 });
    const api = await c.waitFor('api', (v) => v.status === 'running');
    const worker = await c.waitFor('worker', (v) => v.status === 'running');
    const frameworkId = c.services.frameworkId;
    const launchesBefore = c.agents.reduce((n, a) => n + a.received.filter((e) => e.type === 'LAUNCH').length, 0);

    await c.services.close();
    // While the daemon is away, one worker task fails (the update waits at the master, unacknowledged).
    const lost = worker.tasks[1]!;
    c.agentOf(lost.taskId!)!.end(frameworkId!, lost.taskId!, 'TASK_FAILED', 'crashed while nobody watched');

    const again = await c.restartServices();
    await until(() => again.link.connected, 10_000, 're-subscribed');
    expect(again.frameworkId).toBe(frameworkId);

    const apiAfter = await c.waitFor('api', (v) => v.status === 'running');
    expect(apiAfter.tasks.map((t) => t.taskId)).toEqual(api.tasks.map((t) => t.taskId));
    const workerAfter = await c.waitFor('worker', (v) => runningTasks(v).length === 2 && v.tasks[1]!.taskId !== lost.taskId);
    expect(workerAfter.tasks[0]!.taskId).toBe(worker.tasks[0]!.taskId);
    expect(workerAfter.tasks[1]!.lastError).toMatchObject({ taskId: lost.taskId, state: 'TASK_FAILED' });

    // Reconciliation brings no duplicates: exactly the 5 tasks run, and only the failed one was relaunched.
    await new Promise((r) => setTimeout(r, 1500));
    const running = (await c.masterTasks()).filter((t) => t.state === 'TASK_RUNNING');
    expect(running.map((t) => t.task_id.value).sort()).toEqual([...apiAfter.tasks, ...workerAfter.tasks].map((t) => t.taskId).sort());
    const launchesAfter = c.agents.reduce((n, a) => n + a.received.filter((e) => e.type === 'LAUNCH').length, 0);
    expect(launchesAfter - launchesBefore).toBe(1);
    const info = await c.client.info();
    expect(info.framework.id).toBe(frameworkId);
  });

  it('kills, after a restart, tasks that no instance owns (found by implicit reconciliation)', async () => {
    c = await startServicesCluster({ agents: 1 });
    await c.client.deploy({ id: 'keep', cmd: 'sleep 1000', mem: 32 });
    await c.client.deploy({ id: 'stray', cmd: 'sleep 1000', mem: 32, instances: 2 });
    const keep = await c.waitFor('keep', (v) => v.status === 'running');
    const stray = await c.waitFor('stray', (v) => v.status === 'running');
    await c.services.close();
    // The Store loses the app (as if it had been removed and the kills never reached the agent).
    const store = await openStore({ backend: 'embedded', path: join(c.dir, 'services', 'services.db') });
    await store.deletePrefix('corral/services/corral-services/apps/stray');
    await store.deletePrefix('corral/services/corral-services/instances/stray/');
    await store.close();

    await c.restartServices();
    const agent = c.agents[0]!;
    const killed = (): string[] => agent.received.flatMap((e) => (e.type === 'KILL' ? [e.kill.task_id.value] : []));
    await until(() => stray.tasks.every((t) => killed().includes(t.taskId!)), 10_000, 'stray tasks killed');
    expect(killed()).not.toContain(keep.tasks[0]!.taskId);
    await until(async () => (await c!.masterTasks()).filter((t) => t.state === 'TASK_RUNNING').length === 1, 5000, 'one task left');
    expect((await c.client.list()).map((a) => a.id)).toEqual(['keep']);
  });
});
