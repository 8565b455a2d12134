/**
 * Deploy latency of the service framework on one real node: the same stack
 * `corral up` runs (master, agent with the native containerizer, volume
 * plugin, CNI node daemon in its node namespace, discovery, services), in a
 * temp work dir with test names. For 1, 10 and 100 instances, the clock runs
 * from `PUT /v1/apps/<id>` (what `corral app deploy` sends) until every
 * instance is RUNNING (services' view) and until `dig` against discovery
 * returns every instance's address; then from `DELETE` until every task,
 * container, address and name is gone.
 *
 * Each instance is the full placement path: an offer, a LAUNCH through the
 * master, the agent's native container (cgroups, mount/pid/uts/ipc
 * namespaces), an external volume attached through the volume plugin (a
 * local plain-directory volume, so 100 of them need no loop devices), an
 * address wired by the CNI daemon, and a DNS name. The task is busybox httpd.
 *
 * There is no service framework to run side by side here; BRIEF.md gives
 * Mesos 1.7 launching 1,000 tasks on one agent in ~30 s as the anchor.
 *
 * Usage: npx tsx bench/services-deploy.ts [--sizes 1,10,100] [--reps 3] [--json]
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { freePort } from '../test/harness/ports.js';
import { forgetPid, recordPid, run, testDir } from '../test/harness/resources.js';
import { ServicesClient } from '../core-scheduler/src/services/client.js';
import { loadSecurity } from '../core-scheduler/src/master/auth.js';
import { loadPlan } from '../cli/up/plan.js';
import { readPid } from '../cli/up/procs.js';
import { instanceScope } from '../cli/up/supervisor.js';
import { isClean, loadNodeState, scopeLeftovers } from '../provision/src/index.js';
import { fmt, median } from './volume-common.js';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argValue = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const sizes = (argValue('--sizes') ?? '1,10,100').split(',').map(Number);
const reps = Number(argValue('--reps') ?? 3);
const json = process.argv.includes('--json');

function corral(args: string[], timeoutMs = 300_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/corral.ts'), ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` });
    });
  });
}

const tag = randomBytes(2).toString('hex');
const dir = testDir('bench-services');
const work = join(dir, 'work');
const ports = { master: await freePort(), agent: await freePort(), services: await freePort(), dns: await freePort(), discovery: await freePort() };
const started = Date.now();
const up = await corral([
  'up',
  '--no-demo',
  '--work-dir',
  work,
  '--name',
  `ct-bs${tag}`,
  '--cgroup-root',
  `corral-test-bs${tag}`,
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
  'cpus:8;mem:8192;disk:10000;ports:[31000-32000]',
]);
const plan = loadPlan(work);
// Where scripts/cleanup-tests.sh finds them should this run be interrupted; forgotten after down.
const recorded: Array<[string, number]> = [];
const sup = readPid(join(work, 'supervisor.pid'));
if (sup) recorded.push(['bench-up-supervisor', sup]);
for (const p of loadNodeState(join(work, 'node-state.json'))?.processes ?? []) recorded.push([`bench-up-${p.name}`, p.pid]);
for (const [n, pid] of recorded) recordPid(n, pid);
if (up.code !== 0 || !plan) {
  process.stderr.write(`corral up failed:\n${up.out}\n`);
  await corral(['down', '--work-dir', work]);
  process.exit(1);
}
process.stderr.write(`corral up (no demo) took ${fmt((Date.now() - started) / 1000)} s\n`);
const admin = loadSecurity(plan.paths.security).credentials.find((c) => c.principal === 'admin')!;
const services = new ServicesClient({ url: plan.urls.services, principal: admin.principal, secret: admin.secret });

const digAll = async (name: string): Promise<string[]> =>
  (await run('dig', ['@127.0.0.1', '-p', String(ports.dns), '+short', '+tcp', '+time=2', '+tries=1', name]).catch(() => ''))
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
const containers = (): number => {
  const d = join(plan.paths.containerizerRun, 'containers');
  return existsSync(d) ? readdirSync(d).length : 0;
};

interface Sample {
  instances: number;
  runningMs: number;
  resolvableMs: number;
  removedMs: number;
}

async function once(n: number, rep: number): Promise<Sample> {
  const id = `bench${n}-${rep}`;
  const name = `${id}.corral-services.corral`;
  const t0 = performance.now();
  await services.deploy({
    id,
    cmd: `exec busybox httpd -f -p 8080 -h data`,
    instances: n,
    cpus: 0.05,
    mem: 16,
    network: 'corral',
    volumes: [{ containerPath: 'data' }],
  });
  let runningMs = 0;
  let resolvableMs = 0;
  const deadline = t0 + 600_000;
  while (!(runningMs && resolvableMs)) {
    if (performance.now() > deadline) throw new Error(`${id}: not all running and resolvable after 600 s`);
    const v = await services.get(id);
    const ips = v.tasks.filter((t) => t.phase === 'running').flatMap((t) => t.ips);
    if (!runningMs && v.running === n && ips.length === n) runningMs = performance.now() - t0;
    if (!resolvableMs && ips.length === n) {
      const answer = new Set(await digAll(name));
      if (answer.size === n && ips.every((ip) => answer.has(ip))) resolvableMs = performance.now() - t0;
    }
    if (!(runningMs && resolvableMs)) await sleep(20);
  }
  const t1 = performance.now();
  await services.remove(id);
  for (;;) {
    const gone =
      (await services.get(id).then(
        () => false,
        () => true,
      )) &&
      containers() === 0 &&
      (await digAll(name)).length === 0;
    if (gone) break;
    if (performance.now() - t1 > 600_000) throw new Error(`${id}: not removed after 600 s`);
    await sleep(20);
  }
  return { instances: n, runningMs, resolvableMs, removedMs: performance.now() - t1 };
}

const samples: Sample[] = [];
try {
  for (const n of sizes) {
    for (let i = 0; i < reps; i++) {
      const s = await once(n, i);
      samples.push(s);
      process.stderr.write(`  ${n} instance(s), run ${i + 1}: running ${fmt(s.runningMs, 0)} ms, resolvable ${fmt(s.resolvableMs, 0)} ms, removed ${fmt(s.removedMs, 0)} ms\n`);
    }
  }
} finally {
  const down = await corral(['down', '--work-dir', work]);
  for (const [n, pid] of recorded) forgetPid(n, pid);
  const left = scopeLeftovers(instanceScope(plan));
  if (down.code !== 0 || !isClean(left)) process.stderr.write(`corral down did not leave a clean host:\n${down.out}\n${JSON.stringify(left)}\n`);
  else rmSync(dir, { recursive: true, force: true });
}

const rows = sizes.map((n) => {
  const xs = samples.filter((s) => s.instances === n);
  const resolvable = median(xs.map((s) => s.resolvableMs));
  return {
    instances: n,
    runs: xs.length,
    running: median(xs.map((s) => s.runningMs)),
    resolvable,
    perSecond: (n / resolvable) * 1000,
    removed: median(xs.map((s) => s.removedMs)),
  };
});
if (json) process.stdout.write(JSON.stringify({ rows, samples }, null, 2) + '\n');
else {
  const head = ['INSTANCES', 'RUNS', 'DEPLOY→ALL RUNNING', 'DEPLOY→ALL RESOLVABLE', 'INSTANCES/S', 'RM→ALL GONE'];
  const lines = rows.map((r) => [String(r.instances), String(r.runs), `${fmt(r.running, 0)} ms`, `${fmt(r.resolvable, 0)} ms`, fmt(r.perSecond, 1), `${fmt(r.removed, 0)} ms`]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\nService framework deploy on one node (medians; native containers with a volume, a CNI address and a DNS name each)\n${line(head)}\n`);
  for (const l of lines) process.stdout.write(line(l) + '\n');
  process.stdout.write('anchor (BRIEF.md): Mesos 1.7 launches 1,000 tasks on one agent in ~30 s (~33 tasks/s); no Marathon figure is given\n');
}
