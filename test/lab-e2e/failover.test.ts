/**
 * The whole stack across hosts: a 4-host namespace lab with a control node
 * (master, services, discovery, a real memstore Ceph) and per host a real
 * agent (native containerizer), the rbd volume driver and the CNI node
 * daemon with exabgp, each host provisioned by `corral node up` in its
 * namespace. An app of 3 instances, one per host, each with an rbd volume
 * and a DNS name; data written through one instance; its host killed
 * (processes and link). What must hold: the instance is re-placed on the
 * spare host with the same index and volume, the volume is fenced and
 * attached there with the data intact, its name answers the new address,
 * routes converge, and removing the app undoes each placement tie.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { forgetPid, recordPid, run, testDir } from '../harness/resources.js';
import { killHost, labDown } from '../../lab/lab.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/daemon/client.js';
import { VolumeClient } from '../../plugins/volume-driver/src/client.js';
import { loadNodeState } from '../../provision/src/lifecycle.js';
import { cgroupPids } from '../../provision/src/scope.js';
import {
  appName,
  instanceName,
  cephClientArgs,
  deployAndWait,
  failover,
  instanceUrl,
  learnedRoutes,
  nsRun,
  discoveryCurl,
  operatorCurl,
  runningWithIp,
  startFullLab,
  storeApp,
  until,
  type FailoverResult,
  type FullLab,
} from './full-lab.js';

const recorded: Array<[string, number]> = [];
const remember = (name: string, pid: number): void => {
  recordPid(`lab-e2e-${name}`, pid);
  recorded.push([`lab-e2e-${name}`, pid]);
};

let lab: FullLab;
const dir = testDir('lab-e2e');
const volumeClient = (host: string) => new VolumeClient(join(lab.state.plan.hosts.find((h) => h.name === host)!.dir, 'run', 'volumes.sock'), 20_000);

beforeAll(async () => {
  lab = await startFullLab({ prefix: 'ct-lbe2e', hosts: 4, dir, onPid: remember });
}, 180_000);

afterAll(async () => {
  await labDown(dir);
  for (const [name, pid] of recorded.splice(0)) forgetPid(name, pid);
}, 120_000);

describe('4-host lab with a master and a real Ceph', () => {
  let result: FailoverResult;

  it('provisions every host with the same per-machine step: agents registered with their host attribute, each daemon in its own namespace', async () => {
    const agents = JSON.parse(
      await nsRun(lab.state.plan.services.netns, 'curl', [
        ...operatorCurl(lab.state),
        '-sS',
        '-X',
        'POST',
        '-H',
        'content-type: application/json',
        '--data',
        '{"type":"GET_AGENTS"}',
        `${lab.state.plan.masterUrl}/api/v1`,
      ]),
    ) as {
      get_agents: { agents: Array<{ active: boolean; agent_info: { hostname: string; attributes?: Array<{ name: string; text?: { value: string } }> } }> };
    };
    const seen = agents.get_agents.agents.map((a) => [a.agent_info.hostname, a.active, a.agent_info.attributes?.find((x) => x.name === 'host')?.text?.value]).sort();
    expect(seen).toEqual(lab.state.plan.hosts.map((h) => [h.ip, true, h.name]));
    for (const h of lab.state.plan.hosts) {
      const node = loadNodeState(join(h.dir, 'node-state.json'))!;
      expect(node.processes.map((p) => p.name)).toEqual(['cni', 'volumes', 'agent']);
      for (const p of node.processes) {
        // nsenter --net: the daemon's network namespace is the host's (same inode as the named namespace).
        const [nsOfPid, nsOfHost] = await Promise.all([run('stat', ['-L', '-c', '%i', `/proc/${p.pid}/ns/net`]), run('stat', ['-L', '-c', '%i', `/run/netns/${h.netns}`])]);
        expect(nsOfPid.trim(), `${h.name} ${p.name}`).toBe(nsOfHost.trim());
      }
    }
    // Ceph: each host's volume driver uses its own least-privilege client, from its own directory; client.admin's
    // key is in none of a host's files.
    const adminKey = /\[client\.admin\][^[]*?key = (\S+)/.exec(readFileSync(join(lab.state.plan.services.nodeDir, 'ceph', 'keyring'), 'utf8'))![1]!;
    const clients = JSON.parse(await nsRun(lab.state.plan.services.netns, 'ceph', [...cephClientArgs(lab.state), 'auth', 'ls', '--format', 'json'], 20_000)) as {
      auth_dump: Array<{ entity: string; caps: Record<string, string> }>;
    };
    for (const h of lab.state.plan.hosts) {
      const rbd = (JSON.parse(readFileSync(join(h.dir, 'volumes', 'volumes.json'), 'utf8')) as { rbd: { clientName: string; keyring: string } }).rbd;
      expect(rbd).toMatchObject({ clientName: `client.corral-volumes-${h.name}`, keyring: join(h.dir, 'ceph', 'keyring') });
      expect(clients.auth_dump.find((e) => e.entity === rbd.clientName)?.caps).toEqual({ mon: 'profile rbd', osd: 'profile rbd pool=corral', mgr: 'profile rbd pool=corral' });
      for (const e of readdirSync(h.dir, { recursive: true, withFileTypes: true }).filter((x) => x.isFile() && statSync(join(x.parentPath, x.name)).size < 1024 * 1024)) {
        expect(readFileSync(join(e.parentPath, e.name), 'utf8').includes(adminKey), join(e.parentPath, e.name)).toBe(false);
      }
    }
  });

  it('deploys 3 instances, one per host, each with its rbd volume attached there, its routed IP and its DNS name', async () => {
    const observer = lab.state.plan.hosts[0]!.name;
    const deployed = await deployAndWait(lab, storeApp('kv', 3), observer);
    expect(deployed.tasks.map((t) => t.index)).toEqual([0, 1, 2]);
    expect(new Set(deployed.tasks.map((t) => t.host)).size).toBe(3);
    for (const t of deployed.tasks) {
      const host = lab.hostByIp(t.host!);
      expect(t.volumes).toEqual([`kv-${t.index}`]);
      const vol = await volumeClient(host).get(`kv-${t.index}`);
      expect(vol).toMatchObject({ backend: 'rbd', attachedTo: host, refs: 1 });
      // Every other host reaches the instance over plain routing (BGP-learned block, no overlay).
      const other = lab.state.plan.hosts.find((h) => h.name !== host)!;
      // RUNNING says the process started, not that it listens yet or that the block's route reached every peer: retry briefly.
      const body = await until(`${other.name} reaches kv-${t.index}`, () => lab.get(other.netns, instanceUrl(t.ips[0]!)), 15_000, 100);
      expect((JSON.parse(body) as { index: number }).index).toBe(t.index);
    }
    expect(await lab.dig(lab.netnsOf(observer), appName('kv'))).toEqual(deployed.tasks.map((t) => t.ips[0]).sort());
    // Each instance also has a name of its own.
    for (const t of deployed.tasks) expect(await lab.dig(lab.netnsOf(observer), instanceName('kv', t.index))).toEqual([t.ips[0]]);
    // The catalog entry (Consul API) lists the same addresses.
    const catalog = JSON.parse(
      await nsRun(lab.state.plan.services.netns, 'curl', [...operatorCurl(lab.state), ...discoveryCurl(lab.state), '-sS', `${lab.state.plan.discoveryUrl}/v1/catalog/service/kv`]),
    ) as Array<{ ServiceAddress: string }>;
    expect(catalog.map((c) => c.ServiceAddress).sort()).toEqual(deployed.tasks.map((t) => t.ips[0]).sort());
    process.stdout.write(`lab deploy: 3 instances RUNNING in ${deployed.runningMs} ms, resolvable in ${deployed.resolvableMs} ms\n`);
  }, 120_000);

  it('kills a host: its instance runs on the spare host with the same index and volume, fenced and attached there with the data intact, its name and routes follow', async () => {
    result = await failover(lab, 'kv', 1, `written-through-kv-1-${Date.now()}`, (host) => killHost(lab.state, host));
    process.stdout.write(`lab failover: ${JSON.stringify(result)}\n`);
    const v = await lab.app('kv');
    const moved = v.tasks.find((t) => t.index === 1)!;
    expect(lab.hostByIp(moved.host!)).toBe(result.spare);
    expect(moved.volumes).toEqual(['kv-1']);
    expect(moved.lastError).toMatchObject({ state: 'TASK_UNREACHABLE' });
    expect(runningWithIp(v.tasks)).toHaveLength(3);
    // The volume: attached on the spare; the dead host's clients are on Ceph's blocklist.
    expect(await volumeClient(result.spare).get('kv-1')).toMatchObject({ attachedTo: result.spare, refs: 1 });
    const blocklist = await nsRun(lab.state.plan.services.netns, 'ceph', [...cephClientArgs(lab.state), 'osd', 'blocklist', 'ls'], 20_000);
    const victimIp = lab.state.plan.hosts.find((h) => h.name === result.victim)!.ip;
    expect(blocklist).toContain(victimIp);
    // The dead host: nothing of it runs (daemons, rbd-fuse, tasks).
    const victim = lab.state.plan.hosts.find((h) => h.name === result.victim)!;
    expect(cgroupPids(victim.cgroupRoot)).toEqual([]);
    expect((await run('ip', ['netns', 'pids', victim.netns])).trim()).toBe('');
    // DNS: exactly the three live instances; instance 1's own name answers its new address only.
    expect(await lab.dig(lab.netnsOf(result.observer), appName('kv'))).toEqual(
      runningWithIp(v.tasks)
        .map((t) => t.ips[0])
        .sort(),
    );
    expect(await lab.dig(lab.netnsOf(result.observer), instanceName('kv', 1))).toEqual([result.newIp]);
    // Routes: nothing via the dead host anywhere.
    for (const h of lab.state.plan.hosts.filter((x) => x.name !== result.victim)) {
      expect((await learnedRoutes(h.netns)).filter((r) => r.gateway === victimIp)).toEqual([]);
    }
    expect(result.totalMs).toBeLessThanOrEqual(15_000);
  }, 120_000);

  it('removing the app undoes each tie: tasks gone, volumes detached, addresses freed, names and catalog entries removed', async () => {
    const v = await lab.app('kv');
    const live = runningWithIp(v.tasks);
    await lab.api('DELETE', '/v1/apps/kv');
    await until('app removed', async () => (await lab.api<Array<{ id: string }>>('GET', '/v1/apps')).every((a) => a.id !== 'kv'), 60_000, 200);
    for (const t of live) {
      const host = lab.hostByIp(t.host!);
      const h = lab.state.plan.hosts.find((x) => x.name === host)!;
      await until(
        `kv-${t.index} detached on ${host}`,
        async () => {
          const vol = await volumeClient(host).get(`kv-${t.index}`);
          return vol.refs === 0 && vol.attachedTo === undefined;
        },
        30_000,
        200,
      ).catch(async (err: Error) => {
        // What the driver is still retrying, and why its last attempt failed.
        const status = await volumeClient(host)
          .status()
          .catch((e: Error) => e.message);
        throw new Error(`${err.message}\n${host} volume driver: ${JSON.stringify(status)}`);
      });
      // Converged: nothing left for the driver to retry.
      expect((await volumeClient(host).status()).pendingDetaches).toEqual([]);
      expect(cgroupPids(h.cgroupRoot)).toEqual([]);
      const ipam = await daemonRequest<{ allocations: Array<{ ip: string }> }>(h.socket, 'GET', '/v1/ipam');
      expect(ipam.allocations.map((a) => a.ip)).not.toContain(t.ips[0]);
    }
    await until('DNS name removed', async () => (await lab.dig(lab.netnsOf(result.observer), appName('kv'))).length === 0, 10_000);
    expect(await lab.dig(lab.netnsOf(result.observer), instanceName('kv', 1))).toEqual([]);
    const catalog = JSON.parse(
      await nsRun(lab.state.plan.services.netns, 'curl', [...operatorCurl(lab.state), ...discoveryCurl(lab.state), '-sS', `${lab.state.plan.discoveryUrl}/v1/catalog/service/kv`]),
    ) as unknown[];
    expect(catalog).toEqual([]);
  }, 120_000);
});
