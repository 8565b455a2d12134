/**
 * corral agent — run this host's agent: registers with the master, runs the
 * tasks placed here, keeps them across its own restarts.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { configureLogging, logger } from '../../common/log.js';
import { agentConfigSchema } from '../../core-scheduler/src/index.js';
import { startAgent } from '../../core-scheduler/src/index.js';
import { createContainerizers } from '../compose/containerizers.js';
import { intOption, limitOption, LIMIT_FLAG_HELP } from '../parse.js';
import { daemonTlsFlags, INSECURE_HELP } from '../tls-options.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description("run this host's agent (tasks keep running when it stops; it re-attaches on start)")
    .option('--config <file>', 'YAML/JSON config file (env: CORRAL_AGENT_<KEY>)')
    .option('--work-dir <dir>', 'state, sandboxes and persistent volumes (default /var/lib/corral/agent)')
    .option('--host <addr>', 'address the agent API listens on (default 127.0.0.1)')
    .option('--port <n>', 'agent API port (default 5051)', intOption('--port', 0, 65535))
    .option('--advertise-host <name>', 'address the master, frameworks and clients reach this host by')
    .option('--resources <text>', 'override detected resources, e.g. "cpus:8;mem:16384;cpus(db):2"')
    .option('--attributes <text>', 'attributes, e.g. "rack:r1;zone:a"')
    .option('--containerizers <list>', 'MESOS, DOCKER or both (comma-separated)', (v: string) => v.split(',').map((s) => s.trim().toUpperCase()))
    .option('--docker-socket <path>', 'dockerd socket for DOCKER tasks')
    .option('--cni-conf-dir <dir>', 'CNI network configurations')
    .option('--volume-socket <path>', 'volume plugin daemon socket')
    .option('--transport <kind>', 'channel (one WebSocket to the master, the default) or http (an event stream and a POST per call)')
    .option('--credentials <file>', "security file (this agent's credential; operators for the agent API)")
    .option('--no-auth', 'agent API without authentication (local use only)')
    .option('--insecure', INSECURE_HELP)
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOption)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      // The master URL is the global --master (or CORRAL_MASTER).
      const master = (cmd.optsWithGlobals() as { master?: string }).master ?? process.env.CORRAL_MASTER;
      const flags: Record<string, unknown> = {
        ...daemonTlsFlags(cmd, o),
        limits: o.limit,
        master,
        transport: o.transport,
        workDir: o.workDir,
        host: o.host,
        port: o.port,
        advertiseHost: o.advertiseHost,
        resources: o.resources,
        attributes: o.attributes,
        containerizers: o.containerizers,
        docker: o.dockerSocket ? { socket: o.dockerSocket } : undefined,
        cniConfDir: o.cniConfDir,
        volumeSocket: o.volumeSocket,
        credentials: o.credentials,
        noAuth: o.auth === false ? true : undefined,
        log: o.logLevel || o.logFile ? { level: o.logLevel, file: o.logFile } : undefined,
      };
      const config = loadConfig(agentConfigSchema, { file: o.config as string | undefined, flags, envPrefix: 'CORRAL_AGENT_' });
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const built = await createContainerizers(config, logger('containerizer'));
      const running = await startAgent(config, built.containerizers);
      process.stdout.write(`corral agent ${running.agent.id} serving ${running.url}\n`);
      const stop = async (): Promise<void> => {
        // Tasks keep running: the next agent start re-attaches to them.
        await running.close();
        await built.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
