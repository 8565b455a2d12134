/**
 * Update batches against the real master: a framework that asks when it
 * subscribes gets the updates of one agent call as one UPDATE_BATCH record;
 * every other framework gets an UPDATE record each, as from Mesos. The
 * scheduler client asks, and hands on each update as its own UPDATE event.
 */
import { describe, it, expect } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { until } from '../harness/wait.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { V1Connection } from '../../contracts/client/connection.js';
import { SchedulerClient } from '../../contracts/client/scheduler-client.js';
import { expandUpdateBatch, UPDATE_BATCHES_HEADER, type UpdateBatchEvent } from '../../contracts/v1/update-batch.js';
import type { SchedulerEvent, V1Offer } from '../../contracts/v1/v1.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

async function clusterWithAgent(): Promise<{ url: string; agent: SimAgent }> {
  master = await startTestMaster();
  const agent = new SimAgent({ master: master.url, hostname: 'h1', resources: 'cpus:4;mem:4096' });
  cleanup.push(() => agent.stop());
  await agent.start();
  return { url: master.url, agent };
}

/** A framework on a bare connection, keeping the records as they arrive (no client between). */
async function rawFramework(url: string, headers?: Record<string, string>): Promise<{ conn: V1Connection; records: Array<Record<string, unknown>>; id: () => string }> {
  const conn = new V1Connection({ master: url, path: '/api/v1/scheduler' });
  cleanup.push(() => conn.close());
  const records: Array<Record<string, unknown>> = [];
  await conn.subscribe({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: '', name: 'raw' } } }, (r) => records.push(r), headers);
  const id = (): string => (records.find((r) => r.type === 'SUBSCRIBED') as Extract<SchedulerEvent, { type: 'SUBSCRIBED' }>).subscribed.framework_id.value;
  await until(() => records.some((r) => r.type === 'SUBSCRIBED'), 10_000, 'SUBSCRIBED');
  return { conn, records, id };
}

/** Three 1-CPU tasks on the first offer, in one ACCEPT. */
async function launchThree(fw: Awaited<ReturnType<typeof rawFramework>>): Promise<string[]> {
  await until(() => fw.records.some((r) => r.type === 'OFFERS'), 10_000, 'offers');
  const offer = (fw.records.find((r) => r.type === 'OFFERS') as Extract<SchedulerEvent, { type: 'OFFERS' }>).offers.offers[0] as V1Offer;
  const ids = ['t1', 't2', 't3'];
  const task_infos = ids.map((id) => ({
    name: id,
    task_id: { value: id },
    agent_id: offer.agent_id,
    resources: resourcesJson('cpus:1;mem:64', offer.allocation_info.role),
    command: { value: 'sleep 1000' },
  }));
  await fw.conn.call({ type: 'ACCEPT', framework_id: { value: fw.id() }, accept: { offer_ids: [offer.id], operations: [{ type: 'LAUNCH', launch: { task_infos } }] } });
  return ids;
}

/** The updates a framework's records stand for. */
const updatesIn = (records: Array<Record<string, unknown>>): Array<Extract<SchedulerEvent, { type: 'UPDATE' }>> =>
  records.flatMap((r) => (expandUpdateBatch(r) ?? [r as SchedulerEvent]).filter((e): e is Extract<SchedulerEvent, { type: 'UPDATE' }> => e.type === 'UPDATE'));

