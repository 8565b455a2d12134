import { describe, it, expect, afterEach } from 'vitest';
import { createServer, type Server } from 'node:http';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { SchedulerClient } from '../../contracts/client/scheduler-client.js';
import { CallError } from '../../contracts/client/connection.js';
import { MAX_ACCEPTS } from '../../contracts/v1/v1-schema.js';
import type { V1Offer, V1Operation, V1TaskInfo, V1TaskStatus } from '../../contracts/v1/v1.js';
import { until } from '../harness/wait.js';
import { OperatorClient } from '../../contracts/client/operator-client.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

async function cluster(agents: number): Promise<{ fw: TestFramework; offers: V1Offer[]; sims: SimAgent[] }> {
  master = await startTestMaster();
  const sims: SimAgent[] = [];
  for (let i = 0; i < agents; i++) {
    const a = new SimAgent({ master: master.url, hostname: `h${i}`, resources: 'cpus:2;mem:1024' });
    cleanup.push(() => a.stop());
    await a.start();
    sims.push(a);
  }
  const fw = new TestFramework(master.url);
  cleanup.push(() => fw.client.close());
  await fw.subscribe();
  const offers: V1Offer[] = [];
  while (offers.length < agents) offers.push(...(await fw.offers()));
  return { fw, offers, sims };
}

const launch = (offer: V1Offer, id: string, resources = 'cpus:1;mem:64'): V1Operation[] => [
  {
    type: 'LAUNCH',
    launch: { task_infos: [{ name: id, task_id: { value: id }, agent_id: offer.agent_id, resources: resourcesJson(resources, offer.allocation_info.role), command: { value: 'sleep 1000' } }] },
  },
];

