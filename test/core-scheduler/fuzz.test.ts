import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';

/** Valid calls of every kind; the fuzzer mutates them so it gets past the first checks. */
function seeds(fwId: string, agentId: string): Array<{ path: string; body: Record<string, unknown> }> {
  const res = resourcesJson('cpus:1;mem:64');
  const task = { name: 't', task_id: { value: 't' }, agent_id: { value: agentId }, resources: res, command: { value: 'true' } };
  const acceptBatchWithDefaults = (accepts: unknown[]) => ({
    path: '/api/v1/scheduler',
    body: { type: 'ACCEPT_BATCH', framework_id: { value: fwId }, accept_batch: { task_defaults: { resources: res, command: { value: 'true' } }, accepts } },
  });
  return [
    { path: '/api/v1/scheduler', body: { type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'fuzz', roles: ['*'] } } } },
    {
      path: '/api/v1/scheduler',
      body: {
        type: 'ACCEPT',
        framework_id: { value: fwId },
        accept: {
          offer_ids: [{ value: 'o' }],
          operations: [
            { type: 'LAUNCH', launch: { task_infos: [task] } },
            { type: 'RESERVE', reserve: { resources: res } },
          ],
        },
      },
    },
    {
      path: '/api/v1/scheduler',
      body: {
        type: 'ACCEPT_BATCH',
        framework_id: { value: fwId },
        accept_batch: { accepts: [{ offer_ids: [{ value: 'o' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [task] } }] }, { offer_ids: [{ value: 'p' }] }] },
      },
    },
    // With task defaults: tasks in full and filled in; then with an entry's agent and implied names.
    acceptBatchWithDefaults([{ offer_ids: [{ value: 'o' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [{ name: 't', task_id: { value: 't' }, agent_id: { value: agentId } }, task] } }] }]),
    acceptBatchWithDefaults([
      { offer_ids: [{ value: 'o' }], agent_id: { value: agentId }, operations: [{ type: 'LAUNCH', launch: { task_infos: [{ task_id: { value: 't' } }, { task_id: { value: 'u' }, name: 'n' }] } }] },
    ]),
    {
      path: '/api/v1/scheduler',
      body: {
        type: 'ACKNOWLEDGE_BATCH',
        framework_id: { value: fwId },
        acknowledge_batch: {
          agents: [{ agent_id: { value: agentId }, acknowledgements: [{ task_id: { value: 't' }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' }] }],
          acknowledgements: [{ agent_id: { value: agentId }, task_id: { value: 'u' }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' }],
        },
      },
    },
    { path: '/api/v1/scheduler', body: { type: 'DECLINE', framework_id: { value: fwId }, decline: { offer_ids: [{ value: 'o' }], filters: { refuse_seconds: 1 } } } },
    {
      path: '/api/v1/scheduler',
      body: { type: 'ACKNOWLEDGE', framework_id: { value: fwId }, acknowledge: { agent_id: { value: agentId }, task_id: { value: 't' }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' } },
    },
    { path: '/api/v1/scheduler', body: { type: 'RECONCILE', framework_id: { value: fwId }, reconcile: { tasks: [{ task_id: { value: 't' } }] } } },
    { path: '/api/v1/scheduler', body: { type: 'KILL', framework_id: { value: fwId }, kill: { task_id: { value: 't' } } } },
    { path: '/api/v1', body: { type: 'RESERVE_RESOURCES', reserve_resources: { agent_id: { value: agentId }, resources: res } } },
    { path: '/api/v1', body: { type: 'UPDATE_QUOTA', update_quota: { quota_configs: [{ role: 'r', guarantees: { cpus: { value: 1 } } }] } } },
    { path: '/api/v1', body: { type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'r', weight: 2 }] } } },
    { path: '/api/v1', body: { type: 'GET_STATE' } },
    {
      path: '/api/v1/agent',
      body: { type: 'UPDATE', agent_id: { value: agentId }, update: { updates: [{ framework_id: { value: fwId }, status: { task_id: { value: 't' }, state: 'TASK_RUNNING' } }] } },
    },
    { path: '/api/v1/agent', body: { type: 'REGISTER', register: { agent_info: { hostname: 'fz', resources: res } } } },
  ];
}

/** Replace, delete or retype one field somewhere in a JSON value. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (typeof value !== 'object' || value === null || path.length === 0) return replacement;
  const keys = Object.keys(value);
  if (keys.length === 0) return replacement;
  const key = keys[path[0]! % keys.length]!;
  const copy: Record<string, unknown> = Array.isArray(value) ? ([...value] as unknown as Record<string, unknown>) : { ...(value as Record<string, unknown>) };
  if (path.length === 1 && replacement === undefined) delete copy[key];
  else copy[key] = mutate((value as Record<string, unknown>)[key], path.slice(1), replacement);
  return copy;
}

describe('fuzzing the master HTTP APIs', () => {
  let master: TestMaster;
  let agent: SimAgent;
  let fw: TestFramework;
  beforeAll(async () => {
    master = await startTestMaster();
    agent = new SimAgent({ master: master.url, hostname: 'h', resources: 'cpus:2;mem:2048', reconnect: false });
    await agent.start();
    fw = new TestFramework(master.url);
    await fw.subscribe();
  });
  afterAll(async () => {
    await fw.client.close();
    await agent.stop();
    await master.dispose();
  });

  const send = async (path: string, body: string, streamId?: string): Promise<number> => {
    const ac = new AbortController();
    const res = await fetch(master.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(streamId ? { 'mesos-stream-id': streamId } : {}) }, body, signal: ac.signal });
    ac.abort(); // streams (a valid SUBSCRIBE) would stay open
    return res.status;
  };

  it('answers random bodies with a 4xx (or success), never a 5xx, and stays up', async () => {
    const paths = ['/api/v1/scheduler', '/api/v1', '/api/v1/agent'];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        fc.oneof(
          fc.json(),
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify({ type: 'ACCEPT', ...((typeof v === 'object' && v) || {}) })),
        ),
        async (path, body) => {
          const status = await send(path, body, fw.client.conn.streamId);
          expect(status).toBeLessThan(500);
        },
      ),
      { numRuns: 400 },
    );
    expect((await fetch(master.url + '/health')).status).toBe(200);
  });

  it('answers mutated valid calls with a 4xx (or success), never a 5xx, and stays up', async () => {
    const base = seeds(fw.id, agent.id!);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: base.length - 1 }),
        fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 6 }),
        fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.string({ maxLength: 300 }), fc.integer(), fc.double(), fc.constant(null), fc.constant(-1), fc.constant(1e300)),
        async (i, path, replacement) => {
          const seed = base[i]!;
          const status = await send(seed.path, JSON.stringify(mutate(seed.body, path, replacement)), fw.client.conn.streamId);
          expect(status).toBeLessThan(500);
        },
      ),
      { numRuns: 1500 },
    );
    expect((await fetch(master.url + '/health')).status).toBe(200);
  });
});
