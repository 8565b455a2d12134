/**
 * What a native task must not be able to do, tried for real by a small C
 * probe (fixtures/escape-probe.c) inside tasks on the real kernel: read
 * corral's state and credentials, mount, become root, open raw sockets,
 * write cgroupfs or kernel tunables, enter or make namespaces, see host
 * processes. A command run in the running container (a COMMAND health check)
 * gets exactly the task's identity. Then who the task is: the default user, command.user, root with
 * the reduced capability set, capabilities named by the launch, an unknown
 * user and root refused by the agent's policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ContainerConfig } from '../../contracts/containerizer.js';
import { capabilityMask, DEFAULT_ROOT_CAPABILITIES } from '../../plugins/isolator/src/common/capabilities.js';
import { run } from '../harness/resources.js';
import { NONE, eventually, forceCleanup, leftovers, nativeEnv, removeCgroupRoot, task, type NativeEnv } from './helpers.js';

let env: NativeEnv;
let probe: string;
/** Masked by default (under /var/lib/corral) and by configuration (maskedPaths): outside /tmp, which tasks get a fresh copy of. */
const stateDir = `/var/lib/corral/ct-escape-${randomBytes(3).toString('hex')}`;
const credDir = `/srv/ct-escape-${randomBytes(3).toString('hex')}`;
const credFile = join(credDir, 'agent.secret');

/** /var/lib/corral is removed again if this file made it. */
let madeCorralDir = false;

beforeAll(async () => {
  madeCorralDir = !existsSync('/var/lib/corral');
  mkdirSync(join(stateDir, 'checkpoints'), { recursive: true });
  writeFileSync(join(stateDir, 'checkpoints', 'agent.db'), 'state');
  mkdirSync(credDir, { recursive: true });
  writeFileSync(credFile, 'principal=agent secret=s3cret', { mode: 0o644 }); // readable on the host: only the mask hides it
  env = await nativeEnv('escape', { maskedPaths: [credFile] });
  probe = join(env.dir, 'escape-probe');
  await run('cc', ['-O2', '-o', probe, join(import.meta.dirname, 'fixtures', 'escape-probe.c')]);
});

afterAll(async () => {
  rmSync(stateDir, { recursive: true, force: true });
  if (madeCorralDir) rmSync('/var/lib/corral', { recursive: true, force: true });
  rmSync(credDir, { recursive: true, force: true });
  if (!env) return;
  await env.z.close();
  await removeCgroupRoot(env.cgroupRoot);
  const left = leftovers(env);
  await forceCleanup(env);
  expect(left).toEqual(NONE);
});