async function post(url: string, body: unknown, streamId: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/v1/scheduler`, { method: 'POST', headers: { 'content-type': 'application/json', 'mesos-stream-id': streamId }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const schedulerCalls = async (url: string, type: string): Promise<number> => {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`scheduler_calls_total\\{type="${type}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
};

/** POST an ACCEPT_BATCH whose task_defaults are 1 CPU, 64 MB and `sleep 1000`. */
const postWithDefaults = (fw: TestFramework, role: string, accepts: unknown[]): Promise<{ status: number; json: Record<string, unknown> }> =>
  post(
    master!.url,
    { type: 'ACCEPT_BATCH', framework_id: { value: fw.id }, accept_batch: { task_defaults: { resources: resourcesJson('cpus:1;mem:64', role), command: { value: 'sleep 1000' } }, accepts } },
    fw.client.conn.streamId!,
  );

/** The tasks the agents were sent, once `count` of them have arrived. */
async function launchedTasks(sims: SimAgent[], count: number): Promise<Map<string, V1TaskInfo>> {
  const launched = new Map<string, V1TaskInfo>();
  await until(() => {
    for (const sim of sims) for (const e of sim.received) if (e.type === 'LAUNCH') for (const t of e.launch.tasks) launched.set(t.task_id.value, t);
    return launched.size === count;
  });
  return launched;
}

/** The master's tasks, as GET_TASKS lists them. */
async function masterTasks(): Promise<Array<{ task_id: { value: string }; name: string; agent_id: { value: string }; resources: V1TaskInfo['resources'] }>> {
  const ops = new OperatorClient({ master: master!.url });
  try {
    return (await ops.call<{ get_tasks: { tasks: Array<{ task_id: { value: string }; name: string; agent_id: { value: string }; resources: V1TaskInfo['resources'] }> } }>('GET_TASKS')).get_tasks
      .tasks;
  } finally {
    await ops.close();
  }
}

describe('ACCEPT_BATCH: many ACCEPTs in one call, each on its own', () => {
  it('applies each entry as its own ACCEPT and answers, in order, which were refused and why', async () => {
    const { fw, offers } = await cluster(2);
    const [a, b] = offers as [V1Offer, V1Offer];
    const r = await post(
      master!.url,
      {
        type: 'ACCEPT_BATCH',
        framework_id: { value: fw.id },
        accept_batch: {
          accepts: [
            { offer_ids: [a.id], operations: launch(a, 'first') },
            { offer_ids: [{ value: 'no-such-offer' }], operations: launch(a, 'ghost') },
            { offer_ids: [b.id], operations: launch(b, 'too-big', 'cpus:64;mem:64') },
            { offer_ids: [b.id], operations: launch(b, 'second') },
          ],
        },
      },
      fw.client.conn.streamId!,
    );
    expect(r.status).toBe(200);
    const results = (r.json.accept_batch as { results: Array<Record<string, { code: string; message: string }>> }).results;
    expect(results).toHaveLength(4);
    expect(results[0]).toEqual({ accepted: true });
    expect(results[1]!.error!.code).toBe('INVALID_ARGUMENT');
    expect(results[1]!.error!.message).toMatch(/no-such-offer/);
    // A refused entry changes nothing: its offer is still there for the next entry.
    expect(results[2]!.error!.message).toMatch(/task too-big: needs .*cpus/);
    expect(results[3]).toEqual({ accepted: true });
    await fw.update('first', 'TASK_RUNNING');
    await fw.update('second', 'TASK_RUNNING');
    // Event-driven frameworks hear of the refused launches too, as after a refused ACCEPT.
    expect((await fw.update('too-big', 'TASK_ERROR')).reason).toBe('REASON_TASK_INVALID');
  });

  it('is how the scheduler client sends the ACCEPTs of one turn; each promise settles on its own entry', async () => {
    const { fw, offers } = await cluster(3);
    const before = await schedulerCalls(master!.url, 'ACCEPT_BATCH');
    const outcomes = await Promise.allSettled([
      fw.client.accept([offers[0]!.id.value], launch(offers[0]!, 'c1')),
      fw.client.accept([offers[1]!.id.value], launch(offers[1]!, 'c2', 'cpus:64;mem:64')),
      fw.client.accept([offers[2]!.id.value], launch(offers[2]!, 'c3')),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (outcomes[1] as PromiseRejectedResult).reason as CallError;
    expect(err).toBeInstanceOf(CallError);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/task c2: needs/);
    expect(await schedulerCalls(master!.url, 'ACCEPT_BATCH')).toBe(before + 1);
    await fw.update('c1', 'TASK_RUNNING');
    await fw.update('c3', 'TASK_RUNNING');
  });

  it('refuses a malformed batch as a whole with a clear 400', async () => {
    const { fw, offers } = await cluster(1);
    const sid = fw.client.conn.streamId!;
    const call = (accepts: unknown): Promise<{ status: number; json: Record<string, unknown> }> =>
      post(master!.url, { type: 'ACCEPT_BATCH', framework_id: { value: fw.id }, accept_batch: { accepts } }, sid);
    let r = await call([]);
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/at least one ACCEPT/);
    r = await call([{ operations: [] }]);
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/offer_ids/);
    r = await call(Array.from({ length: MAX_ACCEPTS + 1 }, () => ({ offer_ids: [offers[0]!.id] })));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/accepts/);
    r = await post(master!.url, { type: 'ACCEPT_BATCH', framework_id: { value: fw.id }, accept_batch: { accepts: [{ offer_ids: [offers[0]!.id] }] } }, 'wrong-stream');
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/Mesos-Stream-Id/);
    // Nothing was taken: the offer is still good.
    await fw.launch(offers[0]!, [{ id: 'after', resources: 'cpus:1;mem:64' }]);
    await fw.update('after', 'TASK_RUNNING');
  });
});

