/**
 * Least privilege per daemon on a real etcd that speaks only TLS, requires
 * client certificates of the cluster CA and has authentication on, with the
 * users setupEtcdAuth makes for corral (corralEtcdUsers): each daemon
 * authenticates by its own certificate (CN = its user). The master, the
 * service framework (replicated: it stands for election) and discovery run
 * over it as their own users and do their jobs; the CNI daemon's IPAM
 * assigns addresses as corral-cni; every user is refused (FORBIDDEN) outside
 * its own keys; a grant added by hand is revoked by the next set-up, and
 * corral-master keeps what daemons of an older cluster need: on a cluster set
 * up with that one user, a daemon still connected as it works on while the
 * users are added, and restarted as its own user finds its state. The CLI's etcd
 * flags reach the same etcd over TLS, by certificate and by password.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { configureLogging, logger } from '../../common/log.js';
import { corralEtcdUsers, ensureRootPassword, ETCD_KEY_LAYOUT, ETCD_USERS, setupEtcdAuth, type EtcdDaemonKind } from '../../common/store/etcd-auth.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { openStore } from '../../common/store/json.js';
import { isCorralError } from '../../contracts/errors.js';
import { bytesPrefixEnd } from '../../contracts/store/check.js';
import type { Store } from '../../contracts/store/types.js';
import { REGISTRY_PREFIX } from '../../core-scheduler/src/master/http/store-api.js';
import { startServices } from '../../core-scheduler/src/services/daemon.js';
import { startDiscovery } from '../../discovery/src/daemon.js';
import { ACL_PREFIX } from '../../discovery/src/acl/state.js';
import { KV_PREFIX, LOCKS_PREFIX, SESSIONS_PREFIX } from '../../discovery/src/consul/kv.js';
import { daemonConfigSchema } from '../../plugins/cni-calico-like/src/daemon/config.js';
import { Ipam } from '../../plugins/cni-calico-like/src/ipam/allocator.js';
import { etcdStoreFlags } from '../../cli/etcd-options.js';
import { startEtcd, type EtcdHandle } from '../harness/etcd.js';
import { makeEtcdPki, type EtcdPki } from '../harness/etcd-pki.js';
import { startTestMaster } from '../harness/master.js';
import { MasterProcess } from '../harness/master-process.js';
import { freePort } from '../harness/ports.js';
import { testDir } from '../harness/resources.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { untilValue } from '../harness/wait.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

const NS = 'corral/';
const cleanup = stopsAfterEach();
let dir = '';
let pki: EtcdPki | undefined;
let etcd: EtcdHandle | undefined;
let rootPassword = '';
let root: Etcd3 | undefined;
const certs = {} as Record<EtcdDaemonKind, { cert: string; key: string }>;
const cliPassword = `pw-${randomUUID()}`;

/** The users provisioning makes, plus one with a password for the CLI's --etcd-user. */
const users = () => [...corralEtcdUsers(NS), { name: 'corral-cli', password: cliPassword, grants: [{ prefix: 'cli/', permission: 'readwrite' as const }] }];

beforeAll(async () => {
  dir = testDir('etcd-daemon-users');
  pki = await makeEtcdPki(join(dir, 'pki'));
  etcd = await startEtcd({ tls: pki.server });
  for (const k of Object.keys(ETCD_USERS) as EtcdDaemonKind[]) certs[k] = await pki.client(ETCD_USERS[k]);
  rootPassword = ensureRootPassword(join(dir, 'etcd-root.password'));
  // The set-up connects with a certificate of no user (as provisioning's, before auth is on).
  const admin = await pki.client('corral-setup');
  const conn = { endpoints: [etcd.endpoint], tls: { ca: pki.caFile, ...admin } };
  expect(await setupEtcdAuth(conn, { rootPassword, users: users() })).toEqual({ enabled: true });
  root = new Etcd3({
    hosts: [etcd.endpoint],
    credentials: { rootCertificate: Buffer.from(pki.ca.certPem), certChain: readFileSync(admin.cert), privateKey: readFileSync(admin.key) },
    auth: { username: 'root', password: rootPassword },
  });
}, 120_000);

