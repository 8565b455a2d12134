export { type SessionInfo } from './bgp/speaker.js';
export { daemonRequest } from './daemon/client.js';
export { type DaemonConfigInput, daemonConfigSchema } from './daemon/config.js';
export { startNodeDaemon } from './daemon/daemon.js';
export { installCni, shimPath } from './install.js';
export { type Allocation } from './ipam/types.js';
