/**
 * Task definitions checked before anything touches the host, and the small
 * pure pieces around a launch: the command to exec, user resolution, the
 * launcher's request/reply wire format and the launch request built from a
 * plan.
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import type { ContainerConfig } from '../../../contracts/containerizer.js';
import { checkTask, commandArgv, logPath } from '../../../plugins/isolator/src/task-config.js';
import { resolveUser } from '../../../plugins/isolator/src/common/user.js';
import { encodeRequest, parseReply } from '../../../plugins/isolator/src/native/launcher.js';
import { launchFields } from '../../../plugins/isolator/src/native/launch-request.js';
import type { LaunchPlan } from '../../../plugins/isolator/src/native/isolators/types.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const sandbox = tempDir('corral-task-');
/** What the agent advertises: tasks are checked against this, whatever the hardware has. */
const host = { cpus: 2, memMb: 4096, gpus: 0 };
const base = (o: Partial<ContainerConfig> = {}): ContainerConfig => ({
  containerId: 'c1',
  frameworkId: 'f',
  taskId: 't',
  sandbox,
  command: { shell: true, value: 'true', environment: {} },
  resources: { cpus: 1, memMb: 64, diskMb: 0, gpus: 0, ports: [] },
  limits: {},
  volumes: [],
  network: { mode: 'host' },
  logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 4096, maxFiles: 2 },
  labels: {},
  ...o,
});