afterAll(async () => {
  root?.close();
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const tlsOf = (k: EtcdDaemonKind) => ({ ca: pki!.caFile, ...certs[k] });
const storeConfig = (k: EtcdDaemonKind, namespace = NS) => ({ backend: 'etcd' as const, etcdEndpoints: [etcd!.endpoint], namespace, etcdTls: tlsOf(k) });

async function storeAs(k: EtcdDaemonKind, namespace = NS): Promise<Store> {
  const s = await EtcdStore.open({ endpoints: [etcd!.endpoint], namespace, tls: tlsOf(k), dialTimeoutMs: 5000 });
  cleanup.push(() => s.close());
  return s;
}

/** `action` is refused with FORBIDDEN (etcd's permission denied, typed). */
async function forbidden(what: string, action: () => Promise<unknown>): Promise<void> {
  const err = await action().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCorralError(err, 'FORBIDDEN'), `${what}: ${String(err)}`).toBe(true);
}

const keysUnder = async (prefix: string): Promise<string[]> => root!.getAll().prefix(prefix).keys();

describe("the users' key layout", () => {
  it("is the components' own: registry, discovery's state and the CNI daemon's default IPAM prefix", () => {
    expect(ETCD_KEY_LAYOUT.registry).toBe(REGISTRY_PREFIX);
    for (const p of [KV_PREFIX, LOCKS_PREFIX, SESSIONS_PREFIX, ACL_PREFIX]) expect(p.startsWith(ETCD_KEY_LAYOUT.discovery), p).toBe(true);
    const cni = daemonConfigSchema.parse({ store: { backend: 'embedded', path: '/x' }, pools: [{ name: 'p', cidr: '100.96.0.0/24' }] });
    expect(cni.storePrefix).toBe(ETCD_KEY_LAYOUT.ipam);
    // Nobody but the master may touch the registry or the master's election.
    const byUser = new Map(corralEtcdUsers(NS).map((u) => [u.name, u.grants.map((g) => g.prefix)]));
    for (const u of ['corral-services', 'corral-discovery', 'corral-cni']) {
      for (const p of byUser.get(u)!) {
        expect(`${NS}${REGISTRY_PREFIX}`.startsWith(p) || p.startsWith(`${NS}${REGISTRY_PREFIX}`), `${u}: ${p}`).toBe(false);
        expect(p.startsWith(`${NS}election/corral-master`), `${u}: ${p}`).toBe(false);
      }
    }
  });
});

describe('each daemon as its own etcd user', () => {
  it('the master, the replicated service framework and discovery do their jobs over TLS, each as its own user, and keep their keys where their users may', async () => {
    const work = join(dir, 'daemons');
    mkdirSync(work, { recursive: true });
    const master = await startTestMaster({ store: storeConfig('master'), ha: { enabled: true, leaseTtlSeconds: 3 } }, join(work, 'master'));
    cleanup.push(() => master.dispose());
    await untilValue(
      'the master leading',
      async () => {
        const h = (await (await fetch(`${master.url}/health`)).json()) as { leading?: boolean };
        return h.leading === true || undefined;
      },
      60_000,
    );

    const services = await startServices({
      noAuth: true,
      insecure: true,
      host: '127.0.0.1',
      port: 0,
      workDir: join(work, 'services'),
      store: storeConfig('services'),
      master: { url: master.url, reconnectInitialMs: 50, reconnectMaxMs: 500 },
      ha: { enabled: true, leaseTtlSeconds: 2 },
      log: { level: 'warn' },
    });
    cleanup.push(() => services.close());
    await untilValue(
      'the service framework leading and subscribed as corral-services',
      async () => {
        const h = (await (await fetch(`${services.url}/health`)).json()) as { leading?: boolean; ready?: boolean };
        return (h.leading && h.ready) || undefined;
      },
      60_000,
    );

    const discovery = await startDiscovery({
      insecure: true,
      workDir: join(work, 'discovery'),
      store: storeConfig('discovery'),
      nodeName: 'control1',
      http: { port: 0 },
      master: { url: master.url },
      dns: { port: 0, workers: 0 },
      log: { level: 'warn' },
    });
    cleanup.push(() => discovery.close());
    const put = await fetch(`${discovery.httpUrl}/v1/kv/app/config`, { method: 'PUT', body: 'v1' });
    expect(put.status).toBe(200);
    const got = (await (await fetch(`${discovery.httpUrl}/v1/kv/app/config`)).json()) as Array<{ Value: string }>;
    expect(Buffer.from(got[0]!.Value, 'base64').toString()).toBe('v1');

    // Each daemon's keys are inside its own user's grants.
    expect((await keysUnder(`${NS}${REGISTRY_PREFIX}`)).length).toBeGreaterThan(0);
    expect((await keysUnder(`${NS}election/corral-master/`)).length).toBe(1);
    expect((await keysUnder(`${NS}${ETCD_KEY_LAYOUT.servicesState}`)).length).toBeGreaterThan(0);
    expect((await keysUnder(`${NS}${ETCD_KEY_LAYOUT.servicesElection}`)).length).toBe(1);
    expect(await keysUnder(`${NS}${KV_PREFIX}`)).toEqual([`${NS}${KV_PREFIX}app/config`]);
    // Nothing outside the namespace.
    expect((await keysUnder('')).filter((k) => !k.startsWith(NS))).toEqual([]);
  }, 180_000);

  it("the CNI daemon's IPAM assigns and releases addresses over TLS as corral-cni", async () => {
    const config = daemonConfigSchema.parse({
      node: 'h1',
      stateDir: join(dir, 'cni'),
      store: { backend: 'etcd', etcdEndpoints: [etcd!.endpoint], etcdTls: tlsOf('cni') },
      pools: [{ name: 'p', cidr: '100.96.0.0/24', blockSize: 28 }],
    });
    // The daemon opens its cluster store just so (daemon.ts): the same settings as every Store.
    const cluster = await openStore(config.store);
    cleanup.push(() => cluster.close());
    mkdirSync(config.stateDir, { recursive: true });
    const local = await openStore({ backend: 'embedded', path: join(config.stateDir, 'local.db'), sync: 'normal' });
    cleanup.push(() => local.close());
    const ipam = await Ipam.open({ host: config.node, pools: config.pools, cluster, local, prefix: config.storePrefix, loanTimeoutMs: config.loanTimeoutMs, log: logger('cni-test') });
    cleanup.push(() => ipam.close());
    const req = (id: string) => ({ containerId: id, ifname: 'eth0', network: 'n', netns: `/run/netns/${id}`, netnsInode: 0, pools: ['p'], hostIfname: `crl${id}` });
    const a = await ipam.assign(req('c1'));
    const b = await ipam.assign(req('c2'));
    expect(a.ip).not.toBe(b.ip);
    expect((await ipam.release('c1', 'eth0'))?.ip).toBe(a.ip);
    const blocks = await keysUnder(`${ETCD_KEY_LAYOUT.ipam}blocks/p/`);
    expect(blocks.length).toBe(1);
  }, 60_000);
});

describe('each user is refused outside its own keys', () => {
  it("discovery's user cannot write the registry nor read the service framework's state or elections", async () => {
    const s = await storeAs('discovery');
    await forbidden('discovery writes the registry', () => s.put(`${REGISTRY_PREFIX}agents/x`, 'x'));
    await forbidden('discovery reads the registry', () => s.range(REGISTRY_PREFIX));
    await forbidden("discovery reads the services' state", () => s.range(ETCD_KEY_LAYOUT.servicesState));
    await forbidden('discovery reads the elections', () => s.range('election/'));
    await forbidden('discovery reads the IPAM', async () => (await storeAs('discovery', '')).range(ETCD_KEY_LAYOUT.ipam));
    // Its own keys it may use.
    await s.put(`${KV_PREFIX}own`, 'yes');
    expect((await s.get(`${KV_PREFIX}own`))?.value.toString()).toBe('yes');
  });

  it("the service framework's user cannot touch the registry, the master's election or discovery's state", async () => {
    const s = await storeAs('services');
    await forbidden('services writes the registry', () => s.put(`${REGISTRY_PREFIX}frameworks/x`, 'x'));
    await forbidden("services reads the master's election", () => s.range('election/corral-master/'));
    await forbidden("services reads discovery's KV", () => s.range(KV_PREFIX));
    await forbidden("services watches discovery's ACLs", async () => {
      let refuse: (e: Error) => void = () => undefined;
      const refused = new Promise<never>((_, reject) => (refuse = reject));
      const w = s.watch({ prefix: ACL_PREFIX, onEvents: () => undefined, onError: (e) => refuse(e) });
      try {
        // Bounded: a watch that is never refused fails the test instead of hanging it.
        const timer = setTimeout(() => refuse(new Error('the watch was not refused within 15 s')), 15_000);
        await refused.finally(() => clearTimeout(timer));
      } finally {
        w.cancel();
      }
    });
    await s.put(`${ETCD_KEY_LAYOUT.servicesState}other/x`, 'ok');
  });

  it("the CNI daemon's user cannot read the service framework's state nor anything of the control plane", async () => {
    const s = await storeAs('cni', '');
    await forbidden("cni reads the services' state", () => s.range(`${NS}${ETCD_KEY_LAYOUT.servicesState}`));
    await forbidden('cni reads the registry', () => s.range(`${NS}${REGISTRY_PREFIX}`));
    await forbidden('cni writes into the namespace', () => s.put(`${NS}x`, 'x'));
    await forbidden('cni reads the whole keyspace', () => s.range(''));
  });

  it("the master's user is confined to the namespace", async () => {
    // Even opening a Store elsewhere is refused: its probe key is outside.
    await forbidden('master opens a Store outside its namespace', () => storeAs('master', 'elsewhere/'));
  });

  it('a grant added by hand is revoked by the next set-up; corral-master still reaches what older daemons kept', async () => {
    const key = Buffer.from(`${NS}${REGISTRY_PREFIX}`);
    await root!.auth.roleGrantPermission({ name: ETCD_USERS.discovery, perm: { permType: 'Readwrite', key, range_end: bytesPrefixEnd(key) } });
    const s = await storeAs('discovery');
    await s.range(REGISTRY_PREFIX);
    const admin = await pki!.client('corral-setup');
    expect(await setupEtcdAuth({ endpoints: [etcd!.endpoint], tls: { ca: pki!.caFile, ...admin } }, { rootPassword, users: users() })).toEqual({ enabled: false });
    await forbidden('discovery reads the registry again', () => s.range(REGISTRY_PREFIX));
    // Daemons of a cluster set up before per-daemon users connect as corral-master: their keys stay within its reach.
    const m = await storeAs('master');
    await m.put(`${KV_PREFIX}legacy`, 'x');
    await m.put(`${ETCD_KEY_LAYOUT.servicesState}legacy`, 'x');
  });
});

describe('upgrading a cluster set up with one shared user', () => {
  it('daemons still connected as corral-master keep working while the per-daemon users are added; the new users work at once', async () => {
    const old = await startEtcd({ tls: pki!.server });
    cleanup.push(() => old.stop());
    const admin = await pki!.client('corral-setup');
    const conn = { endpoints: [old.endpoint], tls: { ca: pki!.caFile, ...admin } };
    const rootPw = `root-${randomUUID()}`;
    // The set-up before per-daemon users: corral-master alone, on the whole namespace.
    expect(await setupEtcdAuth(conn, { rootPassword: rootPw, users: [corralEtcdUsers(NS)[0]!] })).toEqual({ enabled: true });
    const open = async (k: EtcdDaemonKind): Promise<Store> => {
      const s = await EtcdStore.open({ endpoints: [old.endpoint], namespace: NS, tls: tlsOf(k), dialTimeoutMs: 5000 });
      cleanup.push(() => s.close());
      return s;
    };
    // A service framework daemon of that cluster, as corral-master.
    const legacy = await open('master');
    await legacy.put(`${ETCD_KEY_LAYOUT.servicesState}corral-services/apps/web`, 'v1');
    // Its own user does not exist yet: a daemon started as it is refused, so node up makes the users first.
    const early = await EtcdStore.open({ endpoints: [old.endpoint], namespace: NS, tls: tlsOf('services'), dialTimeoutMs: 3000 }).catch((e: unknown) => e);
    // (etcd takes a certificate CN that names no user for a user without rights.)
    expect(isCorralError(early, 'FORBIDDEN'), String(early)).toBe(true);

    expect(await setupEtcdAuth(conn, { rootPassword: rootPw, users: corralEtcdUsers(NS) })).toEqual({ enabled: false });
    // The connection of the daemon not yet restarted goes on.
    await legacy.put(`${ETCD_KEY_LAYOUT.servicesState}corral-services/apps/web`, 'v2');
    // Restarted as its own user, it reads what it kept and writes on.
    const upgraded = await open('services');
    expect((await upgraded.get(`${ETCD_KEY_LAYOUT.servicesState}corral-services/apps/web`))?.value.toString()).toBe('v2');
    await upgraded.put(`${ETCD_KEY_LAYOUT.servicesState}corral-services/apps/web`, 'v3');
    await forbidden('the upgraded service framework reads the registry', () => upgraded.range(REGISTRY_PREFIX));
  }, 60_000);
});

describe('the CLI etcd flags', () => {
  it('map to the store section; a password file needs a user, a client certificate a CA', () => {
    expect(etcdStoreFlags({})).toBeUndefined();
    expect(etcdStoreFlags({ etcdEndpoints: ['https://e:2379'], etcdCa: 'ca.crt', etcdCert: 'c.crt', etcdKey: 'c.key', etcdUser: 'u', etcdPasswordFile: 'pw' })).toEqual({
      backend: 'etcd',
      etcdEndpoints: ['https://e:2379'],
      etcdTls: { ca: 'ca.crt', cert: 'c.crt', key: 'c.key' },
      etcdAuth: { username: 'u', passwordFile: 'pw' },
    });
    expect(() => etcdStoreFlags({ etcdPasswordFile: 'pw' })).toThrow(/--etcd-user/);
    expect(() => etcdStoreFlags({ etcdCert: 'c.crt', etcdKey: 'c.key' })).toThrow(/--etcd-ca/);
  });

  it('corral master reaches etcd over TLS by its certificate, and by user and password file; a wrong password stops it', async () => {
    const work = join(dir, 'cli');
    mkdirSync(work, { recursive: true });
    const configFile = (ns: string): string => {
      const f = join(work, `${ns.replace(/\W/g, '')}.json`);
      writeFileSync(f, JSON.stringify({ store: { namespace: ns } }));
      return f;
    };
    const tls = tlsOf('master');
    const byCert = new MasterProcess(join(work, 'm1'), await freePort(), [
      '--no-auth',
      '--config',
      configFile(`${NS}cli-cert/`),
      '--etcd-endpoints',
      etcd!.endpoint,
      '--etcd-ca',
      tls.ca,
      '--etcd-cert',
      tls.cert,
      '--etcd-key',
      tls.key,
    ]);
    cleanup.push(() => byCert.kill());
    await byCert.start();
    expect((await keysUnder(`${NS}cli-cert/${REGISTRY_PREFIX}`)).length).toBeGreaterThan(0);

    const passwordFile = join(work, 'cli.password');
    writeFileSync(passwordFile, `${cliPassword}\n`, { mode: 0o600 });
    // etcd asks every client for a certificate; this one's CN is no user, so the password's user is who acts.
    const anon = await pki!.client('corral-anonymous');
    const pwArgs = (file: string) => [
      '--no-auth',
      '--config',
      configFile('cli/'),
      '--etcd-endpoints',
      etcd!.endpoint,
      '--etcd-ca',
      pki!.caFile,
      '--etcd-cert',
      anon.cert,
      '--etcd-key',
      anon.key,
      '--etcd-user',
      'corral-cli',
      '--etcd-password-file',
      file,
    ];
    const byPassword = new MasterProcess(join(work, 'm2'), await freePort(), pwArgs(passwordFile));
    cleanup.push(() => byPassword.kill());
    await byPassword.start();
    expect((await keysUnder(`cli/${REGISTRY_PREFIX}`)).length).toBeGreaterThan(0);

    const wrong = join(work, 'wrong.password');
    writeFileSync(wrong, 'not-it\n', { mode: 0o600 });
    const refused = new MasterProcess(join(work, 'm3'), await freePort(), pwArgs(wrong));
    cleanup.push(() => refused.kill());
    const err = await refused.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err, 'a master with a wrong etcd password must not start').toBeDefined();
    expect(refused.output).toMatch(/authentication failed for user "corral-cli"/);
    expect(refused.output).not.toContain('not-it');
  }, 120_000);
});
