/**
 * Interop with a real runtime: Debian's podman 4.3 (CNI backend, libcni
 * inside) runs containers on a corral network. The conflist is the one
 * `installCni` writes: corral, then Debian's reference portmap. podman runs in
 * the test's host namespace (see test/interop/podman.ts), next to the real
 * node daemon, so nothing reaches the root namespace's routes or firewall.
 *
 * Covered: ADD (a /32 from corral's IPAM, default via 169.254.1.1), the node
 * and other containers reaching the container, `podman run -p` through
 * portmap chained after corral, DEL on `podman rm`, and GC. podman 4.3's
 * libcni predates GC, so GC is the payload libcni's GCNetworkList sends
 * (libcni/api.go: both attachment keys, every other CNI_* variable empty)
 * run through the installed shim against attachments podman made: one live,
 * one whose DEL failed while the daemon was down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsName, run } from '../harness/resources.js';
import { createNamedNetns, deleteNamedNetns } from '../../common/netkit/netns.js';
import { execPlugin } from '../../common/cni-runtime/exec.js';
import { inNamespace } from '../../common/sys/process.js';
import { installCni } from '../../plugins/cni-calico-like/src/install.js';
import { startTestHost, type TestHost } from '../cni/helpers.js';
import { REFERENCE_PLUGINS, startPodman, type Podman, type PodmanContainer } from './podman.js';

const NET = 'corralnet';
const CLIENT = netnsName('pdcl');
const NODE_ADDR = '198.18.6.1';
const CLIENT_ADDR = '198.18.6.2';
const HOST_PORT = 30080;

let host: TestHost;
let podman: Podman;
let installed: { binary: string; conflist: string };
let pluginDirs: string[];

/** Runs a program in the test's host namespace. */
const onNode = (argv: string[], timeoutMs?: number): Promise<string> => {
  const a = inNamespace(host.netns, argv);
  return run(a[0]!, a.slice(1), { timeoutMs });
};

