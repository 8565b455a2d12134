/**
 * corral volume … — manage persistent volumes through the host's volume
 * driver (its admin API on the plugin socket), whatever the backend:
 *   create | ls | inspect | rm | resize | snapshot create|ls|rollback|rm | status
 * corral volume-driver — run the driver daemon (Docker plugin + admin API).
 */
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../../common/config.js';
import { limitOption, LIMIT_FLAG_HELP } from '../parse.js';
import { configureLogging } from '../../common/log.js';
import { VolumeClient } from '../../plugins/volume-driver/src/index.js';
import { DEFAULT_SOCKET, volumeDriverConfigSchema } from '../../plugins/volume-driver/src/index.js';
import { startVolumeDriver } from '../../plugins/volume-driver/src/index.js';
import { formatSize } from '../../plugins/volume-driver/src/index.js';
import type { SnapshotInfo, VolumeInfo } from '../../plugins/volume-driver/src/index.js';
import { globals } from '../context.js';
import { output, type Column } from '../output.js';

const volumeColumns: Column<VolumeInfo>[] = [
  { header: 'NAME', value: (v) => v.name },
  { header: 'BACKEND', value: (v) => v.backend },
  { header: 'SIZE', value: (v) => formatSize(v.sizeBytes) || '-' },
  { header: 'FS', value: (v) => v.fsType ?? '-' },
  { header: 'REFS', value: (v) => v.refs },
  { header: 'ATTACHED TO', value: (v) => v.attachedTo ?? '-' },
  { header: 'MOUNTPOINT', value: (v) => v.mountpoint ?? '-' },
];

const snapColumns: Column<SnapshotInfo>[] = [
  { header: 'SNAPSHOT', value: (s) => s.name },
  { header: 'SIZE', value: (s) => formatSize(s.sizeBytes) || '-' },
  { header: 'CREATED', value: (s) => s.createdAt ?? '-' },
];

/** "-o key=value" (repeatable) → an option map. */
function keyValue(v: string, prev: Record<string, string> = {}): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`expected key=value, got "${v}"`);
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

function client(cmd: Command): VolumeClient {
  const o = cmd.optsWithGlobals() as { socket?: string };
  return new VolumeClient(o.socket ?? process.env.CORRAL_VOLUME_SOCKET ?? DEFAULT_SOCKET);
}

const json = (cmd: Command): boolean => globals(cmd).json;

