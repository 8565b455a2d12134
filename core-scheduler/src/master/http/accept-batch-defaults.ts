/**
 * The master's side of an ACCEPT_BATCH call's task_defaults (see
 * contracts/v1/task-defaults.ts).
 */
import { CorralError } from '../../../../contracts/errors.js';
import { formatIssues } from '../../../../common/validate.js';
import { taskDefaultsSchema } from '../../../../contracts/v1/v1-schema.js';
import { fillTaskDefaults, type V1TaskDefaults } from '../../../../contracts/v1/task-defaults.js';
import { isObj, isQuickTaskDefaults } from '../../../../contracts/v1/v1-fast.js';

/**
 * The receiving side of an ACCEPT_BATCH call's task_defaults: checked, then
 * filled into every LAUNCH task of the call and taken off it, so the call
 * is validated (and handled) as if each task had been sent in full. Whatever
 * else is wrong with the call is left for its validation to word.
 */
export function applyAcceptBatchDefaults(call: Record<string, unknown>): void {
  const batch = call.accept_batch;
  if (!isObj(batch) || batch.task_defaults === undefined) return;
  let defaults: V1TaskDefaults;
  if (isQuickTaskDefaults(batch.task_defaults)) defaults = batch.task_defaults as V1TaskDefaults;
  else {
    const checked = taskDefaultsSchema.safeParse(batch.task_defaults);
    if (!checked.success) throw new CorralError('INVALID_ARGUMENT', `invalid ACCEPT_BATCH call: accept_batch.task_defaults: ${formatIssues(checked.error)}`);
    defaults = checked.data;
  }
  delete batch.task_defaults;
  if (!Array.isArray(batch.accepts)) return;
  for (const accept of batch.accepts) {
    if (!isObj(accept) || !Array.isArray(accept.operations)) continue;
    for (const op of accept.operations) {
      if (!isObj(op) || op.type !== 'LAUNCH' || !isObj(op.launch) || !Array.isArray(op.launch.task_infos)) continue;
      for (const task of op.launch.task_infos) if (isObj(task)) fillTaskDefaults(task, defaults);
    }
  }
}
