/**
 * The multi-host lab with real exabgp, a real master (mesh from its agent
 * list), real etcd and a real bird2 route reflector: containers on different
 * hosts reach each other over plain routing, a killed speaker's routes vanish
 * from its peers within a second and come back with it. Secure by default:
 * etcd wants a client certificate of the lab's CA and confines each CNI
 * daemon to the IPAM keys; the master speaks HTTPS and checks credentials;
 * each machine holds only its own secrets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { testDir, recordPid, forgetPid, run } from '../harness/resources.js';
import { labDown, labStatus, labUp, type LabState } from '../../lab/lab.js';
import { upLinkKinds } from '../../lab/underlay.js';
import { inNamespace } from '../../common/sys/process.js';
import { ipJson, ping } from './helpers.js';

const recorded: Array<[string, number]> = [];
const remember = (name: string, pid: number): void => {
  recordPid(name, pid);
  recorded.push([name, pid]);
};
const forgetAll = (): void => {
  for (const [name, pid] of recorded.splice(0)) forgetPid(name, pid);
};

interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string | number;
}

async function waitConverged(dir: string, hosts: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const s = await labStatus(dir);
    last = s;
    if (s.every((h) => h.daemon && h.peers > 0 && h.sessionsUp === h.peers && h.routes === hosts - 1)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`lab did not converge: ${JSON.stringify(last)}`);
}

/** A command inside a lab namespace (nsenter, as the lab runs its machines). */
const nsRun = (netns: string, cmd: string, args: string[]): Promise<string> => {
  const argv = inNamespace(netns, [cmd, ...args]);
  return run(argv[0]!, argv.slice(1), { timeoutMs: 20_000 });
};

/**
 * What etcd lets a client with this certificate do, asked from inside `netns` with the etcd3 client:
 * list the IPAM keys, and write a key outside them.
 */
const ETCD_PROBE = `
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
const o = JSON.parse(process.argv[1]);
const c = new Etcd3({ hosts: o.url, dialTimeout: 5000, credentials: { rootCertificate: readFileSync(o.ca), certChain: readFileSync(o.cert), privateKey: readFileSync(o.key) } });
const out = {};
try { out.ipamKeys = (await c.getAll().prefix('corral/ipam/').keys()).length; } catch (e) { out.ipamKeys = e.message; }
try { await c.put('corral/registry/intruder').value('x'); out.outside = 'written'; } catch (e) { out.outside = e.message; }
c.close();
process.stdout.write(JSON.stringify(out));
`;

const routesVia = async (netns: string, gateway: string): Promise<Route[]> => (await ipJson<Route[]>(netns, ['route', 'show'])).filter((r) => r.gateway === gateway);

