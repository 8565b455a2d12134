/**
 * The real agent with a CNI network: a native task joins the corral network
 * through the real plugin and node daemon, its IP travels in the status
 * update, and the daemon's leak reconciliation asks the agent which
 * containers are alive (GET /api/v1/containers): a leaked address is freed,
 * the live task's never, not even while the agent is down.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { testDir } from '../harness/resources.js';
import { startTestHost, type TestHost } from '../cni/helpers.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/daemon/client.js';
import type { V1TaskInfo } from '../../contracts/v1/v1.js';

let master: TestMaster;
let agent: AgentProcess;
let cni: TestHost;
let fw: TestFramework;
let dir: string;

const reconcileNow = (): Promise<unknown> => daemonRequest(cni.socket, 'POST', '/v1/reconcile');

beforeAll(async () => {
  dir = testDir('agent-network');
  mkdirSync(dir, { recursive: true });
  // The daemon lives in its own network namespace: it reaches the agent over the agent's unix socket.
  const apiSocket = join(dir, 'agent-api.sock');
  cni = await startTestHost('agn', {
    reconcile: {
      intervalMs: 0,
      graceMs: 0,
      releaseEmptyBlocksAfterMs: 0,
      keepEmptyBlocks: 0,
      sources: [{ type: 'http', url: 'http://agent/api/v1/containers', socketPath: apiSocket, timeoutMs: 2000 }],
    },
  });
  master = await startTestMaster({ agents: { heartbeatIntervalMs: 200, maxMissedHeartbeats: 3, unreachableTimeoutMs: 60_000, reregisterTimeoutMs: 60_000 } });
  agent = new AgentProcess({ master: master.url, dir, extra: { apiSocket } });
  writeFileSync(join(dir, 'cni', 'corral-test.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'corral-test', plugins: [{ type: 'corral', daemonSocket: cni.socket }] }));
  await agent.start();
  fw = new TestFramework(master.url, { name: 'agent-network-test' });
  await fw.subscribe();
}, 60_000);

afterAll(async () => {
  await fw?.client.close().catch(() => undefined);
  await agent?.cleanup();
  await master?.dispose();
  await cni?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('agent: CNI network and leak reconciliation', () => {
  it("gives a task its IP, frees a leaked one, never the live task's, and frees the task's when it ends", async () => {
    const [o] = await fw.offers(10_000);
    const task = {
      name: 'web',
      task_id: { value: 'web' },
      agent_id: o!.agent_id,
      resources: resourcesJson('cpus:0.1;mem:32'),
      command: { value: 'sleep 600' },
      container: { type: 'MESOS', network_infos: [{ name: 'corral-test' }] },
    } as V1TaskInfo;
    await fw.client.accept([o!.id.value], [{ type: 'LAUNCH', launch: { task_infos: [task] } }], 0);
    const running = await fw.update('web', 'TASK_RUNNING', 20_000);
    const ip = running.container_status?.network_infos?.[0]?.ip_addresses?.[0]?.ip_address;
    expect(ip).toMatch(/^100\.96\./);
    expect((await cni.allocations()).map((a) => a.ip)).toContain(ip);

    // An address whose container nobody runs: what a crash between ADD and launch leaves.
    const netns = await cni.container('leak');
    const add = await cni.cni({ command: 'ADD', containerId: 'leaked-container', netns, ifname: 'eth0' });
    expect(add.code).toBe(0);
    expect((await cni.allocations()).map((a) => a.containerId)).toContain('leaked-container');

    await reconcileNow();
    const after = await cni.allocations();
    expect(after.map((a) => a.containerId)).not.toContain('leaked-container');
    expect(after.map((a) => a.ip)).toContain(ip);

    // The agent is down: the daemon cannot know what lives, so it frees nothing.
    await agent.stop('SIGKILL');
    await reconcileNow().catch(() => undefined);
    expect((await cni.allocations()).map((a) => a.ip)).toContain(ip);
    await agent.start();

    await fw.client.kill('web');
    await fw.update('web', 'TASK_KILLED', 20_000);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await cni.allocations()).some((a) => a.ip === ip)) await new Promise((r) => setTimeout(r, 100));
    expect((await cni.allocations()).map((a) => a.ip)).not.toContain(ip);
  });
});
