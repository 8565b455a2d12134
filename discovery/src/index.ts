export { type DiscoveryConfigInput, discoveryConfigSchema } from './config.js';
export { startDiscovery } from './daemon.js';
export { type ServedRecord } from './status.js';
