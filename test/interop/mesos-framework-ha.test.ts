/**
 * The `mesos-framework` npm package (0.5.3, unmodified) against replicated
 * corral masters: three real master processes on a real etcd, one leading.
 *
 * What the package does about leaders, read from its source
 * (node_modules/mesos-framework/lib/scheduler.js):
 *
 * - It takes one master (`masterUrl`, `port`); no list, no ZooKeeper
 *   detection (`useZk` only stores its framework id and tasks in ZooKeeper,
 *   lines 163-267). Its README says to give it "the leading Mesos master".
 * - A SUBSCRIBE answered 307 (line 366) goes through handleRedirect (lines
 *   331-358): it strips every "//" from the Location, splits on ":" and takes
 *   host and port, accepting both `//host:port/path` (the form a Mesos master
 *   sends) and `http://host:port/path`, rewrites its options, and subscribes
 *   again there. Every later call goes to that address.
 * - It re-subscribes by itself only when the event stream *ends* (res 'end',
 *   line 432), i.e. when the master finishes the chunked response. A master
 *   that dies (SIGKILL) leaves the response incomplete: Node destroys it
 *   ('aborted', 'close', no 'end'), so nothing happens, and the idle-timeout
 *   path (lines 473-527) is armed on the socket that was just destroyed.
 *   That timeout path, when a live but silent master triggers it, builds a
 *   "redirect request" it never sends (no write()/end() after http.request,
 *   line 505) and calls process.exit(1) when it times out (line 522).
 * - A SUBSCRIBE that fails to connect only emits 'error' (line 468); there is
 *   no retry. What it keeps is its framework id (line 535): calling
 *   subscribe() again re-subscribes as the same framework, and on SUBSCRIBED
 *   it reconciles every task it launched (sync() at line 305, defined at
 *   Scheduler.prototype.sync, line 916).
 *
 * So the tests give it a follower's address (it must find the leader by the
 * 307), and after the leader is killed they do what an application of this
 * package has to do — call subscribe() again — with the killed master back
 * on its address as a follower, whose 307 leads the package to the new leader.
 *
 * The masters heartbeat every 2 s (the third test keeps the Mesos default): the package's default
 * masterConnectionTimeout (10 s) is shorter than the Mesos default heartbeat
 * (15 s), and an event stream quiet for that long sends it down the fatal
 * timeout path above.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdForTests } from '../harness/etcd-suite.js';
import type { MasterProcess } from '../harness/master-process.js';
import { agreedLeader, startReplicatedMasters } from '../harness/replicated-masters.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { forgetPid, recordPid, testDir } from '../harness/resources.js';
import { until, untilValue, within } from '../harness/wait.js';
import type { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import type { AgentEvent } from '../../contracts/v1/v1.js';
import { agentsOf, frameworksOf, launchedTaskIds, logDirUnder, protocolErrors, recordingAgent, startSleepers, tasksOf, type WatchedScheduler } from './mesos-framework-harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const etcd = etcdForTests();
const cleanup = stopsAfterEach();

/** Three masters sharing a fresh namespace of the etcd (their work dirs under `dir`), heartbeating frameworks every `heartbeatSeconds`. */
async function startMasters(dir: string, name: string, heartbeatSeconds = 2): Promise<MasterProcess[]> {
  const extra = { frameworks: { heartbeatIntervalSeconds: heartbeatSeconds } };
  return (await startReplicatedMasters(cleanup, { etcdEndpoint: etcd().endpoint, dir, name, leaseTtlSeconds: 5, n: 3, extra })).masters;
}

