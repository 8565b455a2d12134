/**
 * corral discovery — run the discovery daemon (DNS + Consul-compatible API);
 * corral dns records|status — what a running daemon serves and how fresh it is.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { loadConfig } from '../../common/config.js';
import { configureLogging } from '../../common/log.js';
import { CorralError } from '../../contracts/errors.js';
import { discoveryConfigSchema } from '../../discovery/src/index.js';
import { startDiscovery } from '../../discovery/src/index.js';
import type { ServedRecord } from '../../discovery/src/index.js';
import { defaultScheme, globals, identity } from '../context.js';
import { output } from '../output.js';
import { intOption, parseArgument, limitOption, LIMIT_FLAG_HELP } from '../parse.js';
import { addEtcdOptions, etcdStoreFlags } from '../etcd-options.js';
import { clientTls, daemonTlsFlags, INSECURE_HELP } from '../tls-options.js';
import { tlsAgent, tlsFailure, type ClientTls } from '../../contracts/client/tls.js';
import { fetch as undiciFetch } from 'undici';

const DEFAULT_DISCOVERY = 'http://127.0.0.1:8500';

function discoveryUrl(cmd: Command): string {
  const o = cmd.optsWithGlobals() as { discovery?: string };
  return o.discovery ?? process.env.CORRAL_DISCOVERY ?? DEFAULT_DISCOVERY.replace(/^http:/, `${defaultScheme()}:`);
}

async function getJson<T>(url: string, tls: ClientTls | undefined): Promise<T> {
  let res: Response;
  try {
    // With a CA to trust, undici's fetch with a dispatcher that trusts it.
    res = tls ? ((await undiciFetch(url, { signal: AbortSignal.timeout(10_000), dispatcher: tlsAgent(tls) })) as unknown as Response) : await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const t = tlsFailure(err, new URL(url).origin);
    if (t) throw t;
    throw new CorralError('UNAVAILABLE', `cannot reach the discovery daemon at ${new URL(url).origin}: ${(err as Error).message}`);
  }
  if (!res.ok) throw new CorralError('UNAVAILABLE', `discovery daemon answered ${res.status} for ${new URL(url).pathname}`);
  return (await res.json()) as T;
}

export function registerDiscovery(program: Command): void {
  addEtcdOptions(
    program
      .command('discovery')
      .description('run the discovery daemon: DNS for tasks and services, Consul-compatible KV/catalog/health API')
      .option('--config <file>', 'YAML/JSON config file')
      .option('--domain <name>', 'DNS zone served (default corral)')
      .option('--dns-host <addr>', 'DNS listen address (default 127.0.0.1)')
      .option('--dns-port <n>', 'DNS port, UDP and TCP (default 8600; 53 for the standard port)', intOption('--dns-port', 0, 65535))
      .addOption(new Option('--dns-workers <n|auto>', 'extra processes answering DNS over UDP and TCP (default auto: one per extra core)'))
      .option('--upstream <addr...>', 'forward names outside the zone to these resolvers (ip or ip:port)')
      .option('--http-host <addr>', 'HTTP API listen address (default 127.0.0.1)')
      .option('--http-port <n>', 'HTTP API port (default 8500)', intOption('--http-port', 0, 65535))
      .option('--work-dir <dir>', 'state directory (default /var/lib/corral/discovery)')
      .option('--node-name <name>', 'this node in the catalog (default the host name)')
      .option('--store-backend <name>', 'embedded or etcd'),
  )
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOption)
    .option('--insecure', INSECURE_HELP)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const g = globals(cmd);
      const cred = identity(g);
      const workers = o.dnsWorkers === undefined ? undefined : o.dnsWorkers === 'auto' ? 'auto' : parseArgument(intOption('--dns-workers', 0, 64), String(o.dnsWorkers));
      const flags: Record<string, unknown> = {
        ...daemonTlsFlags(cmd, o),
        domain: o.domain,
        workDir: o.workDir,
        nodeName: o.nodeName,
        // The global default master URL must not override a --config file's master.url: only an explicit one does.
        master: { url: (cmd.optsWithGlobals() as { master?: string }).master ?? process.env.CORRAL_MASTER, principal: cred.principal, secret: cred.secret },
        dns: { host: o.dnsHost, port: o.dnsPort, workers, upstreams: o.upstream },
        http: { host: o.httpHost, port: o.httpPort, limits: o.limit },
        log: o.logLevel || o.logFile ? { level: o.logLevel, file: o.logFile } : undefined,
      };
      flags.store = etcdStoreFlags(o);
      const config = loadConfig(discoveryConfigSchema, { file: o.config as string | undefined, flags });
      config.master.url ??= g.master;
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const running = await startDiscovery(config);
      process.stdout.write(`corral discovery: DNS on ${config.dns.host}:${running.dnsPort} (zone ${config.domain}), API on ${running.httpUrl}\n`);
      const stop = async (): Promise<void> => {
        await running.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });

  const dns = program.command('dns').description('names served by the discovery daemon').option('--discovery <url>', `discovery API URL (env CORRAL_DISCOVERY, default ${DEFAULT_DISCOVERY})`);
  dns
    .command('records')
    .description('list every record the daemon serves')
    .option('--name <suffix>', 'only names ending with this')
    .action(async (o: { name?: string }, cmd: Command) => {
      const all = await getJson<ServedRecord[]>(`${discoveryUrl(cmd)}/v1/corral/dns/records`, clientTls(cmd));
      const rows = o.name ? all.filter((r) => r.name === o.name || r.name.endsWith(`.${o.name}`) || r.name.endsWith(o.name!)) : all;
      output(globals(cmd), rows, [
        { header: 'NAME', value: (r) => r.name },
        { header: 'TYPE', value: (r) => r.type },
        { header: 'DATA', value: (r) => r.data },
      ]);
    });
  dns
    .command('status')
    .description('feed freshness and DNS counters')
    .action(async (_o, cmd: Command) => {
      const s = await getJson<{
        domain: string;
        master: { url: string; connected: boolean; staleSeconds: number; reconnects: number } | null;
        dns: { port: number; names: number; workers: number; stats: Record<string, number> };
        catalogIndex: number;
      }>(`${discoveryUrl(cmd)}/v1/corral/status`, clientTls(cmd));
      const rows = [
        { key: 'zone', value: s.domain },
        { key: 'master', value: s.master ? `${s.master.url} (${s.master.connected ? 'following' : `unreachable, state ${s.master.staleSeconds.toFixed(1)} s old`})` : 'none configured' },
        { key: 'dns port', value: String(s.dns.port) },
        { key: 'names', value: String(s.dns.names) },
        { key: 'dns workers', value: String(s.dns.workers) },
        { key: 'queries', value: String(s.dns.stats.queries ?? 0) },
        { key: 'nxdomain', value: String(s.dns.stats.nxdomain ?? 0) },
        { key: 'catalog index', value: String(s.catalogIndex) },
      ];
      output(
        globals(cmd),
        rows,
        [
          { header: 'KEY', value: (r) => r.key },
          { header: 'VALUE', value: (r) => r.value },
        ],
        s,
      );
    });
}
