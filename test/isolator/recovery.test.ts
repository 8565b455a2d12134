/**
 * Agent death and recovery for the native containerizer: a containerizer in
 * a child process launches tasks and is SIGKILLed. The tasks keep running
 * (their supervisors are not the agent's children); a new containerizer's
 * recover() reattaches to the running ones, reports the one that exited
 * while no agent ran with its real exit status, and destroys the orphan the
 * agent no longer knows — processes, cgroups and namespace files included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig } from '../../contracts/containerizer.js';
import { createMesosContainerizer, type MesosContainerizer } from '../../plugins/isolator/src/native/containerizer.js';
import { isAlive } from '../harness/ceph.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { NONE, buildShim, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, task, type NativeEnv } from './helpers.js';

let env: NativeEnv;
let agent: AgentProcess | undefined;
let recovered: MesosContainerizer | undefined;
let configs: Record<string, ContainerConfig>;

/** The resident launcher(s) the fixture started (children of its pid). */
function launcherPidsOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('corral-task-shim')) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

beforeAll(async () => {
  buildShim();
  // The test process only provides directories and names; the first containerizer lives in the child.
  env = await nativeEnv('recover');
  await env.z.close();
  configs = {
    long: task('long', env.sandbox('long'), { network: { mode: 'isolated' }, command: shell('echo started; trap "echo term; exit 0" TERM; while :; do sleep 0.05; done') }),
    quick: task('quick', env.sandbox('quick'), { command: shell('sleep 1; echo done; exit 5') }),
    orphan: task('orphan', env.sandbox('orphan'), { network: { mode: 'isolated' }, command: shell('sleep 60') }),
  };
});

afterAll(async () => {
  await agent?.crash().catch(() => undefined);
  if (!env) return;
  const z = recovered ?? (await createMesosContainerizer(env.config));
  for (const id of readdirSync(join(env.dir, 'run', 'containers'))) await z.destroy(id).catch(() => undefined);
  await z.close();
  await removeCgroupRoot(env.cgroupRoot);
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

describe('agent death (SIGKILL) and recovery', () => {
  it('tasks survive the agent, are recovered, and orphans are destroyed', async () => {
    agent = await startAgentProcess('MESOS', env.config as Record<string, unknown>, Object.values(configs));
    const launched = agent.launched;
    expect([...launched.keys()].sort()).toEqual(['long', 'orphan', 'quick']);
    const launchers = launcherPidsOf(agent.pid);
    expect(launchers).toHaveLength(1);

    await agent.crash();
    agent = undefined;
    // The tasks run on; the agent's launcher noticed its agent is gone and left.
    for (const id of ['long', 'orphan']) expect(isAlive(launched.get(id)!.pid!), id).toBe(true);
    await eventually(() => expect(launchers.filter(isAlive)).toEqual([]));

    // "quick" ends while no agent is running; its supervisor records the exit.
    await eventually(() => expect(existsSync(join(configs.quick!.sandbox, '.corral', 'termination.json'))).toBe(true), 10_000);

    recovered = await createMesosContainerizer(env.config);
    const result = await recovered.recover([configs.long!, configs.quick!]);
    const byId = Object.fromEntries(result.map((r) => [r.containerId, r]));
    expect(byId.long).toMatchObject({ running: true, launched: { pid: launched.get('long')!.pid, netns: launched.get('long')!.netns } });
    expect(byId.quick).toMatchObject({ running: false, termination: { exitCode: 5, signal: null, oomKilled: false } });
    expect(readFileSync(join(configs.quick!.sandbox, 'stdout'), 'utf8')).toBe('done\n');

    // The orphan is gone: process, cgroup, namespace file, checkpoint.
    await eventually(() => expect(isAlive(launched.get('orphan')!.pid!)).toBe(false));
    expect(recovered.cgroups.exists('orphan')).toBe(false);
    expect(existsSync(launched.get('orphan')!.netns!)).toBe(false);
    expect(existsSync(join(env.dir, 'run', 'containers', 'orphan'))).toBe(false);

    // The reattached task behaves like any other: wait, kill with grace (its TERM trap runs), destroy.
    const waiting = recovered.wait('long');
    await recovered.kill('long', 5000);
    expect(await waiting).toMatchObject({ exitCode: 0, signal: null });
    expect(readFileSync(join(configs.long!.sandbox, 'stdout'), 'utf8')).toBe('started\nterm\n');
    expect(await recovered.wait('quick')).toMatchObject({ exitCode: 5 });
    await recovered.destroy('long');
    await recovered.destroy('quick');
    expect(leftovers(env)).toEqual(NONE);
  });

  it('a known container with no trace on the host is reported as lost', async () => {
    const z = recovered!;
    const [r] = await z.recover([task('never', env.sandbox('never'))]);
    expect(r).toMatchObject({ containerId: 'never', running: false, termination: { reason: 'REASON_EXECUTOR_TERMINATED' } });
  });
});
