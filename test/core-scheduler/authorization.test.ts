/**
 * The master's ACLs and credentials through its HTTP APIs (a real master on
 * loopback, simulated agents speaking the agent protocol): run_tasks (a
 * task's user, capabilities and seccomp), the operator actions, hashed and plain
 * secrets, an agent credential bound to its agents, and the per-principal
 * subscription caps.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { until } from '../harness/wait.js';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';
import { hashSecret } from '../../core-scheduler/src/master/auth.js';
import type { V1Offer, V1TaskInfo } from '../../contracts/v1/v1.js';
import type { MasterConfigInput } from '../../core-scheduler/src/master/config.js';

interface Reply {
  status: number;
  text: string;
  headers: Headers;
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  if (
    res.headers.get('mesos-stream-id') ||
    (res.status === 200 && (res.headers.get('transfer-encoding') ?? '').includes('chunked') && path === '/api/v1' && (body as { type: string }).type === 'SUBSCRIBE')
  ) {
    await res.body?.cancel();
    return { status: res.status, text: '', headers: res.headers };
  }
  return { status: res.status, text: await res.text(), headers: res.headers };
}

const message = (r: Reply): string => (r.text.startsWith('{') ? (JSON.parse(r.text) as { message: string }).message : r.text);

/** A stream held open until `close` (a SUBSCRIBE's event stream). */
async function openStream(url: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; text: string; close: () => void }> {
  const abort = new AbortController();
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: abort.signal });
  if (res.status !== 200) return { status: res.status, text: await res.text(), close: () => abort.abort() };
  return { status: 200, text: '', close: () => abort.abort() };
}

const SECRETS = {
  ops: 'ops-secret',
  viewer: 'viewer-secret',
  reserver: 'reserver-secret',
  fw: 'fw-secret',
  anyfw: 'anyfw-secret',
  rootfw: 'rootfw-secret',
  capped: 'capped-secret',
  'node-a': 'node-a-secret',
  'node-b': 'node-b-secret',
} as const;
type Who = keyof typeof SECRETS;
/** Plain text for these (still accepted); scrypt hashes for the rest. */
const PLAIN: Who[] = ['viewer', 'anyfw', 'node-b'];

const as = (p: Who, secret: string = SECRETS[p]): Record<string, string> => ({ authorization: basicAuthHeader(p, secret) });

function writeSecurity(dir: string): string {
  const file = join(dir, 'security.json');
  const credentials = (Object.keys(SECRETS) as Who[]).map((p) => (PLAIN.includes(p) ? { principal: p, secret: SECRETS[p] } : { principal: p, secret_hash: hashSecret(SECRETS[p]) }));
  writeFileSync(
    file,
    JSON.stringify({
      credentials,
      acls: {
        register_frameworks: [{ principals: ['fw', 'anyfw', 'rootfw', 'capped'], roles: 'ANY' }],
        run_tasks: [
          { principals: ['fw'], users: ['www'] },
          { principals: ['anyfw'], users: 'ANY' },
          { principals: ['anyfw'], users: ['builder'], seccomp_unconfined: true },
          { principals: ['rootfw'], users: ['root'], capabilities: ['NET_BIND_SERVICE', 'CAP_CHOWN'] },
        ],
        operators: ['ops'],
        view: ['viewer'],
        reserve_resources: ['reserver'],
        agents: ['node-a', 'node-b'],
      },
    }),
  );
  return file;
}

async function startSecured(): Promise<TestMaster> {
  const dir = mkdtempSync(join(tmpdir(), 'corral-acl-'));
  // Plain HTTP on loopback: what is under test is authentication and authorization, not TLS.
  const plain = { insecure: true } as Partial<MasterConfigInput>;
  return startTestMaster({ ...plain, noAuth: false, credentials: writeSecurity(dir), limits: { maxSchedulerSubscriptionsPerPrincipal: 2, maxOperatorSubscriptionsPerPrincipal: 1 } }, dir);
}

