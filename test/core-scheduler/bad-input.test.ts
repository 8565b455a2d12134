import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { until } from '../harness/wait.js';
import { basicAuthHeader } from '../../contracts/client/auth-header.js';

interface Reply {
  status: number;
  text: string;
  headers: Headers;
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const ctl = res.headers.get('mesos-stream-id');
  // A stream (a SUBSCRIBE that happened to be valid): read nothing more, hang up.
  if (ctl) {
    await res.body?.cancel();
    return { status: res.status, text: '', headers: res.headers };
  }
  return { status: res.status, text: await res.text(), headers: res.headers };
}

const message = (r: Reply): string => (r.text.startsWith('{') ? (JSON.parse(r.text) as { message: string }).message : r.text);

describe('bad input to the master gets a clear 4xx, never a 500', () => {
  let master: TestMaster;
  let agent: SimAgent;
  let fw: TestFramework;
  const stream = (): Record<string, string> => ({ 'mesos-stream-id': fw.client.conn.streamId! });

  beforeAll(async () => {
    master = await startTestMaster();
    agent = new SimAgent({ master: master.url, hostname: 'h', resources: 'cpus:2;mem:2048' });
    await agent.start();
    fw = new TestFramework(master.url);
    await fw.subscribe();
  });
  afterAll(async () => {
    await fw.client.close();
    await agent.stop();
    await master.dispose();
  });

  it('rejects malformed bodies and unknown calls', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      ['{not json', 400, /malformed JSON/],
      ['', 400, /empty/],
      [[1, 2], 400, /JSON object/],
      [{ nope: 1 }, 400, /needs a "type"/],
      [{ type: 'FOO' }, 400, /unknown call type "FOO"; expected one of SUBSCRIBE/],
      [{ type: 'SUBSCRIBE' }, 400, /subscribe/],
      [{ type: 'SUBSCRIBE', subscribe: { framework_info: { name: '' } } }, 400, /framework name must not be empty/],
      [{ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', roles: ['bad role'] } } }, 400, /role "bad role"/],
    ];
    for (const [body, status, pattern] of cases) {
      const r = await post(master.url, '/api/v1/scheduler', body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(message(r)).toMatch(pattern);
    }
  });

  it('checks the stream id and the framework', async () => {
    let r = await post(master.url, '/api/v1/scheduler', { type: 'REVIVE', framework_id: { value: fw.id } });
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/Mesos-Stream-Id/);
    r = await post(master.url, '/api/v1/scheduler', { type: 'REVIVE', framework_id: { value: fw.id } }, { 'mesos-stream-id': 'wrong' });
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/does not match/);
    r = await post(master.url, '/api/v1/scheduler', { type: 'REVIVE', framework_id: { value: 'nobody' } }, stream());
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/not subscribed/);
    r = await post(master.url, '/api/v1/scheduler', { type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', id: { value: 'never-registered' } } } });
    expect(r.status).toBe(404);
  });

  it('rejects offers that do not exist, were used, or cannot hold the tasks, and leaves valid offers intact', async () => {
    const [offer] = await fw.offers();
    const task = (id: string, resources: string, agentId = offer!.agent_id.value): unknown => ({
      name: id,
      task_id: { value: id },
      agent_id: { value: agentId },
      resources: resourcesJson(resources),
      command: { value: 'true' },
    });
    const accept = (offerIds: string[], tasks: unknown[]): Promise<Reply> =>
      post(
        master.url,
        '/api/v1/scheduler',
        { type: 'ACCEPT', framework_id: { value: fw.id }, accept: { offer_ids: offerIds.map((value) => ({ value })), operations: [{ type: 'LAUNCH', launch: { task_infos: tasks } }] } },
        stream(),
      );
    let r = await accept(['no-such-offer'], [task('a', 'cpus:1')]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/not outstanding/);
    r = await accept([offer!.id.value], [task('big', 'cpus:100;mem:10')]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/task big: needs cpus:100; mem:10 but the offers only have/);
    // Event-driven schedulers also hear about it, as TASK_ERROR.
    await fw.update('big', 'TASK_ERROR');
    r = await accept([offer!.id.value], [task('elsewhere', 'cpus:1', 'other-agent')]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/is not the offers' agent/);
    r = await accept([offer!.id.value], [task('dup', 'cpus:0.5'), task('dup', 'cpus:0.5')]);
    expect(message(r)).toMatch(/used twice/);
    // The offer survived all of that and is still good.
    fw.holdAck = (status) => status.task_id.value === 'ok';
    r = await accept([offer!.id.value], [task('ok', 'cpus:1;mem:64')]);
    expect(r.status).toBe(202);
    r = await accept([offer!.id.value], [task('again', 'cpus:1;mem:64')]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/not outstanding/);
    r = await post(master.url, '/api/v1/scheduler', { type: 'DECLINE', framework_id: { value: fw.id }, decline: { offer_ids: [{ value: offer!.id.value }] } }, stream());
    expect(r.status).toBe(400);
    // Not base64, too short, too long, and 16 bytes written in a non-canonical form (stray low bits before "==").
    for (const uuid of ['not-a-uuid', 'AAAAAAAAAAAAAAAAAAAAAA=', 'AAAAAAAAAAAAAAAAAAAAAAA=', 'AAAAAAAAAAAAAAAAAAAAAB==']) {
      r = await post(master.url, '/api/v1/scheduler', { type: 'ACKNOWLEDGE', framework_id: { value: fw.id }, acknowledge: { agent_id: offer!.agent_id, task_id: { value: 'ok' }, uuid } }, stream());
      expect(r.status, uuid).toBe(400);
      expect(message(r)).toMatch(/16-byte UUID/);
    }
    // A batch is all or nothing: the bad entry is named and the good one is not applied.
    const ok = await fw.update('ok', 'TASK_RUNNING');
    const batch = (acks: unknown[]): Promise<Reply> =>
      post(master.url, '/api/v1/scheduler', { type: 'ACKNOWLEDGE_BATCH', framework_id: { value: fw.id }, acknowledge_batch: { acknowledgements: acks } }, stream());
    r = await batch([
      { agent_id: offer!.agent_id, task_id: { value: 'ok' }, uuid: ok.uuid },
      { agent_id: { value: 'ghost' }, task_id: { value: 'ok' }, uuid: ok.uuid },
    ]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/acknowledgement 1: unknown agent ghost/);
    expect(agent.updates.pending().map((u) => u.status.uuid)).toContain(ok.uuid);
    r = await batch([]);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/at least one acknowledgement/);
    r = await batch([{ agent_id: offer!.agent_id, task_id: { value: 'ok' }, uuid: ok.uuid }]);
    expect(r.status).toBe(202);
    await until(() => !agent.updates.pending().some((u) => u.status.uuid === ok.uuid));
    r = await post(master.url, '/api/v1/scheduler', { type: 'REVIVE', framework_id: { value: fw.id }, revive: { roles: ['not-mine'] } }, stream());
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/not one of the framework's roles/);
  });

  it('answers wrong methods, paths, media types and sizes properly', async () => {
    let res = await fetch(master.url + '/api/v1/scheduler');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    res = await fetch(master.url + '/nope');
    expect(res.status).toBe(404);
    let r = await post(master.url, '/api/v1/scheduler', '{}', { 'content-type': 'application/x-protobuf' });
    expect(r.status).toBe(415);
    r = await post(master.url, '/api/v1/scheduler', JSON.stringify({ type: 'SUBSCRIBE', pad: 'x'.repeat(5 * 1024 * 1024) }));
    expect(r.status).toBe(413);
    expect((await fetch(master.url + '/health')).status).toBe(200);
  });

  it('validates operator and agent calls', async () => {
    const agentId = agent.id!;
    const cases: Array<[string, unknown, number, RegExp]> = [
      [
        '/api/v1',
        { type: 'RESERVE_RESOURCES', reserve_resources: { agent_id: { value: 'ghost' }, resources: resourcesJson('cpus:1').map((x) => ({ ...x, reservations: [{ role: 'r', type: 'DYNAMIC' }] })) } },
        404,
        /unknown agent/,
      ],
      [
        '/api/v1',
        { type: 'RESERVE_RESOURCES', reserve_resources: { agent_id: { value: agentId }, resources: resourcesJson('cpus:64').map((x) => ({ ...x, reservations: [{ role: 'r', type: 'DYNAMIC' }] })) } },
        409,
        /is not free/,
      ],
      ['/api/v1', { type: 'RESERVE_RESOURCES', reserve_resources: { agent_id: { value: agentId }, resources: resourcesJson('cpus:1') } }, 400, /no reservation to make/],
      ['/api/v1', { type: 'UNRESERVE_RESOURCES', reserve_resources: {} }, 400, /unreserve_resources/],
      ['/api/v1', { type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'web', weight: -1 }] } }, 400, /weight/],
      ['/api/v1', { type: 'UPDATE_QUOTA', update_quota: { quota_configs: [{ role: 'web', guarantees: { cpus: { value: 4 } }, limits: { cpus: { value: 2 } } }] } }, 400, /above its limit/],
      ['/api/v1', { type: 'MARK_AGENT_GONE', mark_agent_gone: { agent_id: { value: 'ghost' } } }, 404, /unknown agent/],
      ['/api/v1', { type: 'GET_NOTHING' }, 400, /unknown call type/],
      [
        '/api/v1/agent',
        { type: 'UPDATE', agent_id: { value: 'ghost' }, update: { updates: [{ framework_id: { value: 'f' }, status: { task_id: { value: 't' }, state: 'TASK_RUNNING' } }] } },
        403,
        /not registered/,
      ],
      [
        '/api/v1/agent',
        { type: 'REGISTER', register: { agent_info: { hostname: 'h', resources: resourcesJson('cpus:1').map((x) => ({ ...x, reservations: [{ role: 'r', type: 'DYNAMIC', principal: 'p' }] })) } } },
        400,
        /dynamic reservation/,
      ],
      ['/api/v1/agent', { type: 'REGISTER', register: { agent_info: { hostname: 'h', resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: -1 } }] } } }, 400, /scalar/],
    ];
    for (const [path, body, status, pattern] of cases) {
      const r = await post(master.url, path, body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(message(r)).toMatch(pattern);
    }
  });
});

