/**
 * The agent's checkpoint on a real SQLite file: what is written comes back
 * after a reopen (as after an agent restart), a task's state changes are
 * applied over its launch record, values are taken at commit time, removed
 * tasks leave nothing, a checkpoint in the earlier store layout is carried
 * over, the WAL is copied back when writes go quiet, and a second agent
 * cannot open the same file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Checkpoint, type TaskCheckpoint } from '../../../core-scheduler/src/agent/checkpoint.js';
import { EmbeddedStore } from '../../../common/store/embedded.js';
import type { ContainerConfig } from '../../../contracts/containerizer.js';

let dirs: string[] = [];
const dbPath = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'corral-cp-'));
  dirs.push(d);
  return join(d, 'agent.db');
};
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function task(id: string): TaskCheckpoint {
  const container: ContainerConfig = {
    containerId: `c-${id}`,
    frameworkId: 'fw1',
    taskId: id,
    sandbox: `/tmp/sb/${id}`,
    resources: { cpus: 0.1, memMb: 16, diskMb: 0, gpus: 0, ports: [] },
    limits: {},
    volumes: [],
    network: { mode: 'host' },
    logs: { stdout: 'stdout', stderr: 'stderr', maxBytes: 1024, maxFiles: 2 },
    labels: {},
  };
  return {
    frameworkId: 'fw1',
    containerizer: 'MESOS',
    container,
    launchedAt: 1000,
    task: { name: id, task_id: { value: id }, agent_id: { value: 'a1' }, resources: [], command: { value: 'sleep 300' } },
    state: 'TASK_STARTING',
    status: { task_id: { value: id }, state: 'TASK_STARTING', uuid: 'u1' },
    killRequested: false,
  };
}

describe('agent checkpoint', () => {
  it("gives back after a reopen what was written, with each task's latest state", async () => {
    const path = dbPath();
    const cp = await Checkpoint.open(path);
    cp.setAgentId('agent-1');
    cp.setCheckpointedResources([{ name: 'disk', type: 'SCALAR', scalar: { value: 10 } }]);
    cp.putFramework({ name: 'fw', user: 'root', id: { value: 'fw1' } });
    const t = task('t1');
    cp.putTask(t);
    cp.setUpdates('fw1', 't1', [{ frameworkId: 'fw1', status: t.status, sentAt: 5, backoffMs: 10 }]);
    await cp.flushed();
    t.state = 'TASK_KILLED';
    t.status = { task_id: { value: 't1' }, state: 'TASK_KILLED', uuid: 'u2' };
    t.killRequested = true;
    t.endedAt = 2000;
    cp.putTask(t);
    await cp.close();

    const again = await Checkpoint.open(path);
    const state = await again.load();
    await again.close();
    expect(state.agentId).toBe('agent-1');
    expect(state.checkpointedResources).toEqual([{ name: 'disk', type: 'SCALAR', scalar: { value: 10 } }]);
    expect(state.frameworks).toEqual([{ name: 'fw', user: 'root', id: { value: 'fw1' } }]);
    expect(state.tasks).toEqual([t]);
    // Send bookkeeping is not checkpointed.
    expect(state.updates).toEqual([{ frameworkId: 'fw1', status: { task_id: { value: 't1' }, state: 'TASK_STARTING', uuid: 'u1' } }]);
  });

  it('writes a record as it is at commit time, and a queue emptied in the same turn not at all', async () => {
    const path = dbPath();
    const cp = await Checkpoint.open(path);
    const t = task('t1');
    const queue = [{ frameworkId: 'fw1', status: t.status }];
    cp.putTask(t);
    cp.setUpdates('fw1', 't1', queue);
    t.state = 'TASK_RUNNING';
    queue.length = 0;
    await cp.close();
    const again = await Checkpoint.open(path);
    const state = await again.load();
    await again.close();
    expect(state.tasks.map((x) => x.state)).toEqual(['TASK_RUNNING']);
    expect(state.updates).toEqual([]);
  });

  it("leaves nothing of a removed task, and writes a recovered task's state over its old record", async () => {
    const path = dbPath();
    const cp = await Checkpoint.open(path);
    cp.putTask(task('gone'));
    cp.putTask(task('kept'));
    cp.setUpdates('fw1', 'gone', [{ frameworkId: 'fw1', status: task('gone').status }]);
    await cp.flushed();
    cp.removeTask('fw1', 'gone');
    await cp.close();

    const second = await Checkpoint.open(path);
    const [kept] = (await second.load()).tasks;
    expect(kept?.task.task_id.value).toBe('kept');
    kept!.state = 'TASK_FAILED';
    second.putTask(kept!);
    await second.close();

    const db = new Database(path, { readonly: true });
    const keys = (db.prepare('SELECT key FROM checkpoint ORDER BY key').all() as { key: string }[]).map((r) => r.key);
    db.close();
    expect(keys).toEqual(['agent/task-states/fw1/kept', 'agent/tasks/fw1/kept']);
    const third = await Checkpoint.open(path);
    expect((await third.load()).tasks.map((x) => [x.task.task_id.value, x.state])).toEqual([['kept', 'TASK_FAILED']]);
    await third.close();
  });

  it('carries over a checkpoint in the earlier store layout', async () => {
    const path = dbPath();
    const old = new EmbeddedStore({ path, sync: 'normal' });
    const t = task('t1');
    await old.put('agent/id', 'agent-7');
    await old.put('agent/frameworks/fw1', JSON.stringify({ name: 'fw', id: { value: 'fw1' } }));
    await old.put('agent/tasks/fw1/t1', JSON.stringify(t));
    await old.put('agent/updates/fw1/t1', JSON.stringify([{ frameworkId: 'fw1', status: t.status }]));
    await old.close();

    const cp = await Checkpoint.open(path);
    const state = await cp.load();
    expect(state.agentId).toBe('agent-7');
    expect(state.frameworks).toEqual([{ name: 'fw', id: { value: 'fw1' } }]);
    expect(state.tasks).toEqual([t]);
    expect(state.updates).toEqual([{ frameworkId: 'fw1', status: t.status }]);
    t.state = 'TASK_RUNNING';
    cp.putTask(t);
    await cp.close();
    const again = await Checkpoint.open(path);
    expect((await again.load()).tasks).toEqual([t]);
    await again.close();
  });

  it('copies the WAL back into the database once writes have gone quiet', async () => {
    const path = dbPath();
    const cp = await Checkpoint.open(path);
    for (let i = 0; i < 50; i++) cp.putTask(task(`t${i}`));
    await cp.flushed();
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    const deadline = Date.now() + 20_000;
    while (statSync(`${path}-wal`).size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(statSync(`${path}-wal`).size).toBe(0);
    await cp.close();
    const again = await Checkpoint.open(path);
    expect((await again.load()).tasks).toHaveLength(50);
    await again.close();
  });

  it('refuses a second opener of the same file', async () => {
    const path = dbPath();
    const cp = await Checkpoint.open(path);
    await expect(Checkpoint.open(path)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await cp.close();
  });
});
