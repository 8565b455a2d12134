/**
 * The Store on an etcd that speaks only TLS, asks every client for a
 * certificate signed by the cluster CA, and has authentication on, with
 * corral's users set up by setupEtcdAuth (least privilege: each user may
 * touch its own prefix only). The whole Store contract runs there; then each
 * way of getting in wrong is refused with a typed error naming the endpoint
 * and the cause; the election and fenced writes work unchanged.
 */
import { randomUUID } from 'node:crypto';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureLogging } from '../../common/log.js';
import { EtcdElection } from '../../common/store/etcd-election.js';
import { corralMasterUser, ensureRootPassword, setupEtcdAuth } from '../../common/store/etcd-auth.js';
import { ETCD_PASSWORD_ENV, type EtcdConnectionOptions } from '../../common/store/etcd-connection.js';
import { EtcdStore, type EtcdStoreOptions } from '../../common/store/etcd.js';
import { etcdConnectionOf, openStore, storeConfigSchema } from '../../common/store/json.js';
import { isCorralError } from '../../contracts/errors.js';
import { startEtcd, type EtcdHandle } from '../harness/etcd.js';
import { makeEtcdPki, type EtcdPki } from '../harness/etcd-pki.js';
import { testDir } from '../harness/resources.js';
import { untilValue } from '../harness/wait.js';
import { freePort } from '../harness/ports.js';
import { storeContract } from './contract.js';
import { namespacedHandle, Recorder } from './contract-util.js';

if (!process.env.CORRAL_LOG_LEVEL) configureLogging({ level: 'warn' });

const NS = 'corral-test/';
let dir = '';
let pki: EtcdPki | undefined;
let etcd: EtcdHandle | undefined;
let masterCert: { cert: string; key: string } | undefined;
let passwordFile = '';
const password = `pw-${randomUUID()}`;

