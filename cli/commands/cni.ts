/**
 * corral cni — the routed container network on this node: run the node
 * daemon, install the plugin for a runtime, and look at IPAM, BGP and routes.
 */
import type { Command } from 'commander';
import { loadConfig } from '../../common/config.js';
import { configureLogging } from '../../common/log.js';
import { daemonConfigSchema } from '../../plugins/cni-calico-like/src/index.js';
import { startNodeDaemon } from '../../plugins/cni-calico-like/src/index.js';
import { daemonRequest } from '../../plugins/cni-calico-like/src/index.js';
import { installCni } from '../../plugins/cni-calico-like/src/index.js';
import type { Allocation } from '../../plugins/cni-calico-like/src/index.js';
import type { SessionInfo } from '../../plugins/cni-calico-like/src/index.js';
import { globals } from '../context.js';
import { output } from '../output.js';
import { intOption, limitOption, LIMIT_FLAG_HELP } from '../parse.js';
import { daemonTlsFlags } from '../tls-options.js';

const DEFAULT_SOCKET = '/run/corral/cni.sock';

/** CORRAL_CNI_* variables, renamed to what loadConfig reads, so other daemons' CORRAL_* stay out. */
function cniEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CORRAL_CNI_')) out[`CORRAL_${k.slice('CORRAL_CNI_'.length)}`] = v;
  return out;
}

const csv = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function registerCni(program: Command): void {
  const cni = program.command('cni').description('routed container networking: node daemon, plugin install, IPAM and BGP state');

  cni
    .command('daemon')
    .description('run the CNI node daemon (IPAM, netlink dataplane, BGP speaker) on this host')
    .requiredOption('--config <file>', 'YAML/JSON config file (env: CORRAL_CNI_<KEY>, e.g. CORRAL_CNI_MTU)')
    .option('--socket <path>', `unix socket for the plugin (default ${DEFAULT_SOCKET})`)
    .option('--node <name>', 'node name in block claims (default: host name)')
    .option('--state-dir <dir>', 'local state directory')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOption)
    .option('--insecure', 'reach a remote store over plain HTTP and serve metrics without TLS (local use only)')
    .action(async (o: { config: string; insecure?: boolean; socket?: string; node?: string; stateDir?: string; logLevel?: string; logFile?: string; limit?: Record<string, number> }, cmd: Command) => {
      const flags: Record<string, unknown> = { ...daemonTlsFlags(cmd, o), socket: o.socket, node: o.node, stateDir: o.stateDir, limits: o.limit };
      if (o.logLevel || o.logFile) flags.log = { level: o.logLevel, file: o.logFile };
      const config = loadConfig(daemonConfigSchema, { file: o.config, flags, env: cniEnv(process.env) });
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const daemon = await startNodeDaemon(config);
      process.stdout.write(`corral CNI daemon listening on ${config.socket}\n`);
      const stop = async (): Promise<void> => {
        await daemon.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });

  cni
    .command('install')
    .description('install the corral plugin binary and a conflist for a container runtime')
    .option('--bin-dir <dir>', 'CNI plugin directory', '/opt/cni/bin')
    .option('--conf-dir <dir>', 'CNI configuration directory', '/etc/cni/net.d')
    .option('--network <name>', 'network name', 'corral')
    .option('--socket <path>', 'node daemon socket to write into the config')
    .option('--mtu <n>', 'MTU of container interfaces', intOption('--mtu', 576, 65535))
    .option('--pools <names>', 'comma-separated pools, in order of preference', csv)
    .option('--chain <plugins>', 'reference plugins to chain after corral: portmap,bandwidth', csv)
    .action((o: { binDir: string; confDir: string; network: string; socket?: string; mtu?: number; pools?: string[]; chain?: string[] }, cmd: Command) => {
      const res = installCni(o);
      output(
        globals(cmd),
        [res],
        [
          { header: 'BINARY', value: (r) => r.binary },
          { header: 'CONFLIST', value: (r) => r.conflist },
        ],
        res,
      );
    });

  const socketOption = (c: Command): Command => c.option('--socket <path>', 'node daemon socket', process.env.CORRAL_CNI_SOCKET ?? DEFAULT_SOCKET);

  socketOption(cni.command('status').description('daemon readiness and BGP sessions')).action(async (o: { socket: string }, cmd: Command) => {
    const s = await daemonRequest<{ node: string; allocations: number; bgp?: { sessions: SessionInfo[] } }>(o.socket, 'GET', '/v1/status');
    output(
      globals(cmd),
      s.bgp?.sessions ?? [],
      [
        { header: 'PEER', value: (p) => p.peer },
        { header: 'STATE', value: (p) => p.state },
        { header: 'SINCE', value: (p) => (p.since ? new Date(p.since).toISOString() : '') },
      ],
      s,
    );
  });

  socketOption(cni.command('ipam').description('addresses in use and blocks owned by this node')).action(async (o: { socket: string }, cmd: Command) => {
    const s = await daemonRequest<{ allocations: Allocation[] }>(o.socket, 'GET', '/v1/ipam');
    output(
      globals(cmd),
      s.allocations,
      [
        { header: 'CONTAINER', value: (a) => a.containerId },
        { header: 'IFNAME', value: (a) => a.ifname },
        { header: 'IP', value: (a) => a.ip },
        { header: 'BLOCK', value: (a) => a.block + (a.loanKey ? ' (borrowed)' : '') },
        { header: 'HOST IF', value: (a) => a.hostIfname },
      ],
      s,
    );
  });

  socketOption(cni.command('routes').description('routes learned over BGP and prefixes announced')).action(async (o: { socket: string }, cmd: Command) => {
    const s = await daemonRequest<{ learned: Record<string, string>; announced: string[] }>(o.socket, 'GET', '/v1/routes');
    const rows = [...s.announced.map((p) => ({ prefix: p, via: '(announced)' })), ...Object.entries(s.learned).map(([prefix, via]) => ({ prefix, via }))];
    output(
      globals(cmd),
      rows,
      [
        { header: 'PREFIX', value: (r) => r.prefix },
        { header: 'VIA', value: (r) => r.via },
      ],
      s,
    );
  });

  socketOption(cni.command('reconcile').description('reclaim addresses of containers that are gone, now')).action(async (o: { socket: string }, cmd: Command) => {
    const r = await daemonRequest<{ freed: string[]; releasedBlocks: string[]; skipped?: string }>(o.socket, 'POST', '/v1/reconcile');
    output(
      globals(cmd),
      r.freed.map((f) => ({ freed: f })),
      [{ header: 'FREED', value: (x) => x.freed }],
      r,
    );
  });
}
