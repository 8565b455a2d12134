/**
 * Chaining: Debian's reference `portmap` and `bandwidth` after `corral`, run
 * by corral's CNI runtime the way libcni runs a conflist (each plugin gets the
 * previous result as prevResult, DEL in reverse order with the cached result),
 * all inside the test's host namespace.
 * A client on a separate namespace reaches a server in the container through
 * the host port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { run, recordPid, forgetPid, netnsName } from '../harness/resources.js';
import { createNamedNetns, deleteNamedNetns } from '../../common/netkit/netns.js';
import { toConfList } from '../../common/cni-runtime/index.js';
import { conflist } from '../../plugins/cni-calico-like/src/install.js';
import { startTestHost, nsOf, type TestHost } from './helpers.js';

const CLIENT = netnsName('cnichcl');
let host: TestHost;
let server: ChildProcess | undefined;

beforeAll(async () => {
  host = await startTestHost('ch');
  // An "outside" client cabled to the host namespace.
  await createNamedNetns(CLIENT);
  await run('ip', ['link', 'add', 'up0', 'netns', host.netns, 'type', 'veth', 'peer', 'name', 'cl0', 'netns', CLIENT]);
  await run('ip', ['-n', host.netns, 'addr', 'add', '198.18.5.1/24', 'dev', 'up0']);
  await run('ip', ['-n', host.netns, 'link', 'set', 'up0', 'up']);
  await run('ip', ['-n', CLIENT, 'addr', 'add', '198.18.5.2/24', 'dev', 'cl0']);
  await run('ip', ['-n', CLIENT, 'link', 'set', 'cl0', 'up']);
});

afterAll(async () => {
  if (server?.pid) {
    server.kill('SIGKILL');
    forgetPid('cni-chain-server', server.pid);
  }
  await deleteNamedNetns(CLIENT);
  await host?.dispose();
});

describe('chained reference plugins', () => {
  it('portmap forwards a host port to the container and bandwidth shapes the host veth', async () => {
    const list = toConfList(conflist({ network: 'chain', socket: host.socket, chain: ['portmap', 'bandwidth'] }), 'chain');
    const netns = await host.container('srv');
    const attachment = {
      containerId: 'ctr-srv',
      netns,
      ifname: 'eth0',
      capabilityArgs: {
        portMappings: [{ hostPort: 30080, containerPort: 8080, protocol: 'tcp' }],
        bandwidth: { ingressRate: 8_000_000, ingressBurst: 64_000, egressRate: 8_000_000, egressBurst: 64_000 },
      },
    };
    const result = (await host.runtime.add(list, attachment)) as { interfaces: Array<{ name: string; sandbox?: string }>; ips: Array<{ address: string }> };
    const hostIf = result.interfaces.find((i) => !i.sandbox)!.name;
    expect(hostIf).toMatch(/^crl/);

    server = spawn(
      'ip',
      [
        'netns',
        'exec',
        nsOf(netns),
        '/usr/bin/python3',
        '-c',
        'import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(("0.0.0.0",8080))\ns.listen(8)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b"hello-from-container\\n")\n  c.close()\n',
      ],
      { stdio: 'ignore' },
    );
    recordPid('cni-chain-server', server.pid!);
    let reply = '';
    for (let i = 0; i < 50 && !reply.includes('hello'); i++) {
      reply = await run('ip', ['netns', 'exec', CLIENT, '/usr/bin/python3', '-c', 'import socket\ns=socket.create_connection(("198.18.5.1",30080),1)\nprint(s.recv(100).decode())'], {
        timeoutMs: 5000,
      }).catch(() => '');
      if (!reply) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply).toContain('hello-from-container');

    const qdisc = await run('ip', ['netns', 'exec', host.netns, 'tc', 'qdisc', 'show', 'dev', hostIf]);
    expect(qdisc).toContain('tbf');
    const nat = await run('ip', ['netns', 'exec', host.netns, 'iptables', '-t', 'nat', '-S']);
    expect(nat).toContain('--dport 30080');

    // Debian's portmap 1.1.1 CHECK looks for its IPv6 chain even for an IPv4-only container and fails; the others are checked.
    expect(host.runtime.cachedResult(list, attachment)).toEqual(result);
    await host.runtime.check({ ...list, plugins: list.plugins.filter((p) => p.type !== 'portmap') }, attachment);

    await host.runtime.del(list, attachment);
    expect(host.runtime.cachedResult(list, attachment)).toBeUndefined();
    expect(await run('ip', ['netns', 'exec', host.netns, 'iptables', '-t', 'nat', '-S'])).not.toContain('--dport 30080');
    expect((await host.allocations()).some((a) => a.containerId === 'ctr-srv')).toBe(false);
  });
});
