/**
 * A secure control plane on loopback: a three-member etcd whose members talk
 * to each other and to clients only over TLS with certificates of the cluster
 * CA (peer and client certificate auth), authentication on with every
 * daemon's own user (corralEtcdUsers), three replicated masters connecting as
 * `corral-master` and two replicated service framework daemons as
 * `corral-services` (by its certificate). The masters elect one leader over
 * TLS; the leader SIGKILLed, another takes over with the registry intact and
 * the service framework subscribes to it; every key is inside the namespace,
 * the masters' user reaches nothing outside it and the service framework's
 * user nothing of the master's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { corralEtcdUsers, ensureRootPassword, ETCD_KEY_LAYOUT, setupEtcdAuth } from '../../common/store/etcd-auth.js';
import { EtcdStore } from '../../common/store/etcd.js';
import { isCorralError } from '../../contracts/errors.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';
import { startEtcdCluster, type EtcdHandle } from '../harness/etcd.js';
import { makeEtcdPki, type EtcdPki } from '../harness/etcd-pki.js';
import { agreedLeader, masterHealth, startReplicatedMasters } from '../harness/replicated-masters.js';
import { testDir } from '../harness/resources.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { untilValue } from '../harness/wait.js';
import { startServices, type RunningServices } from '../../core-scheduler/src/services/daemon.js';

const cleanup = stopsAfterEach();
const PREFIX = 'corral-ha-';
// Known before the daemons start: the users' grants are made on it.
const NS = `${PREFIX}${Date.now()}/`;
let dir = '';
let pki: EtcdPki | undefined;
let members: EtcdHandle[] = [];
let passwordFile = '';
let rootPassword = '';

beforeAll(async () => {
  dir = testDir('etcd-tls-cluster');
  pki = await makeEtcdPki(join(dir, 'pki'));
  members = await startEtcdCluster(3, { tls: pki.server });
  passwordFile = join(dir, 'corral-master.password');
  const password = randomUUID();
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  rootPassword = ensureRootPassword(join(dir, 'etcd-root.password'));
  const admin = await pki.client('corral-setup');
  await setupEtcdAuth({ endpoints: members.map((m) => m.endpoint), tls: { ca: pki.caFile, ...admin } }, { rootPassword, users: corralEtcdUsers(NS, { passwords: { master: password } }) });
}, 180_000);

afterAll(async () => {
  await Promise.all(members.map((m) => m.stop()));
});

/** One service framework daemon leads and the other follows it; the framework is connected at the master at `masterUrl` (the leading one). */
async function servicesSubscribed(services: RunningServices[], masterUrl: string): Promise<void> {
  const ops = new OperatorClient({ master: masterUrl });
  try {
    await untilValue(
      `the service framework subscribed at ${masterUrl}`,
      async () => {
        const hs = await Promise.all(services.map(async (d) => (await (await fetch(`${d.url}/health`)).json()) as { leading?: boolean; ready?: boolean }));
        if (hs.filter((h) => h.leading).length !== 1 || !hs.every((h) => h.ready)) return undefined;
        const r = await ops.call<{ get_frameworks: { frameworks?: Array<{ framework_info: { name: string }; connected: boolean }> } }>('GET_FRAMEWORKS');
        return r.get_frameworks.frameworks?.some((f) => f.framework_info.name === 'corral-services' && f.connected) || undefined;
      },
      60_000,
    );
  } finally {
    await ops.close();
  }
}

