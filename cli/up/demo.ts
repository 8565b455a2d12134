/**
 * The demo app `corral up` deploys, and the tour it prints: one instance of
 * a tiny web server (busybox httpd, native MESOS containerizer, no image)
 * serving a page it writes to its own external volume, on the corral CNI
 * network, named in DNS. Then the real checks a user would run: `dig`
 * against discovery and an HTTP request from the node namespace.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CorralError, errorMessage } from '../../contracts/errors.js';
import { ServicesClient } from '../../core-scheduler/src/index.js';
import { upClientTls } from './tls.js';
import type { AppView, InstanceView } from '../../core-scheduler/src/index.js';
import { VolumeClient } from '../../plugins/volume-driver/src/index.js';
import { exec } from '../../common/sys/exec.js';
import { NETWORK, VOLUME_DRIVER, type UpPlan } from './plan.js';
type Credential = { principal: string; secret: string };
import { setTimeout as sleep } from 'node:timers/promises';

export const DEMO_APP_ID = 'web';
const DEMO_PORT = 8080;

const DEMO_APP = {
  id: DEMO_APP_ID,
  // Runs in the task's sandbox; `data` is the external volume. Each start appends to data/starts, so a
  // restarted or rescheduled instance shows its volume outlived the task.
  cmd: [
    'date >> data/starts',
    `{ echo "hello from corral: app $CORRAL_APP_ID, instance $CORRAL_INSTANCE_INDEX"; echo "this page is on volume $CORRAL_APP_ID-$CORRAL_INSTANCE_INDEX, written at start $(wc -l < data/starts)"; } > data/index.html`,
    `exec busybox httpd -f -p ${DEMO_PORT} -h data`,
  ].join(' && '),
  cpus: 0.1,
  mem: 32,
  instances: 1,
  network: NETWORK,
  ports: [{ name: 'http', containerPort: DEMO_PORT }],
  volumes: [{ containerPath: 'data', driver: VOLUME_DRIVER, options: { size: '64M' } }],
  healthCheck: { type: 'HTTP', port: 'http', path: '/', intervalSeconds: 5, timeoutSeconds: 3, gracePeriodSeconds: 15 },
};

/** Writes the demo app's file (so users can edit and redeploy it) and returns its path. */
function writeDemoFile(plan: UpPlan): string {
  mkdirSync(plan.paths.demo, { recursive: true });
  const file = join(plan.paths.demo, `${DEMO_APP_ID}.yaml`);
  writeFileSync(file, `# the demo app of corral up: corral app deploy ${file}\n${stringify(DEMO_APP)}`);
  return file;
}

/** Deploys the demo app (idempotent) and waits until it runs; prints each instance's progress. */
export async function deployDemo(plan: UpPlan, admin: Credential, waitSeconds: number, print: (line: string) => void): Promise<AppView> {
  const client = new ServicesClient({ url: plan.urls.services, ...admin, tls: upClientTls(plan) });
  writeDemoFile(plan);
  const existing = await client.get(DEMO_APP_ID).catch(() => undefined);
  if (!existing) {
    await client.deploy(DEMO_APP);
    print(`deployed app "${DEMO_APP_ID}": busybox httpd on network "${NETWORK}" with volume ${DEMO_APP_ID}-0 (driver ${VOLUME_DRIVER}, 64M ext4)`);
  }
  const end = Date.now() + waitSeconds * 1000;
  let said = '';
  for (;;) {
    const v = await client.get(DEMO_APP_ID);
    const t = v.tasks[0];
    const line = t ? `instance 0: ${t.phase}${t.state ? ` (${t.state})` : ''}${t.waiting ? `: ${t.waiting}` : ''}${t.lastError ? `; last error: ${t.lastError.message}` : ''}` : v.message;
    if (line !== said) print((said = line));
    if (v.status === 'running' && v.tasks.every((x) => x.ips.length > 0)) return v;
    if (Date.now() > end) throw new CorralError('TIMEOUT', `the demo app is not running after ${waitSeconds} s: ${v.status}: ${v.message}`);
    await sleep(250);
  }
}