/** Runs `script` (with ./escape-probe in its sandbox) to its end; returns stdout lines and the exit code. */
async function runTask(id: string, script: string, o: Partial<ContainerConfig> = {}, user?: string): Promise<{ lines: string[]; exitCode: number | null; stderr: string; sandbox: string }> {
  const sandbox = env.sandbox(id);
  copyFileSync(probe, join(sandbox, 'escape-probe'));
  await env.z.launch(task(id, sandbox, { command: { shell: true, value: script, environment: {}, ...(user ? { user } : {}) }, ...o }));
  const t = await env.z.wait(id);
  await env.z.destroy(id);
  return { lines: readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n'), exitCode: t.exitCode, stderr: readFileSync(join(sandbox, 'stderr'), 'utf8'), sandbox };
}

/** "NAME RESULT" lines → { NAME: RESULT }. */
const results = (lines: string[]): Record<string, string> => Object.fromEntries(lines.filter((l) => / /.test(l)).map((l) => [l.slice(0, l.lastIndexOf(' ')), l.slice(l.lastIndexOf(' ') + 1)]));

/** The Cap* lines of /proc/self/status as hex strings without leading zeros. */
const status = (lines: string[]): Record<string, string> =>
  Object.fromEntries(
    lines
      .filter((l) => /^(Cap\w+|NoNewPrivs|Seccomp):/.test(l))
      .map((l) => [
        l.split(':')[0]!,
        l
          .split(':')[1]!
          .trim()
          .replace(/^0+(?=.)/, ''),
      ]),
  );

const cgroupDir = existsSync('/sys/fs/cgroup/memory') ? '/sys/fs/cgroup/memory/ct-escape' : '/sys/fs/cgroup/ct-escape';
const STATUS = "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status";

describe('a task as the default user cannot get out', () => {
  let r: Awaited<ReturnType<typeof runTask>>;
  let res: Record<string, string>;
  beforeAll(async () => {
    const checks = [
      `read=${stateDir}/checkpoints/agent.db`,
      `read=${stateDir}`,
      `read=${credFile}`,
      `read=${env.dir}/run/containers`,
      'read=/etc/shadow',
      'mount',
      'setuid0',
      'raw-socket',
      'packet-socket',
      'unshare-user',
      'unshare-net',
      'clone-newuser',
      'setns',
      'ptrace',
      'bpf',
      'keyctl',
      `mkdir=${cgroupDir}`,
      'write=/proc/sys/kernel/hostname',
      'write=/proc/sysrq-trigger',
      'mkdir=/etc/ct-escape',
      'procs',
    ];
    r = await runTask('nobody', `./escape-probe ${checks.join(' ')}; ${STATUS}; id -u; ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo ping ok || echo ping refused`);
    res = results(r.lines);
  });

  it('runs as nobody, in its own sandbox, which it owns', () => {
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lines).toContain('65534');
    expect(statSync(r.sandbox).uid).toBe(65534);
  });

  it("does not see corral's state directories or credential files, nor what the host keeps from nobody", () => {
    // Masked paths are empty directories or /dev/null: nothing to read.
    expect(res[`read:${stateDir}/checkpoints/agent.db`]).toBe('ENOENT');
    expect(res[`read:${stateDir}`]).toBe('ENOENT');
    expect(res[`read:${credFile}`]).toBe('EACCES'); // /dev/null on a nodev mount
    expect(res[`read:${env.dir}/run/containers`]).toBe('ENOENT');
    expect(res['read:/etc/shadow']).toBe('EACCES');
  });

  it('cannot mount, become root, open raw or packet sockets, ping, trace, or use bpf and keyrings', () => {
    expect(res.mount).toBe('EPERM');
    expect(res.setuid0).toBe('EPERM');
    expect(res['raw-socket']).toBe('EPERM');
    expect(res['packet-socket']).toBe('EPERM');
    expect(res.ptrace).toBe('EPERM');
    expect(res.bpf).toBe('EPERM');
    expect(res.keyctl).toBe('EPERM');
    expect(r.lines).toContain('ping refused');
  });

  it('cannot make or enter namespaces (seccomp), though an unprivileged user could otherwise make a user namespace', () => {
    expect(res['unshare-user']).toBe('EPERM');
    expect(res['unshare-net']).toBe('EPERM');
    expect(res['clone-newuser']).toBe('EPERM');
    expect(res.setns).toBe('EPERM');
  });

  it('cannot write cgroupfs, kernel tunables or the host filesystem', () => {
    expect(['EROFS', 'EACCES']).toContain(res[`mkdir:${cgroupDir}`]);
    expect(['EROFS', 'EACCES']).toContain(res['write:/proc/sys/kernel/hostname']);
    if (existsSync('/proc/sysrq-trigger')) expect(['EROFS', 'EACCES']).toContain(res['write:/proc/sysrq-trigger']);
    expect(['EROFS', 'EACCES']).toContain(res['mkdir:/etc/ct-escape']);
  });

  it('sees only its own processes', () => {
    expect(Number(res.procs)).toBeGreaterThan(0);
    expect(Number(res.procs)).toBeLessThanOrEqual(3); // the namespace init, the shell, the probe
  });

  it('holds no capability in any set, with no_new_privs and a seccomp filter', () => {
    const s = status(r.lines);
    expect(s).toEqual({ CapInh: '0', CapPrm: '0', CapEff: '0', CapBnd: '0', CapAmb: '0', NoNewPrivs: '1', Seccomp: '2' });
  });
});