describe('3-host lab, full mesh from the master', () => {
  let lab: LabState;
  const dir = testDir('cni-lab');

  beforeAll(async () => {
    lab = await labUp({ prefix: 'ct-cnilb', hosts: 3, dir, containers: 1, onPid: (name, pid) => remember(`cni-lab-${name}`, pid) });
    await waitConverged(dir, 3);
  }, 120_000);

  afterAll(async () => {
    await labDown(dir);
    forgetAll();
  }, 60_000);

  it('containers on different hosts ping each other with no encapsulation anywhere', async () => {
    for (const from of lab.containers) {
      for (const to of lab.containers) {
        if (from.host === to.host) continue;
        expect(await ping(from.netns, to.ip)).toContain(' 0% packet loss');
      }
    }
    for (const h of lab.plan.hosts) {
      expect(await upLinkKinds(h.netns)).toEqual(['loopback', 'veth']);
      const learned = (await ipJson<Route[]>(h.netns, ['route', 'show', 'proto', '77'])).filter((r) => r.gateway);
      expect(learned).toHaveLength(2);
      for (const r of learned) expect(r).toMatchObject({ dev: 'ul0' });
    }
  });

  it('etcd wants a client certificate of the lab CA and confines each CNI daemon to the IPAM keys; its root password stays with the operator', async () => {
    const { plan } = lab;
    const op = plan.operator!;
    expect(plan.etcdUrl).toMatch(/^https:\/\//);
    const svc = plan.services.netns;
    const tls = join(plan.hosts[0]!.dir, 'tls');
    // Trusting the CA but presenting no certificate: etcd drops the connection in the handshake (client-cert-auth; curl's
    // error varies with when it notices: 35, 55 or 56); the same call with a certificate of the CA is answered.
    await expect(nsRun(svc, 'curl', ['-sS', '--max-time', '5', '--cacert', op.ca, `${plan.etcdUrl}/version`])).rejects.toThrow(/curl: \((35|55|56)\)/);
    expect(await nsRun(svc, 'curl', ['-sS', '--max-time', '5', '--cacert', op.ca, '--cert', join(tls, 'etcd-cni.crt'), '--key', join(tls, 'etcd-cni.key'), `${plan.etcdUrl}/version`])).toContain(
      'etcdserver',
    );
    // h1's CNI daemon's own certificate (user corral-cni): the IPAM blocks its containers hold, and nothing else.
    const probe = JSON.parse(
      await nsRun(plan.hosts[0]!.netns, process.execPath, [
        '--input-type=module',
        '-e',
        ETCD_PROBE,
        JSON.stringify({ url: plan.etcdUrl, ca: join(tls, 'ca.crt'), cert: join(tls, 'etcd-cni.crt'), key: join(tls, 'etcd-cni.key') }),
      ]),
    ) as { ipamKeys: number | string; outside: string };
    expect(probe.ipamKeys).toBeGreaterThan(0);
    expect(probe.outside).toMatch(/permission denied/i);
    // etcd's root password: in the operator's CA directory (0600), in no machine's files (but etcd's own data: etcd 3.4
    // logs the user-add request, password included, in its write-ahead log).
    const rootPassword = join(plan.options.dir, 'operator', 'ca', 'etcd-root.password');
    expect(statSync(rootPassword).mode & 0o077).toBe(0);
    const secret = readFileSync(rootPassword, 'utf8').trim();
    const etcdData = join(plan.services.nodeDir, 'etcd', 'data');
    for (const d of [plan.services.dir, ...plan.hosts.map((h) => h.dir)]) {
      const files = readdirSync(d, { recursive: true, withFileTypes: true })
        .filter((x) => x.isFile() && !x.parentPath.startsWith(etcdData))
        .map((x) => join(x.parentPath, x.name));
      expect(files.filter((f) => readFileSync(f).includes(secret))).toEqual([]);
    }
  });

  it('the master speaks HTTPS only and answers no unauthenticated call; its simulated agents registered over mutual TLS', async () => {
    const { plan } = lab;
    const op = plan.operator!;
    expect(plan.masterUrl).toMatch(/^https:\/\//);
    const call = (args: string[]): Promise<string> => nsRun(plan.hosts[0]!.netns, 'curl', ['-s', '--max-time', '5', ...args]);
    const getAgents = ['-H', 'content-type: application/json', '-d', '{"type":"GET_AGENTS"}', `${plan.masterUrl}/api/v1`];
    // Plain HTTP on the HTTPS port: 400.
    expect(await call(['-o', '/dev/null', '-w', '%{http_code}', `http://${plan.services.ip}:${plan.options.masterPort}/health`])).toBe('400');
    // Trusting the CA but without credentials: 401.
    expect(await call(['-o', '/dev/null', '-w', '%{http_code}', '--cacert', op.ca, ...getAgents])).toBe('401');
    // The agent API wants a client certificate (mutual TLS): the operator's Basic credentials are not enough.
    expect(await call(['-K', op.curlrc, '-w', ' %{http_code}', '-H', 'content-type: application/json', '-d', '{}', `${plan.masterUrl}/api/v1/agent`])).toMatch(/requires mutual TLS[\s\S]* 401$/);
    const agents = (JSON.parse(await call(['-K', op.curlrc, ...getAgents])) as { get_agents: { agents: Array<{ active: boolean; agent_info: { hostname: string } }> } }).get_agents.agents;
    expect(
      agents
        .filter((a) => a.active)
        .map((a) => a.agent_info.hostname)
        .sort(),
    ).toEqual(plan.hosts.map((h) => h.ip).sort());
  });

  it('each machine holds only its own secrets and key pairs; the CA key stays in the operator directory', () => {
    const { plan } = lab;
    const machines = [
      { name: 'control', dir: plan.services.dir, own: ['agent-control'], keys: ['agent.key', 'etcd-client.key', 'etcd.key', 'master.key'] },
      ...plan.hosts.map((h) => ({ name: h.name, dir: h.dir, own: [`cni-${h.name}`], keys: ['cni.key', 'etcd-cni.key'] })),
    ];
    for (const m of machines) {
      const files = readdirSync(m.dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name));
      expect(
        files.filter((f) => f.endsWith('ca.key')),
        `${m.name} holds no CA key`,
      ).toEqual([]);
      for (const f of files.filter((x) => x.endsWith('.key') || x.endsWith('security.yaml'))) expect(statSync(f).mode & 0o077, `${f} is 0600`).toBe(0);
      const sec = parseYaml(readFileSync(join(m.dir, 'security.yaml'), 'utf8')) as { credentials: Array<{ principal: string; secret?: string; secret_hash?: string }> };
      const plain = sec.credentials
        .filter((c) => c.secret !== undefined)
        .map((c) => c.principal)
        .sort();
      expect(plain, `${m.name}'s plain-text secrets`).toEqual(m.own);
      expect(sec.credentials.every((c) => c.secret !== undefined || c.secret_hash?.startsWith('scrypt$'))).toBe(true);
      expect(
        readdirSync(join(m.dir, 'tls'))
          .filter((f) => f.endsWith('.key'))
          .sort(),
        `${m.name}'s key pairs`,
      ).toEqual(m.keys);
    }
    expect(existsSync(join(plan.options.dir, 'operator', 'ca', 'ca.key'))).toBe(true);
  });

  it('each host peers with every other host the master lists', async () => {
    const status = await labStatus(dir);
    expect(status.map((s) => `${s.sessionsUp}/${s.peers}`)).toEqual(['2/2', '2/2', '2/2']);
  });

  it("a killed exabgp's routes leave its peers within 1 s and come back with it", async () => {
    const [h1, h2, h3] = lab.plan.hosts;
    const pid = Number(readFileSync(join(h1!.dir, 'state', 'bgp', 'exabgp.pid'), 'utf8'));
    expect(await routesVia(h2!.netns, h1!.ip)).toHaveLength(1);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    let goneAfter = Infinity;
    while (Date.now() - killedAt < 5000) {
      if ((await routesVia(h2!.netns, h1!.ip)).length === 0 && (await routesVia(h3!.netns, h1!.ip)).length === 0) {
        goneAfter = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(goneAfter).toBeLessThan(1000);
    let backAfter = Infinity;
    while (Date.now() - killedAt < 30_000) {
      if ((await routesVia(h2!.netns, h1!.ip)).length === 1 && (await routesVia(h3!.netns, h1!.ip)).length === 1) {
        backAfter = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(backAfter).toBeLessThan(30_000);
    const c1 = lab.containers.find((c) => c.host === 'h1')!;
    const c2 = lab.containers.find((c) => c.host === 'h2')!;
    expect(await ping(c2.netns, c1.ip)).toContain(' 0% packet loss');
  }, 60_000);
});

describe('3-host lab through a bird2 route reflector', () => {
  let lab: LabState;
  const dir = testDir('cni-labrr');

  beforeAll(async () => {
    lab = await labUp({ prefix: 'ct-cnirr', hosts: 3, dir, containers: 1, routeReflector: true, onPid: (name, pid) => remember(`cni-labrr-${name}`, pid) });
    await waitConverged(dir, 3);
  }, 120_000);

  afterAll(async () => {
    await labDown(dir);
    forgetAll();
  }, 60_000);

  it('hosts peer only with the reflector, learn every block through it, and containers reach each other', async () => {
    const status = await labStatus(dir);
    expect(status.map((s) => `${s.sessionsUp}/${s.peers}`)).toEqual(['1/1', '1/1', '1/1']);
    const birdc = await run('birdc', ['-s', join(lab.plan.reflector!.dir, 'bird.ctl'), 'show', 'protocols']);
    expect(birdc.match(/Established/g)).toHaveLength(3);
    for (const h of lab.plan.hosts) {
      const learned = (await ipJson<Route[]>(h.netns, ['route', 'show', 'proto', '77'])).filter((r) => r.gateway);
      // Next hops stay the originating hosts (the reflector is not in the data path).
      expect(learned.map((r) => r.gateway).sort()).toEqual(
        lab.plan.hosts
          .filter((x) => x !== h)
          .map((x) => x.ip)
          .sort(),
      );
    }
    const [a, b, c] = lab.containers;
    expect(await ping(a!.netns, b!.ip)).toContain(' 0% packet loss');
    expect(await ping(c!.netns, a!.ip)).toContain(' 0% packet loss');
  });
});

describe('2-host lab with insecure: the plain lab, for debugging', () => {
  let lab: LabState;
  const dir = testDir('cni-labin');

  beforeAll(async () => {
    lab = await labUp({ prefix: 'ct-cniin', hosts: 2, dir, containers: 1, insecure: true, onPid: (name, pid) => remember(`cni-labin-${name}`, pid) });
    await waitConverged(dir, 2);
  }, 120_000);

  afterAll(async () => {
    await labDown(dir);
    forgetAll();
  }, 60_000);

  it('etcd and the master on plain HTTP without credentials, no operator files, and containers reach each other', async () => {
    const { plan } = lab;
    expect(plan.operator).toBeUndefined();
    expect([plan.etcdUrl, plan.masterUrl].every((u) => u.startsWith('http://'))).toBe(true);
    const h1 = plan.hosts[0]!.netns;
    expect(JSON.parse(await nsRun(h1, 'curl', ['-sf', '--max-time', '5', `${plan.etcdUrl}/health`]))).toMatchObject({ health: 'true' });
    const agents = JSON.parse(await nsRun(h1, 'curl', ['-sf', '--max-time', '5', '-H', 'content-type: application/json', '-d', '{"type":"GET_AGENTS"}', `${plan.masterUrl}/api/v1`])) as {
      get_agents: { agents: unknown[] };
    };
    expect(agents.get_agents.agents).toHaveLength(2);
    expect(existsSync(join(dir, 'operator'))).toBe(false);
    expect(plan.hosts.every((h) => !existsSync(join(h.dir, 'security.yaml')))).toBe(true);
    const [a, b] = lab.containers;
    expect(await ping(a!.netns, b!.ip)).toContain(' 0% packet loss');
  });
});
