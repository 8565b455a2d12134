import { describe, it, expect } from 'vitest';
import { batchUpdateEvents, expandUpdateBatch, type UpdateBatchEvent } from '../../contracts/v1/update-batch.js';
import type { SchedulerEvent, V1TaskStatus } from '../../contracts/v1/v1.js';

const agentA = { value: 'agent-a' };
const status = (task: string, more: Partial<V1TaskStatus> = {}): V1TaskStatus => ({
  task_id: { value: task },
  state: 'TASK_RUNNING',
  source: 'SOURCE_EXECUTOR',
  uuid: `uuid-of-${task}`,
  timestamp: 1_800_000_000.5,
  agent_id: agentA,
  ...more,
});
const update = (s: V1TaskStatus): SchedulerEvent => ({ type: 'UPDATE', update: { status: s } });
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** What a framework's client hands on for the records, through JSON as on the wire. */
const received = (records: unknown[]): SchedulerEvent[] => copy(records).flatMap((r) => expandUpdateBatch(r as Record<string, unknown>) ?? [r as SchedulerEvent]);

describe('update batches', () => {
  it("sends what one agent's updates share once, and gives every update back exactly as it was, in order", () => {
    const events = [
      update(status('t1')),
      update(status('t2', { message: 'started', timestamp: 1_800_000_001 })),
      update(status('t3', { healthy: true, reason: 'REASON_TASK_HEALTH_CHECK_STATUS_UPDATED' })),
    ];
    const records = batchUpdateEvents(events);
    expect(records).toHaveLength(1);
    const batch = (records[0] as UpdateBatchEvent).update_batch;
    // The agent is compared by value, as a copy of the same id is the same agent.
    expect(batch.status_defaults).toEqual({ state: 'TASK_RUNNING', source: 'SOURCE_EXECUTOR', agent_id: agentA });
    expect(batch.statuses[0]).toEqual({ task_id: { value: 't1' }, uuid: 'uuid-of-t1', timestamp: 1_800_000_000.5 });
    expect(batch.statuses[1]).toEqual({ task_id: { value: 't2' }, uuid: 'uuid-of-t2', timestamp: 1_800_000_001, message: 'started' });
    expect(received(records)).toEqual(copy(events));
    // What a framework parses for each update: well under half the bytes of an UPDATE record each.
    expect(JSON.stringify(records).length).toBeLessThan(JSON.stringify(events).length * 0.7);
  });

  it('batches only runs of two or more updates of one agent; every other event stays as it is, in its place', () => {
    const agentB = { value: 'agent-b' };
    const events: SchedulerEvent[] = [
      update(status('lone')),
      { type: 'HEARTBEAT' },
      update(status('a1')),
      update(status('a2', { agent_id: { value: 'agent-a' } })),
      update(status('b1', { agent_id: agentB })),
      update(status('b2', { agent_id: agentB })),
      update(status('b3', { agent_id: agentB, state: 'TASK_FAILED', source: 'SOURCE_AGENT' })),
      { type: 'RESCIND', rescind: { offer_id: { value: 'o1' } } },
      update(status('a3')),
    ];
    const records = batchUpdateEvents(events);
    expect(records.map((r) => r.type)).toEqual(['UPDATE', 'HEARTBEAT', 'UPDATE_BATCH', 'UPDATE_BATCH', 'RESCIND', 'UPDATE']);
    const b = (records[3] as UpdateBatchEvent).update_batch;
    // A field that differs stays with each status.
    expect(b.status_defaults).toEqual({ agent_id: agentB, timestamp: 1_800_000_000.5 });
    expect(b.statuses[2]).toMatchObject({ state: 'TASK_FAILED', source: 'SOURCE_AGENT' });
    expect(received(records)).toEqual(copy(events));
  });

  it('leaves updates without an agent (a master-made status names one, but nothing relies on it) unbatched', () => {
    const noAgent = (task: string): SchedulerEvent => {
      const s: Partial<V1TaskStatus> = status(task);
      delete s.agent_id;
      return update(s as V1TaskStatus);
    };
    const events = [noAgent('x'), noAgent('y')];
    expect(batchUpdateEvents(events)).toEqual(events);
  });

  it('refuses a malformed batch record with a clear error, and leaves every other record to its reader', () => {
    expect(expandUpdateBatch({ type: 'UPDATE', update: { status: status('t') } })).toBeUndefined();
    expect(() => expandUpdateBatch({ type: 'UPDATE_BATCH' })).toThrow(/without update_batch.statuses/);
    expect(() => expandUpdateBatch({ type: 'UPDATE_BATCH' })).toThrow(expect.objectContaining({ code: 'MALFORMED_REQUEST' }));
    expect(() => expandUpdateBatch({ type: 'UPDATE_BATCH', update_batch: { statuses: {} } })).toThrow(/without update_batch.statuses/);
    expect(() => expandUpdateBatch({ type: 'UPDATE_BATCH', update_batch: { statuses: [null] } })).toThrow(/not an object/);
    // No defaults: each status is taken as it is.
    expect(expandUpdateBatch({ type: 'UPDATE_BATCH', update_batch: { statuses: [status('t')] } })).toEqual([update(status('t'))]);
  });
});
