/**
 * Who a task runs as and with which privileges, as the agent builds its
 * ContainerConfig from a TaskInfo: command.user, else the framework's user,
 * else the agent's taskUser (MESOS); command.user only (DOCKER, else the
 * image's user); LinuxInfo capabilities by Mesos name; root denied when the
 * agent does not allow it; persistent volumes marked to be handed to the task.
 */
import { describe, expect, it } from 'vitest';
import type { V1TaskInfo } from '../../../contracts/v1/v1.js';
import { containerConfigFor, type SpecContext } from '../../../core-scheduler/src/agent/container-spec.js';

const ctx: SpecContext = {
  workDir: '/var/lib/corral/agent',
  frameworkId: 'fw-1',
  taskUser: 'nobody',
  allowRootTasks: true,
  role: '*',
  hostname: 'node-1',
  pidsLimit: 100,
  logs: { maxBytes: 1024, maxFiles: 2 },
};

const scalar = (name: string, value: number) => ({ name, type: 'SCALAR' as const, scalar: { value } });

function taskInfo(o: Partial<V1TaskInfo> = {}): V1TaskInfo {
  return {
    name: 't',
    task_id: { value: 't1' },
    agent_id: { value: 'a1' },
    resources: [scalar('cpus', 0.1), scalar('mem', 32)],
    command: { value: 'id -u' },
    ...o,
  } as V1TaskInfo;
}

const userOf = (task: V1TaskInfo, c: Partial<SpecContext> = {}) => containerConfigFor(task, 'c1', { ...ctx, ...c }).config.command?.user;

describe('the task user', () => {
  it('command.user, else the framework user, else the agent taskUser', () => {
    expect(userOf(taskInfo({ command: { value: 'id', user: 'daemon' } }), { frameworkUser: 'www-data' })).toBe('daemon');
    expect(userOf(taskInfo(), { frameworkUser: 'www-data' })).toBe('www-data');
    expect(userOf(taskInfo(), { frameworkUser: '' })).toBe('nobody');
    expect(userOf(taskInfo(), { taskUser: 'corral-task' })).toBe('corral-task');
  });

  it("a DOCKER task runs as command.user, else as its image says (a framework's host account means nothing in an image)", () => {
    const docker = { container: { type: 'DOCKER' as const, docker: { image: 'busybox' } } };
    expect(userOf(taskInfo(docker), { frameworkUser: 'www-data' })).toBeUndefined();
    expect(userOf(taskInfo({ ...docker, command: { value: 'id', user: '65534' } }))).toBe('65534');
  });
});

describe('privileges', () => {
  it('LinuxInfo capabilities by Mesos name; capability_info is the effective set (deprecated form)', () => {
    const withCaps = taskInfo({
      container: { type: 'MESOS', linux_info: { effective_capabilities: { capabilities: ['NET_BIND_SERVICE'] }, bounding_capabilities: { capabilities: ['NET_BIND_SERVICE', 'CHOWN'] } } },
    } as Partial<V1TaskInfo>);
    expect(containerConfigFor(withCaps, 'c1', ctx).config.security).toEqual({ effectiveCapabilities: ['NET_BIND_SERVICE'], boundingCapabilities: ['NET_BIND_SERVICE', 'CHOWN'] });
    const legacy = taskInfo({ container: { type: 'MESOS', linux_info: { capability_info: { capabilities: ['KILL'] } } } } as Partial<V1TaskInfo>);
    expect(containerConfigFor(legacy, 'c1', ctx).config.security).toEqual({ effectiveCapabilities: ['KILL'] });
    expect(containerConfigFor(taskInfo(), 'c1', ctx).config.security).toBeUndefined();
  });

  it('LinuxInfo.seccomp.unconfined runs the task without seccomp; a named profile is refused, naming the field', () => {
    const withSeccomp = (seccomp: unknown): V1TaskInfo => taskInfo({ container: { type: 'MESOS', linux_info: { seccomp } } } as unknown as Partial<V1TaskInfo>);
    expect(containerConfigFor(withSeccomp({ unconfined: true }), 'c1', ctx).config.security).toEqual({ seccomp: 'unconfined' });
    expect(containerConfigFor(withSeccomp({ unconfined: false }), 'c1', ctx).config.security).toBeUndefined();
    expect(() => containerConfigFor(withSeccomp({ profile_name: 'strict.json' }), 'c1', ctx)).toThrow(/seccomp.profile_name "strict.json" is not available: this agent has only its default profile/);
    expect(() => containerConfigFor(withSeccomp({ profile_name: 'x', unconfined: true }), 'c1', ctx)).toThrow(/give "profile_name" or "unconfined", not both/);
  });

  it('a malformed capability list is a bad task', () => {
    const bad = taskInfo({ container: { type: 'MESOS', linux_info: { effective_capabilities: { capabilities: 'ALL' } } } } as unknown as Partial<V1TaskInfo>);
    expect(() => containerConfigFor(bad, 'c1', ctx)).toThrow(/linux_info.effective_capabilities.capabilities must be a list/);
  });

  it('allowRootTasks: false marks every launch so the containerizer refuses uid 0', () => {
    expect(containerConfigFor(taskInfo(), 'c1', { ...ctx, allowRootTasks: false }).config.security).toEqual({ denyRoot: true });
  });
});