describe('authentication and authorization', () => {
  let master: TestMaster;
  beforeAll(async () => {
    const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'corral-auth-'));
    const file = join(dir, 'security.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        credentials: [
          { principal: 'ops', secret: 'ops-secret' },
          { principal: 'web-fw', secret: 'web-secret' },
          { principal: 'node', secret: 'node-secret' },
        ],
        acls: { register_frameworks: [{ principals: ['web-fw'], roles: ['web'] }], operators: ['ops'], agents: ['node'] },
      }),
    );
    master = await startTestMaster({ noAuth: false, credentials: file }, dir);
  });
  afterAll(async () => master.dispose());

  const as = (p: string, s: string): Record<string, string> => ({ authorization: basicAuthHeader(p, s) });
  const subscribe = (role: string): unknown => ({ type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', roles: [role] } } });

  it('requires credentials and checks secrets', async () => {
    let r = await post(master.url, '/api/v1', { type: 'GET_STATE' });
    expect(r.status).toBe(401);
    r = await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('ops', 'wrong'));
    expect(r.status).toBe(401);
    expect(message(r)).toMatch(/invalid credentials/);
    r = await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('ops', 'ops-secret'));
    expect(r.status).toBe(200);
    expect((await fetch(master.url + '/health')).status).toBe(200);
  });

  it('applies the ACLs: roles per principal, operators, agents', async () => {
    let r = await post(master.url, '/api/v1/scheduler', subscribe('db'), as('web-fw', 'web-secret'));
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/not allowed to use role "db"/);
    r = await post(master.url, '/api/v1/scheduler', subscribe('web'), as('web-fw', 'web-secret'));
    expect(r.status).toBe(200);
    r = await post(master.url, '/api/v1', { type: 'GET_STATE' }, as('web-fw', 'web-secret'));
    expect(r.status).toBe(403);
    r = await post(master.url, '/api/v1/agent', { type: 'REGISTER', register: { agent_info: { hostname: 'h', resources: resourcesJson('cpus:1') } } }, as('web-fw', 'web-secret'));
    expect(r.status).toBe(403);
    r = await post(master.url, '/api/v1/agent', { type: 'REGISTER', register: { agent_info: { hostname: 'h', resources: resourcesJson('cpus:1') } } }, as('node', 'node-secret'));
    expect(r.status).toBe(200);
    r = await post(master.url, '/api/v1/scheduler', { type: 'SUBSCRIBE', subscribe: { framework_info: { name: 'x', roles: ['web'], principal: 'someone-else' } } }, as('web-fw', 'web-secret'));
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/does not match the authenticated principal/);
  });
});
