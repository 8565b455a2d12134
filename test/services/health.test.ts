/**
 * Health checks: the check goes to the agent in TaskInfo.health_check; the
 * verdicts it reports show in the app; an instance that stays unhealthy is
 * replaced — killed by its agent after `consecutiveFailures` (the real
 * agent's job), or by the framework once that time has passed without the
 * agent acting (the sim agent never kills) — and relaunched in its slot with
 * backoff. A rolling restart waits for each new instance to be healthy.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { startServicesCluster, until, type ServicesCluster } from './cluster.js';

let c: ServicesCluster | undefined;
afterEach(async () => {
  await c?.dispose();
  c = undefined;
});

const checked = {
  id: 'checked',
  cmd: 'serve',
  mem: 32,
  instances: 2,
  ports: [{ name: 'http' }],
  healthCheck: { type: 'HTTP', port: 'http', path: '/ready', intervalSeconds: 0.1, timeoutSeconds: 0.1, consecutiveFailures: 2, gracePeriodSeconds: 1 },
  backoff: { initialSeconds: 0.1 },
};

describe('health checks', () => {
  it('passes the check to the agent, shows verdicts, replaces an instance that stays unhealthy', async () => {
    c = await startServicesCluster({ agents: 1 });
    const fw = (): string => c!.services.frameworkId!;
    await c.client.deploy(checked);
    const started = await c.waitFor('checked', (v) => v.tasks.length === 2 && v.tasks.every((t) => t.state === 'TASK_RUNNING'));
    // Running but not yet checked healthy: not "running" as an app yet.
    expect(started.status).toBe('deploying');
    const agent = c.agents[0]!;
    const info = [...agent.tasks.values()].find((t) => t.info.task_id.value === started.tasks[0]!.taskId)!.info;
    expect(info.health_check).toEqual({
      type: 'HTTP',
      http: { port: started.tasks[0]!.ports[0], path: '/ready', scheme: 'http' },
      delay_seconds: 0,
      interval_seconds: 0.1,
      timeout_seconds: 0.1,
      consecutive_failures: 2,
      grace_period_seconds: 1,
    });
    for (const t of started.tasks) agent.setHealth(fw(), t.taskId!, true);
    const healthy = await c.waitFor('checked', (v) => v.status === 'running' && v.healthy === 2);
    expect(healthy.tasks.every((t) => t.healthy === true)).toBe(true);

    const sick = healthy.tasks[0]!;
    agent.setHealth(fw(), sick.taskId!, false);
    const shown = await c.waitFor('checked', (v) => v.tasks[0]!.phase === 'unhealthy' || v.tasks[0]!.taskId !== sick.taskId, 5000);
    expect(shown.healthy).toBeLessThan(2);
    // The framework kills it after (consecutiveFailures + 1) intervals + the timeout, and relaunches instance 0.
    await until(() => agent.received.some((e) => e.type === 'KILL' && e.kill.task_id.value === sick.taskId), 5000, 'unhealthy task killed');
    const replaced = await c.waitFor('checked', (v) => v.tasks[0]!.taskId !== sick.taskId && v.tasks[0]!.state === 'TASK_RUNNING');
    expect(replaced.tasks[0]!.index).toBe(0);
    expect(replaced.tasks[0]!.lastError).toMatchObject({ taskId: sick.taskId, state: 'TASK_KILLED', message: expect.stringMatching(/failing its health checks/) });
    expect(replaced.tasks[0]!.failures).toBe(1);
    expect(replaced.tasks[1]!.taskId).toBe(sick.taskId === healthy.tasks[1]!.taskId ? undefined : healthy.tasks[1]!.taskId);

    // An agent that kills the task itself (as the real agent does): TASK_KILLED with healthy=false, relaunched too.
    const other = replaced.tasks[1]!;
    agent.setHealth(fw(), other.taskId!, false);
    agent.end(fw(), other.taskId!, 'TASK_KILLED', 'health check failed 2 times in a row');
    const again = await c.waitFor('checked', (v) => v.tasks[1]!.taskId !== other.taskId && v.tasks[1]!.state === 'TASK_RUNNING');
    expect(again.tasks[1]!.lastError).toMatchObject({ taskId: other.taskId, state: 'TASK_KILLED', message: expect.stringMatching(/health check failed/) });
  });

  it('restarts one instance at a time, each time waiting for the new one to be healthy', async () => {
    c = await startServicesCluster({ agents: 1 });
    const fw = (): string => c!.services.frameworkId!;
    const agent = c.agents[0]!;
    // The "agent" reports every task healthy 150 ms after it starts.
    const healthyAt = new Map<string, number>();
    agent.on((e) => {
      if (e.type !== 'LAUNCH') return;
      for (const t of e.launch.tasks)
        setTimeout(() => {
          healthyAt.set(t.task_id.value, Date.now());
          try {
            agent.setHealth(fw(), t.task_id.value, true);
          } catch {
            // already killed
          }
        }, 150);
    });
    await c.client.deploy({ ...checked, instances: 3 });
    const before = await c.waitFor('checked', (v) => v.status === 'running');
    const killsAt: number[] = [];
    agent.on((e) => e.type === 'KILL' && killsAt.push(Date.now()));
    const restarting = await c.client.restart('checked');
    const after = await c.waitFor('checked', (v) => v.status === 'running' && v.tasks.every((t) => t.version === restarting.version));
    expect(killsAt).toHaveLength(3);
    // Each kill comes after the previous replacement reported healthy.
    const replacements = after.tasks.map((t) => healthyAt.get(t.taskId!)!).sort((a, b) => a - b);
    expect(killsAt[1]!).toBeGreaterThanOrEqual(replacements[0]!);
    expect(killsAt[2]!).toBeGreaterThanOrEqual(replacements[1]!);
    expect(after.tasks.map((t) => t.taskId)).not.toContain(before.tasks[0]!.taskId);
  });
});