describe("ACCEPT_BATCH's task_defaults: what the tasks share, sent once", () => {
  it("fills in each task that leaves them out; the agents get full TaskInfos and the master counts each task's own resources", async () => {
    const { fw, offers, sims } = await cluster(2);
    const [a, b] = offers as [V1Offer, V1Offer];
    const role = a.allocation_info.role;
    const bare = (offer: V1Offer, id: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({ name: id, task_id: { value: id }, agent_id: offer.agent_id, ...more });
    const docker = { container: { type: 'DOCKER', docker: { image: 'busybox' } } };
    const r = await postWithDefaults(fw, role, [
      { offer_ids: [a.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [bare(a, 'plain'), bare(a, 'bigger', { resources: resourcesJson('cpus:1;mem:512', role) })] } }] },
      { offer_ids: [b.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [bare(b, 'own-command', { command: { value: 'echo hi' } }), bare(b, 'image', docker)] } }] },
    ]);
    expect(r.json).toEqual({ accept_batch: { results: [{ accepted: true }, { accepted: true }] } });
    const launched = await launchedTasks(sims, 4);
    const mem = (t: V1TaskInfo | undefined): number | undefined => t?.resources.find((x) => x.name === 'mem')?.scalar?.value;
    expect(mem(launched.get('plain'))).toBe(64);
    expect(launched.get('plain')!.command).toEqual({ value: 'sleep 1000' });
    expect(launched.get('plain')!.agent_id).toEqual(a.agent_id);
    expect(mem(launched.get('bigger'))).toBe(512);
    expect(launched.get('own-command')!.command).toEqual({ value: 'echo hi' });
    // A task with a container may run without a command (its image's entrypoint): it never takes the defaults'.
    expect(launched.get('image')!.command).toBeUndefined();
    expect(mem(launched.get('image'))).toBe(64);
    // The master's tasks hold their own resources, the defaults' or their own.
    const held = Object.fromEntries((await masterTasks()).map((t) => [t.task_id.value, t.resources.find((x) => x.name === 'mem')?.scalar?.value]));
    expect(held).toEqual({ plain: 64, bigger: 512, 'own-command': 64, image: 64 });
  });

  it('refuses malformed task_defaults with a 400 that names them, and nothing is launched', async () => {
    const { fw, offers } = await cluster(1);
    const offer = offers[0]!;
    for (const [defaults, why] of [
      [{ resources: [{ name: 'cpus', type: 'SCALAR' }] }, /accept_batch\.task_defaults: resources\.0/],
      [{ resources: resourcesJson('cpus:1;mem:64'), container: { type: 'DOCKER' } }, /accept_batch\.task_defaults: .*container/],
      ['cpus:1', /accept_batch\.task_defaults/],
    ] as const) {
      const r = await post(
        master!.url,
        {
          type: 'ACCEPT_BATCH',
          framework_id: { value: fw.id },
          accept_batch: {
            task_defaults: defaults,
            accepts: [{ offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [{ name: 'x', task_id: { value: 'x' }, agent_id: offer.agent_id }] } }] }],
          },
        },
        fw.client.conn.streamId!,
      );
      expect(r.status).toBe(400);
      expect(r.json.message).toMatch(why);
    }
    // Without defaults a task that leaves out its resources and command is refused as before.
    const r = await post(
      master!.url,
      {
        type: 'ACCEPT_BATCH',
        framework_id: { value: fw.id },
        accept_batch: { accepts: [{ offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [{ name: 'x', task_id: { value: 'x' }, agent_id: offer.agent_id }] } }] }] },
      },
      fw.client.conn.streamId!,
    );
    expect(r.status).toBe(400);
    await fw.launch(offer, [{ id: 'after', resources: 'cpus:1;mem:64' }]);
    await fw.update('after', 'TASK_RUNNING');
  });
});

/** A master that serves SUBSCRIBE (announcing `capabilities`), answers every ACCEPT_BATCH entry as accepted and every other call with 202, keeping the bodies. */
async function startFakeMaster(
  capabilities: string[],
): Promise<{ server: Server; url: string; batches: Array<Record<string, unknown>>; ackBatches: Array<Record<string, unknown>>; sizes: Map<string, number>; types: string[] }> {
  const batches: Array<Record<string, unknown>> = [];
  const ackBatches: Array<Record<string, unknown>> = [];
  const sizes = new Map<string, number>();
  const types: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const call = JSON.parse(body) as { type: string; accept_batch?: { accepts: unknown[] }; acknowledge_batch?: Record<string, unknown> };
      sizes.set(call.type, (sizes.get(call.type) ?? 0) + Buffer.byteLength(body));
      types.push(call.type);
      if (call.type === 'ACKNOWLEDGE_BATCH') ackBatches.push(call.acknowledge_batch!);
      if (call.type === 'SUBSCRIBE') {
        const event = JSON.stringify({
          type: 'SUBSCRIBED',
          subscribed: {
            framework_id: { value: 'f1' },
            heartbeat_interval_seconds: 15,
            master_info: { id: 'm', ip: 0, port: 0, hostname: 'fake', version: '0', capabilities: capabilities.map((type) => ({ type })) },
          },
        });
        res.writeHead(200, { 'content-type': 'application/json', 'mesos-stream-id': 's1' });
        res.write(`${Buffer.byteLength(event)}\n${event}`);
        return;
      }
      if (call.type === 'ACCEPT_BATCH') {
        batches.push(call.accept_batch as Record<string, unknown>);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accept_batch: { results: call.accept_batch!.accepts.map(() => ({ accepted: true })) } }));
      } else res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, batches, ackBatches, sizes, types };
}

