/** The CNI runtime side (libcni's role): exec one plugin, load network configurations, run plugin chains, cache results. */
export { execPlugin, type CniCall, type PluginRun } from './exec.js';
export { confFiles, loadConfDir, loadConfFile, loadNetwork, toConfList, unknownNetwork, type ConfDir, type NetworkConfList, type PluginConf } from './conf.js';
export { ResultCache, CACHE_KIND, type AttachmentKey, type CachedAttachment } from './cache.js';
export { CniRuntime, pluginConfig, pluginError, versionAtLeast, type Attachment, type GcAttachment, type RuntimeOptions } from './runtime.js';