describe('credentials: hashed and plain secrets', () => {
  let master: TestMaster;
  beforeAll(async () => {
    master = await startSecured();
  });
  afterAll(async () => master.dispose());

  it('a hashed secret verifies, a wrong one is refused (also after it verified once), a plain one still works', async () => {
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('ops'))).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('ops', 'not-the-secret'));
      expect(r.status).toBe(401);
      expect(message(r)).toMatch(/invalid credentials for principal "ops"/);
    }
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('ops'))).status).toBe(200);
    // A principal whose hash was never verified: a wrong secret first, then the right one.
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('reserver', 'guess'))).status).toBe(401);
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('viewer'))).status).toBe(200);
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('viewer', 'nope'))).status).toBe(401);
    expect((await post(master.url, '/api/v1', { type: 'GET_STATE' }, { authorization: basicAuthHeader('nobody-known', 'x') })).status).toBe(401);
  });
});

describe('operator actions', () => {
  let master: TestMaster;
  let agentId: string;
  let agent: SimAgent;
  beforeAll(async () => {
    master = await startSecured();
    agent = new SimAgent({ master: master.url, hostname: 'ops-host', resources: 'cpus:4;mem:4096;disk:1024', principal: 'node-a', secret: SECRETS['node-a'] });
    await agent.start();
    await until(() => master.master.agents.size === 1, 10_000, 'agent registered');
    agentId = [...master.master.agents.keys()][0]!;
  });
  afterAll(async () => {
    await agent.stop();
    await master.dispose();
  });

  const reserve = (): unknown => ({
    type: 'RESERVE_RESOURCES',
    reserve_resources: { agent_id: { value: agentId }, resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 }, reservations: [{ type: 'DYNAMIC', role: 'web', principal: 'reserver' }] }] },
  });

  it('each call needs its action: view, reserve_resources, update_weights, update_quota, teardown, mark gone, volumes; refusals name the action', async () => {
    const calls: Array<[unknown, string]> = [
      [{ type: 'GET_STATE' }, 'view'],
      [{ type: 'GET_AGENTS' }, 'view'],
      [{ type: 'GET_TASKS' }, 'view'],
      [reserve(), 'reserve_resources'],
      [{ type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'web', weight: 2 }] } }, 'update_weights'],
      [{ type: 'UPDATE_QUOTA', update_quota: { force: true, quota_configs: [{ role: 'web', guarantees: { cpus: { value: 1 } } }] } }, 'update_quota'],
      [{ type: 'TEARDOWN', teardown: { framework_id: { value: 'no-such-framework' } } }, 'teardown_frameworks'],
      [{ type: 'MARK_AGENT_GONE', mark_agent_gone: { agent_id: { value: 'no-such-agent' } } }, 'mark_agents_gone'],
      [
        {
          type: 'CREATE_VOLUMES',
          create_volumes: {
            agent_id: { value: 'no-such-agent' },
            volumes: [
              {
                name: 'disk',
                type: 'SCALAR',
                scalar: { value: 8 },
                reservations: [{ type: 'DYNAMIC', role: 'web' }],
                disk: { persistence: { id: 'v1' }, volume: { container_path: 'data', mode: 'RW' } },
              },
            ],
          },
        },
        'create_volumes',
      ],
    ];
    const allowed: Record<string, Who[]> = { view: ['viewer', 'ops'], reserve_resources: ['reserver', 'ops'] };
    for (const [body, action] of calls) {
      for (const who of ['viewer', 'reserver', 'fw'] as Who[]) {
        const r = await post(master.url, '/api/v1', body, as(who));
        const may = (allowed[action] ?? ['ops']).includes(who);
        if (may) expect(r.status, `${who} ${action}: ${r.text}`).toBeLessThan(300);
        else {
          expect(r.status, `${who} ${action}`).toBe(403);
          expect(message(r)).toContain(`"${action}"`);
          expect(message(r)).toContain(`principal "${who}"`);
        }
      }
      // An operator may do every action (404s for the unknown ids are past authorization).
      const r = await post(master.url, '/api/v1', body, as('ops'));
      expect(r.status, `ops ${action}: ${r.text}`).not.toBe(403);
    }
    // Health and version need no action at all.
    expect((await post(master.url, '/api/v1', { type: 'GET_HEALTH' }, as('fw'))).status).toBe(200);
    // The store API: operators and agents by default, not a viewer.
    const store = await post(master.url, '/api/v1/store', { type: 'CURRENT_REVISION' }, as('viewer'));
    expect(store.status).toBe(403);
    expect(message(store)).toMatch(/store API/);
    expect((await post(master.url, '/api/v1/store', { type: 'CURRENT_REVISION' }, as('node-a'))).status).toBe(200);
  });
});

