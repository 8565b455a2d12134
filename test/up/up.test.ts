/**
 * `corral up` for real, as from a fresh checkout: the CLI in a child process
 * brings up master, agent, volume plugin, CNI node daemon (in its own node
 * namespace), discovery and the service framework, and deploys the demo app;
 * we check it RUNNING with its volume (the file it wrote, read back over
 * HTTP), an IP from the pool reachable from the node namespace (and not
 * routed in ours), and a name `dig` resolves. Then scaling, broken apps
 * with clear errors while the demo app keeps running, bad CLI input, and
 * `corral down` leaving no process, mount, loop device, namespace, cgroup or
 * socket behind. Names are test-prefixed (ct-…, corral-test-…) and the work
 * dir is under $CORRAL_TEST_ROOT, so scripts/cleanup-tests.sh removes
 * whatever a failed run leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as UndiciAgent, request } from 'undici';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { freePort } from '../harness/ports.js';
import { forgetPid, recordPid, run, testDir } from '../harness/resources.js';
import type { AppView } from '../../core-scheduler/src/services/views.js';
import { ServicesClient } from '../../core-scheduler/src/services/client.js';
import { loadSecurity } from '../../core-scheduler/src/master/auth.js';
import { loadPlan, type UpPlan } from '../../cli/up/plan.js';
import { readPid } from '../../cli/up/procs.js';
import { MARKER_ENV } from '../../cli/up/plan.js';
import { loadNodeState } from '../../provision/src/lifecycle.js';
import { markedPids } from '../../provision/src/scope.js';
import { MASTER_NODE_FLAGS } from '../../core-scheduler/src/master/config.js';

const daemonPids = (): Array<{ name: string; pid: number }> => loadNodeState(join(work, 'node-state.json'))?.processes ?? [];
const markedProcesses = (marker: string): number[] => markedPids({ dirs: [], marker: { env: MARKER_ENV, value: marker } });

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tag = randomBytes(2).toString('hex');
const dir = testDir('up');
const work = join(dir, 'work');
const name = `ct-up${tag}`;
const cgroupRoot = `corral-test-up${tag}`;
const nodeNetns = `${name}-node`;
let ports: { master: number; agent: number; services: number; dns: number; discovery: number };
let plan: UpPlan;
let env: NodeJS.ProcessEnv;
let upOutput = '';
let downDone = false;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The corral CLI as a user runs it; never throws, so tests can look at failures. */
function corral(args: string[], timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), ...args], { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(args: string[], timeoutMs?: number): Promise<string> {
  const r = await corral(args, timeoutMs);
  if (r.code !== 0) throw new Error(`corral ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Polling goes through the API directly (a CLI process per poll would dominate the timings). */
let services: ServicesClient;
const show = (app: string): Promise<AppView> => services.get(app);

async function waitApp(app: string, pred: (v: AppView) => boolean, what: string, ms = 90_000): Promise<AppView> {
  const end = Date.now() + ms;
  let last: AppView | undefined;
  while (Date.now() < end) {
    last = await show(app).catch(() => undefined);
    if (last && pred(last)) return last;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} not reached in ${ms} ms; last: ${JSON.stringify(last, null, 1)?.slice(0, 3000)}`);
}

const dig = async (qname: string, type = 'A'): Promise<string[]> =>
  (await run('dig', ['@127.0.0.1', '-p', String(ports.dns), '+short', '+tcp', '+time=2', '+tries=1', qname, type]))
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);

const catalogAddresses = async (service: string): Promise<string[]> => {
  // corral up serves every API over TLS: the Consul API is checked against the instance's CA.
  const res = await request(`https://127.0.0.1:${ports.discovery}/v1/catalog/service/${service}`, { dispatcher: new UndiciAgent({ connect: { ca: readFileSync(join(work, 'tls', 'ca.crt')) } }) });
  return ((await res.body.json()) as Array<{ ServiceAddress: string }>).map((e) => e.ServiceAddress).sort();
};