/** Fake masters for one describe block, each closed after its test. */
function fakeMastersClosedAfterEach(): typeof startFakeMaster {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
  return async (capabilities) => {
    const fake = await startFakeMaster(capabilities);
    servers.push(fake.server);
    return fake;
  };
}

describe('the scheduler client and task_defaults', () => {
  const fakeMaster = fakeMastersClosedAfterEach();

  const operations = (agent: string, ids: string[], resources: V1TaskInfo['resources']): V1Operation[] => [
    { type: 'LAUNCH', launch: { task_infos: ids.map((id) => ({ name: id, task_id: { value: id }, agent_id: { value: agent }, resources, command: { value: 'sleep 1000' } })) } },
  ];

  it('sends what the tasks of a batch share once, to a master that announces TASK_DEFAULTS, and in full to one that does not', async () => {
    for (const announced of [true, false]) {
      const fake = await fakeMaster(announced ? ['GROUPED_STATUS_UPDATES', 'TASK_DEFAULTS'] : ['GROUPED_STATUS_UPDATES']);
      const client = new SchedulerClient({ master: fake.url, framework: { user: 'u', name: 'defaults' } });
      try {
        await client.subscribe();
        // Equal in content, not the same objects: the client compares what it sends.
        await Promise.all([
          client.accept(['o1'], operations('a1', ['t1', 't2'], resourcesJson('cpus:1;mem:64'))),
          client.accept(['o2'], operations('a2', ['t3'], resourcesJson('cpus:1;mem:64'))),
          client.accept(['o3'], operations('a3', ['t4'], resourcesJson('cpus:2;mem:64'))),
        ]);
        const [batch] = fake.batches as [{ task_defaults?: unknown; accepts: Array<{ offer_ids: unknown; operations: V1Operation[] }> }];
        const sent = batch.accepts.flatMap((a) => a.operations[0]!.launch!.task_infos);
        expect(batch.accepts.map((a) => a.offer_ids)).toEqual([[{ value: 'o1' }], [{ value: 'o2' }], [{ value: 'o3' }]]);
        if (announced) {
          expect(batch.task_defaults).toEqual({ resources: resourcesJson('cpus:1;mem:64'), command: { value: 'sleep 1000' } });
          expect(sent.map((t) => Object.keys(t).sort().join(','))).toEqual(['agent_id,name,task_id', 'agent_id,name,task_id', 'agent_id,name,task_id', 'agent_id,name,resources,task_id']);
          expect(sent[3]!.resources).toEqual(resourcesJson('cpus:2;mem:64'));
        } else {
          expect(batch.task_defaults).toBeUndefined();
          expect(sent.every((t) => t.resources.length === 2 && t.command?.value === 'sleep 1000')).toBe(true);
        }
      } finally {
        await client.close();
      }
    }
  });
});

