/**
 * provision — one node lifecycle for every way corral runs on a machine:
 * node files and their plans (`corral node init|plan|up|down|status`), the
 * lifecycle that starts, supervises, stops and purges a node's daemons, and
 * the scope of what a node owns on the host. `corral up`, the lab and the
 * test sweeper use it; code outside provision/ imports from here only.
 */
export { type NodeConfig, type NodeConfigInput, nodeConfigSchema } from './config.js';
export { type NodeInitOptions, initNode, nodeFileFor } from './init.js';
export { cephClientFiles, planNode, type NodePlan } from './plan.js';
export { daemonSpec, killNode, nodeDown, nodeStatus, nodeUp, writeNodeFiles } from './run.js';
export { loadNodeState, ours, startDaemon, stopProcesses, superviseNode, type NodeProcess, type NodeState, type Supervision } from './lifecycle.js';
export { isClean, killScope, scopeLeftovers, sweepScope, type NodeScope } from './scope.js';
export { ensureClusterCa, issueNodeCertificates, nodeTlsFiles, revokeCertificates, REVOCATION_LIST, type TlsDaemon } from './tls.js';
export { issueEtcdCertificates } from './etcd-tls.js';
export { bundleFiles, bundleHostFor, clusterAcls, hostPrincipals, operatorFiles, rolePrincipals, writeHostBundles, type BundleHost } from './bundle.js';
