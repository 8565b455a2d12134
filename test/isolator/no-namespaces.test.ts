/**
 * The native containerizer configured without namespaces (cgroups only):
 * the task is the supervisor's direct child, signals reach it as they are,
 * and whatever it leaves running in its cgroup (a background child that
 * outlived it) is killed by destroy — no orphan survives its container.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from '../harness/ceph.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, shell, task, type NativeEnv } from './helpers.js';

let env: NativeEnv;

beforeAll(async () => {
  env = await nativeEnv('nons', { namespaces: [] });
});

afterAll(async () => {
  if (!env) return;
  await env.z.destroy('bg').catch(() => undefined);
  await env.z.destroy('plain').catch(() => undefined);
  await env.z.close();
  await removeCgroupRoot(env.cgroupRoot);
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

describe('cgroups without namespaces', () => {
  it('runs the task in the host namespaces, in its cgroups', async () => {
    const sandbox = env.sandbox('plain');
    const l = await env.z.launch(task('plain', sandbox, { command: shell('cat /proc/self/cgroup; sleep 30') }));
    for (const ns of ['pid', 'mnt', 'uts', 'ipc']) expect(readlinkSync(`/proc/${l.pid}/ns/${ns}`)).toBe(readlinkSync(`/proc/self/ns/${ns}`));
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toContain(`/${env.cgroupRoot}/plain`));
    await env.z.kill('plain', 2000);
    expect(await env.z.wait('plain')).toMatchObject({ signal: 'SIGTERM' });
    await env.z.destroy('plain');
  });

  it('a child left running after the task ended is killed by destroy', async () => {
    const sandbox = env.sandbox('bg');
    await env.z.launch(task('bg', sandbox, { command: shell('sleep 60 & echo $!; exit 4') }));
    expect(await env.z.wait('bg')).toMatchObject({ exitCode: 4 });
    const child = Number(readFileSync(join(sandbox, 'stdout'), 'utf8').trim());
    expect(isAlive(child)).toBe(true);
    expect(env.z.cgroups.procs('bg')).toContain(child);
    await env.z.destroy('bg');
    await eventually(() => expect(isAlive(child)).toBe(false));
    expect(env.z.cgroups.exists('bg')).toBe(false);
  });
});
