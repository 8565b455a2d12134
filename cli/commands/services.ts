/**
 * corral services — run the service framework daemon (keeps long-running
 * apps running; managed with `corral app …`).
 */
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { configureLogging } from '../../common/log.js';
import { loadSecurity, ownCredential, type SecurityConfig } from '../../core-scheduler/src/index.js';
import { SERVICES_ENV_PREFIX, servicesConfigSchema } from '../../core-scheduler/src/index.js';
import { startServices } from '../../core-scheduler/src/index.js';
import { globals } from '../context.js';
import { intOption, limitOption, LIMIT_FLAG_HELP } from '../parse.js';
import { addEtcdOptions, etcdStoreFlags } from '../etcd-options.js';
import { daemonTlsFlags, INSECURE_HELP } from '../tls-options.js';

/** A credential the security file allows to register frameworks, for the daemon's own subscription. */
function frameworkCredential(sec: SecurityConfig): { principal: string; secret: string } | undefined {
  const allowed = (p: string): boolean => sec.acls.register_frameworks.some((r) => r.principals === 'ANY' || r.principals.includes(p));
  // Only a secret in plain text is the daemon's own; a hash verifies others.
  return ownCredential(sec, allowed);
}

export function registerServices(program: Command): void {
  addEtcdOptions(
    program
      .command('services')
      .description('run the service framework: keeps apps (corral app …) running on the cluster')
      .option('--config <file>', `YAML/JSON config file (env: ${SERVICES_ENV_PREFIX}<KEY>, e.g. ${SERVICES_ENV_PREFIX}MASTER__URL)`)
      .option('--host <addr>', 'API listen address (default 127.0.0.1)')
      .option('--port <n>', 'API port (default 5052)', intOption('--port', 0, 65535))
      .option('--work-dir <dir>', 'state directory (default /var/lib/corral/services)')
      .option('--credentials <file>', 'security file: operators may use the API; a framework credential in it is used at the master')
      .option('--no-auth', 'turn API authentication off (local use only)')
      .option('--insecure', INSECURE_HELP)
      .option('--name <name>', 'framework name, also its DNS label (default corral-services)')
      .option('--store-backend <name>', "embedded, etcd or remote (the master's Store)"),
  )
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOption)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const g = globals(cmd);
      const credentials = (o.credentials as string | undefined) ?? g.credentials;
      const fromFile = credentials ? frameworkCredential(loadSecurity(credentials)) : undefined;
      const principal = g.principal && g.secret ? { principal: g.principal, secret: g.secret } : fromFile;
      const master = cmd.optsWithGlobals().master !== undefined || process.env.CORRAL_MASTER ? { url: g.master } : {};
      const flags: Record<string, unknown> = {
        ...daemonTlsFlags(cmd, o),
        limits: o.limit,
        host: o.host,
        port: o.port,
        workDir: o.workDir,
        credentials,
        noAuth: o.auth === false ? true : undefined,
        master: { ...master, ...(principal ?? {}) },
        framework: o.name ? { name: o.name } : undefined,
        log: o.logLevel || o.logFile ? { level: o.logLevel, file: o.logFile } : undefined,
      };
      if (o.storeBackend === 'remote') flags.store = { backend: 'remote', url: g.master, ...(principal ?? {}) };
      else flags.store = etcdStoreFlags(o);
      const config = loadConfig(servicesConfigSchema, { file: o.config as string | undefined, flags, envPrefix: SERVICES_ENV_PREFIX });
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const running = await startServices(config);
      process.stdout.write(`corral services: API on ${running.url}, framework "${config.framework.name}" at ${config.master.url}\n`);
      const stop = async (): Promise<void> => {
        await running.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