describe('implied task fields and grouped acknowledgements, against the master', () => {
  it("completes tasks from their entry's agent_id and their own ids; a task's own name and agent are kept", async () => {
    const { fw, offers, sims } = await cluster(2);
    const [a, b] = offers as [V1Offer, V1Offer];
    const role = a.allocation_info.role;
    const r = await postWithDefaults(fw, role, [
      { offer_ids: [a.id], agent_id: a.agent_id, operations: [{ type: 'LAUNCH', launch: { task_infos: [{ task_id: { value: 'i1' } }, { task_id: { value: 'i2' }, name: 'web server' }] } }] },
      // An entry without agent_id: its tasks name their agent, as in a plain ACCEPT.
      { offer_ids: [b.id], operations: [{ type: 'LAUNCH', launch: { task_infos: [{ task_id: { value: 'i3' }, agent_id: b.agent_id }] } }] },
    ]);
    expect(r.json).toEqual({ accept_batch: { results: [{ accepted: true }, { accepted: true }] } });
    const launched = await launchedTasks(sims, 3);
    expect(launched.get('i1')).toMatchObject({ name: 'i1', agent_id: a.agent_id });
    expect(launched.get('i2')).toMatchObject({ name: 'web server', agent_id: a.agent_id });
    expect(launched.get('i3')).toMatchObject({ name: 'i3', agent_id: b.agent_id });
    expect(Object.fromEntries((await masterTasks()).map((t) => [t.task_id.value, [t.name, t.agent_id.value]]))).toEqual({
      i1: ['i1', a.agent_id.value],
      i2: ['web server', a.agent_id.value],
      i3: ['i3', b.agent_id.value],
    });
  });

  it("refuses a malformed entry agent_id with a 400 that names it; an agent other than the offers' fails that entry alone", async () => {
    const { fw, offers } = await cluster(2);
    const [a, b] = offers as [V1Offer, V1Offer];
    const task = { task_id: { value: 'x' }, resources: resourcesJson('cpus:1;mem:64', a.allocation_info.role), command: { value: 'sleep 1000' } };
    const call = (accepts: unknown[]): Promise<{ status: number; json: Record<string, unknown> }> =>
      post(master!.url, { type: 'ACCEPT_BATCH', framework_id: { value: fw.id }, accept_batch: { accepts } }, fw.client.conn.streamId!);
    for (const bad of ['agent-1', { id: 'agent-1' }, { value: '' }]) {
      const r = await call([{ offer_ids: [a.id], agent_id: bad, operations: [{ type: 'LAUNCH', launch: { task_infos: [task] } }] }]);
      expect(r.status).toBe(400);
      expect(r.json.message).toMatch(/accept_batch\.accepts\[0\]\.agent_id/);
    }
    const r = await call([
      { offer_ids: [a.id], agent_id: b.agent_id, operations: [{ type: 'LAUNCH', launch: { task_infos: [task] } }] },
      { offer_ids: [b.id], agent_id: b.agent_id, operations: [{ type: 'LAUNCH', launch: { task_infos: [{ ...task, task_id: { value: 'y' } }] } }] },
    ]);
    expect(r.status).toBe(200);
    const results = (r.json.accept_batch as { results: Array<Record<string, { message: string }>> }).results;
    expect(results[0]!.error!.message).toMatch(/agent/);
    expect(results[1]).toEqual({ accepted: true });
    await fw.update('y', 'TASK_RUNNING');
  });

  it('takes acknowledgements grouped by agent: each reaches its agent; a bad one refuses the call and names where it is', async () => {
    const { fw, offers, sims } = await cluster(2);
    fw.autoAck = false;
    const [a, b] = offers as [V1Offer, V1Offer];
    await Promise.all([
      fw.launch(a, [
        { id: 'g1', resources: 'cpus:1;mem:64' },
        { id: 'g2', resources: 'cpus:1;mem:64' },
      ]),
      fw.launch(b, [{ id: 'g3', resources: 'cpus:1;mem:64' }]),
    ]);
    const running = await Promise.all(['g1', 'g2', 'g3'].map((id) => fw.update(id, 'TASK_RUNNING')));
    const sid = fw.client.conn.streamId!;
    const group = (agent: V1Offer, statuses: typeof running) => ({ agent_id: agent.agent_id, acknowledgements: statuses.map((st) => ({ task_id: st.task_id, uuid: st.uuid })) });
    let r = await post(
      master!.url,
      {
        type: 'ACKNOWLEDGE_BATCH',
        framework_id: { value: fw.id },
        acknowledge_batch: { agents: [group(a, running.slice(0, 2)), { agent_id: { value: 'no-such-agent' }, acknowledgements: [{ task_id: { value: 'g3' }, uuid: running[2]!.uuid }] }] },
      },
      sid,
    );
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/agents\[1\]: unknown agent no-such-agent/);
    r = await post(
      master!.url,
      { type: 'ACKNOWLEDGE_BATCH', framework_id: { value: fw.id }, acknowledge_batch: { agents: [{ agent_id: a.agent_id, acknowledgements: [{ task_id: { value: 'g1' }, uuid: 'not-a-uuid' }] }] } },
      sid,
    );
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/agents\[0\]\.acknowledgements\[0\]: uuid "not-a-uuid"/);
    r = await post(master!.url, { type: 'ACKNOWLEDGE_BATCH', framework_id: { value: fw.id }, acknowledge_batch: { agents: [] } }, sid);
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/at least one acknowledgement/);
    // Nothing of the refused calls reached an agent.
    const acked = (sim: SimAgent): string[] =>
      sim.received.flatMap((e) => (e.type === 'ACKNOWLEDGE_BATCH' ? e.acknowledge_batch.acknowledgements.map((x) => x.uuid) : e.type === 'ACKNOWLEDGE' ? [e.acknowledge.uuid] : []));
    const simOf = (offer: V1Offer): SimAgent => sims.find((sim) => sim.id === offer.agent_id.value)!;
    expect([...acked(simOf(a)), ...acked(simOf(b))]).toEqual([]);
    // Grouped and flat in one call.
    r = await post(
      master!.url,
      {
        type: 'ACKNOWLEDGE_BATCH',
        framework_id: { value: fw.id },
        acknowledge_batch: { agents: [group(a, running.slice(0, 2))], acknowledgements: [{ agent_id: b.agent_id, task_id: running[2]!.task_id, uuid: running[2]!.uuid }] },
      },
      sid,
    );
    expect(r.status).toBe(202);
    await until(() => acked(simOf(a)).length === 2 && acked(simOf(b)).length === 1);
    expect(acked(simOf(a)).sort()).toEqual([running[0]!.uuid, running[1]!.uuid].sort());
    expect(acked(simOf(b))).toEqual([running[2]!.uuid]);
  });
});

