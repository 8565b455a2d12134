/**
 * The Docker create options a task becomes (pure mapping): limits as the
 * native cgroups map them, mounts (sandbox, host, sandbox path, external by
 * driver name), network mode, command, labels, user and privileges; and how a volume driver is
 * found before dockerd would spend 15 s looking for it.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig } from '../../../contracts/containerizer.js';
import { createOptions, isRootUserSpec, LABEL_CONTAINER, LABEL_INSTANCE } from '../../../plugins/isolator/src/docker/spec.js';
import { DEFAULT_ROOT_CAPABILITIES } from '../../../plugins/isolator/src/common/capabilities.js';
import { legacyPluginExists } from '../../../plugins/isolator/src/docker/volume-drivers.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const config: ContainerConfig = {
  containerId: 'web.1',
  frameworkId: 'fw',
  taskId: 'web',
  sandbox: '/var/sb/web.1',
  command: { shell: true, value: 'echo hi', environment: { A: '1' }, user: 'nobody' },
  image: { kind: 'docker', name: 'busybox:1', forcePull: false },
  resources: { cpus: 0.5, memMb: 128, diskMb: 0, gpus: 0, ports: [] },
  limits: { pids: 20 },
  volumes: [
    { containerPath: '/etc/app', mode: 'RO', source: { type: 'host', path: '/srv/app' } },
    { containerPath: 'cache', mode: 'RW', source: { type: 'sandbox', path: 'c' } },
    { containerPath: '/data', mode: 'RW', source: { type: 'external', driver: 'corral', name: 'pg', options: { size: '1G' } } },
  ],
  network: { mode: 'cni', network: 'corral' },
  hostname: 'web',
  logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1024, maxFiles: 2 },
  labels: { team: 'a' },
};

describe('createOptions', () => {
  const o = createOptions(config, { instance: 'agent-1', sandboxMountPoint: '/mnt/mesos/sandbox', cfsQuota: true });

  it('maps resources like the native cgroups', () => {
    expect(o.HostConfig).toMatchObject({ CpuShares: 512, CpuPeriod: 100_000, CpuQuota: 50_000, Memory: 128 * 1024 * 1024, MemorySwap: 128 * 1024 * 1024, PidsLimit: 20 });
  });

  it('runs CNI tasks with --network none and keeps their host name', () => {
    expect(o.HostConfig!.NetworkMode).toBe('none');
    expect(o.Hostname).toBe('web');
    const host = createOptions({ ...config, network: { mode: 'host' } }, { instance: 'a', sandboxMountPoint: '/s', cfsQuota: false });
    expect(host.HostConfig!.NetworkMode).toBe('host');
    expect(host.Hostname).toBeUndefined();
    expect(host.HostConfig!.CpuQuota).toBeUndefined();
  });

  it('mounts the sandbox as the working directory and each volume by kind', () => {
    expect(o.WorkingDir).toBe('/mnt/mesos/sandbox');
    expect(o.HostConfig!.Mounts).toEqual([
      { Type: 'bind', Source: '/var/sb/web.1', Target: '/mnt/mesos/sandbox', ReadOnly: false },
      { Type: 'bind', Source: '/srv/app', Target: '/etc/app', ReadOnly: true },
      { Type: 'bind', Source: '/var/sb/web.1/c', Target: '/mnt/mesos/sandbox/cache', ReadOnly: false },
      { Type: 'volume', Source: 'pg', Target: '/data', ReadOnly: false, VolumeOptions: { NoCopy: false, Labels: {}, DriverConfig: { Name: 'corral', Options: { size: '1G' } } } },
    ]);
  });

  it('sets the command, user, environment and the labels recovery looks for', () => {
    expect(o.Entrypoint).toEqual(['/bin/sh']);
    expect(o.Cmd).toEqual(['-c', 'echo hi']);
    expect(o.User).toBe('nobody');
    expect(o.Env).toEqual(['A=1', 'MESOS_SANDBOX=/mnt/mesos/sandbox', 'CORRAL_SANDBOX=/mnt/mesos/sandbox']);
    expect(o.Labels).toMatchObject({ team: 'a', [LABEL_INSTANCE]: 'agent-1', [LABEL_CONTAINER]: 'web.1' });
    expect(o.name).toBe('corral-web.1');
    const noCommand = createOptions({ ...config, command: undefined }, { instance: 'a', sandboxMountPoint: '/s', cfsQuota: true });
    expect(noCommand.Entrypoint).toBeUndefined(); // the image's own
  });
});

describe('volume driver discovery', () => {
  it('finds legacy plugins by socket or spec file, as dockerd does', () => {
    const sockets = tempDir('corral-plugins-');
    const specs = tempDir('corral-specs-');
    writeFileSync(join(sockets, 'a.sock'), '');
    mkdirSync(join(sockets, 'b'));
    writeFileSync(join(sockets, 'b', 'b.sock'), '');
    writeFileSync(join(specs, 'c.spec'), 'unix:///x.sock');
    for (const n of ['a', 'b', 'c']) expect(legacyPluginExists(n, [sockets], [specs]), n).toBe(true);
    expect(legacyPluginExists('d', [sockets], [specs])).toBe(false);
  });
});

describe('createOptions: privileges', () => {
  const opts = { instance: 'a', sandboxMountPoint: '/s', cfsQuota: false };

  it('passes the user, no-new-privileges, and drops every capability but the reduced root set', () => {
    const o = createOptions(config, opts);
    expect(o.User).toBe('nobody');
    expect(o.HostConfig).toMatchObject({ SecurityOpt: ['no-new-privileges'], CapDrop: ['ALL'] });
    expect(o.HostConfig!.CapAdd).toEqual(DEFAULT_ROOT_CAPABILITIES.map((c) => `CAP_${c}`));
    expect(o.HostConfig!.CapAdd).not.toContain('CAP_NET_RAW');
    expect(o.HostConfig!.SecurityOpt).not.toContain('seccomp=unconfined'); // Docker's default profile stays
  });

  it('a task allowed to run without seccomp gets seccomp=unconfined beside no-new-privileges', () => {
    expect(createOptions({ ...config, security: { seccomp: 'unconfined' } }, opts).HostConfig!.SecurityOpt).toEqual(['no-new-privileges', 'seccomp=unconfined']);
  });

  it("the image's user when the command names none", () => {
    const { user: _user, ...command } = config.command!;
    expect(createOptions({ ...config, command }, opts).User).toBeUndefined();
  });

  it('the effective set the launch names, else its bounding set', () => {
    expect(createOptions({ ...config, security: { effectiveCapabilities: ['NET_BIND_SERVICE'] } }, opts).HostConfig!.CapAdd).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(createOptions({ ...config, security: { boundingCapabilities: ['CHOWN', 'KILL'] } }, opts).HostConfig!.CapAdd).toEqual(['CAP_CHOWN', 'CAP_KILL']);
    expect(() => createOptions({ ...config, security: { effectiveCapabilities: ['CHOWNS'] } }, opts)).toThrow(/unknown effective capability CHOWNS/);
  });

  it('tells a root user spec', () => {
    for (const u of [undefined, '', 'root', '0', '0:0', 'root:wheel']) expect(isRootUserSpec(u)).toBe(true);
    for (const u of ['nobody', '65534', '1000:0', 'rooter']) expect(isRootUserSpec(u)).toBe(false);
  });
});
