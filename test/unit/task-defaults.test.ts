import { describe, it, expect } from 'vitest';
import { factorTaskDefaults, fillImpliedTaskFields, fillTaskDefaults, omitImpliedTaskFields } from '../../contracts/v1/task-defaults.js';
import { applyAcceptBatchDefaults } from '../../core-scheduler/src/master/http/accept-batch-defaults.js';
import type { V1TaskInfo } from '../../contracts/v1/v1.js';
import { CorralError } from '../../contracts/errors.js';

const cpus = (n: number): V1TaskInfo['resources'] => [
  { name: 'cpus', type: 'SCALAR', scalar: { value: n } },
  { name: 'mem', type: 'SCALAR', scalar: { value: 64 } },
];
const task = (id: string, more: Partial<V1TaskInfo> = {}): V1TaskInfo => ({ name: id, task_id: { value: id }, agent_id: { value: 'a1' }, resources: cpus(1), command: { value: 'sleep 9' }, ...more });
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** What a receiver rebuilds from the factored form, through JSON as on the wire. */
function roundTrip(tasks: V1TaskInfo[], how: 'reference' | 'content'): { sent: V1TaskInfo[]; defaults: unknown; back: V1TaskInfo[] } {
  const { defaults, tasks: sent } = factorTaskDefaults(tasks, how);
  const wire = copy({ defaults, sent });
  for (const t of wire.sent) if (wire.defaults) fillTaskDefaults(t, wire.defaults);
  return { sent: copy(sent), defaults: wire.defaults, back: wire.sent };
}

describe('task defaults', () => {
  it('sends what the tasks share once and gives every task back exactly as it was', () => {
    const docker = task('d', { command: undefined, container: { type: 'DOCKER', docker: { image: 'busybox' } } });
    delete docker.command;
    const tasks = [task('a'), task('b'), task('own-resources', { resources: cpus(2) }), task('own-command', { command: { value: 'echo hi' } }), docker, task('no-resources', { resources: [] })];
    const { sent, defaults, back } = roundTrip(tasks, 'content');
    expect(defaults).toEqual({ resources: cpus(1), command: { value: 'sleep 9' } });
    expect(sent[0]).toEqual({ name: 'a', task_id: { value: 'a' }, agent_id: { value: 'a1' } });
    expect(sent[2]!.resources).toEqual(cpus(2));
    expect(sent[2]!.command).toBeUndefined();
    expect(sent[3]!.command).toEqual({ value: 'echo hi' });
    // A task with a container may run without a command: it never takes the defaults'.
    expect(back[4]!.command).toBeUndefined();
    expect(sent[5]!.resources).toEqual([]);
    expect(back).toEqual(copy(tasks));
  });

  it('compares by reference only when asked to (a master does not pay for deep comparisons)', () => {
    const shared = cpus(1);
    const tasks = [task('a', { resources: shared }), task('b', { resources: shared }), task('c')];
    const { sent, back } = roundTrip(tasks, 'reference');
    expect(sent[1]!.resources).toBeUndefined();
    expect(sent[2]!.resources).toEqual(cpus(1));
    expect(back).toEqual(copy(tasks));
  });

  it('gives no defaults when fewer than two tasks share anything', () => {
    expect(factorTaskDefaults([task('a')], 'content').defaults).toBeUndefined();
    const lone = factorTaskDefaults([task('a'), task('b', { resources: cpus(3), command: { value: 'x' } })], 'content');
    expect(lone.defaults).toBeUndefined();
    expect(lone.tasks[1]!.resources).toEqual(cpus(3));
  });

  it('fills an ACCEPT_BATCH before validation, takes the defaults off, and refuses malformed ones by name', () => {
    const call = {
      type: 'ACCEPT_BATCH',
      accept_batch: {
        task_defaults: { resources: cpus(1), command: { value: 'sleep 9' } },
        accepts: [{ offer_ids: [{ value: 'o' }], operations: [{ type: 'LAUNCH', launch: { task_infos: [{ name: 'a', task_id: { value: 'a' }, agent_id: { value: 'a1' } }] } }] }],
      },
    };
    applyAcceptBatchDefaults(call);
    expect(call.accept_batch.task_defaults).toBeUndefined();
    expect(call.accept_batch.accepts[0]!.operations[0]!.launch.task_infos[0]).toEqual(task('a'));
    for (const [bad, why] of [
      [{ resources: [{ name: 'cpus' }] }, /accept_batch\.task_defaults: resources\.0/],
      [{ container: { type: 'DOCKER' } }, /accept_batch\.task_defaults: .*container/],
      ['cpus:1', /accept_batch\.task_defaults/],
    ] as const) {
      const wrong = { type: 'ACCEPT_BATCH', accept_batch: { task_defaults: bad, accepts: [] } };
      expect(() => applyAcceptBatchDefaults(wrong)).toThrow(CorralError);
      expect(() => applyAcceptBatchDefaults({ type: 'ACCEPT_BATCH', accept_batch: { task_defaults: bad, accepts: [] } })).toThrow(why);
    }
    // Whatever else is wrong is left to the call's validation.
    expect(() => applyAcceptBatchDefaults({ type: 'ACCEPT_BATCH', accept_batch: { task_defaults: {}, accepts: 'x' } })).not.toThrow();
  });
});

describe('implied task fields', () => {
  it("leaves out one ACCEPT's agent and names equal to task ids, and a receiver gives every task back exactly as it was", () => {
    const tasks = [task('a'), task('b', { name: 'web' }), task('c', { resources: cpus(2) })];
    const operations = [{ type: 'LAUNCH' as const, launch: { task_infos: tasks } }];
    const given = copy(operations);
    const { agentId, operations: sent } = omitImpliedTaskFields(operations);
    expect(operations).toEqual(given);
    expect(agentId).toEqual({ value: 'a1' });
    const wire = copy(sent[0]!.launch!.task_infos);
    expect(wire.map((t) => Object.keys(t).sort().join(','))).toEqual(['command,resources,task_id', 'command,name,resources,task_id', 'command,resources,task_id']);
    for (const t of wire) fillImpliedTaskFields(t, copy(agentId));
    expect(wire).toEqual(tasks);
  });

  it('keeps each agent_id when the tasks name different agents, and leaves what it cannot complete to validation', () => {
    const { agentId, operations } = omitImpliedTaskFields([{ type: 'LAUNCH', launch: { task_infos: [task('a'), task('b', { agent_id: { value: 'a2' } })] } }]);
    expect(agentId).toBeUndefined();
    expect(operations[0]!.launch!.task_infos.map((t) => t.agent_id?.value)).toEqual(['a1', 'a2']);
    // A task without an id (an untyped caller) is sent as given: the master words what is wrong.
    const broken = { name: 'x', agent_id: { value: 'a1' } } as unknown as V1TaskInfo;
    expect(omitImpliedTaskFields([{ type: 'LAUNCH', launch: { task_infos: [broken] } }]).operations[0]!.launch!.task_infos).toEqual([{ name: 'x' }]);
    const noId: Record<string, unknown> = { task_id: 'not-an-id' };
    fillImpliedTaskFields(noId, undefined);
    expect(noId).toEqual({ task_id: 'not-an-id' });
  });
});