describe('run_tasks: the user and capabilities of a task', () => {
  let master: TestMaster;
  let agent: SimAgent;
  const frameworks: TestFramework[] = [];
  beforeAll(async () => {
    master = await startSecured();
    agent = new SimAgent({ master: master.url, hostname: 'task-host', resources: 'cpus:16;mem:16384', principal: 'node-a', secret: SECRETS['node-a'] });
    await agent.start();
  });
  afterAll(async () => {
    for (const f of frameworks) await f.client.close().catch(() => undefined);
    await agent.stop();
    await master.dispose();
  });

  async function framework(who: Who, user: string): Promise<TestFramework> {
    const f = new TestFramework(master.url, { user, name: `${who}-${user || 'default'}`, roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }] }, { principal: who, secret: SECRETS[who] });
    frameworks.push(f);
    await f.subscribe();
    return f;
  }

  const task = (offer: V1Offer, id: string, extra: Partial<V1TaskInfo> = {}, user?: string): V1TaskInfo => ({
    name: id,
    task_id: { value: id },
    agent_id: offer.agent_id,
    resources: resourcesJson('cpus:0.1;mem:16', offer.allocation_info.role),
    command: { value: 'sleep 1000', ...(user !== undefined ? { user } : {}) },
    ...extra,
  });

  /** Launch tasks on the next offer; each given id ends RUNNING or ERROR as expected. */
  async function launch(f: TestFramework, tasks: (o: V1Offer) => V1TaskInfo[], expect_: Record<string, 'TASK_RUNNING' | 'TASK_ERROR'>): Promise<void> {
    const [offer] = await f.offers(10_000);
    await f.client.accept([offer!.id.value], [{ type: 'LAUNCH', launch: { task_infos: tasks(offer!) } }], 0);
    for (const [id, state] of Object.entries(expect_)) {
      const s = await f.update(id, state, 10_000);
      if (state === 'TASK_ERROR') {
        expect(s.reason).toBe('REASON_TASK_UNAUTHORIZED');
        expect(s.source).toBe('SOURCE_MASTER');
      }
    }
    // Done with it: its offers and tasks go, so the next framework is offered the agent.
    await f.client.teardown();
  }

  it('a principal without a run_tasks rule for root gets TASK_ERROR for command.user root; the other tasks of the call run', async () => {
    const f = await framework('fw', '');
    await launch(f, (o) => [task(o, 'as-root', {}, 'root'), task(o, 'as-www', {}, 'www'), task(o, 'as-default'), task(o, 'as-alice', {}, 'alice')], {
      'as-root': 'TASK_ERROR',
      'as-www': 'TASK_RUNNING',
      'as-default': 'TASK_RUNNING',
      'as-alice': 'TASK_ERROR',
    });
    expect(f.updates('as-root')[0]!.message).toMatch(/not allowed to run tasks as user "root".*"ANY" does not include it/);
    expect(f.updates('as-alice')[0]!.message).toMatch(/user "alice"/);
    // A refused task never reached the agent: its only update is the master's TASK_ERROR.
    expect(f.updates('as-root').map((s) => s.state)).toEqual(['TASK_ERROR']);
  });

  it('framework_info.user root is refused the same way when the task names no user', async () => {
    const f = await framework('fw', 'root');
    await launch(f, (o) => [task(o, 'fw-root')], { 'fw-root': 'TASK_ERROR' });
    expect(f.updates('fw-root')[0]!.message).toMatch(/user "root"/);
  });

  it('"ANY" covers every user but root', async () => {
    const f = await framework('anyfw', '');
    await launch(f, (o) => [task(o, 'any-alice', {}, 'alice'), task(o, 'any-root', {}, 'root')], { 'any-alice': 'TASK_RUNNING', 'any-root': 'TASK_ERROR' });
  });

  it('root listed by name is allowed, with the capabilities its rule lists and no others', async () => {
    const f = await framework('rootfw', 'root');
    const caps = (names: string[]): Partial<V1TaskInfo> => ({ container: { type: 'MESOS', linux_info: { effective_capabilities: { capabilities: names } } } as V1TaskInfo['container'] });
    await launch(f, (o) => [task(o, 'root-plain'), task(o, 'root-bind', caps(['NET_BIND_SERVICE', 'CHOWN'])), task(o, 'root-admin', caps(['NET_BIND_SERVICE', 'SYS_ADMIN']))], {
      'root-plain': 'TASK_RUNNING',
      'root-bind': 'TASK_RUNNING',
      'root-admin': 'TASK_ERROR',
    });
    expect(f.updates('root-admin')[0]!.message).toMatch(/capabilities SYS_ADMIN/);
    // A principal with no capability in its rules cannot ask for one, even for the default user.
    const g = await framework('anyfw', '');
    await launch(g, (o) => [task(o, 'default-raw', { container: { type: 'MESOS', linux_info: { bounding_capabilities: { capabilities: ['NET_RAW'] } } } as V1TaskInfo['container'] })], {
      'default-raw': 'TASK_ERROR',
    });
  });

  it('a task without seccomp is refused unless a rule of the principal for its user says seccomp_unconfined', async () => {
    const f = await framework('anyfw', '');
    const seccomp = (s: Record<string, unknown>): Partial<V1TaskInfo> => ({ container: { type: 'MESOS', linux_info: { seccomp: s } } as V1TaskInfo['container'] });
    await launch(
      f,
      (o) => [
        task(o, 'free-builder', seccomp({ unconfined: true }), 'builder'),
        task(o, 'free-alice', seccomp({ unconfined: true }), 'alice'),
        task(o, 'filtered-alice', seccomp({ unconfined: false }), 'alice'),
      ],
      {
        'free-builder': 'TASK_RUNNING',
        'free-alice': 'TASK_ERROR',
        'filtered-alice': 'TASK_RUNNING',
      },
    );
    expect(f.updates('free-alice')[0]!.message).toMatch(/not allowed to run tasks as user "alice" without seccomp \(acls.run_tasks: .*seccomp_unconfined: true\)/);
    // A profile by name and unconfined at once is refused at the boundary, as Mesos's validation does.
    const g = await framework('anyfw', '');
    const [offer] = await g.offers(10_000);
    await expect(g.client.accept([offer!.id.value], [{ type: 'LAUNCH', launch: { task_infos: [task(offer!, 'both', seccomp({ profile_name: 'x', unconfined: true }))] } }], 0)).rejects.toThrow(
      /give "profile_name" or "unconfined", not both/,
    );
    await g.client.teardown();
  });
});