describe('a command run in a running container (COMMAND health checks)', () => {
  it('runs as the task: its namespaces, user, capability sets, no_new_privs and seccomp, in its sandbox', async () => {
    const sandbox = env.sandbox('exec');
    copyFileSync(probe, join(sandbox, 'escape-probe'));
    await env.z.launch(task('exec', sandbox, { command: { shell: true, value: 'echo marker > /tmp/mine; sleep 30', environment: { GREETING: 'hi' } } }));
    await eventually(async () => expect((await env.z.exec('exec', ['cat', '/tmp/mine'], 5000)).output).toBe('marker'));
    // The reply comes on one line: status lines without their tab are single words.
    const r = await env.z.exec('exec', ['/bin/sh', '-c', `id -u; echo $GREETING; pwd; ${STATUS} | tr -d '\\t'; ./escape-probe mount unshare-user read=${stateDir} procs`], 10_000);
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).toMatch(new RegExp(`^65534 hi ${sandbox} `));
    expect(status(r.output.split(/\s+/))).toEqual({ CapInh: '0', CapPrm: '0', CapEff: '0', CapBnd: '0', CapAmb: '0', NoNewPrivs: '1', Seccomp: '2' });
    expect(r.output).toContain('mount EPERM');
    expect(r.output).toContain('unshare-user EPERM');
    expect(r.output).toContain(`read:${stateDir} ENOENT`);
    expect(Number(/procs (\d+)/.exec(r.output)![1])).toBeLessThanOrEqual(5); // the task's, plus the check's shell and probe
    const slow = await env.z.exec('exec', ['sleep', '30'], 300);
    expect(slow.exitCode).toBeNull();
    expect((await env.z.exec('exec', ['false'], 5000)).exitCode).toBe(1);
    await env.z.destroy('exec');
    await expect(env.z.exec('exec', ['true'], 1000)).rejects.toThrow(/no container exec/);
  });
});