const running = (v: AppView): AppView['tasks'] => v.tasks.filter((t) => t.phase === 'running');
const mounted = (): string[] =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.includes(` ${dir}/`));
const netnsList = (): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns') : []).filter((n) => n.startsWith(name));
const cgroupDirs = (): string[] =>
  readdirSync('/sys/fs/cgroup')
    .map((h) => join('/sys/fs/cgroup', h, cgroupRoot))
    .filter((d) => existsSync(d));
const inPool = (ip: string): boolean => {
  const [a, b] = ip.split('.').map(Number);
  return a === 100 && b! >= 96 && b! <= 111; // 100.96.0.0/12
};

/** Records every process of the instance where scripts/cleanup-tests.sh finds them (forgotten after down). */
const recorded: Array<[string, number]> = [];
function recordForCleanup(): void {
  const sup = readPid(join(work, 'supervisor.pid'));
  if (sup) recorded.push(['up-supervisor', sup]);
  for (const p of daemonPids()) recorded.push([`up-${p.name}`, p.pid]);
  for (const [n, pid] of recorded) recordPid(n, pid);
}
const forgetRecorded = (): void => recorded.splice(0).forEach(([n, pid]) => forgetPid(n, pid));

beforeAll(async () => {
  ports = { master: await freePort(), agent: await freePort(), services: await freePort(), dns: await freePort(), discovery: await freePort() };
  env = {
    ...process.env,
    CORRAL_CREDENTIALS: join(work, 'security.yaml'),
    CORRAL_MASTER: `https://127.0.0.1:${ports.master}`,
    CORRAL_SERVICES: `https://127.0.0.1:${ports.services}`,
    CORRAL_DISCOVERY: `https://127.0.0.1:${ports.discovery}`,
    CORRAL_TLS_CA: join(work, 'tls', 'ca.crt'),
    CORRAL_VOLUME_SOCKET: join(dir, 'run', 'plugins', 'corral.sock'),
    CORRAL_CNI_SOCKET: join(dir, 'run', 'cni.sock'),
  };
  const r = await corral(
    [
      'up',
      '--work-dir',
      work,
      '--name',
      name,
      '--cgroup-root',
      cgroupRoot,
      '--run-dir',
      join(dir, 'run'),
      '--port',
      String(ports.master),
      '--agent-port',
      String(ports.agent),
      '--services-port',
      String(ports.services),
      '--dns-port',
      String(ports.dns),
      '--discovery-port',
      String(ports.discovery),
      '--agent-resources',
      'cpus:4;mem:4096',
    ],
    240_000,
  );
  recordForCleanup();
  upOutput = `${r.stdout}\n${r.stderr}`;
  if (r.code !== 0) throw new Error(`corral up failed (${r.code}):\n${upOutput}`);
  plan = loadPlan(work)!;
  const admin = loadSecurity(plan.paths.security).credentials.find((c) => c.principal === 'admin')!;
  services = new ServicesClient({ url: plan.urls.services, principal: admin.principal, secret: admin.secret, tls: { ca: readFileSync(plan.tls!.caFile, 'utf8') } });
}, 300_000);

afterAll(async () => {
  if (!downDone) await corral(['down', '--work-dir', work], 180_000);
  forgetRecorded();
  if (!existsSync(work)) rmSync(dir, { recursive: true, force: true });
}, 200_000);