describe('update batches', () => {
  it('announces UPDATE_BATCHES; a stream that asks gets the updates of one agent call as one record, with what they share once', async () => {
    const { url } = await clusterWithAgent();
    const fw = await rawFramework(url, { [UPDATE_BATCHES_HEADER]: '1' });
    const subscribed = fw.records.find((r) => r.type === 'SUBSCRIBED') as Extract<SchedulerEvent, { type: 'SUBSCRIBED' }>;
    expect(subscribed.subscribed.master_info.capabilities).toContainEqual({ type: 'UPDATE_BATCHES' });
    const ids = await launchThree(fw);
    await until(() => updatesIn(fw.records).length === 3, 10_000, 'three updates');
    // The agent reports the three tasks of its LAUNCH in one call: one record.
    const batches = fw.records.filter((r) => r.type === 'UPDATE_BATCH') as unknown as UpdateBatchEvent[];
    expect(fw.records.filter((r) => r.type === 'UPDATE')).toEqual([]);
    expect(batches).toHaveLength(1);
    const { status_defaults, statuses } = batches[0]!.update_batch;
    expect(status_defaults).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', agent_id: { value: expect.any(String) } });
    expect(statuses.map((s) => s.task_id?.value)).toEqual(ids);
    for (const s of statuses) expect(s.state).toBeUndefined();
    // Each update, expanded, is a whole status with its own uuid to acknowledge.
    for (const u of updatesIn(fw.records)) expect(Object.keys(u.update.status).sort()).toEqual(['agent_id', 'source', 'state', 'task_id', 'timestamp', 'uuid']);
  });

  it('sends an UPDATE record per update to a stream that does not ask (any Mesos framework), or asks with another value', async () => {
    const { url } = await clusterWithAgent();
    const fw = await rawFramework(url, { [UPDATE_BATCHES_HEADER]: 'yes' });
    const ids = await launchThree(fw);
    await until(() => updatesIn(fw.records).length === 3, 10_000, 'three updates');
    expect(fw.records.filter((r) => r.type === 'UPDATE_BATCH')).toEqual([]);
    const updates = fw.records.filter((r) => r.type === 'UPDATE') as Array<Extract<SchedulerEvent, { type: 'UPDATE' }>>;
    expect(updates.map((u) => u.update.status.task_id.value)).toEqual(ids);
    expect(updates[0]!.update.status).toMatchObject({ state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', agent_id: { value: expect.any(String) } });
  });

  it("is what the scheduler client asks for; a framework's code gets each update as an UPDATE event and acknowledges it", async () => {
    const { url, agent } = await clusterWithAgent();
    const fw = new TestFramework(url);
    cleanup.push(() => fw.client.close());
    await fw.subscribe();
    const [offer] = await fw.offers();
    await fw.launch(offer!, [
      { id: 'c1', resources: 'cpus:1;mem:64' },
      { id: 'c2', resources: 'cpus:1;mem:64' },
      { id: 'c3', resources: 'cpus:1;mem:64' },
    ]);
    for (const id of ['c1', 'c2', 'c3']) {
      const s = await fw.update(id, 'TASK_RUNNING', 10_000);
      expect(s).toMatchObject({ task_id: { value: id }, source: 'SOURCE_EXECUTOR', agent_id: offer!.agent_id, uuid: expect.any(String), timestamp: expect.any(Number) });
    }
    expect(fw.events.some((e) => (e.type as string) === 'UPDATE_BATCH')).toBe(false);
    // The acknowledgements reach the agent: it stops resending.
    const acked = (): Set<string> =>
      new Set(
        agent.received.flatMap((e) =>
          e.type === 'ACKNOWLEDGE_BATCH' ? e.acknowledge_batch.acknowledgements.map((a) => a.task_id.value) : e.type === 'ACKNOWLEDGE' ? [e.acknowledge.task_id.value] : [],
        ),
      );
    await until(() => acked().size === 3, 10_000, 'three acknowledgements at the agent');
  });

  it('asks with the header on SUBSCRIBE unless told not to', async () => {
    const seen: Array<string | string[] | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers[UPDATE_BATCHES_HEADER]);
      req.resume();
      res.writeHead(400, { 'content-type': 'text/plain' }).end('not a master');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const updateBatches of [undefined, false]) {
      const client = new SchedulerClient({ master: url, framework: { user: '', name: 'header' }, ...(updateBatches === false ? { updateBatches } : {}) });
      await expect(client.subscribe()).rejects.toThrow(/not a master/);
      await client.close();
    }
    expect(seen).toEqual(['1', undefined]);
  });
});