/** A cluster of three masters, an agent that knows them all, and the package pointed at a follower with one long-running task. */
async function clusterWithTask(
  name: string,
): Promise<{ masters: MasterProcess[]; leader: MasterProcess; follower: MasterProcess; agent: SimAgent; launches: AgentEvent[]; w: WatchedScheduler; frameworkId: string; taskId: string }> {
  const dir = testDir(`mesos-framework-ha-${name}`);
  const masters = await startMasters(dir, name);
  const leader = await agreedLeader(masters, 60_000);
  const follower = masters.find((m) => m !== leader)!;

  const { agent, launches } = await recordingAgent(
    cleanup,
    masters.map((m) => m.url),
    'ha-interop-agent',
  );
  const w = startSleepers(cleanup, { host: '127.0.0.1', port: follower.port, dir, frameworkName: `ha-${name}`, instances: 1 });

  const frameworkId = await untilValue('SUBSCRIBED through the follower', async () => w.scheduler.frameworkId ?? undefined, 30_000);
  const taskId = await untilValue('the task launched and RUNNING', async () => w.scheduler.launchedTasks.find((t) => t.runtimeInfo?.state === 'TASK_RUNNING')?.taskId, 30_000);
  // Its TASK_RUNNING was acknowledged (through the address it follows), so the agent stops resending it.
  await until(
    async () => (await tasksOf(leader.url)).tasks.some((t) => t.task_id.value === taskId && t.state === 'TASK_RUNNING' && t.status_update_uuid === undefined),
    30_000,
    'the RUNNING update acknowledged',
  );
  await until(() => agent.updates.pending().length === 0, 30_000, 'the agent to stop resending');
  return { masters, leader, follower, agent, launches, w, frameworkId, taskId };
}