describe('corral up: the real single-node stack', () => {
  it('brings the demo app to RUNNING with its volume, a routed IP and a DNS name', async () => {
    expect(upOutput).toContain('The demo app "web" is RUNNING');
    for (const d of ['master', 'volume plugin', 'CNI node daemon', 'agent', 'discovery', 'service framework']) expect(upOutput).toContain(`ready: ${d}`);
    // The master's node process runs with the master's node flags (its young generation sized for bursts of calls).
    const masterPid = daemonPids().find((p) => p.name === 'master')!.pid;
    expect(readFileSync(`/proc/${masterPid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...MASTER_NODE_FLAGS]));
    const v = JSON.parse(await ok(['--json', 'app', 'show', 'web'])) as AppView;
    expect(v.status).toBe('running');
    const t = running(v)[0]!;
    const ip = t.ips[0]!;
    expect(inPool(ip)).toBe(true);
    expect(t.volumes).toEqual(['web-0']);
    expect(upOutput).toContain(ip);

    // The volume: a 64M ext4 attached on this host, holding the page the task wrote.
    const data = join(work, 'volumes', 'local', 'web-0', '_data');
    expect(mounted().some((l) => l.includes(` ${data} ext4 `))).toBe(true);
    const page = readFileSync(join(data, 'index.html'), 'utf8');
    expect(page).toContain('hello from corral: app web, instance 0');

    // The name: real dig against discovery, Mesos-DNS and Consul style.
    expect(await dig('web.corral-services.corral')).toEqual([ip]);
    expect(await dig('web.service.corral')).toEqual([ip]);
    expect(await dig('web-0.web.corral-services.corral')).toEqual([ip]);
    expect((await dig('_web._tcp.corral-services.corral', 'SRV'))[0]).toMatch(/ 8080 /);
    // …and its catalog entry (Consul API).
    expect(await catalogAddresses('web')).toEqual([ip]);

    // The address: reachable from the node namespace (the page comes back over HTTP)…
    const http = await run('ip', ['netns', 'exec', nodeNetns, 'curl', '-s', '--max-time', '5', `http://${ip}:8080/`]);
    expect(http).toBe(page);
    const nodeRoutes = await run('ip', ['-n', nodeNetns, '-4', 'route', 'show']);
    expect(nodeRoutes).toContain(`${ip} dev crl`);
    // …and nothing was routed in the root namespace.
    expect(await run('ip', ['-4', 'route', 'show', 'table', 'all'])).not.toContain(ip);
    expect(await run('ip', ['-o', 'link', 'show'])).not.toMatch(/: crl[0-9a-f]/);

    // Running up again is harmless: it reports the running instance.
    const again = await corral(['up', '--work-dir', work, '--port', String(ports.master)], 60_000);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already up');
    expect(again.stdout).toContain(ip);
  });

  it('scales the app up and down: each instance gets its own volume, IP and name; removed ones release them', async () => {
    const before = running(await show('web'))[0]!;
    expect(await ok(['app', 'scale', 'web', '3'])).toContain('scaled to 3');
    const three = await waitApp('web', (v) => running(v).length === 3 && running(v).every((t) => t.ips.length === 1), '3 running instances');
    const ips = running(three).map((t) => t.ips[0]!);
    expect(new Set(ips).size).toBe(3);
    expect(ips.every(inPool)).toBe(true);
    expect(
      running(three)
        .map((t) => t.volumes[0])
        .sort(),
    ).toEqual(['web-0', 'web-1', 'web-2']);
    expect(running(three).find((t) => t.index === 0)!.taskId).toBe(before.taskId); // untouched
    expect((await dig('web.corral-services.corral')).sort()).toEqual([...ips].sort());
    for (const t of running(three)) expect(await dig(`web-${t.index}.web.corral-services.corral`)).toEqual(t.ips);
    expect(await catalogAddresses('web')).toEqual([...ips].sort());
    for (const i of [1, 2]) expect(mounted().some((l) => l.includes(`/volumes/local/web-${i}/_data `))).toBe(true);

    expect(await ok(['app', 'scale', 'web', '1'])).toContain('scaled to 1');
    const one = await waitApp('web', (v) => v.tasks.length === 1 && running(v).length === 1, 'back to 1 instance');
    expect(running(one)[0]!.taskId).toBe(before.taskId);
    const gone = ips.filter((ip) => ip !== before.ips[0]);
    // Their names, addresses, volumes and namespaces go with them.
    const end = Date.now() + 15_000;
    while ((await dig('web.corral-services.corral')).length !== 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await dig('web.corral-services.corral')).toEqual(before.ips);
    expect(await dig('web-2.web.corral-services.corral')).toEqual([]);
    expect(await catalogAddresses('web')).toEqual(before.ips);
    const ipam = JSON.parse(await ok(['--json', 'cni', 'ipam'])) as { allocations: Array<{ ip: string }> };
    const waitFreed = Date.now() + 15_000;
    let allocations = ipam.allocations.map((a) => a.ip);
    while (allocations.some((ip) => gone.includes(ip)) && Date.now() < waitFreed) {
      await new Promise((r) => setTimeout(r, 200));
      allocations = (JSON.parse(await ok(['--json', 'cni', 'ipam'])) as { allocations: Array<{ ip: string }> }).allocations.map((a) => a.ip);
    }
    expect(allocations).toEqual(before.ips);
    for (const i of [1, 2]) expect(mounted().some((l) => l.includes(`/volumes/local/web-${i}/_data `))).toBe(false);
    const nsEnd = Date.now() + 10_000;
    while (netnsList().length !== 2 && Date.now() < nsEnd) await new Promise((r) => setTimeout(r, 100));
    expect(netnsList().filter((n) => n !== nodeNetns)).toHaveLength(1);
    // The volumes themselves outlive the instances (external volumes): scaling up again finds the data.
    const vols = JSON.parse(await ok(['--json', 'volume', 'ls'])) as Array<{ name: string; refs: number }>;
    expect(vols.map((x) => x.name).sort()).toEqual(['web-0', 'web-1', 'web-2']);
    expect(vols.find((x) => x.name === 'web-1')!.refs).toBe(0);
  });

  it('reports broken apps clearly, and the rest of the cluster is unaffected', async () => {
    const web = running(await show('web'))[0]!;
    const badImage = join(dir, 'bad-image.yaml');
    writeFileSync(badImage, 'id: bad-image\nimage: nosuch/image:1\ncpus: 0.1\nmem: 32\n');
    const nowhere = join(dir, 'nowhere.yaml');
    writeFileSync(nowhere, 'id: nowhere\ncmd: sleep 600\ncpus: 0.1\nmem: 32\nconstraints: [["hostname", "LIKE", "nowhere-.*"]]\n');
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, 'id: typo\ncmd: sleep 600\ninstanses: 2\n');
    const missingVolumeOption = join(dir, 'bad-volume.yaml');
    writeFileSync(missingVolumeOption, 'id: bad-volume\ncmd: sleep 600\ncpus: 0.1\nmem: 32\nvolumes: [{ containerPath: data, options: { size: lots } }]\n');

    expect(await ok(['app', 'deploy', badImage])).toContain('app bad-image deployed');
    expect(await ok(['app', 'deploy', nowhere])).toContain('app nowhere deployed');
    expect(await ok(['app', 'deploy', missingVolumeOption])).toContain('app bad-volume deployed');
    const t = await corral(['app', 'deploy', typo]);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain('unknown field "instanses" (did you mean "instances"?)');

    const bad = await waitApp('bad-image', (v) => (v.tasks[0]?.lastError?.message ?? '').length > 0, 'bad image reported');
    expect(bad.tasks[0]!.lastError!.message).toContain('the DOCKER containerizer is not enabled on this agent');
    expect(await ok(['app', 'show', 'bad-image'])).toContain('DOCKER containerizer is not enabled');
    const stuck = await waitApp('nowhere', (v) => v.status === 'waiting', 'impossible constraint reported');
    expect(stuck.message).toContain('constraint [hostname LIKE nowhere-.*] ruled out 1 agent');
    expect(await ok(['app', 'ls'])).toMatch(/nowhere\s+waiting/);
    const vol = await waitApp('bad-volume', (v) => (v.tasks[0]?.lastError?.message ?? '').length > 0, 'bad volume option reported');
    expect(vol.tasks[0]!.lastError!.message).toMatch(/size/);

    // The demo app did not notice: same task, still serving, still resolvable.
    const after = running(await show('web'))[0]!;
    expect(after.taskId).toBe(web.taskId);
    expect(await run('ip', ['netns', 'exec', nodeNetns, 'curl', '-s', '--max-time', '5', `http://${web.ips[0]}:8080/`])).toContain('hello from corral');
    expect(await dig('web.corral-services.corral')).toEqual(web.ips);
    for (const id of ['bad-image', 'nowhere', 'bad-volume']) await ok(['app', 'rm', id]);
    await waitApp('web', () => true, 'still there');
  });

  it('rejects bad command-line input with clear errors, starting nothing', async () => {
    const other = join(dir, 'other');
    const cases: Array<[string[], RegExp]> = [
      [['up', '--work-dir', other, '--port', '70000'], /--port must be between 1 and 65535, got 70000/],
      [['up', '--work-dir', other, '--name', 'Bad_Name'], /--name: must be 1-23 lower-case letters/],
      [['up', '--work-dir', other, '--pool', '100.96.0.1/12'], /--pool: must be an IPv4 CIDR with host bits zero/],
      [['up', '--work-dir', other, '--agent-resources', 'cpus:lots'], /cpus/],
      [['up', '--work-dir', other, '--agents', '5'], /--agents only applies with --simulate/],
      [['up', '--work-dir', 'relative/dir'], /--work-dir: must be an absolute path/],
      [['up', '--work-dir', other, '--name', 'ct-upother', '--port', String(ports.master), '--dns-port', String(ports.dns)], new RegExp(`port ${ports.master} \\(--port \\(master\\)\\) is in use`)],
      [['down', '--work-dir', dir], /holds no corral up instance/],
      [['app', 'scale', 'web', 'many'], /instances must be an integer/],
      [['app', 'show', 'no-such-app'], /no-such-app/],
    ];
    for (const [args, want] of cases) {
      const r = await corral(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(want);
    }
    expect(existsSync(other)).toBe(false);
  });

  it('corral down stops everything and leaves nothing behind', async () => {
    const pids = [readPid(plan.paths.supervisorPid)!, ...daemonPids().map((p) => p.pid)];
    expect(pids.length).toBe(7);
    const r = await corral(['down', '--work-dir', work], 180_000);
    downDone = true;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('stopped the supervisor');
    for (const pid of pids) expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')).toBe(false);
    expect(markedProcesses(plan.marker)).toEqual([]);
    expect(mounted()).toEqual([]);
    expect(netnsList()).toEqual([]);
    expect(cgroupDirs()).toEqual([]);
    expect(existsSync(join(dir, 'run', 'cni.sock'))).toBe(false);
    expect(existsSync(join(dir, 'run', 'plugins', 'corral.sock'))).toBe(false);
    expect(existsSync(join(dir, 'run', 'agent.sock'))).toBe(false);
    expect(existsSync(work)).toBe(false);
    // Attached loop devices of ours: none (a released one may linger only while a foreign mount namespace holds it).
    const losetup = await run('losetup', ['-a']);
    for (const line of losetup.split('\n').filter((l) => l.includes(work))) {
      const dev = line.split(':')[0]!.replace('/dev/', '');
      expect(readFileSync(`/sys/block/${dev}/loop/autoclear`, 'utf8').trim(), line).toBe('1');
    }
    // Down again: nothing to do.
    const again = await corral(['down', '--work-dir', work]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('nothing to do');
  });

  it('keeps the simulated mode: --simulate runs the master with simulated agents, and down removes it', async () => {
    const simWork = join(dir, 'sim');
    const port = await freePort();
    const r = await corral(['up', '--simulate', '--agents', '2', '--work-dir', simWork, '--name', `ct-us${tag}`, '--port', String(port)], 120_000);
    const supervisor = readPid(join(simWork, 'supervisor.pid'));
    if (supervisor) {
      recorded.push(['up-sim-supervisor', supervisor]);
      recordPid('up-sim-supervisor', supervisor);
    }
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/task \S+ RUNNING on sim-1/);
    expect(r.stdout).toContain('simulated agents and demo frameworks');
    const d = await corral(['down', '--work-dir', simWork]);
    expect(d.code, d.stderr).toBe(0);
    expect(existsSync(simWork)).toBe(false);
    expect(supervisor && existsSync(`/proc/${supervisor}`) && !readFileSync(`/proc/${supervisor}/stat`, 'utf8').includes(') Z ')).toBe(false);
  }, 150_000);
});
