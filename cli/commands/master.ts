/**
 * corral master — run the master daemon.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { configureLogging } from '../../common/log.js';
import { masterConfigSchema, MASTER_LIMIT_KEYS } from '../../core-scheduler/src/index.js';
import { startMaster } from '../../core-scheduler/src/index.js';
import { intOption, limitOptionFor, LIMIT_FLAG_HELP } from '../parse.js';
import { addEtcdOptions, etcdStoreFlags } from '../etcd-options.js';
import { daemonTlsFlags, INSECURE_HELP } from '../tls-options.js';

export function registerMaster(program: Command): void {
  addEtcdOptions(
    program
      .command('master')
      .description('run the master: allocator, scheduler/operator/agent APIs, registry')
      .option('--config <file>', 'YAML/JSON config file (env: CORRAL_MASTER_<KEY>, e.g. CORRAL_MASTER_ALLOCATION__INTERVAL_MS)')
      .option('--host <addr>', 'address to listen on (default 127.0.0.1)')
      .option('--port <n>', 'port to listen on (default 5050)', intOption('--port', 0, 65535))
      .option('--advertise-host <name>', 'host name agents and frameworks see')
      .option('--work-dir <dir>', 'state directory (default /var/lib/corral/master)')
      .option('--credentials <file>', 'security file: credentials and ACLs')
      .option('--no-auth', 'turn authentication off (local use only)')
      .option('--insecure', INSECURE_HELP)
      .option('--store-backend <name>', 'embedded or etcd'),
  )
    .option('--no-agent-channel', 'serve agents over POST only, no WebSocket channel (e.g. behind a proxy that passes no WebSocket)')
    .option('--agent-unreachable-timeout <ms>', 'disconnected agents become unreachable after this long', intOption('--agent-unreachable-timeout', 0, 3_600_000))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOptionFor(MASTER_LIMIT_KEYS))
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const flags: Record<string, unknown> = {
        ...daemonTlsFlags(cmd, o),
        host: o.host,
        port: o.port,
        advertiseHost: o.advertiseHost,
        workDir: o.workDir,
        credentials: o.credentials,
        noAuth: o.auth === false ? true : undefined,
        log: o.logLevel || o.logFile ? { level: o.logLevel, file: o.logFile } : undefined,
        agents:
          o.agentUnreachableTimeout !== undefined || o.agentChannel === false
            ? { ...(o.agentUnreachableTimeout !== undefined && { unreachableTimeoutMs: o.agentUnreachableTimeout }), ...(o.agentChannel === false && { channel: false }) }
            : undefined,
        limits: o.limit,
      };
      flags.store = etcdStoreFlags(o);
      const config = loadConfig(masterConfigSchema, { file: o.config as string | undefined, flags, envPrefix: 'CORRAL_MASTER_' });
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const running = await startMaster(config);
      process.stdout.write(`corral master listening on ${running.url}\n`);
      const stop = async (): Promise<void> => {
        await running.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
