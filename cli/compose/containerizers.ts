/**
 * Building the agent's containerizers from its configuration: the native
 * MESOS one and/or DOCKER, sharing the volume hook (the volume plugin
 * daemon) and the network hook (CNI networks from the conf dir). Both check
 * each task against what the agent advertises, not the host's core count.
 */
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { createMesosContainerizer, DockerContainerizer, CniNetworkHook } from '../../plugins/isolator/src/index.js';
import { VolumeClient, VolumeLibraryHook } from '../../plugins/volume-driver/src/index.js';
import type { Logger } from '../../common/log.js';
import type { Containerizer } from '../../contracts/containerizer.js';
import type { AgentConfig } from '../../core-scheduler/src/index.js';
import { agentResources, taskCapacity, type AgentResources } from '../../core-scheduler/src/index.js';

interface BuiltContainerizers {
  containerizers: Containerizer[];
  close(): Promise<void>;
}

export async function createContainerizers(config: AgentConfig, log: Logger, resources: AgentResources = agentResources(config.workDir, config.resources)): Promise<BuiltContainerizers> {
  const host = taskCapacity(resources.advertised);
  const volumeHook = new VolumeLibraryHook({ drivers: { corral: new VolumeClient(config.volumeSocket) } });
  const networkHook = new CniNetworkHook({ confDir: config.cniConfDir, cacheDir: join(config.workDir, 'cni-results') });
  const built: Array<Containerizer & { close?: () => Promise<void> | void }> = [];
  if (config.containerizers.includes('MESOS')) {
    // Tasks without an image must not see the agent's work directory (checkpoints, every sandbox) nor its credential file.
    const extraMasked = Array.isArray(config.mesos.maskedPaths) ? (config.mesos.maskedPaths as string[]) : ['/var/lib/corral/volumes'];
    const maskedPaths = [...extraMasked, resolve(config.workDir), ...(config.credentials ? [resolve(config.credentials)] : [])];
    built.push(await createMesosContainerizer({ workDir: join(config.workDir, 'containerizer'), ...config.mesos, maskedPaths }, { volumeHook, networkHook, log, host }));
  }
  if (config.containerizers.includes('DOCKER')) {
    // The label that marks this agent's containers: stable across restarts, distinct per agent work dir.
    const instance = `corral-${createHash('sha1').update(config.workDir).digest('hex').slice(0, 8)}`;
    built.push(new DockerContainerizer({ socketPath: config.docker.socket, instance, runDir: join(config.workDir, 'docker-run'), networkHook, log, host }));
  }
  return {
    containerizers: built,
    async close() {
      for (const c of built) await c.close?.();
    },
  };
}
