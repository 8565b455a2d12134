/**
 * The plugin's one connection to Ceph: connected lazily (corral runs, and
 * local volumes work, while Ceph is down), with a timeout on every call, and
 * replaced when it breaks — including when this client was blocklisted, after
 * which librados refuses every call.
 *
 * It also keeps this host's liveness beacon: a watch on corral_host.<hostId>
 * whose notifies the addon acknowledges natively. Other hosts probe it before
 * fencing us; a dead or partitioned host stops acknowledging.
 */
import { CorralError, errorMessage } from '../../../../../contracts/errors.js';
import type { Logger } from '../../../../../common/log.js';
import { connectCluster, isRadosError, type Cluster, type IoCtx } from '../../../../../native/lib/rados.js';

export interface CephSettings {
  confFile: string;
  keyring?: string | undefined;
  clientName: string;
  /** Pool of the registry, attach locks and host beacons. */
  pool: string;
  hostId: string;
  /** Upper bound of every librados call. */
  timeoutSeconds: number;
  /** How long the OSD keeps our beacon watch after we vanish. */
  watchTimeoutSeconds: number;
}

export const hostOid = (host: string): string => `corral_host.${host}`;

/** Errors meaning "Ceph is not reachable / this client is unusable", as opposed to answers like ENOENT. */
const CONNECTION_ERRORS = new Set(['ETIMEDOUT', 'ESHUTDOWN', 'ENOTCONN', 'ECONNREFUSED', 'EHOSTUNREACH', 'ECONNRESET']);

/** Errors meaning "this client's caps do not allow it". */
const PERMISSION_ERRORS = new Set(['EPERM', 'EACCES']);

/** Strip a messenger type prefix ("v1:", "v2:", "any:") from an entity address, as blocklist entries name it bare. */
export const bareAddr = (addr: string): string =>
  addr
    .replace(/^\[?(?:v1|v2|any):/, '')
    .replace(/^\[|\]$/g, '')
    .split(',')[0]!;

export class CephConnection {
  private current: Promise<Cluster> | undefined;
  private ioctxs = new Map<string, Promise<IoCtx>>();
  private beacon: { io: IoCtx; handle: string } | undefined;
  private beaconTimer: NodeJS.Timeout | undefined;
  private beaconSetup: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly settings: CephSettings,
    private readonly log: Logger,
  ) {}

  /** The connected cluster handle, connecting on first use. */
  cluster(): Promise<Cluster> {
    if (this.closed) return Promise.reject(new CorralError('UNAVAILABLE', 'the Ceph connection is closed'));
    if (!this.current) {
      const s = this.settings;
      const attempt = connectCluster({
        clientName: s.clientName,
        confFile: s.confFile,
        timeoutSeconds: s.timeoutSeconds,
        options: s.keyring ? { keyring: s.keyring } : {},
      });
      this.current = attempt;
      attempt.then(
        () => this.log.info({ conf: s.confFile, client: s.clientName }, 'connected to Ceph'),
        () => {
          if (this.current === attempt) this.current = undefined;
        },
      );
    }
    return this.current.catch((err) => {
      throw new CorralError('UNAVAILABLE', `cannot connect to Ceph (${this.settings.confFile} as ${this.settings.clientName}): ${errorMessage(err)}`, undefined, { cause: err });
    });
  }

  async io(pool = this.settings.pool): Promise<IoCtx> {
    let io = this.ioctxs.get(pool);
    if (!io) {
      io = this.cluster().then((c) => c.openIoCtx(pool));
      this.ioctxs.set(pool, io);
      io.catch(() => this.ioctxs.delete(pool));
    }
    return io;
  }

  /** This client's address (what others would blocklist to fence this plugin). */
  async addr(): Promise<string> {
    return bareAddr((await this.cluster()).addrs());
  }

  /**
   * Run one Ceph interaction. Connection-level failures become UNAVAILABLE
   * with a message that says Ceph did not answer; a blocklisted or broken
   * client is dropped so the next call reconnects. Answers (ENOENT, EBUSY…)
   * pass through as RadosErrors for the caller to branch on.
   */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isRadosError(err) && CONNECTION_ERRORS.has(err.errnoName)) {
        if (err.errnoName !== 'ETIMEDOUT') this.reset(`${what}: ${err.message}`);
        const why =
          err.errnoName === 'ETIMEDOUT'
            ? `Ceph did not answer within ${this.settings.timeoutSeconds} s`
            : err.errnoName === 'ESHUTDOWN'
              ? 'this host was blocklisted by Ceph (fenced); reconnecting'
              : 'the connection to Ceph failed';
        throw new CorralError('UNAVAILABLE', `${what}: ${why} (${err.message})`, { errno: err.errnoName }, { cause: err });
      }
      // A least-privilege client (profile rbd on its pools) is refused anything else: say so, as a 403, not a 500.
      if (isRadosError(err) && PERMISSION_ERRORS.has(err.errnoName)) {
        throw new CorralError(
          'FORBIDDEN',
          `${what}: Ceph refused ${this.settings.clientName} (${err.errnoName}); its caps do not allow this (a corral volume client has profile rbd on its own pools only)`,
          { errno: err.errnoName, client: this.settings.clientName },
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Forget the current client; the next call connects afresh. */
  private reset(reason: string): void {
    const old = this.current;
    this.current = undefined;
    this.ioctxs.clear();
    this.beacon = undefined;
    this.log.warn({ reason }, 'dropping the Ceph connection');
    void old?.then((c) => c.shutdown()).catch(() => undefined);
  }

  /** Keep the liveness beacon up: (re)create the watch whenever it is missing or broken. */
  startBeacon(checkEveryMs = 2000): void {
    const tick = async () => {
      if (this.closed) return;
      try {
        if (this.beacon) {
          try {
            this.beacon.io.watchCheck(this.beacon.handle);
            return;
          } catch (err) {
            this.log.warn({ err: errorMessage(err) }, 'liveness watch broke; re-watching');
            const old = this.beacon;
            this.beacon = undefined;
            await old.io.unwatch(old.handle).catch(() => undefined);
          }
        }
        await this.ensureBeacon();
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'cannot set up the liveness watch yet');
      }
    };
    void tick();
    this.beaconTimer = setInterval(() => void tick(), checkEveryMs);
    this.beaconTimer.unref();
  }

  private async watchBeacon(): Promise<void> {
    const io = await this.io();
    const oid = hostOid(this.settings.hostId);
    const payload = JSON.stringify({ host: this.settings.hostId, addr: await this.addr(), pid: process.pid });
    await this.call('creating the liveness object', () => io.writeOp(oid, [{ op: 'create' }]));
    const handle = await this.call('watching the liveness object', () => io.watch(oid, payload, this.settings.watchTimeoutSeconds));
    this.beacon = { io, handle };
  }

  /** Make sure the beacon is up now (used before taking a lock others will probe); one setup at a time. */
  async ensureBeacon(): Promise<void> {
    if (this.beacon) return;
    this.beaconSetup ??= this.watchBeacon().finally(() => (this.beaconSetup = undefined));
    await this.beaconSetup;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.beaconTimer) clearInterval(this.beaconTimer);
    const cluster = this.current;
    this.current = undefined;
    if (this.beacon) await this.beacon.io.unwatch(this.beacon.handle).catch(() => undefined);
    this.beacon = undefined;
    this.ioctxs.clear();
    await cluster?.then((c) => c.shutdown()).catch(() => undefined);
  }
}