describe('replicated masters on a three-member etcd over TLS with authentication', () => {
  it('peers speak TLS; the masters elect one leader, and another after it is killed, as the confined corral-master user; the service framework follows as corral-services', async () => {
    const endpoints = members.map((m) => m.endpoint);
    const masterCert = await pki!.client('corral-master');
    const tls = { ca: pki!.caFile, ...masterCert };

    // Every member advertises https peer URLs: the raft traffic between them is TLS too.
    const rootClient = new Etcd3({
      hosts: endpoints,
      credentials: { rootCertificate: Buffer.from(pki!.ca.certPem), certChain: readFileSync(masterCert.cert), privateKey: readFileSync(masterCert.key) },
      auth: { username: 'root', password: rootPassword },
    });
    cleanup.push(async () => rootClient.close());
    const list = await rootClient.cluster.memberList({});
    expect(list.members).toHaveLength(3);
    for (const m of list.members) {
      expect(m.peerURLs.every((u) => u.startsWith('https://'))).toBe(true);
      expect(m.clientURLs.every((u) => u.startsWith('https://'))).toBe(true);
    }

    const { masters, namespace } = await startReplicatedMasters(cleanup, {
      etcdEndpoint: endpoints[0]!,
      dir: join(dir, 'masters'),
      name: `${PREFIX}m`,
      namespace: NS,
      leaseTtlSeconds: 5,
      n: 3,
      store: { etcdEndpoints: endpoints, etcdTls: tls, etcdAuth: { username: 'corral-master', passwordFile } },
      // What is under test is the masters' etcd traffic; their own API stays plain HTTP here.
      extra: { insecure: true },
    });
    const first = await agreedLeader(masters, 60_000);

    // The service framework, replicated, as its own user: its state and its election in etcd, nothing of the master's.
    const servicesCert = await pki!.client('corral-services');
    const services: RunningServices[] = [];
    for (let i = 0; i < 2; i++) {
      const d = await startServices({
        noAuth: true,
        insecure: true,
        host: '127.0.0.1',
        port: 0,
        workDir: join(dir, `services-${i}`),
        store: { backend: 'etcd', etcdEndpoints: endpoints, namespace, etcdTls: { ca: pki!.caFile, ...servicesCert } },
        master: { url: masters.map((m) => m.url).join(','), reconnectInitialMs: 50, reconnectMaxMs: 500 },
        ha: { enabled: true, leaseTtlSeconds: 3 },
        log: { level: 'warn' },
      });
      cleanup.push(() => d.close());
      services.push(d);
    }
    await servicesSubscribed(services, first.url);

    const ops = new OperatorClient({ master: first.url });
    cleanup.push(() => ops.close());
    await ops.call('UPDATE_WEIGHTS', { update_weights: { weight_infos: [{ role: 'web', weight: 3 }] } });

    await first.kill('SIGKILL');
    const next = await agreedLeader(masters, 60_000);
    expect(next).not.toBe(first);
    expect((await masterHealth(next)).leading).toBe(true);
    const ops2 = new OperatorClient({ master: next.url });
    cleanup.push(() => ops2.close());
    const weights = await ops2.call<{ get_weights: { weight_infos: Array<{ role: string; weight: number }> } }>('GET_WEIGHTS');
    expect(weights.get_weights.weight_infos).toEqual([{ role: 'web', weight: 3 }]);
    // The service framework's leader subscribes to the new leading master.
    await servicesSubscribed(services, next.url);

    // Everything the masters wrote is inside their namespace (the election key included).
    const all = await rootClient.getAll().prefix('').keys();
    const theirs = all.filter((k) => k.startsWith(namespace));
    expect(theirs.some((k) => k.startsWith(`${namespace}election/`))).toBe(true);
    expect(all.filter((k) => !k.startsWith(namespace))).toEqual([]);

    expect(theirs.some((k) => k.startsWith(`${namespace}${ETCD_KEY_LAYOUT.servicesState}`))).toBe(true);
    expect(theirs.some((k) => k.startsWith(`${namespace}${ETCD_KEY_LAYOUT.servicesElection}`))).toBe(true);

    // The service framework's user cannot touch the master's registry or election.
    const servicesStore = await EtcdStore.open({ endpoints, namespace, tls: { ca: pki!.caFile, ...servicesCert } });
    try {
      for (const refused of [() => servicesStore.range('corral/registry/'), () => servicesStore.put('election/corral-master/x', 'x')]) {
        const err = await refused().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
      }
    } finally {
      await servicesStore.close();
    }

    // The masters' user cannot read outside its prefix.
    const outside = new EtcdStore({ endpoints, namespace: 'elsewhere/', tls, auth: { username: 'corral-master', passwordFile } });
    try {
      const err = await outside.get('k').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
    } finally {
      await outside.close();
    }
  }, 300_000);
});
