export type * from '../../contracts/store/types.js';
export { getJson, putJson, rangeJson, openStore, storeConfigSchema, type StoreConfigInput } from './json.js';