describe('the scheduler client: implied task fields and grouped acknowledgements', () => {
  const fakeMaster = fakeMastersClosedAfterEach();
  const ALL = ['GROUPED_STATUS_UPDATES', 'TASK_DEFAULTS', 'IMPLIED_TASK_FIELDS', 'GROUPED_ACKNOWLEDGEMENTS'];
  const OLDER = ['GROUPED_STATUS_UPDATES', 'TASK_DEFAULTS'];

  it("names each ACCEPT's agent once and leaves out names equal to task ids, only to a master that announces IMPLIED_TASK_FIELDS", async () => {
    const bytesPerTask: number[] = [];
    for (const caps of [ALL, OLDER]) {
      const fake = await fakeMaster(caps);
      const client = new SchedulerClient({ master: fake.url, framework: { user: 'u', name: 'implied' } });
      try {
        await client.subscribe();
        const resources = resourcesJson('cpus:1;mem:64');
        const task = (agent: string, id: string, name = id): V1TaskInfo => ({ name, task_id: { value: id }, agent_id: { value: agent }, resources, command: { value: 'sleep 1' } });
        const accepts: Array<Promise<unknown>> = [];
        for (let k = 0; k < 10; k++) {
          const agent = `0b1f3c2e-6a7d-4c8e-9f00-1234567890ab-S${k}`;
          accepts.push(
            client.accept([`o${k}`], [{ type: 'LAUNCH', launch: { task_infos: Array.from({ length: 10 }, (_, i) => task(agent, `t${k}-${i}`, k === 0 && i === 0 ? 'named' : undefined)) } }]),
          );
        }
        // One ACCEPT whose tasks are on two agents (refused by a master, but the client sends it as given).
        accepts.push(client.accept(['mixed'], [{ type: 'LAUNCH', launch: { task_infos: [task('a1', 'm1'), task('a2', 'm2')] } }]));
        await Promise.all(accepts);
        const entries = fake.batches.flatMap((b) => (b as { accepts: Array<{ agent_id?: { value: string }; operations: V1Operation[] }> }).accepts);
        const tasks = entries.map((e) => e.operations[0]!.launch!.task_infos);
        if (caps === ALL) {
          expect(entries.slice(0, 10).map((e) => e.agent_id?.value)).toEqual(Array.from({ length: 10 }, (_, k) => `0b1f3c2e-6a7d-4c8e-9f00-1234567890ab-S${k}`));
          expect(tasks[0]![0]).toEqual({ name: 'named', task_id: { value: 't0-0' } });
          expect(tasks[0]![1]).toEqual({ task_id: { value: 't0-1' } });
          expect(entries[10]!.agent_id).toBeUndefined();
          expect(tasks[10]).toEqual([
            { task_id: { value: 'm1' }, agent_id: { value: 'a1' } },
            { task_id: { value: 'm2' }, agent_id: { value: 'a2' } },
          ]);
        } else {
          expect(entries.every((e) => e.agent_id === undefined)).toBe(true);
          expect(tasks[0]![1]).toEqual({ name: 't0-1', task_id: { value: 't0-1' }, agent_id: { value: '0b1f3c2e-6a7d-4c8e-9f00-1234567890ab-S0' } });
        }
        bytesPerTask.push(fake.sizes.get('ACCEPT_BATCH')! / 102);
      } finally {
        await client.close();
      }
    }
    // The agent id was most of a task's bytes.
    expect(bytesPerTask[0]!).toBeLessThan(bytesPerTask[1]! * 0.6);
  });

  it("sends the ACCEPTs of a turn one by one when one is malformed (an untyped caller's), for the master to answer each", async () => {
    const fake = await fakeMaster(ALL);
    const client = new SchedulerClient({ master: fake.url, framework: { user: 'u', name: 'untyped' } });
    try {
      await client.subscribe();
      await Promise.all([client.accept(['o1'], null as unknown as V1Operation[]), client.accept(['o2'], [])]);
      expect(fake.types.filter((t) => t.startsWith('ACCEPT'))).toEqual(['ACCEPT', 'ACCEPT']);
      await Promise.all([client.accept(['o3'], []), client.accept(['o4'], [])]);
      expect(fake.types.filter((t) => t.startsWith('ACCEPT'))).toEqual(['ACCEPT', 'ACCEPT', 'ACCEPT_BATCH']);
    } finally {
      await client.close();
    }
  });

  it('groups the acknowledgements of one turn by agent, only to a master that announces GROUPED_ACKNOWLEDGEMENTS', async () => {
    for (const caps of [ALL, OLDER]) {
      const fake = await fakeMaster(caps);
      const client = new SchedulerClient({ master: fake.url, framework: { user: 'u', name: 'acks' } });
      try {
        await client.subscribe();
        const status = (agent: string, task: string, uuid: string): V1TaskStatus => ({ task_id: { value: task }, agent_id: { value: agent }, state: 'TASK_RUNNING', uuid });
        await Promise.all([client.acknowledge(status('a1', 't1', 'u1')), client.acknowledge(status('a2', 't2', 'u2')), client.acknowledge(status('a1', 't3', 'u3'))]);
        expect(fake.ackBatches).toHaveLength(1);
        if (caps === ALL) {
          expect(fake.ackBatches[0]).toEqual({
            agents: [
              {
                agent_id: { value: 'a1' },
                acknowledgements: [
                  { task_id: { value: 't1' }, uuid: 'u1' },
                  { task_id: { value: 't3' }, uuid: 'u3' },
                ],
              },
              { agent_id: { value: 'a2' }, acknowledgements: [{ task_id: { value: 't2' }, uuid: 'u2' }] },
            ],
          });
        } else {
          expect(fake.ackBatches[0]).toEqual({
            acknowledgements: [
              { agent_id: { value: 'a1' }, task_id: { value: 't1' }, uuid: 'u1' },
              { agent_id: { value: 'a2' }, task_id: { value: 't2' }, uuid: 'u2' },
              { agent_id: { value: 'a1' }, task_id: { value: 't3' }, uuid: 'u3' },
            ],
          });
        }
      } finally {
        await client.close();
      }
    }
  });
});

describe('the scheduler client against a master without ACCEPT_BATCH', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it('falls back to one ACCEPT per offer, for this batch and every later one', async () => {
    const seen: string[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const type = (JSON.parse(body) as { type: string }).type;
        seen.push(type);
        if (type === 'ACCEPT_BATCH') {
          res
            .writeHead(400, { 'content-type': 'application/json' })
            .end(JSON.stringify({ code: 'INVALID_ARGUMENT', message: 'scheduler API: unknown call type "ACCEPT_BATCH"; expected one of SUBSCRIBE, ACCEPT' }));
        } else res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const client = new SchedulerClient({ master: `http://127.0.0.1:${(server.address() as { port: number }).port}`, framework: { user: 'u', name: 'plain' } });
    try {
      const offer = (id: string): Promise<unknown> => client.accept([id], []);
      await Promise.all([offer('o1'), offer('o2')]);
      expect(seen).toEqual(['ACCEPT_BATCH', 'ACCEPT', 'ACCEPT']);
      await Promise.all([offer('o3'), offer('o4')]);
      expect(seen.slice(3)).toEqual(['ACCEPT', 'ACCEPT']);
    } finally {
      await client.close();
    }
  });
});