export function registerVolume(program: Command): void {
  const vol = program
    .command('volume')
    .description('persistent volumes (local or Ceph rbd) through the host volume driver')
    .option('--socket <path>', `volume driver socket (env CORRAL_VOLUME_SOCKET, default ${DEFAULT_SOCKET})`);

  vol
    .command('create <name>')
    .description('create a volume')
    .option('-o, --opt <key=value>', 'driver option, repeatable (size, fs, backend, pool, features, uid, gid, mode)', keyValue)
    .option('--backend <name>', "local or rbd (default: the driver's default)")
    .option('--size <size>', 'size limit, e.g. 10G (local: without it the volume is a plain directory)')
    .option('--fs <type>', 'ext4 or xfs')
    .option('--pool <pool>', 'rbd pool')
    .action(async (name: string, o: { opt?: Record<string, string>; backend?: string; size?: string; fs?: string; pool?: string }, cmd: Command) => {
      const opts: Record<string, string> = { ...o.opt };
      for (const k of ['backend', 'size', 'fs', 'pool'] as const) if (o[k] !== undefined) opts[k] = o[k]!;
      const info = await client(cmd).create(name, opts);
      output({ json: json(cmd) }, [info], volumeColumns, info);
    });

  vol
    .command('ls')
    .description('list volumes (every backend)')
    .action(async (_o: unknown, cmd: Command) => {
      const list = await client(cmd).list();
      output({ json: json(cmd) }, list, volumeColumns, list);
    });

  vol
    .command('inspect <names...>')
    .description('show volumes in detail (JSON)')
    .action(async (names: string[], _o: unknown, cmd: Command) => {
      const c = client(cmd);
      const out = [];
      for (const n of names) out.push(await c.get(n));
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    });

  vol
    .command('rm <names...>')
    .description('remove volumes (refused while mounted anywhere)')
    .action(async (names: string[], _o: unknown, cmd: Command) => {
      const c = client(cmd);
      for (const n of names) {
        await c.remove(n);
        if (!json(cmd)) process.stdout.write(`${n}\n`);
      }
      if (json(cmd)) process.stdout.write(JSON.stringify({ removed: names }) + '\n');
    });

  vol
    .command('resize <name> <size>')
    .description('grow a volume (online when mounted on this host)')
    .action(async (name: string, size: string, _o: unknown, cmd: Command) => {
      const info = await client(cmd).resize(name, size);
      output({ json: json(cmd) }, [info], volumeColumns, info);
    });

  vol
    .command('status')
    .description('the driver: host id, backends, attach method, detaches being retried')
    .action(async (_o: unknown, cmd: Command) => {
      const s = await client(cmd).status();
      const rows = [
        { k: 'host', v: s.hostId },
        { k: 'default backend', v: s.defaultBackend },
        { k: 'scope', v: s.scope },
        ...Object.entries(s.backends).map(([k, v]) => ({ k: `backend ${k}`, v })),
        ...(s.attachMethod ? [{ k: 'rbd attach method', v: s.attachMethod }] : []),
        ...(s.pendingDetaches ?? []).map((p) => ({ k: `detach pending ${p.volume}`, v: `${p.failures} failed, next try in ${Math.ceil(p.retryInMs / 1000)} s: ${p.lastError}` })),
      ];
      output(
        { json: json(cmd) },
        rows,
        [
          { header: 'FIELD', value: (r) => r.k },
          { header: 'VALUE', value: (r) => r.v },
        ],
        s,
      );
    });

  const snap = vol.command('snapshot').description('volume snapshots');
  snap
    .command('create <volume> <snapshot>')
    .description('snapshot a volume (frozen for consistency when mounted here)')
    .action(async (v: string, s: string, _o: unknown, cmd: Command) => {
      const info = await client(cmd).snapshot(v, s);
      output({ json: json(cmd) }, [info], snapColumns, info);
    });
  snap
    .command('ls <volume>')
    .description('list snapshots of a volume')
    .action(async (v: string, _o: unknown, cmd: Command) => {
      const list = await client(cmd).listSnapshots(v);
      output({ json: json(cmd) }, list, snapColumns, list);
    });
  snap
    .command('rollback <volume> <snapshot>')
    .description('roll a volume back to a snapshot (it must not be mounted anywhere)')
    .action(async (v: string, s: string, _o: unknown, cmd: Command) => {
      await client(cmd).rollback(v, s);
      if (!json(cmd)) process.stdout.write(`${v} rolled back to ${s}\n`);
    });
  snap
    .command('rm <volume> <snapshot>')
    .description('remove a snapshot')
    .action(async (v: string, s: string, _o: unknown, cmd: Command) => {
      await client(cmd).removeSnapshot(v, s);
      if (!json(cmd)) process.stdout.write(`${s}\n`);
    });

  program
    .command('volume-driver')
    .description('run the volume driver: Docker volume plugin and admin API on one socket')
    .option('--config <file>', 'YAML/JSON config file')
    .option('--host-id <id>', "this host's identity in the cluster (default: hostname)")
    .option('--socket <path>', `plugin socket (default ${DEFAULT_SOCKET}; the file name is the Docker driver name)`)
    .option('--data-dir <dir>', 'local volumes, mountpoints and state (default /var/lib/corral/volumes)')
    .option('--default-backend <name>', 'local or rbd')
    .option('--ceph-conf <file>', 'ceph.conf (rbd is enabled when it exists)')
    .option('--keyring <file>', 'Ceph keyring')
    .option('--ceph-client <name>', 'Ceph client of every rbd/rados call: client.<id> or the bare id (as ceph --id); default client.admin')
    .option('--pool <pool>', 'rbd pool of the registry and of images by default')
    .option('--attach <method>', 'auto, krbd or rbd-fuse')
    .option('--no-rbd', 'disable the rbd backend')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .option('--log-file <file>', 'append logs to this file instead of stderr')
    .option('--limit <name=value>', LIMIT_FLAG_HELP, limitOption)
    .action(async (o: Record<string, unknown>) => {
      const rbd: Record<string, unknown> = {
        confFile: o.cephConf,
        keyring: o.keyring,
        clientName: o.cephClient,
        pool: o.pool,
        attach: o.attach,
        enabled: o.rbd === false ? false : undefined,
      };
      const flags: Record<string, unknown> = {
        limits: o.limit,
        hostId: o.hostId,
        socket: o.socket,
        dataDir: o.dataDir,
        defaultBackend: o.defaultBackend,
        rbd,
        log: o.logLevel || o.logFile ? { level: o.logLevel, file: o.logFile } : undefined,
      };
      const config = loadConfig(volumeDriverConfigSchema, { file: o.config as string | undefined, flags });
      configureLogging({ level: config.log.level, ...(config.log.file ? { file: config.log.file } : {}) });
      const running = await startVolumeDriver(config);
      process.stdout.write(`corral volume-driver listening on ${running.url} (host ${config.hostId})\n`);
      const stop = async (): Promise<void> => {
        await running.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
