/**
 * plugins/isolator — how corral runs tasks on a host. The agent imports from
 * here only:
 *  - `createMesosContainerizer(config, { volumeHook, networkHook })`: native
 *    tasks in cgroups and namespaces, supervised by native/task-shim;
 *  - `new DockerContainerizer({ socketPath, networkHook, … })`: Docker tasks;
 *  - `new CniNetworkHook({ … })`: the network hook both containerizers share
 *    (the volume hook comes from plugins/volume-driver).
 * Both containerizers implement contracts/containerizer.ts.
 */
export { createMesosContainerizer, MesosContainerizer, type MesosContainerizerDeps } from './native/containerizer.js';
export { mesosContainerizerConfigSchema, type MesosContainerizerConfig, type MesosContainerizerConfigInput } from './native/config.js';
export { DockerContainerizer, dockerTermination, type DockerContainerizerOptions } from './docker/containerizer.js';
export { CniNetworkHook, type CniHookOptions } from './hooks/network-hook.js';
export { openCgroups, type CgroupVersionChoice } from './cgroups/detect.js';
export type { CgroupDriver, CgroupLimits, CgroupUsage } from './cgroups/types.js';
export { REASON_MEMORY } from './native/termination.js';
export { defaultShimPath } from './native/config.js';