describe('legitimate services still run', () => {
  it('busybox httpd: root binds port 80 (NET_BIND_SERVICE is in its set), nobody serves on 8080 and cannot take 81', async () => {
    for (const [id, user, port] of [
      ['httpd-root', 'root', 80],
      ['httpd-nobody', 'nobody', 8080],
    ] as const) {
      const sandbox = env.sandbox(id);
      await env.z.launch(
        task(id, sandbox, { network: { mode: 'isolated' }, command: { shell: true, value: `echo hello from ${user} > index.html; exec busybox httpd -f -p ${port} -h .`, environment: {}, user } }),
      );
      await eventually(async () => expect((await env.z.exec(id, ['busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/index.html`], 5000)).output).toBe(`hello from ${user}`));
    }
    const low = await env.z.exec('httpd-nobody', ['busybox', 'httpd', '-f', '-p', '81', '-h', '.'], 5000);
    expect(low.exitCode).not.toBe(0);
    expect(low.output).toMatch(/bind.*[Pp]ermission denied/);
    for (const id of ['httpd-root', 'httpd-nobody']) await env.z.destroy(id);
  });
});

describe('who the task is', () => {
  it('command.user is honoured, with its groups', async () => {
    const r = await runTask('daemon', 'id -u; id -g', {}, 'daemon');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lines).toEqual(['1', '1']);
  });

  it('root runs with the reduced capability set: no raw sockets, no mount, a read-only host', async () => {
    const r = await runTask(
      'root',
      `id -u; ${STATUS}; ./escape-probe raw-socket mount mkdir=/etc/ct-escape write=/proc/sys/kernel/hostname mkdir=${cgroupDir} mkdir=/var/lib/corral/planted mkdir=/var/lib/docker/planted chown=escape-probe; chmod 600 /dev/null && echo dev-null $(stat -c %a /dev/null); chmod 600 /proc/kcore 2>/dev/null || echo kcore refused`,
      {},
      'root',
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const expected = capabilityMask(DEFAULT_ROOT_CAPABILITIES);
    expect(r.lines[0]).toBe('0');
    expect(status(r.lines)).toEqual({ CapInh: expected, CapPrm: expected, CapEff: expected, CapBnd: expected, CapAmb: expected, NoNewPrivs: '1', Seccomp: '2' });
    const res = results(r.lines);
    expect(res['raw-socket']).toBe('EPERM');
    expect(res.mount).toBe('EPERM');
    // Root's DAC_OVERRIDE meets the read-only mounts.
    expect(res['mkdir:/etc/ct-escape']).toBe('EROFS');
    expect(res[`mkdir:${cgroupDir}`]).toBe('EROFS');
    expect(res['write:/proc/sys/kernel/hostname']).toBe('EROFS');
    expect(res['mkdir:/var/lib/corral/planted']).toBe('EROFS'); // masks are read-only, the shared ones too
    if (existsSync('/var/lib/docker')) expect(res['mkdir:/var/lib/docker/planted']).toBe('EROFS');
    expect(existsSync('/var/lib/corral/planted')).toBe(false);
    expect(res['chown:escape-probe']).toBe('ok'); // CHOWN is in the default set: its own sandbox files
    // Its /dev nodes are its own: changing them changes nothing on the host; masks are read-only.
    expect(r.lines).toContain('dev-null 600');
    expect(r.lines).toContain('kcore refused');
    expect(statSync('/dev/null').mode & 0o777).toBe(0o666);
    expect(existsSync('/etc/ct-escape')).toBe(false);
  });

  it('capabilities named by the launch are granted to a non-root user (ambient), within the bounding set', async () => {
    const r = await runTask('netbind', STATUS, { security: { effectiveCapabilities: ['NET_BIND_SERVICE'] } }, 'nobody');
    expect(r.exitCode, r.stderr).toBe(0);
    const bind = capabilityMask(['NET_BIND_SERVICE']);
    expect(status(r.lines)).toMatchObject({ CapEff: bind, CapPrm: bind, CapAmb: bind, CapBnd: bind });
  });

  it('a launch allowed to run unconfined (run_tasks seccomp_unconfined) has no seccomp filter, nor has a command run in it; no_new_privs and the capability sets stay', async () => {
    const sandbox = env.sandbox('unconfined');
    copyFileSync(probe, join(sandbox, 'escape-probe'));
    await env.z.launch(task('unconfined', sandbox, { command: { shell: true, value: `${STATUS}; ./escape-probe ptrace mount; sleep 30`, environment: {} }, security: { seccomp: 'unconfined' } }));
    await eventually(() => expect(readFileSync(join(sandbox, 'stdout'), 'utf8')).toMatch(/^mount /m));
    const lines = readFileSync(join(sandbox, 'stdout'), 'utf8').trim().split('\n');
    expect(status(lines)).toEqual({ CapInh: '0', CapPrm: '0', CapEff: '0', CapBnd: '0', CapAmb: '0', NoNewPrivs: '1', Seccomp: '0' });
    const res = results(lines);
    // Without the filter the kernel decides: PTRACE_TRACEME is allowed to any process (the filter answers EPERM; Yama's
    // scope 3 would refuse it too), and mounting still needs a capability the task does not hold.
    const yama = existsSync('/proc/sys/kernel/yama/ptrace_scope') ? Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8')) : 0;
    if (yama < 3) expect(res.ptrace).toBe('ok');
    expect(res.mount).toBe('EPERM');
    const e = await env.z.exec('unconfined', ['/bin/sh', '-c', `${STATUS} | tr -d '\\t'`], 10_000);
    expect(e.exitCode, e.output).toBe(0);
    expect(status(e.output.split(/\s+/))).toMatchObject({ CapEff: '0', NoNewPrivs: '1', Seccomp: '0' });
    await env.z.destroy('unconfined');
  });

  it('an unknown user, an unknown capability and an effective set outside the bounding set are refused before anything runs', async () => {
    await expect(env.z.launch(task('nouser', env.sandbox('nouser'), { command: { shell: true, value: 'true', environment: {}, user: 'no-such-user' } }))).rejects.toThrow(
      /unknown user "no-such-user"/,
    );
    await expect(env.z.launch(task('badcap', env.sandbox('badcap'), { security: { effectiveCapabilities: ['FLY'] } }))).rejects.toThrow(/unknown effective capability FLY/);
    await expect(env.z.launch(task('outside', env.sandbox('outside'), { security: { effectiveCapabilities: ['SYS_ADMIN'], boundingCapabilities: ['CHOWN'] } }))).rejects.toThrow(
      /SYS_ADMIN are not in the bounding set/,
    );
    for (const id of ['nouser', 'badcap', 'outside']) expect(env.z.cgroups.exists(id)).toBe(false);
  });

  it('root is refused when the launch denies it (the agent with allowRootTasks: false)', async () => {
    await expect(env.z.launch(task('denied', env.sandbox('denied'), { command: { shell: true, value: 'true', environment: {}, user: 'root' }, security: { denyRoot: true } }))).rejects.toThrow(
      /would run as root .*allowRootTasks: false/,
    );
    await expect(env.z.launch(task('denied0', env.sandbox('denied0'), { command: { shell: true, value: 'true', environment: {}, user: '0' }, security: { denyRoot: true } }))).rejects.toThrow(
      /would run as root/,
    );
  });
});
