/**
 * Mount references and the containers behind them. The isolator takes one
 * reference per container and external volume, named
 * `corral-<containerId>-<index>` (plugins/isolator's `volumeReference`), so
 * the driver can tell whose a reference is and ask the agent whether that
 * container still runs. Anything else (Docker's mount ids, an operator's
 * `corral volume mount`) belongs to nobody the driver can ask: it is only
 * ever dropped by its own unmount.
 */
const TASK_REFERENCE = /^corral-(.+)-(\d{1,4})$/;

/** The reference the isolator takes for volume `index` of a container. */
export const taskReference = (containerId: string, index: number): string => `corral-${containerId}-${index}`;

/** The container a task reference belongs to; undefined for any other kind of reference. */
export function containerOfReference(ref: string): string | undefined {
  return TASK_REFERENCE.exec(ref)?.[1];
}
