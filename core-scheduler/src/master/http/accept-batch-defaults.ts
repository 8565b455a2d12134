/**
 * The master's side of an ACCEPT_BATCH call's shorthand: its task_defaults
 * and the tasks' implied fields (see contracts/v1/task-defaults.ts).
 */
import { CorralError } from '../../../../contracts/errors.js';
import { formatIssues } from '../../../../common/validate.js';
import { taskDefaultsSchema } from '../../../../contracts/v1/v1-schema.js';
import { fillImpliedTaskFields, fillTaskDefaults, type V1TaskDefaults } from '../../../../contracts/v1/task-defaults.js';
import { isId, isObj, isQuickTaskDefaults } from '../../../../contracts/v1/v1-fast.js';

function checkedDefaults(given: unknown): V1TaskDefaults {
  if (isQuickTaskDefaults(given)) return given as V1TaskDefaults;
  const checked = taskDefaultsSchema.safeParse(given);
  if (!checked.success) throw new CorralError('INVALID_ARGUMENT', `invalid ACCEPT_BATCH call: accept_batch.task_defaults: ${formatIssues(checked.error)}`);
  return checked.data;
}

/**
 * The receiving side of an ACCEPT_BATCH call's shorthand: the task_defaults
 * checked, then every LAUNCH task of the call completed from them and from
 * its entry's agent_id and its own task id, and the shorthand taken off, so
 * the call is validated (and handled) as if each task had been sent in
 * full. Whatever else is wrong with the call is left for its validation to
 * word.
 */
export function applyAcceptBatchDefaults(call: Record<string, unknown>): void {
  const batch = call.accept_batch;
  if (!isObj(batch)) return;
  const defaults = batch.task_defaults === undefined ? undefined : checkedDefaults(batch.task_defaults);
  delete batch.task_defaults;
  if (!Array.isArray(batch.accepts)) return;
  for (let i = 0; i < batch.accepts.length; i++) {
    const accept: unknown = batch.accepts[i];
    if (!isObj(accept)) continue;
    const agentId = accept.agent_id;
    if (agentId !== undefined) {
      if (!isId(agentId)) throw new CorralError('INVALID_ARGUMENT', `invalid ACCEPT_BATCH call: accept_batch.accepts[${i}].agent_id: expected {"value": "<agent id>"}`);
      delete accept.agent_id;
    }
    if (!Array.isArray(accept.operations)) continue;
    for (const op of accept.operations) {
      if (!isObj(op) || op.type !== 'LAUNCH' || !isObj(op.launch) || !Array.isArray(op.launch.task_infos)) continue;
      for (const task of op.launch.task_infos) {
        if (!isObj(task)) continue;
        fillImpliedTaskFields(task, agentId);
        if (defaults) fillTaskDefaults(task, defaults);
      }
    }
  }
}