beforeAll(async () => {
  dir = testDir('etcd-tls');
  pki = await makeEtcdPki(join(dir, 'pki'));
  etcd = await startEtcd({ tls: pki.server });
  masterCert = await pki.client('corral-master');
  passwordFile = join(dir, 'corral-master.password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  // The set-up itself connects with a certificate of its own (its CN is no etcd user: it has no rights once auth is on).
  const admin = await pki.client('corral-setup');
  const rootPassword = ensureRootPassword(join(dir, 'etcd-root.password'));
  const users = [
    corralMasterUser(NS, password),
    { name: 'other', password: 'other-pw', grants: [{ prefix: 'other/', permission: 'readwrite' as const }] },
    { name: 'corral-cert', grants: [{ prefix: 'cert-only/', permission: 'readwrite' as const }] },
  ];
  const conn = { endpoints: [etcd.endpoint], tls: { ca: pki.caFile, ...admin } };
  expect(await setupEtcdAuth(conn, { rootPassword, users })).toEqual({ enabled: true });
  // A second pass (another provisioning run) changes nothing and keeps auth on.
  expect(await setupEtcdAuth(conn, { rootPassword, users })).toEqual({ enabled: false });
}, 120_000);

afterAll(async () => {
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function conn(over: Partial<EtcdStoreOptions> = {}): EtcdStoreOptions {
  if (!etcd || !pki || !masterCert) throw new Error('etcd did not start (see the beforeAll error above)');
  return { endpoints: [etcd.endpoint], tls: { ca: pki.caFile, ...masterCert }, auth: { username: 'corral-master', passwordFile }, ...over };
}

/** The typed error `action` fails with. */
async function refusal(action: Promise<unknown>): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  const err = await action.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, 'expected a refusal').toBeDefined();
  return err as Error & { code?: string };
}

storeContract('etcd over TLS with authentication', async () => {
  const namespace = `${NS}${randomUUID()}/`;
  const open = () => EtcdStore.open(conn({ namespace }));
  return namespacedHandle(open);
});

describe('etcd TLS and authentication refusals', () => {
  it('a client trusting another CA is refused: the error names the endpoint and the CA', async () => {
    const err = await refusal(EtcdStore.open(conn({ tls: { ca: pki!.otherCaFile, ...masterCert! }, dialTimeoutMs: 3000 })));
    expect(isCorralError(err, 'UNAUTHENTICATED'), String(err)).toBe(true);
    expect(err.message).toContain(etcd!.endpoint);
    expect(err.message).toMatch(/not signed by the configured CA/);
  });

  it('a client without a certificate is refused: etcd requires one', async () => {
    const err = await refusal(EtcdStore.open(conn({ tls: { ca: pki!.caFile }, dialTimeoutMs: 3000 })));
    expect(isCorralError(err, 'UNAUTHENTICATED'), String(err)).toBe(true);
    expect(err.message).toContain(etcd!.endpoint);
    expect(err.message).toMatch(/client certificate/);
  });

  it('a client certificate from another CA is refused', async () => {
    const err = await refusal(EtcdStore.open(conn({ tls: { ca: pki!.caFile, ...(await pki!.client('corral-master', { untrusted: true })) }, dialTimeoutMs: 3000 })));
    expect(isCorralError(err, 'UNAUTHENTICATED'), String(err)).toBe(true);
    expect(err.message).toMatch(/client certificate/);
  });

  it('an expired client certificate is refused before connecting, saying when it expired', async () => {
    const err = await refusal(EtcdStore.open(conn({ tls: { ca: pki!.caFile, ...(await pki!.client('corral-master', { expired: true })) } })));
    expect(isCorralError(err, 'FAILED_PRECONDITION'), String(err)).toBe(true);
    expect(err.message).toMatch(/etcd TLS\.cert: the certificate "corral-master" expired on/);
  });

  it('a plain client on the TLS endpoint is refused at configuration: https needs a CA', async () => {
    const err = await refusal(EtcdStore.open({ endpoints: [etcd!.endpoint], namespace: NS }));
    expect(isCorralError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
    expect(err.message).toMatch(/configure the etcd TLS CA/);
  });

  it('a wrong password is refused with UNAUTHENTICATED naming the user and the endpoint, not the password', async () => {
    const bad = join(dir, 'wrong.password');
    writeFileSync(bad, 'not-the-password\n', { mode: 0o600 });
    const err = await refusal(EtcdStore.open(conn({ auth: { username: 'corral-master', passwordFile: bad } })));
    expect(isCorralError(err, 'UNAUTHENTICATED'), String(err)).toBe(true);
    expect(err.message).toContain(etcd!.endpoint);
    expect(err.message).toMatch(/authentication failed for user "corral-master"/);
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toContain('not-the-password');
  });

  it('a missing or empty password file is a configuration error naming the file', async () => {
    const err = await refusal(EtcdStore.open(conn({ auth: { username: 'corral-master', passwordFile: join(dir, 'nope') } })));
    expect(isCorralError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
    expect(err.message).toContain(join(dir, 'nope'));
    const empty = join(dir, 'empty.password');
    writeFileSync(empty, '', { mode: 0o600 });
    expect((await refusal(EtcdStore.open(conn({ auth: { username: 'corral-master', passwordFile: empty } })))).message).toMatch(/is empty/);
  });

  it('a user is confined to its prefix: reads, writes and watches elsewhere are FORBIDDEN, its own work', async () => {
    const otherPw = join(dir, 'other.password');
    writeFileSync(otherPw, 'other-pw\n', { mode: 0o600 });
    const own = await EtcdStore.open(conn({ namespace: 'other/', auth: { username: 'other', passwordFile: otherPw } }));
    // Opening reads in the namespace, and is refused already; a store made without that read is refused call by call.
    const err = await refusal(EtcdStore.open(conn({ namespace: `${NS}${randomUUID()}/`, auth: { username: 'other', passwordFile: otherPw } })));
    expect(isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
    const trespass = new EtcdStore(conn({ namespace: `${NS}${randomUUID()}/`, auth: { username: 'other', passwordFile: otherPw } }));
    try {
      await own.put('k', 'v');
      expect((await own.get('k'))?.value.toString()).toBe('v');
      for (const action of [() => trespass.get('k'), () => trespass.put('k', 'v'), () => trespass.range(''), () => trespass.deletePrefix('')]) {
        const err = await refusal(action());
        expect(isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
        expect(err.message).toMatch(/permission denied for user "other"/);
      }
      const w = new Recorder().start(trespass, '');
      const werr = await untilValue('the watch refused', async () => w.errors[0], 15_000);
      expect(isCorralError(werr, 'FORBIDDEN'), String(werr)).toBe(true);
      await own.deletePrefix('');
    } finally {
      await own.close();
      await trespass.close();
    }
  });

  it('a user with no password authenticates by its certificate CN, and is confined likewise', async () => {
    const cert = await pki!.client('corral-cert');
    const own = await EtcdStore.open({ endpoints: [etcd!.endpoint], namespace: 'cert-only/', tls: { ca: pki!.caFile, ...cert } });
    try {
      await own.put('k', 'v');
      expect((await own.get('k'))?.value.toString()).toBe('v');
      const err = await refusal(EtcdStore.open({ endpoints: [etcd!.endpoint], namespace: NS, tls: { ca: pki!.caFile, ...cert } }));
      expect(isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
      expect(err.message).toMatch(/permission denied for the client certificate's user/);
      await own.deletePrefix('');
    } finally {
      await own.close();
    }
  });

  it('a certificate whose CN is no etcd user, without a password, gets nothing', async () => {
    const err = await refusal(EtcdStore.open({ endpoints: [etcd!.endpoint], namespace: NS, tls: { ca: pki!.caFile, ...(await pki!.client('stranger')) } }));
    expect(isCorralError(err, 'UNAUTHENTICATED') || isCorralError(err, 'FORBIDDEN'), String(err)).toBe(true);
    expect(err.message).toContain(etcd!.endpoint);
  });
});

describe('an endpoint down among several', () => {
  it('every call goes to a member that answers: none fails for the one refusing connections, and a CAS applies once', async () => {
    // Nothing listens there: a member down, or not up yet while the others have a quorum.
    const down = `https://127.0.0.1:${await freePort()}`;
    const store = await EtcdStore.open(conn({ endpoints: [down, etcd!.endpoint], namespace: `${NS}${randomUUID()}/`, dialTimeoutMs: 3000 }));
    try {
      let rev = 0;
      for (let i = 0; i < 20; i++) {
        rev = (await store.put('k', String(i), rev ? { ifModRevision: rev } : {})).revision;
        expect((await store.get('k'))?.value.toString()).toBe(String(i));
      }
      expect((await store.get('k'))?.version).toBe(20);
    } finally {
      await store.close();
    }
  });
});

describe('etcd restarts with authentication on', () => {
  it('a watch resumes after an etcd restart (which forgets every auth token) without losing or repeating a revision', { timeout: 90_000 }, async () => {
    const opts = conn({ namespace: `${NS}restart-${randomUUID()}/`, dialTimeoutMs: 1000 });
    const watcher = await EtcdStore.open(opts);
    const w = new Recorder().start(watcher, '');
    let writer: EtcdStore | undefined;
    try {
      const r1 = (await watcher.put('a', '1')).revision;
      await w.waitEvents(1);
      await etcd!.kill();
      await etcd!.restart();
      writer = await untilValue('etcd back', () => EtcdStore.open(opts).catch(() => undefined), 30_000, 200);
      const r2 = (await writer.put('b', '2')).revision;
      await w.waitEvents(2, 45_000);
      expect(w.summary).toEqual([`put a=1@${r1}`, `put b=2@${r2}`]);
      expect(w.errors).toEqual([]);
      // Its own unary calls work again too (a new token fetched on the refusal of the old one).
      expect((await watcher.get('b'))?.value.toString()).toBe('2');
      await writer.deletePrefix('');
    } finally {
      await writer?.close();
      await watcher.close();
    }
  });
});

describe('the election across an etcd restart with authentication on', () => {
  it('after the restart, the leader resigns and the other candidate is elected (its watches fetch a new token)', { timeout: 120_000 }, async () => {
    const namespace = `${NS}election-restart-${randomUUID()}/`;
    const c = { ...conn({ dialTimeoutMs: 2000 }), namespace };
    const elections = [0, 1].map(() => new EtcdElection({ ...c, name: 'm', ttlSeconds: 10 }));
    try {
      const won: Array<{ key: string } | undefined> = [undefined, undefined];
      const errors: Array<Error | undefined> = [undefined, undefined];
      const candidacies = elections.map((e, i) => e.campaign(`candidate-${i}`, { onElected: (k) => (won[i] = k), onError: (err) => (errors[i] = err) }));
      const observed: Array<string | undefined> = [];
      elections[0]!.observe((v) => observed.push(v));
      const leader = await untilValue('a candidate elected', async () => (won[0] ? 0 : won[1] ? 1 : undefined), 20_000);
      // Both stand (both keys written) before etcd goes: the other is then waiting for the leader's key to go.
      const store = await EtcdStore.open(c);
      await untilValue('both candidates standing', async () => (await store.range('election/m/')).kvs.length === 2, 20_000);
      await store.close();
      await etcd!.kill();
      await etcd!.restart();
      // The restarted etcd forgot every token; the leases survive (their TTL starts over).
      await untilValue('etcd back', async () => (await elections[0]!.leaderKey().catch(() => undefined))?.value, 30_000, 200);
      await candidacies[leader]!.resign();
      const next = await untilValue('the other candidate elected', async () => won[1 - leader], 60_000);
      expect(next).toBeDefined();
      expect(errors[1 - leader]).toBeUndefined();
      await untilValue('the observer saw the new leader', async () => observed.at(-1) === `candidate-${1 - leader}`, 30_000);
    } finally {
      await Promise.all(elections.map((e) => e.close()));
    }
  });
});

describe('auth tokens that expire while streams run', () => {
  it('with a 2 s token TTL, a leader keeps its lease, watches deliver and calls succeed long after the first token expired', { timeout: 90_000 }, async () => {
    // An etcd of its own: tokens unused for 2 s are dropped (the default is 5 minutes).
    const short = await startEtcd({ tls: pki!.server, extraArgs: ['--auth-token-ttl', '2'] });
    const elections: EtcdElection[] = [];
    let store: EtcdStore | undefined;
    try {
      await setupEtcdAuth({ endpoints: [short.endpoint], tls: { ca: pki!.caFile, ...(await pki!.client('corral-setup')) } }, { rootPassword: 'root-pw', users: [corralMasterUser(NS, password)] });
      const c = { ...conn({ endpoints: [short.endpoint] }), namespace: `${NS}ttl-${randomUUID()}/` };
      store = await EtcdStore.open(c);
      const w = new Recorder().start(store, 'w/');
      elections.push(new EtcdElection({ ...c, name: 'm', ttlSeconds: 3 }));
      let won: { key: string } | undefined;
      let lost: Error | undefined;
      const candidacy = elections[0]!.campaign('only', { onElected: (k) => (won = k), onError: (err) => (lost = err) });
      await untilValue('elected', async () => won, 20_000);
      const start = Date.now();
      // Keepalives go on for 10 s, five token lifetimes, without any other call in between.
      await untilValue('the lease renewed for 10 s', async () => lost ?? candidacy.leaseValidUntil() > start + 10_000, 40_000, 250);
      expect(lost).toBeUndefined();
      const r = await store.put('w/a', '1');
      await w.waitEvents(1, 20_000);
      expect(w.summary).toEqual([`put w/a=1@${r.revision}`]);
      expect(w.errors).toEqual([]);
      await store.deletePrefix('');
    } finally {
      await Promise.all(elections.map((e) => e.close()));
      await store?.close();
      await short.stop();
    }
  });
});

describe('etcd TLS and authentication through the store config', () => {
  it('openStore takes etcdTls and etcdAuth (password from the file, or from CORRAL_ETCD_PASSWORD)', async () => {
    const base = { backend: 'etcd' as const, etcdEndpoints: [etcd!.endpoint], namespace: `${NS}${randomUUID()}/`, etcdTls: { ca: pki!.caFile, ...masterCert! } };
    const a = await openStore({ ...base, etcdAuth: { username: 'corral-master', passwordFile } });
    try {
      await a.put('k', 'v');
      const fromEnv = etcdConnectionOf(storeConfigSchema.parse({ ...base, etcdAuth: { username: 'corral-master' } }), { [ETCD_PASSWORD_ENV]: password });
      const b = await EtcdStore.open(fromEnv);
      expect((await b.get('k'))?.value.toString()).toBe('v');
      await b.close();
      await a.deletePrefix('');
    } finally {
      await a.close();
    }
  });

  it('the config schema refuses TLS with plain endpoints and a certificate without its key', () => {
    const plain = storeConfigSchema.safeParse({ backend: 'etcd', etcdEndpoints: ['http://127.0.0.1:2379'], etcdTls: { ca: '/ca.crt' } });
    expect(plain.success).toBe(false);
    const half = storeConfigSchema.safeParse({ backend: 'etcd', etcdEndpoints: ['https://127.0.0.1:2379'], etcdTls: { ca: '/ca.crt', cert: '/c.crt' } });
    expect(half.success).toBe(false);
    const noPwd = etcdConnectionOf(storeConfigSchema.parse({ backend: 'etcd', etcdEndpoints: ['http://127.0.0.1:2379'], etcdAuth: { username: 'u' } }), {});
    expect(() => new EtcdStore(noPwd)).toThrow(/no password/);
  });

  it('the root password file is generated once, 0600, and read back the same', () => {
    const file = join(dir, 'root2', 'etcd-root.password');
    const first = ensureRootPassword(file);
    expect(first.length).toBeGreaterThanOrEqual(24);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(ensureRootPassword(file)).toBe(first);
  });
});

describe('election and fenced writes over TLS with authentication', () => {
  it('two candidates elect one; its fenced writes land, and fail once its lease is revoked', { timeout: 60_000 }, async () => {
    const namespace = `${NS}election-${randomUUID()}/`;
    const c: EtcdConnectionOptions & { namespace: string } = { ...conn(), namespace };
    const store = await EtcdStore.open(c);
    const elections = [0, 1].map(() => new EtcdElection({ ...c, name: 'm', ttlSeconds: 5 }));
    try {
      const won: Array<{ key: string; createRevision: number } | undefined> = [undefined, undefined];
      const errors: Array<Error | undefined> = [undefined, undefined];
      elections.forEach((e, i) => e.campaign(`candidate-${i}`, { onElected: (k) => (won[i] = k), onError: (err) => (errors[i] = err) }));
      const leader = await untilValue('a candidate elected', async () => (won[0] ? 0 : won[1] ? 1 : undefined), 20_000);
      const key = won[leader]!;
      const fence = [{ key: key.key, target: 'createRevision' as const, op: '=' as const, value: key.createRevision }];
      const ok = await store.txn({ compare: fence, success: [{ type: 'put', key: 'registry/a', value: '1' }] });
      expect(ok.succeeded).toBe(true);
      // A follower takes the leader for dead and revokes its lease: the key goes, the fence fails inside etcd.
      const revoked = await elections[1 - leader]!.revokeLeader(`candidate-${leader}`);
      expect(revoked.revoked).toBe(true);
      const refused = await store.txn({ compare: fence, success: [{ type: 'put', key: 'registry/b', value: '2' }] });
      expect(refused.succeeded).toBe(false);
      expect(await store.get('registry/b')).toBeUndefined();
      await untilValue('the old leader told of its loss', async () => errors[leader], 20_000);
      await untilValue('the other candidate elected', async () => won[1 - leader], 20_000);
      // CAS writes (if mod_revision) work as well.
      const cur = await store.get('registry/a');
      await store.put('registry/a', '2', { ifModRevision: cur!.modRevision });
      expect((await store.get('registry/a'))?.value.toString()).toBe('2');
      await store.deletePrefix('');
    } finally {
      await Promise.all(elections.map((e) => e.close()));
      await store.close();
    }
  });
});
