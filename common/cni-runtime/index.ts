/** The CNI runtime side (libcni's role): exec one plugin, load network configurations, run plugin chains, cache results. */
export { execPlugin, type CniCall, type PluginRun } from './exec.js';
export { confFiles, loadConfDir, loadConfFile, loadNetwork, toConfList, unknownNetwork, type NetworkConfList } from './conf.js';
export { ResultCache } from './cache.js';
export { CniRuntime, pluginConfig, versionAtLeast, type Attachment } from './runtime.js';