describe('the mesos-framework npm package against replicated corral masters', () => {
  it('given a follower’s address, follows its 307 to the leader, subscribes there and launches a task', async () => {
    const { leader, follower, launches, w, frameworkId, taskId } = await clusterWithTask('follower');

    // What the follower tells a SUBSCRIBE: the form a Mesos master sends ("//" + host + ":" + port + path).
    const probe = await fetch(`${follower.url}/api/v1/scheduler`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'probe' } } }),
      redirect: 'manual',
      signal: AbortSignal.timeout(5000),
    });
    expect(probe.status).toBe(307);
    expect(probe.headers.get('location')).toBe(`//127.0.0.1:${leader.port}/api/v1/scheduler`);

    // The package took the leader's address from that Location (only handleRedirect changes its options).
    expect(w.scheduler.options.masterUrl).toBe('127.0.0.1');
    expect(String(w.scheduler.options.port)).toBe(String(leader.port));

    // The leader has the framework, connected; its task was launched on the agent through the leader.
    const fw = (await frameworksOf(leader.url)).frameworks.find((f) => f.framework_info.id.value === frameworkId);
    expect(fw).toMatchObject({ active: true, connected: true, framework_info: { name: 'ha-follower' } });
    expect(launchedTaskIds(launches)).toEqual([taskId]);
    expect(w.sent.filter((s) => s === 'sent_subscribe')).toHaveLength(1);
    expect(w.sent).toContain('sent_accept');
    expect(w.sent).toContain('sent_acknowledge');
    expect(protocolErrors(w)).toEqual([]);
  }, 180_000);

  it('the leader SIGKILLed under a running task: subscribe() again through the old address, now a follower, reaches the new leader as the same framework and the task reconciles RUNNING', async () => {
    const { masters, leader, agent, launches, w, frameworkId, taskId } = await clusterWithTask('failover');
    const agentId = agent.id!;
    expect(String(w.scheduler.options.port)).toBe(String(leader.port));

    // Watch the event stream the package holds (its SUBSCRIBE request and response).
    const stream = { aborted: false, ended: false, closed: false };
    const req = w.scheduler.httpRequest as unknown as import('node:http').ClientRequest;
    req.once('close', () => (stream.closed = true));
    const res = (req as unknown as { res: import('node:http').IncomingMessage | null }).res!;
    res.once('aborted', () => (stream.aborted = true));
    res.once('end', () => (stream.ended = true));
    const subscribesBefore = w.sent.filter((s) => s === 'sent_subscribe').length;

    await leader.kill('SIGKILL');
    const next = await agreedLeader(masters, 60_000);
    expect(next).not.toBe(leader);

    // The stream broke without an end: the package saw no 'end', so it did not re-subscribe (scheduler.js:432).
    await until(() => stream.closed, 30_000, 'the event stream to close');
    expect(stream).toEqual({ aborted: true, ended: false, closed: true });

    // The agent follows the new leader by itself (it knows every master); the new leader knows the task RUNNING
    // and the framework from the registry, waiting for it to come back.
    await until(async () => (await agentsOf(next.url)).agents.some((a) => a.agent_info.id?.value === agentId && a.active), 60_000, 'the agent re-registered with the new leader');
    await until(async () => (await tasksOf(next.url)).tasks.some((t) => t.task_id.value === taskId && t.state === 'TASK_RUNNING'), 30_000, 'the task known RUNNING to the new leader');
    // As a Mesos master after failover: a framework not yet re-subscribed is listed as recovered only.
    const waiting = await frameworksOf(next.url);
    expect(waiting.frameworks.map((f) => f.framework_info.id.value)).not.toContain(frameworkId);
    expect(waiting.recovered_frameworks?.map((f) => f.id.value)).toContain(frameworkId);
    // Still nothing from the package: one SUBSCRIBE, sent before the kill.
    expect(w.sent.filter((s) => s === 'sent_subscribe').length).toBe(subscribesBefore);

    // subscribe() while its address is dead: one 'error', no retry (scheduler.js:468).
    const errorsBefore = w.errors.length;
    w.scheduler.subscribe();
    const refused = await untilValue('the refused SUBSCRIBE reported', async () => w.errors.slice(errorsBefore).find((e) => /problem with the request.*ECONNREFUSED/.test(e)), 30_000);
    expect(refused).toContain(`127.0.0.1:${leader.port}`);

    // The killed master comes back on its address and follows the new leader.
    await leader.start();
    expect(await agreedLeader(masters, 60_000)).toBe(next);

    // subscribe() again: the old address answers 307 to the new leader, the package follows it and
    // re-subscribes with its framework id; SUBSCRIBED makes it reconcile the task it launched.
    const updatesBefore = w.updates.length;
    w.scheduler.subscribe();
    await until(() => w.sent.filter((s) => s === 'sent_subscribe').length === subscribesBefore + 1, 30_000, 'SUBSCRIBE answered 200 by the new leader');
    expect(w.scheduler.frameworkId).toBe(frameworkId);
    expect(String(w.scheduler.options.port)).toBe(String(next.port));
    const reconciled = await w.update((s) => w.updates.indexOf(s) >= updatesBefore && s.task_id.value === taskId && s.reason === 'REASON_RECONCILIATION', 'the task reconciled', 30_000);
    expect(reconciled).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_MASTER', agent_id: { value: agentId } });

    // One framework, connected to the new leader; the task was never launched again.
    const back = (await frameworksOf(next.url)).frameworks.filter((f) => f.framework_info.id.value === frameworkId);
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ active: true, connected: true });
    expect(w.scheduler.launchedTasks.map((t) => [t.taskId, t.runtimeInfo?.state])).toEqual([[taskId, 'TASK_RUNNING']]);
    expect(w.scheduler.pendingTasks).toEqual([]);
    expect(launchedTaskIds(launches)).toEqual([taskId]);
    expect(protocolErrors(w)).toEqual([]);
  }, 240_000);
  it('a stream quiet past its masterConnectionTimeout (the Mesos default heartbeat, 15 s) makes it exit its process, the leader alive and leading', async () => {
    const dir = testDir('mesos-framework-ha-quiet');
    const masters = await startMasters(dir, 'quiet', 15);
    const leader = await agreedLeader(masters, 60_000);
    const follower = masters.find((m) => m !== leader)!;

    // The package in a process of its own (it ends it), pointed at the follower, with a 2 s masterConnectionTimeout.
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/interop/fixtures/mesos-framework-process.ts'), '127.0.0.1', String(follower.port), logDirUnder(dir), '2'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid!;
    recordPid('mesos-framework', pid);
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    cleanup.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      forgetPid('mesos-framework', pid);
    });

    // It finds the leader by the follower's 307 and subscribes there.
    const subscribed = await untilValue(
      'the package subscribed',
      async () =>
        output
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { event: string; frameworkId?: string; port?: number })
          .find((e) => e.event === 'subscribed'),
      60_000,
    );
    expect(subscribed.port).toBe(leader.port);

    // No event for 2 s: its timeout handler destroys the stream and builds a request to the same master that it
    // never sends (scheduler.js:505, no end()), so that request times out too and it calls process.exit(1) (line 522).
    expect(await within(exited, 60_000)).toEqual({ code: 1, signal: null });
    expect(output).toMatch(/Couldn't receive a response for the redirect request from the last leading master/);

    // Nothing happened to the masters: the same leader leads, and the framework it subscribed is known there.
    expect(await agreedLeader(masters, 60_000)).toBe(leader);
    const fw = (await frameworksOf(leader.url)).frameworks.find((f) => f.framework_info.id.value === subscribed.frameworkId);
    expect(fw?.framework_info.name).toBe('quiet-stream');
  }, 180_000);
});
