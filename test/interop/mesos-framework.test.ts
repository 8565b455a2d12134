/**
 * Software written against Mesos works against corral unchanged: the
 * `mesos-framework` npm package's Scheduler (0.5.3, a Mesos v1 HTTP
 * scheduler library nobody here wrote) subscribes to a real corral master,
 * takes offers, launches tasks on a simulated agent, acknowledges their
 * updates, reconciles, kills a task and tears itself down.
 *
 * It sends every unset protobuf field as JSON null, reads the agent's IP
 * from offer.url, and reads one RecordIO record per HTTP chunk — each of
 * those failed against corral before. The package sends no credentials (it
 * has no option for them), so the master runs without authentication, as
 * a Mesos master does by default (--authenticate_frameworks=false).
 */
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { testDir } from '../harness/resources.js';
import { until, untilValue } from '../harness/wait.js';
import { frameworksOf, protocolErrors, recordingAgent, startSleepers, tasksOf } from './mesos-framework-harness.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

describe('the mesos-framework npm package against a corral master', () => {
  it('subscribes, launches on offers, acknowledges, reconciles, kills and tears down', async () => {
    const dir = testDir('mesos-framework');
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    master = await startTestMaster({}, dir);
    const { agent, launches } = await recordingAgent(cleanup, master.url, 'interop-agent');
    const w = startSleepers(cleanup, { host: '127.0.0.1', port: master.port, dir, frameworkName: 'interop', instances: 2 });

    // SUBSCRIBE (sent with "framework_id": null, "checkpoint": null, "role": null, …).
    const frameworkId = await untilValue('SUBSCRIBED', async () => w.scheduler.frameworkId ?? undefined, 20_000);
    expect(w.scheduler.mesosStreamId).toMatch(/^[0-9a-f-]{36}$/);

    // Offers carry url; the package puts its ip into each task's HOST variable.
    await until(() => w.offers.length > 0, 20_000, 'an offer');
    expect(w.offers[0]!.url).toEqual({ scheme: 'http', address: { hostname: 'interop-agent', ip: '127.0.0.1', port: 5051 }, path: '/slave(1)' });

    // Both tasks launch (ACCEPT with nulls in every TaskInfo and Resource) and run.
    const running = await untilValue(
      'two tasks launched and RUNNING',
      async () => {
        const ids = w.scheduler.launchedTasks.filter((t) => t.runtimeInfo?.state === 'TASK_RUNNING').map((t) => t.taskId);
        return ids.length === 2 ? ids : undefined;
      },
      30_000,
    );
    const launchedInfos = launches.flatMap((e) => (e.type === 'LAUNCH' ? e.launch.tasks : []));
    expect(launchedInfos.map((t) => t.task_id.value).sort()).toEqual([...running].sort());
    for (const t of launchedInfos) {
      const env = (t.command as { environment?: { variables?: Array<{ name: string; value?: string }> } }).environment?.variables ?? [];
      expect(env.find((v) => v.name === 'HOST')?.value).toBe('127.0.0.1');
      // One port of the offer's range (the package sends its Resources with "role": null, "reservation": null, …).
      const port = t.resources.find((r) => r.name === 'ports')?.ranges?.range[0];
      expect(port && port.begin === port.end && port.begin >= 31000 && port.begin <= 31010).toBe(true);
    }

    // Every TASK_RUNNING was acknowledged: records delivered one per chunk were all read.
    await until(
      async () => (await tasksOf(master!.url)).tasks.filter((t) => t.framework_id.value === frameworkId && t.state === 'TASK_RUNNING' && t.status_update_uuid === undefined).length === 2,
      20_000,
      'acknowledged RUNNING tasks',
    );
    await until(() => agent.updates.pending().length === 0, 20_000, 'the agent to stop resending');
    expect(w.sent.filter((s) => s === 'sent_acknowledge').length).toBeGreaterThanOrEqual(2);

    // Explicit reconciliation: the master answers, with nothing to acknowledge.
    const [first, second] = running as [string, string];
    const agentId = agent.id!;
    const seenBefore = w.updates.length;
    w.scheduler.reconcile(first, agentId);
    const explicit = await w.update((s) => w.updates.indexOf(s) >= seenBefore && s.task_id.value === first && s.reason === 'REASON_RECONCILIATION', 'explicit reconciliation');
    expect(explicit).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_MASTER', message: 'Reconciliation: Latest task state', agent_id: { value: agentId } });
    expect(explicit.uuid).toBeUndefined();
    // A task the agent does not have: TASK_LOST to a framework that is not partition-aware.
    w.scheduler.reconcile('no-such-task', agentId);
    const ghost = await w.update((s) => s.task_id.value === 'no-such-task', 'reconciliation of an unknown task');
    expect(ghost).toMatchObject({ state: 'TASK_LOST', source: 'SOURCE_MASTER', reason: 'REASON_RECONCILIATION' });

    // Implicit reconciliation: every task the master knows.
    const beforeImplicit = w.updates.length;
    w.scheduler.reconcile();
    await until(
      () =>
        new Set(
          w.updates
            .slice(beforeImplicit)
            .filter((s) => s.reason === 'REASON_RECONCILIATION' && s.source === 'SOURCE_MASTER' && s.state === 'TASK_RUNNING')
            .map((s) => s.task_id.value),
        ).size === 2,
      20_000,
      'implicit reconciliation of both tasks',
    );

    // KILL: the task ends KILLED, the update is acknowledged and the package forgets the task.
    w.scheduler.kill(second, agentId);
    await w.update((s) => s.task_id.value === second && s.state === 'TASK_KILLED', 'TASK_KILLED');
    await until(() => w.scheduler.launchedTasks.length === 1, 20_000, 'the package to drop the killed task');
    await until(async () => (await tasksOf(master!.url)).completed_tasks.some((t) => t.task_id.value === second && t.state === 'TASK_KILLED'), 20_000, 'the killed task to complete');
    await until(() => agent.updates.pending().length === 0, 20_000, 'the KILLED update acknowledged');
    expect(protocolErrors(w)).toEqual([]);

    // TEARDOWN: the framework is gone, listed as completed, its last task killed on the agent.
    // The package re-subscribes whenever its stream ends, TEARDOWN's end too; the test is done with it then.
    w.stopResubscribing();
    w.scheduler.teardown();
    await until(() => w.sent.includes('sent_teardown'), 20_000, 'TEARDOWN answered 202');
    const frameworks = await frameworksOf(master.url);
    expect(frameworks.frameworks.map((f) => f.framework_info.id.value)).not.toContain(frameworkId);
    const completed = frameworks.completed_frameworks.find((f) => f.framework_info.id.value === frameworkId);
    expect(completed).toMatchObject({ active: false, connected: false, framework_info: { name: 'interop' } });
    expect(completed?.unregistered_time?.nanoseconds).toBeGreaterThan(0);
    await until(() => agent.received.some((e) => e.type === 'SHUTDOWN_FRAMEWORK' && e.shutdown_framework.framework_id.value === frameworkId), 20_000, 'SHUTDOWN_FRAMEWORK on the agent');
    const after = await tasksOf(master.url);
    expect(after.tasks.filter((t) => t.framework_id.value === frameworkId)).toEqual([]);
    expect(
      after.completed_tasks
        .filter((t) => t.framework_id.value === frameworkId)
        .map((t) => [t.task_id.value, t.state])
        .sort(),
    ).toEqual(
      [
        [first, 'TASK_KILLED'],
        [second, 'TASK_KILLED'],
      ].sort(),
    );
  });
});
