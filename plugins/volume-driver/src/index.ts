/**
 * The volume library's public surface. The isolator (and anything else that
 * attaches volumes for tasks) imports from here only:
 *  - `Volumes`: the contract (create, remove, mount(name, id), unmount(name, id), …);
 *  - `openVolumeService(config)`: the service in-process (one per host: it owns the state);
 *  - `VolumeClient(socket)`: the same contract through a running `corral volume-driver`.
 */
export type { Volumes, VolumeInfo, VolumeSpec, SnapshotInfo, BackendName } from './types.js';
export { VolumeService } from './service.js';
export { VolumeClient } from './client.js';
export { openVolumeService, startVolumeDriver, type OpenedVolumeService, type RunningVolumeDriver } from './daemon.js';
export { volumeDriverConfigSchema, DEFAULT_SOCKET, type VolumeDriverConfig } from './config.js';
export { checkName, parseOptions, parseSize, formatSize } from './options.js';
export { VolumeLibraryHook, type VolumeHookOptions } from './hook.js';