describe('an agent credential is bound to the agents it registered', () => {
  let master: TestMaster;
  beforeAll(async () => {
    master = await startSecured();
  });
  afterAll(async () => master.dispose());

  const register = (who: Who, hostname: string, id?: string): Promise<Reply> =>
    post(master.url, '/api/v1/agent', { type: 'REGISTER', register: { agent_info: { hostname, resources: resourcesJson('cpus:1;mem:128'), ...(id ? { id: { value: id } } : {}) } } }, as(who));

  it('another agent principal can neither re-register its id, claim its hostname, nor send its calls; after a restart too', async () => {
    const abort = new AbortController();
    const res = await fetch(master.url + '/api/v1/agent', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...as('node-a') },
      body: JSON.stringify({ type: 'REGISTER', register: { agent_info: { hostname: 'host-a', resources: resourcesJson('cpus:1;mem:128') } } }),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const streamId = res.headers.get('mesos-stream-id')!;
    await until(() => master.master.agents.size === 1, 10_000, 'agent registered');
    const id = [...master.master.agents.keys()][0]!;

    let r = await register('node-b', 'host-a', id);
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/registered with principal "node-a"; principal "node-b" may not re-register it/);
    r = await register('node-b', 'host-a');
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/hostname "host-a" belongs to an agent registered with principal "node-a"/);
    r = await post(master.url, '/api/v1/agent', { type: 'HEARTBEAT', agent_id: { value: id } }, { ...as('node-b'), 'mesos-stream-id': streamId });
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/may not speak for it/);
    // Its own principal may.
    r = await post(master.url, '/api/v1/agent', { type: 'HEARTBEAT', agent_id: { value: id } }, { ...as('node-a'), 'mesos-stream-id': streamId });
    expect(r.status).toBe(202);
    // A host of its own is fine for node-b.
    expect((await register('node-b', 'host-b')).status).toBe(200);
    abort.abort();

    // The binding is in the registry: it holds after a master restart.
    master = await master.restart();
    r = await register('node-b', 'host-a', id);
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/principal "node-a"/);
    expect((await register('node-a', 'host-a', id)).status).toBe(200);
  });
});

