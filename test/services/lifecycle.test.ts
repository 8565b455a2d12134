/**
 * An app's life through the API against a real master and simulated agents:
 * deploy with `hostname UNIQUE`, scale up and down, restart, remove.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { startServicesCluster, runningTasks, until, type ServicesCluster } from './cluster.js';

let c: ServicesCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

const web = { id: 'web', cmd: 'python3 -m http.server $PORT0', cpus: 0.5, mem: 64, instances: 3, ports: [{ name: 'http' }], constraints: [['hostname', 'UNIQUE']] };

describe('service framework lifecycle', () => {
  it('deploys 3 instances on distinct hosts, scales to 4 and down to 2, restarts every instance, removes the app', async () => {
    c = await startServicesCluster({ agents: 4 });
    const created = await c.client.deploy(web);
    expect(created.id).toBe('web');
    expect(created.instances).toBe(3);

    const three = await c.waitFor('web', (v) => v.status === 'running' && runningTasks(v).length === 3);
    const hosts = runningTasks(three).map((t) => t.host);
    expect(new Set(hosts).size).toBe(3);
    expect(three.tasks.map((t) => t.index)).toEqual([0, 1, 2]);
    for (const t of three.tasks) {
      expect(t.taskId).toMatch(new RegExp(`^web\\.${t.index}\\.`));
      expect(t.ips).toEqual([c.ipOf(t.taskId!)]);
      expect(t.ports).toHaveLength(1);
      expect(t.ports[0]).toBeGreaterThanOrEqual(31000);
    }
    // The master agrees: exactly three tasks, one per host, each with the discovery name and its port.
    const atMaster = await c.masterTasks();
    expect(atMaster).toHaveLength(3);
    expect(atMaster.every((t) => t.discovery?.name === 'web' && t.discovery.ports?.ports[0]?.name === 'http')).toBe(true);
    const info = await c.client.info();
    expect(info.framework).toMatchObject({ name: 'corral-services', connected: true, id: c.services.frameworkId });

    await c.client.scale('web', 4);
    const four = await c.waitFor('web', (v) => runningTasks(v).length === 4);
    expect(new Set(runningTasks(four).map((t) => t.host)).size).toBe(4);
    // Scaling up leaves the first three alone.
    expect(four.tasks.slice(0, 3).map((t) => t.taskId)).toEqual(three.tasks.map((t) => t.taskId));

    await c.client.scale('web', 2);
    const two = await c.waitFor('web', (v) => v.tasks.length === 2 && v.status === 'running');
    expect(two.tasks.map((t) => t.taskId)).toEqual(three.tasks.slice(0, 2).map((t) => t.taskId));
    await until(async () => (await c!.masterTasks()).filter((t) => t.state === 'TASK_RUNNING').length === 2, 5000, 'two tasks at the master');

    const before = two.tasks.map((t) => t.taskId);
    const restarting = await c.client.restart('web');
    expect(restarting.version).toBe(two.version + 1);
    const restarted = await c.waitFor('web', (v) => v.status === 'running' && v.tasks.every((t) => t.phase === 'running' && t.version === restarting.version));
    expect(restarted.tasks.map((t) => t.index)).toEqual([0, 1]);
    for (const [i, t] of restarted.tasks.entries()) expect(t.taskId).not.toBe(before[i]);
    await until(async () => (await c!.masterTasks()).filter((t) => t.state === 'TASK_RUNNING').length === 2, 5000, 'two tasks after the restart');

    const removing = await c.client.remove('web');
    expect(['removing']).toContain(removing.status);
    await until(async () => (await c!.client.list()).length === 0, 10_000, 'app forgotten');
    await expect(c.client.get('web')).rejects.toThrow(/no app "web"/);
    await until(async () => (await c!.masterTasks()).every((t) => t.state !== 'TASK_RUNNING'), 5000, 'every task killed');
  });
});
