/**
 * The volume library's public surface. The isolator (and anything else that
 * attaches volumes for tasks) imports from here only:
 *  - `Volumes`: the contract (create, remove, mount(name, id), unmount(name, id), …);
 *  - `openVolumeService(config)`: the service in-process (one per host: it owns the state);
 *  - `VolumeClient(socket)`: the same contract through a running `corral volume-driver`.
 */
export type { Volumes, VolumeInfo, SnapshotInfo } from './types.js';
export { VolumeClient } from './client.js';
export { startVolumeDriver } from './daemon.js';
/** @public The in-process service, documented above and in the README's Library API. */
export { openVolumeService, type OpenedVolumeService } from './daemon.js';
export { volumeDriverConfigSchema, DEFAULT_SOCKET } from './config.js';
export { formatSize } from './options.js';
export { VolumeLibraryHook } from './hook.js';
