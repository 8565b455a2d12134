export type * from '../../contracts/store/types.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded.js';
export { EtcdStore, type EtcdStoreOptions } from './etcd.js';
export { RemoteStore, type RemoteStoreOptions } from './remote.js';
export { getJson, putJson, rangeJson, openStore, storeConfigSchema, type JsonEntry, type JsonSchema, type StoreConfig, type StoreConfigInput } from './json.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, MAX_TXN_OPS, prefixEnd } from '../../contracts/store/check.js';
