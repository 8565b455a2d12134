/**
 * Apps that cannot run: a task that keeps failing is relaunched with a
 * growing, capped delay; a broken app (its image cannot be pulled) and an
 * impossible constraint show clear states and reasons, never a crash; and a
 * healthy app deploys normally meanwhile.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { startServicesCluster, runningTasks, until, type ServicesCluster } from './cluster.js';
import type { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';

let c: ServicesCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

/** Make a sim agent fail tasks the way an agent fails an image it cannot pull. */
function failUnknownImages(agent: SimAgent, frameworkId: () => string): void {
  agent.on((e) => {
    if (e.type !== 'LAUNCH') return;
    for (const t of e.launch.tasks) {
      if (t.container?.docker?.image.startsWith('no-such/')) setTimeout(() => agent.end(frameworkId(), t.task_id.value, 'TASK_FAILED', `image ${t.container!.docker!.image} not found`), 5);
    }
  });
}

describe('failing apps', () => {
  it('relaunches a failing task with exponential backoff, capped', async () => {
    c = await startServicesCluster({ agents: 1 });
    const agent = c.agents[0]!;
    const launches: number[] = [];
    const failures: number[] = [];
    agent.on((e) => {
      if (e.type !== 'LAUNCH') return;
      launches.push(Date.now());
      // Each task runs briefly, then exits with an error.
      for (const t of e.launch.tasks)
        setTimeout(() => {
          failures.push(Date.now());
          agent.end(c!.services.frameworkId!, t.task_id.value, 'TASK_FAILED', 'exit status 3');
        }, 20);
    });
    await c.client.deploy({ id: 'flaky', cmd: 'exit 3', mem: 32, backoff: { initialSeconds: 0.2, factor: 2, maxSeconds: 0.8 } });
    await until(() => launches.length >= 6, 15_000, 'six launches');
    const delays = launches.slice(1, 6).map((at, i) => at - failures[i]!);
    // Wanted: 200, 400, 800, 800, 800 ms (plus offer round trips).
    expect(delays[0]).toBeGreaterThanOrEqual(190);
    expect(delays[1]).toBeGreaterThanOrEqual(390);
    expect(delays[2]).toBeGreaterThanOrEqual(790);
    expect(delays[1]! - delays[0]!).toBeGreaterThan(100);
    expect(delays[2]! - delays[1]!).toBeGreaterThan(200);
    for (const d of delays.slice(2)) expect(d).toBeLessThan(800 + 600);
    const v = await c.client.get('flaky');
    expect(v.tasks[0]!.failures).toBeGreaterThanOrEqual(5);
    expect(v.tasks[0]!.lastError?.message).toMatch(/exit status 3/);
    expect(v.tasks[0]!.lastError?.state).toBe('TASK_FAILED');
  });

  it('reports a broken app and an impossible constraint clearly while a healthy app deploys', async () => {
    c = await startServicesCluster({ agents: 2 });
    for (const a of c.agents) failUnknownImages(a, () => c!.services.frameworkId!);

    await c.client.deploy({ id: 'broken', image: 'no-such/image:1', mem: 32, backoff: { initialSeconds: 5 } });
    await c.client.deploy({ id: 'picky', cmd: 'sleep 1000', mem: 32, constraints: [['hostname', 'LIKE', 'rack-[0-9]+']] });
    await c.client.deploy({ id: 'crowded', cmd: 'sleep 1000', mem: 32, instances: 3, constraints: [['hostname', 'UNIQUE']] });
    await c.client.deploy({ id: 'healthy', cmd: 'sleep 1000', mem: 32, instances: 2 });

    const healthy = await c.waitFor('healthy', (v) => v.status === 'running');
    expect(runningTasks(healthy)).toHaveLength(2);

    const broken = await c.waitFor('broken', (v) => v.status === 'backoff');
    expect(broken.message).toMatch(/image no-such\/image:1 not found/);
    expect(broken.tasks[0]!.phase).toBe('backoff');
    expect(broken.tasks[0]!.retryAt).toBeDefined();
    expect(broken.tasks[0]!.lastError).toMatchObject({ state: 'TASK_FAILED' });

    const picky = await c.waitFor('picky', (v) => v.status === 'waiting');
    expect(picky.message).toMatch(/constraint \[hostname LIKE rack-\[0-9\]\+\] ruled out 2 agents \(h1, h2\)/);
    expect(picky.tasks[0]!.phase).toBe('waiting');

    const crowded = await c.waitFor('crowded', (v) => v.status === 'waiting' && runningTasks(v).length === 2);
    expect(crowded.tasks[2]!.waiting).toMatch(/constraint \[hostname UNIQUE\] ruled out 2 agents/);
    expect(crowded.message).toMatch(/instance 2/);

    // Another agent joins: the crowded app's last instance finds its host.
    await c.addAgent();
    const spread = await c.waitFor('crowded', (v) => v.status === 'running');
    expect(new Set(runningTasks(spread).map((t) => t.host)).size).toBe(3);
    const list = await c.client.list();
    expect(Object.fromEntries(list.map((a) => [a.id, a.status]))).toMatchObject({ broken: 'backoff', picky: 'waiting', crowded: 'running', healthy: 'running' });
    // The daemon is fine all along.
    expect((await fetch(`${c.services.url}/health`)).status).toBe(200);
  });
});