describe('checkTask', () => {
  it('accepts a good definition', () => {
    expect(checkTask(base(), 'MESOS', host).containerId).toBe('c1');
  });

  it.each([
    ['a bad container id', { containerId: '../x' }, /containerId/],
    ['more CPUs than the agent advertises', { resources: { cpus: 3, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /asks for 3 CPUs; this agent advertises 2/],
    ['more memory than the agent advertises', { resources: { cpus: 1, memMb: 8192, diskMb: 0, gpus: 0, ports: [] } }, /8192 MB of memory; this agent advertises 4096 MB/],
    ['GPUs the agent does not advertise', { resources: { cpus: 1, memMb: 64, diskMb: 0, gpus: 1, ports: [] } }, /1 GPU\(s\); this agent advertises 0/],
    ['negative CPUs', { resources: { cpus: -1, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /resources.cpus/],
    ['NaN CPUs', { resources: { cpus: Number.NaN, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /resources.cpus/],
    ['infinite CPUs', { resources: { cpus: Number.POSITIVE_INFINITY, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /resources.cpus/],
    ['non-numeric CPUs', { resources: { cpus: '3', memMb: 64, diskMb: 0, gpus: 0, ports: [] } }, /resources.cpus/],
    ['negative memory', { resources: { cpus: 1, memMb: -64, diskMb: 0, gpus: 0, ports: [] } }, /resources.memMb/],
    ['NaN memory', { resources: { cpus: 1, memMb: Number.NaN, diskMb: 0, gpus: 0, ports: [] } }, /resources.memMb/],
    ['a memory limit too small to run', { resources: { cpus: 1, memMb: 1, diskMb: 0, gpus: 0, ports: [] } }, /too small/],
    ['no command', { command: undefined }, /no command to run/],
    ['a shell command without value', { command: { shell: true, environment: {} } }, /needs a value/],
    ['a sandbox that does not exist', { sandbox: '/no/such/sandbox' }, /not a directory/],
    ['a log file outside the sandbox', { logs: { stdout: '/var/log/x', stderr: 'stderr', maxBytes: 4096, maxFiles: 2 } }, /outside the sandbox/],
    ['a tab in a path', { volumes: [{ containerPath: 'a\tb', mode: 'RW' as const, source: { type: 'host' as const, path: '/tmp' } }] }, /tab/],
    [
      'two volumes at one path',
      {
        volumes: [
          { containerPath: 'a', mode: 'RW' as const, source: { type: 'host' as const, path: '/tmp' } },
          { containerPath: 'a/', mode: 'RO' as const, source: { type: 'host' as const, path: '/tmp' } },
        ],
      },
      /two volumes are mounted at a/,
    ],
    ['an environment name with "="', { command: { shell: true, value: 'x', environment: { 'A=B': '1' } } }, /command.environment/],
  ])('refuses %s', (_what, o, pattern) => {
    expect(() => checkTask(base(o as Partial<ContainerConfig>), 'MESOS', host)).toThrow(pattern);
  });

  it("accepts what the agent advertises even beyond the hardware (an operator's override is trusted)", () => {
    const cores = Math.max(cpus().length, availableParallelism());
    const overcommitted = { cpus: cores + 7, memMb: 4 * 1024 * 1024, gpus: 0 };
    const big = { cpus: cores + 1, memMb: 2 * 1024 * 1024, diskMb: 0, gpus: 0, ports: [] as Array<[number, number]> };
    expect(checkTask(base({ resources: big }), 'MESOS', overcommitted).resources).toEqual(big);
    // Exactly all of it is fine; a thousandth more is not.
    expect(checkTask(base({ resources: { ...big, cpus: cores + 7, memMb: 4 * 1024 * 1024 } }), 'MESOS', overcommitted).resources.cpus).toBe(cores + 7);
    expect(() => checkTask(base({ resources: { ...big, cpus: cores + 7.001 } }), 'MESOS', overcommitted)).toThrow(new RegExp(`asks for ${cores + 7.001} CPUs; this agent advertises ${cores + 7}$`));
  });

  it('an agent advertising less than the hardware (headroom) refuses what exceeds its figure', () => {
    expect(() => checkTask(base({ resources: { cpus: 1, memMb: 64, diskMb: 0, gpus: 0, ports: [] } }), 'MESOS', { cpus: 0.5, memMb: 4096, gpus: 0 })).toThrow(
      /asks for 1 CPUs; this agent advertises 0.5/,
    );
  });

  it('knows which image kind goes with which containerizer', () => {
    expect(() => checkTask(base({ image: { kind: 'docker', name: 'x', forcePull: false } }), 'MESOS', host)).toThrow(/DOCKER containerizer/);
    expect(() => checkTask(base(), 'DOCKER', host)).toThrow(/needs a Docker image/);
    expect(checkTask(base({ command: undefined, image: { kind: 'docker', name: 'x', forcePull: false } }), 'DOCKER', host).image).toBeDefined();
  });
});

describe('commandArgv and logPath', () => {
  it('shell commands run under /bin/sh -c; others exec value with arguments', () => {
    expect(commandArgv({ shell: true, value: 'echo hi', environment: {} })).toEqual({ file: '/bin/sh', argv: ['/bin/sh', '-c', 'echo hi'] });
    expect(commandArgv({ shell: false, value: '/bin/echo', arguments: ['echo', 'a'], environment: {} })).toEqual({ file: '/bin/echo', argv: ['echo', 'a'] });
    expect(commandArgv({ shell: false, arguments: ['sleep', '1'], environment: {} })).toEqual({ file: 'sleep', argv: ['sleep', '1'] });
    expect(commandArgv({ shell: false, value: 'true', environment: {} })).toEqual({ file: 'true', argv: ['true'] });
  });

  it('resolves log files against the sandbox', () => {
    expect(logPath('/sb', 'logs/out')).toBe('/sb/logs/out');
    expect(logPath('/sb', '/sb/x/../out')).toBe('/sb/out');
  });
});

describe('resolveUser', () => {
  const root = tempDir('corral-user-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nweb:x:1000:\ndocker:x:999:web,other\n');

  it('finds names, uids and uid:gid, with supplementary groups', () => {
    expect(resolveUser('web', root)).toEqual({ uid: 1000, gid: 1000, groups: [1000, 999] });
    expect(resolveUser('0', root)).toEqual({ uid: 0, gid: 0, groups: [0] });
    expect(resolveUser('4242:docker', root)).toEqual({ uid: 4242, gid: 999, groups: [999] });
  });

  it('refuses unknown users and groups', () => {
    expect(() => resolveUser('nobody-here', root)).toThrow(/unknown user "nobody-here"/);
    expect(() => resolveUser('web:nogroup', root)).toThrow(/unknown group "nogroup"/);
  });
});

describe('the launcher wire format', () => {
  it('encodes NUL-separated key=value fields ended by an empty field', () => {
    expect(
      encodeRequest([
        ['op', 'ping'],
        ['req', '1'],
        ['arg', 'a=b c\td'],
      ]).toString('latin1'),
    ).toBe('op=ping\0req=1\0arg=a=b c\td\0\0');
    expect(() => encodeRequest([['arg', 'a\0b']])).toThrow(/NUL/);
    expect(() => encodeRequest([['Bad Key', 'x']])).toThrow(/field name/);
  });

  it('parses ok and err replies', () => {
    expect(parseReply('7 ok 100 2000 101 2001')).toEqual({ req: '7', reply: { ok: true, words: ['100', '2000', '101', '2001'], message: '100 2000 101 2001' } });
    expect(parseReply('8 err exec x: No such file or directory')).toEqual({
      req: '8',
      reply: { ok: false, words: ['exec', 'x:', 'No', 'such', 'file', 'or', 'directory'], message: 'exec x: No such file or directory' },
    });
    expect(parseReply('9 ok')).toEqual({ req: '9', reply: { ok: true, words: [], message: '' } });
    expect(parseReply('garbage')).toBeUndefined();
  });

  it('turns a launch plan into request fields', () => {
    const plan: LaunchPlan = {
      cgroupMkdirs: ['/cg/cpu/c1', '/cg/memory/c1'],
      cgroupWrites: [['/cg/cpu/c1/cpu.shares', '512']],
      cgroupDirs: ['/cg/cpu/c1', '/cg/memory/c1'],
      oomFile: '/cg/memory/c1/memory.oom_control',
      namespaces: ['mnt', 'pid'],
      hostname: 'h',
      netns: '/run/netns/corral-c1',
      sandboxTarget: '/mnt/mesos/sandbox',
      binds: [{ readonly: true, source: '/src', target: '/sb/dst' }],
      masks: ['/run/netns'],
      cwd: '/sb',
      env: { PATH: '/bin', A: 'b=c' },
      user: { uid: 1, gid: 2, groups: [2, 3] },
      capabilities: { effective: '400', bounding: '401' },
      ipAddresses: [],
    };
    const files = {
      sandbox: '/sb',
      stdout: '/sb/out',
      stderr: '/sb/err',
      maxBytes: 100,
      maxFiles: 2,
      terminationFile: '/sb/.corral/t',
      exitLink: '/run/exits/c1',
      supervisorFile: '/run/c/c1/supervisor',
    };
    const f = launchFields('c1', { file: '/bin/sh', argv: ['sh', '-c', 'x'] }, plan, files);
    const get = (k: string) => f.filter(([key]) => key === k).map(([, v]) => v);
    expect(get('arg')).toEqual(['sh', '-c', 'x']);
    expect(get('env')).toEqual(['PATH=/bin', 'A=b=c']);
    expect(get('cgroup')).toEqual(['/cg/cpu/c1', '/cg/memory/c1']);
    expect(get('mkdir')).toEqual(['/cg/cpu/c1', '/cg/memory/c1']);
    expect(get('write')).toEqual(['/cg/cpu/c1/cpu.shares\t512']);
    expect(get('supervisor_file')).toEqual(['/run/c/c1/supervisor']);
    expect(get('bind')).toEqual(['ro\t/src\t/sb/dst']);
    expect(get('mask')).toEqual(['/run/netns']);
    expect(get('ns')).toEqual(['mnt,pid']);
    expect(get('groups')).toEqual(['2,3']);
    expect(get('caps_effective')).toEqual(['400']);
    expect(get('caps_bounding')).toEqual(['401']);
    expect(get('rootfs')).toEqual([]);
    expect(get('seccomp')).toEqual([]); // the launcher's default profile
    expect(launchFields('c1', { file: 'sh', argv: ['sh'] }, { ...plan, seccomp: 'unconfined' }, files).filter(([k]) => k === 'seccomp')).toEqual([['seccomp', 'unconfined']]);
    const withImage = launchFields('c1', { file: 'sh', argv: ['sh'] }, { ...plan, rootfs: '/img', rootfsState: '/st' }, files);
    expect(withImage.filter(([k]) => k === 'mask')).toEqual([]); // pivot_root drops every host mount anyway
    expect(withImage.find(([k]) => k === 'sandbox_target')![1]).toBe('/mnt/mesos/sandbox');
  });
});
