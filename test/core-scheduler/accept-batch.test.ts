import { describe, it, expect, afterEach } from 'vitest';
import { createServer, type Server } from 'node:http';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { SchedulerClient } from '../../contracts/client/scheduler-client.js';
import { CallError } from '../../contracts/client/connection.js';
import { MAX_ACCEPTS } from '../../contracts/v1/v1-schema.js';
import type { V1Offer, V1Operation } from '../../contracts/v1/v1.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

async function cluster(agents: number): Promise<{ fw: TestFramework; offers: V1Offer[] }> {
  master = await startTestMaster();
  for (let i = 0; i < agents; i++) {
    const a = new SimAgent({ master: master.url, hostname: `h${i}`, resources: 'cpus:2;mem:1024' });
    cleanup.push(() => a.stop());
    await a.start();
  }
  const fw = new TestFramework(master.url);
  cleanup.push(() => fw.client.close());
  await fw.subscribe();
  const offers: V1Offer[] = [];
  while (offers.length < agents) offers.push(...(await fw.offers()));
  return { fw, offers };
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
