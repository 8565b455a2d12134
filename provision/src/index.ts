export { type NodeConfig, type NodeConfigInput, nodeConfigSchema } from './config.js';
export { type NodeInitOptions, initNode, nodeFileFor } from './init.js';
export { cephClientFiles, planNode } from './plan.js';
export { type NodeState, killNode, loadNodeState, nodeDown, nodeStatus, nodeUp, ours, stopProcesses, wipeNode } from './run.js';