/** Retries an HTTP GET (curl; the host's static busybox wget crashes on glibc's resolver) until it answers, within a bound. */
async function httpGet(netns: string, url: string, deadlineMs = 20_000): Promise<string> {
  const until = Date.now() + deadlineMs;
  let last = '';
  for (;;) {
    try {
      return await run('nsenter', [`--net=/run/netns/${netns}`, '--', 'curl', '-sS', '--fail', '-m', '2', url], { timeoutMs: 5000 });
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > until) throw new Error(`GET ${url} from ${netns} never answered: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const allocationOf = async (id: string) => (await host.allocations()).find((a) => a.containerId === id);

beforeAll(async () => {
  host = await startTestHost('pd');
  // An outside client cabled to the node, and the node's own address (the source of its traffic to containers).
  await createNamedNetns(CLIENT);
  await run('ip', ['link', 'add', 'up0', 'netns', host.netns, 'type', 'veth', 'peer', 'name', 'cl0', 'netns', CLIENT]);
  await run('ip', ['-n', host.netns, 'addr', 'add', `${NODE_ADDR}/24`, 'dev', 'up0']);
  await run('ip', ['-n', host.netns, 'link', 'set', 'up0', 'up']);
  await run('ip', ['-n', CLIENT, 'addr', 'add', `${CLIENT_ADDR}/24`, 'dev', 'cl0']);
  await run('ip', ['-n', CLIENT, 'link', 'set', 'cl0', 'up']);

  const binDir = join(host.dir, 'cni-bin');
  const confDir = join(host.dir, 'net.d');
  installed = installCni({ network: NET, socket: host.socket, chain: ['portmap'], binDir, confDir });
  pluginDirs = [binDir, REFERENCE_PLUGINS];
  podman = startPodman({ dir: host.dir, netns: host.netns, pluginDirs, confDir, defaultNetwork: NET });
  await podman.image();
});

afterAll(async () => {
  const errors: unknown[] = [];
  for (const step of [() => podman?.dispose(), () => deleteNamedNetns(CLIENT), () => host?.dispose()]) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length) throw errors[0];
});

describe('podman runs containers on a corral network', () => {
  let web: PodmanContainer;
  let webHostIf: string;

  it('sees the network podman reads from the conflist', async () => {
    const nets = JSON.parse(await podman.podman(['network', 'ls', '--format', 'json'])) as Array<{ name: string; driver: string }>;
    expect(nets).toContainEqual(expect.objectContaining({ name: NET, driver: 'corral' }));
  });

  it("ADD: the container gets a /32 from corral's IPAM and a default route via 169.254.1.1", async () => {
    web = await podman.run('web', ['--network', NET, '-p', `${HOST_PORT}:8080`], ['httpd', '-f', '-p', '8080', '-h', '/etc']);
    expect(web.ip).toMatch(/^100\.96\.\d+\.\d+$/);
    expect(web.prefixLen).toBe(32);
    expect(web.gateway).toBe('169.254.1.1');

    // podman's libcni called corral with the full container id and eth0; corral's IPAM holds exactly that address.
    const a = await allocationOf(web.id);
    expect(a).toMatchObject({ containerId: web.id, ifname: 'eth0', ip: web.ip, network: NET });
    webHostIf = a!.hostIfname;

    const routes = await podman.podman(['exec', 'web', 'ip', '-4', 'route']);
    expect(routes).toContain('default via 169.254.1.1 dev eth0');
    expect(await podman.podman(['exec', 'web', 'ip', '-4', 'addr', 'show', 'eth0'])).toContain(`inet ${web.ip}/32`);
    expect(await run('ip', ['-n', host.netns, 'route'])).toContain(`${web.ip} dev ${webHostIf}`);
  });

  it('the node and another container reach it', async () => {
    expect(await httpGet(host.netns, `http://${web.ip}:8080/passwd`)).toContain('root:x:0:0');
    const peer = await podman.run('peer', ['--network', NET], ['sleep', '3600']);
    expect(peer.ip).not.toBe(web.ip);
    // busybox nc, not wget: the static busybox's wget crashes in glibc's resolver.
    const fromPeer = await podman.podman(['exec', '-i', 'peer', 'nc', '-w', '5', web.ip, '8080'], { input: 'GET /group HTTP/1.0\r\n\r\n' });
    expect(fromPeer).toMatch(/^HTTP\/1\.\d 200 OK/);
    expect(fromPeer).toContain('root:x:0:');
    await podman.rm('peer');
    expect(await allocationOf(peer.id)).toBeUndefined();
  });

  it('port mapping: `podman run -p` through the reference portmap chained after corral', async () => {
    expect(await httpGet(CLIENT, `http://${NODE_ADDR}:${HOST_PORT}/passwd`)).toContain('root:x:0:0');
    const nat = await onNode(['iptables', '-t', 'nat', '-S']);
    expect(nat).toContain(`--dport ${HOST_PORT}`);
    expect(nat).toContain(`--to-destination ${web.ip}:8080`);
    // None of it in the root namespace.
    expect(await run('iptables', ['-t', 'nat', '-S'])).not.toContain(web.ip);
    expect(await run('ip', ['-4', 'route', 'show', 'table', 'all'])).not.toContain(web.ip);
    expect(await run('ip', ['-o', 'link', 'show'])).not.toContain(webHostIf);
  });

  it('DEL: `podman rm` frees the address and takes the veth and the port rules away', async () => {
    await podman.rm('web');
    expect(await allocationOf(web.id)).toBeUndefined();
    expect((await host.allocations()).map((a) => a.ip)).not.toContain(web.ip);
    expect(await run('ip', ['-n', host.netns, '-o', 'link', 'show'])).not.toContain(webHostIf);
    expect(await run('ip', ['-n', host.netns, 'route'])).not.toContain(`${web.ip} dev`);
    expect(await onNode(['iptables', '-t', 'nat', '-S'])).not.toContain(`--dport ${HOST_PORT}`);
    expect(await run('ip', ['netns', 'list'])).not.toContain(web.sandbox.split('/').pop()!);
  });

  it('GC as libcni sends it frees the attachment podman lost and keeps the live one', async () => {
    const keep = await podman.run('keep', ['--network', NET], ['sleep', '3600']);
    const stale = await podman.run('stale', ['--network', NET], ['sleep', '3600']);
    // The daemon is down while podman removes `stale`: its DEL fails (code 11), podman removes the container
    // anyway, and corral keeps an attachment no runtime knows of.
    await host.restart(async () => {
      await podman.rm('stale');
    });
    expect(await allocationOf(stale.id), 'the failed DEL left the attachment').toBeDefined();
    expect(await allocationOf(keep.id)).toBeDefined();

    // What the runtime still has: every container podman lists, on interface eth0 of this network.
    const listed = JSON.parse(await podman.podman(['ps', '-a', '--format', 'json'])) as Array<{ Id: string; Networks?: string[] }>;
    const valid = listed.filter((c) => c.Networks?.includes(NET)).map((c) => ({ containerID: c.Id, ifname: 'eth0' }));
    expect(valid).toContainEqual({ containerID: keep.id, ifname: 'eth0' });
    expect(valid.map((v) => v.containerID)).not.toContain(stale.id);

    // libcni GCNetworkList: InjectConf(plugin, {name, cniVersion, cni.dev/valid-attachments, cni.dev/attachments})
    // for a list of cniVersion >= 1.1.0 (a GC-capable runtime's list), env from args("GC", &RuntimeConf{}).
    const list = JSON.parse(readFileSync(installed.conflist, 'utf8')) as { name: string; plugins: Array<Record<string, unknown>> };
    const plugin = list.plugins.find((p) => p.type === 'corral')!;
    const payload = { ...plugin, name: list.name, cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid };
    const gc = await execPlugin(installed.binary, { command: 'GC', containerId: '', netns: '', ifname: '', args: '', path: pluginDirs.join(':') }, payload, { hostNetns: host.netns });
    expect(gc.code, gc.stdout + gc.stderr).toBe(0);
    expect(gc.stdout).toBe('');

    expect(await allocationOf(stale.id), 'GC freed the stale attachment').toBeUndefined();
    expect(await allocationOf(keep.id)).toMatchObject({ ip: keep.ip, ifname: 'eth0' });
    // The kept container is still wired.
    await onNode(['ping', '-c', '1', '-W', '2', keep.ip]);
    await podman.rm('keep');
    expect(await allocationOf(keep.id)).toBeUndefined();
  }, 180_000);
});
