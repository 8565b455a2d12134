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
export { createMesosContainerizer } from './native/containerizer.js';
export { DockerContainerizer } from './docker/containerizer.js';
export { CniNetworkHook } from './hooks/network-hook.js';
export { defaultShimPath } from './native/config.js';
