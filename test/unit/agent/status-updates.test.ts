import { describe, expect, it } from 'vitest';
import { StatusUpdateManager, type PendingUpdate } from '../../../core-scheduler/src/agent/status-updates.js';
import type { V1TaskStatus } from '../../../contracts/v1/v1.js';

type Sent = Array<{ framework_id: { value: string }; status: V1TaskStatus }>;

function manager(opts: { retryMs?: number } = {}) {
  const sent: Sent[] = [];
  const changes: Array<[string, string, number]> = [];
  const acked: string[] = [];
  const m = new StatusUpdateManager({
    // Flattened back to one entry per status: the tests read the order of the statuses.
    send: async (groups) => void sent.push(groups.flatMap((g) => g.statuses.map((s) => ({ framework_id: g.framework_id, status: s })))),
    canSend: () => true,
    initialRetryMs: opts.retryMs ?? 60_000,
    onQueueChanged: (fw, task, q) => changes.push([fw, task, q.length]),
    onAcknowledged: (_fw, s) => acked.push(`${s.task_id.value}:${s.state}`),
  });
  return { m, sent, changes, acked };
}

const status = (task: string, state: V1TaskStatus['state']): V1TaskStatus => ({ task_id: { value: task }, state, source: 'SOURCE_EXECUTOR' });
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('StatusUpdateManager', () => {
  it("sends a task's updates one at a time, the next after the previous is acknowledged, and batches a turn's updates", async () => {
    const { m, sent, acked } = manager();
    const r1 = m.add('fw', status('a', 'TASK_STARTING'));
    m.add('fw', status('a', 'TASK_RUNNING'));
    const b1 = m.add('fw', status('b', 'TASK_RUNNING'));
    m.add('other', status('a', 'TASK_RUNNING'));
    await turn();
    // One call for the turn: a's first update, b's, and the other framework's task "a" (a different task).
    expect(sent).toHaveLength(1);
    expect(sent[0]!.map((u) => `${u.framework_id.value}/${u.status.task_id.value}:${u.status.state}`)).toEqual(['fw/a:TASK_STARTING', 'fw/b:TASK_RUNNING', 'other/a:TASK_RUNNING']);
    expect(r1.uuid).toMatch(/==$/);
    expect(m.latestPending('fw', 'a')?.state).toBe('TASK_RUNNING');
    expect(m.hasPending('fw', 'b')).toBe(true);
    // A stale or unknown acknowledgement changes nothing.
    expect(m.acknowledge('fw', 'a', b1.uuid!)).toBe(false);
    expect(m.acknowledge('nobody', 'a', r1.uuid!)).toBe(false);
    expect(m.acknowledge('fw', 'a', r1.uuid!)).toBe(true);
    expect(m.acknowledge('fw', 'a', r1.uuid!)).toBe(false);
    await turn();
    expect(sent[1]!.map((u) => u.status.state)).toEqual(['TASK_RUNNING']);
    expect(m.acknowledge('fw', 'b', b1.uuid!)).toBe(true);
    expect(m.hasPending('fw', 'b')).toBe(false);
    expect(acked).toEqual(['a:TASK_STARTING', 'b:TASK_RUNNING']);
    expect(
      m
        .pending()
        .map((p) => `${p.frameworkId}/${p.status.task_id.value}`)
        .sort(),
    ).toEqual(['fw/a', 'other/a']);
  });

  it("forgets a framework's updates, telling the checkpoint of each task", async () => {
    const { m, changes } = manager();
    m.add('fw', status('a', 'TASK_RUNNING'));
    m.add('fw', status('b', 'TASK_RUNNING'));
    m.add('keep', status('c', 'TASK_RUNNING'));
    changes.length = 0;
    m.dropFramework('fw');
    expect(changes.sort()).toEqual([
      ['fw', 'a', 0],
      ['fw', 'b', 0],
    ]);
    expect(m.pending().map((p) => p.frameworkId)).toEqual(['keep']);
    m.dropFramework('fw');
    m.stop();
  });

  it('resends an unacknowledged head after its backoff, and restores a checkpoint', async () => {
    const { m, sent } = manager({ retryMs: 30 });
    const s = m.add('fw', status('a', 'TASK_RUNNING'));
    await new Promise((r) => setTimeout(r, 120));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.every((batch) => batch[0]!.status.uuid === s.uuid)).toBe(true);
    m.stop();

    const restored = manager();
    const checkpoint: PendingUpdate[] = [{ frameworkId: 'fw', status: { ...status('x', 'TASK_FINISHED'), uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' } }];
    restored.m.restore(checkpoint);
    expect(restored.m.latestPending('fw', 'x')?.state).toBe('TASK_FINISHED');
    restored.m.resendAll();
    await turn();
    expect(restored.sent[0]!.map((u) => u.status.task_id.value)).toEqual(['x']);
    restored.m.stop();
  });
});
