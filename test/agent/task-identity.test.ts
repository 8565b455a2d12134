/**
 * Who a task runs as, through a real master and agent: the framework's user
 * when the command names none, command.user over it, an unknown user and root
 * refused with TASK_ERROR (the agent here has allowRootTasks: false), and the
 * agent's work directory — its checkpoint, other tasks' sandboxes — hidden
 * from the task (kept outside /tmp, which tasks get a fresh copy of, so the
 * mask is what hides it).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTestMaster, type TestMaster } from '../harness/master.js';
import { TestFramework, resourcesJson } from '../harness/framework.js';
import { AgentProcess } from '../harness/agent-process.js';
import { testDir } from '../harness/resources.js';
import type { V1TaskInfo } from '../../contracts/v1/v1.js';

let master: TestMaster;
let agent: AgentProcess;
let dir: string;
const workDir = `/var/tmp/ct-ident-${randomBytes(3).toString('hex')}`;
const frameworks: TestFramework[] = [];

async function framework(user: string): Promise<TestFramework> {
  const f = new TestFramework(master.url, { user, name: `identity-${user}` });
  frameworks.push(f);
  await f.subscribe();
  return f;
}

/** Launches `tasks` (id → TaskInfo fields) on the framework's next offer. */
async function launch(f: TestFramework, tasks: Record<string, Partial<V1TaskInfo>>): Promise<void> {
  const [o] = await f.offers(15_000);
  const infos = Object.entries(tasks).map(([id, t]) => ({ name: id, task_id: { value: id }, agent_id: o!.agent_id, resources: resourcesJson('cpus:0.1;mem:32'), ...t }) as V1TaskInfo);
  await f.client.accept([o!.id.value], [{ type: 'LAUNCH', launch: { task_infos: infos } }], 0);
}

const logs = async (taskId: string): Promise<string> => (await fetch(`${agent.url}/api/v1/logs?task_id=${taskId}`)).text();

beforeAll(async () => {
  dir = testDir('agent-identity');
  master = await startTestMaster();
  agent = new AgentProcess({ master: master.url, dir, extra: { workDir, allowRootTasks: false } });
  await agent.start();
});

afterAll(async () => {
  for (const f of frameworks) await f.client.close().catch(() => undefined);
  await agent?.cleanup();
  await master?.dispose();
  rmSync(dir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
});

describe('agent: task identity', () => {
  it("runs a task as its framework's user, command.user over it; the agent's work directory is hidden", async () => {
    const f = await framework('daemon');
    await launch(f, {
      fwuser: { command: { value: `id -u; ls ${workDir}/sandboxes/*/ | wc -l; test -e ${workDir}/agent.db && echo leaked || echo hidden; sleep 1` } },
      cmduser: { command: { value: 'id -u', user: 'nobody' } },
    });
    await f.update('fwuser', 'TASK_FINISHED', 20_000);
    await f.update('cmduser', 'TASK_FINISHED', 20_000);
    expect(existsSync(join(workDir, 'agent.db'))).toBe(true); // there on the host…
    // …not in the task: it sees its own sandbox only, as the framework's user.
    expect((await logs('fwuser')).trim().split('\n')).toEqual(['1', '1', 'hidden']);
    expect((await logs('cmduser')).trim()).toBe('65534');
    await f.client.teardown();
  });

  it('an unknown user and root (refused by this agent) end in TASK_ERROR with the reason', async () => {
    const f = await framework('nobody');
    await launch(f, { ghost: { command: { value: 'true', user: 'no-such-user' } }, rooted: { command: { value: 'true', user: 'root' } } });
    const ghost = await f.update('ghost', 'TASK_ERROR', 20_000);
    expect(ghost.message).toMatch(/unknown user "no-such-user"/);
    expect(ghost.reason).toBe('REASON_TASK_INVALID');
    expect((await f.update('rooted', 'TASK_ERROR', 20_000)).message).toMatch(/would run as root .*allowRootTasks: false/);
    await f.client.teardown();
    const unknownFw = await framework('no-such-framework-user');
    await launch(unknownFw, { orphan: { command: { value: 'true' } } });
    expect((await unknownFw.update('orphan', 'TASK_ERROR', 20_000)).message).toMatch(/unknown user "no-such-framework-user"/);
    await unknownFw.client.teardown();
  });
});
