import { describe, it, expect } from 'vitest';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { stopsAfterEach } from '../harness/teardown.js';
import { SimAgent } from '../../core-scheduler/src/sim/sim-agent.js';
import { SchedulerClient, isUpdate } from '../../contracts/client/scheduler-client.js';
import { Resources } from '../../core-scheduler/src/resources/resources.js';
import { parseResources } from '../../core-scheduler/src/resources/parse.js';
import type { SchedulerEvent } from '../../contracts/v1/v1.js';

let master: TestMaster | undefined;
const cleanup = stopsAfterEach(async () => {
  await master?.dispose();
  master = undefined;
});

/** A framework that launches one task per offer while it fits, and declines for good otherwise. */
function progressiveFramework(url: string, name: string, task: string): { client: SchedulerClient; running: Set<string> } {
  const need = parseResources(task);
  const running = new Set<string>();
  let n = 0;
  const client = new SchedulerClient({
    master: url,
    framework: { user: 'test', name },
    onEvent: (e: SchedulerEvent, c) => {
      if (e.type === 'OFFERS') {
        for (const offer of e.offers.offers) {
          const offered = Resources.fromV1(offer.resources);
          if (offered.contains(need)) {
            const id = `${name}-${n++}`;
            void c.accept(
              [offer.id.value],
              [{ type: 'LAUNCH', launch: { task_infos: [{ name: id, task_id: { value: id }, agent_id: offer.agent_id, resources: need.toV1(), command: { value: 'sleep 1000' } }] } }],
              0,
            );
          } else {
            void c.decline([offer.id.value], 3600);
          }
        }
      } else if (isUpdate(e)) {
        if (e.update.status.state === 'TASK_RUNNING') running.add(e.update.status.task_id.value);
        if (e.update.status.uuid) void c.acknowledge(e.update.status);
      }
    },
  });
  return { client, running };
}

describe('DRF through the scheduler HTTP API', () => {
  it('9 CPUs, 18 GB: A (<1 CPU, 4 GB> tasks) ends with 3 tasks, B (<3 CPU, 1 GB>) with 2', async () => {
    master = await startTestMaster();
    const agent = new SimAgent({ master: master.url, hostname: 'node-1', resources: 'cpus:9;mem:18432' });
    cleanup.push(() => agent.stop());
    await agent.start();
    const a = progressiveFramework(master.url, 'A', 'cpus:1;mem:4096');
    const b = progressiveFramework(master.url, 'B', 'cpus:3;mem:1024');
    cleanup.push(
      () => a.client.close(),
      () => b.client.close(),
    );
    await a.client.subscribe();
    await b.client.subscribe();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (a.running.size < 3 || b.running.size < 2)) await new Promise((r) => setTimeout(r, 50));
    // Give the allocator a few more rounds to prove nothing else gets launched.
    await new Promise((r) => setTimeout(r, 500));
    expect(a.running.size).toBe(3);
    expect(b.running.size).toBe(2);
    const shares = master.master.allocator;
    expect(shares.frameworkShare(a.client.frameworkId!, '*')).toBeCloseTo(2 / 3, 5);
    expect(shares.frameworkShare(b.client.frameworkId!, '*')).toBeCloseTo(2 / 3, 5);
  });
});