interface Tour {
  task: InstanceView;
  ip: string;
  names: string[];
  volume: { name: string; mountpoint?: string | undefined };
  dig: { command: string; output: string };
  http: { command: string; output: string };
}

/** `dig` until discovery answers with `ip` (it follows the master's stream, so normally at once). */
async function digFor(plan: UpPlan, name: string, ip: string): Promise<string> {
  const end = Date.now() + 10_000;
  let out = '';
  while (Date.now() < end) {
    out = (await exec('dig', ['@127.0.0.1', '-p', String(plan.ports.dns), '+short', '+time=2', '+tries=1', name]).catch((err: unknown) => errorMessage(err))).trim();
    if (out.split('\n').includes(ip)) return out;
    await sleep(100);
  }
  return out;
}

/** The node namespace's view of a container (where its /32 route lives), or the host's with --host-network. */
function inNodeNetns(plan: UpPlan, argv: string[]): string[] {
  return plan.hostNetwork ? argv : ['ip', 'netns', 'exec', plan.netns.node, ...argv];
}

export async function takeTour(plan: UpPlan, admin: Credential): Promise<Tour> {
  const client = new ServicesClient({ url: plan.urls.services, ...admin, tls: upClientTls(plan) });
  const view = await client.get(DEMO_APP_ID);
  const task = view.tasks.find((t) => t.phase === 'running' && t.ips.length) ?? view.tasks[0];
  if (!task?.ips[0]) throw new CorralError('FAILED_PRECONDITION', `app ${DEMO_APP_ID} has no running instance with an address (corral app show ${DEMO_APP_ID})`);
  const ip = task.ips[0];
  const framework = (await client.info()).framework.name;
  // The app's name (every instance), this instance's own stable name, and the Consul-style one.
  const names = [`${DEMO_APP_ID}.${framework}.corral`, `${DEMO_APP_ID}-${task.index}.${DEMO_APP_ID}.${framework}.corral`, `${DEMO_APP_ID}.service.corral`];
  const volumeName = task.volumes[0] ?? `${DEMO_APP_ID}-${task.index}`;
  const vol = await new VolumeClient(plan.paths.volumeSocket).get(volumeName).catch(() => undefined);
  const digArgs = ['@127.0.0.1', '-p', String(plan.ports.dns), '+short', names[0]!];
  const digOut = await digFor(plan, names[0]!, ip);
  const curl = inNodeNetns(plan, ['curl', '-s', '--max-time', '5', `http://${ip}:${DEMO_PORT}/`]);
  const httpOut = (await exec(curl[0]!, curl.slice(1)).catch((err: unknown) => errorMessage(err))).trim();
  return {
    task,
    ip,
    names,
    volume: { name: volumeName, mountpoint: vol?.mountpoint ?? undefined },
    dig: { command: ['dig', ...digArgs].join(' '), output: digOut },
    http: { command: curl.join(' '), output: httpOut },
  };
}

export function renderTour(plan: UpPlan, t: Tour): string {
  const indent = (s: string): string =>
    s
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  return [
    `The demo app "${DEMO_APP_ID}" is RUNNING (task ${t.task.taskId ?? '?'} on ${t.task.host ?? '?'}):`,
    `  IP:        ${t.ip}  (pool ${plan.pool.cidr}; routed in ${plan.hostNetwork ? 'the host namespace' : `netns ${plan.netns.node}`})`,
    `  DNS:       ${t.names.join(', ')}  (DNS server 127.0.0.1:${plan.ports.dns})`,
    `  volume:    ${t.volume.name}${t.volume.mountpoint ? ` mounted at ${t.volume.mountpoint}` : ''}  (corral volume ls)`,
    `  $ ${t.dig.command}`,
    indent(t.dig.output || '(no answer)'),
    `  $ ${t.http.command}`,
    indent(t.http.output || '(no answer)'),
  ].join('\n');
}