describe('subscription caps per principal', () => {
  let master: TestMaster;
  beforeAll(async () => {
    master = await startSecured();
  });
  afterAll(async () => master.dispose());

  const subscribe = (name: string, id?: string): unknown => ({
    type: 'SUBSCRIBE',
    ...(id ? { framework_id: { value: id } } : {}),
    subscribe: { framework_info: { user: '', name, roles: ['*'], capabilities: [{ type: 'MULTI_ROLE' }], ...(id ? { id: { value: id } } : {}) } },
  });

  it('a principal holds at most N scheduler streams (429 naming the cap, a metric); a framework re-subscribing at the cap is not refused', async () => {
    const a = await openStream(master.url, '/api/v1/scheduler', subscribe('a'), as('capped'));
    const b = await openStream(master.url, '/api/v1/scheduler', subscribe('b'), as('capped'));
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await openStream(master.url, '/api/v1/scheduler', subscribe('c'), as('capped'));
    expect(c.status).toBe(429);
    const err = JSON.parse(c.text) as { code: string; message: string; details: { limit: string; value: number } };
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(/principal "capped" has 2 scheduler subscriptions open.*maxSchedulerSubscriptionsPerPrincipal = 2/);
    expect(err.details).toMatchObject({ limit: 'maxSchedulerSubscriptionsPerPrincipal', value: 2 });
    // Nothing was registered for the refused one; another principal is not affected.
    expect([...master.master.frameworks.values()].some((f) => f.info.name === 'c')).toBe(false);
    const other = await openStream(master.url, '/api/v1/scheduler', subscribe('other'), as('fw'));
    expect(other.status).toBe(200);
    other.close();
    // Failover of a framework it holds: replaces its stream, so it is admitted at the cap.
    const fa = [...master.master.frameworks.values()].find((f) => f.info.name === 'a')!;
    const again = await openStream(master.url, '/api/v1/scheduler', subscribe('a', fa.id), as('capped'));
    expect(again.status).toBe(200);
    a.close();
    // Once a stream closes, its slot is free again.
    b.close();
    let d: Awaited<ReturnType<typeof openStream>> | undefined;
    await until(
      async () => {
        d?.close();
        d = await openStream(master.url, '/api/v1/scheduler', subscribe('d'), as('capped'));
        return d.status === 200;
      },
      10_000,
      'a slot freed',
    );
    d!.close();
    again.close();
    const metrics = await (await fetch(`${master.url}/metrics`)).text();
    expect(metrics).toMatch(/corral_master_http_refused_total\{reason="max_scheduler_subscriptions_per_principal"\} [1-9]/);
  });

  it('and at most M operator event streams', async () => {
    const first = await openStream(master.url, '/api/v1', { type: 'SUBSCRIBE' }, as('viewer'));
    expect(first.status).toBe(200);
    const second = await openStream(master.url, '/api/v1', { type: 'SUBSCRIBE' }, as('viewer'));
    expect(second.status).toBe(429);
    expect(second.text).toMatch(/maxOperatorSubscriptionsPerPrincipal/);
    // Another principal has its own count.
    const ops = await openStream(master.url, '/api/v1', { type: 'SUBSCRIBE' }, as('ops'));
    expect(ops.status).toBe(200);
    first.close();
    ops.close();
    const metrics = await (await fetch(`${master.url}/metrics`)).text();
    expect(metrics).toMatch(/reason="max_operator_subscriptions_per_principal"\} [1-9]/);
  });
});
