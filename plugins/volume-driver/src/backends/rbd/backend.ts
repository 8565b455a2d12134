/**
 * Backend "rbd": one RBD image per volume, listed in a RADOS registry every
 * host sees (scope global), attached by exactly one host at a time (see
 * exclusive.ts), formatted on first attach, detached when the last reference
 * goes, grown and snapshotted in place.
 *
 * Layout on a host: <dataDir>/rbd/<name>/mnt (the mountpoint), …/fuse (the
 * rbd-fuse mount when that attach method is used), …/rbd-fuse.log.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CorralError, conflict, invalid, notFound } from '../../../../../contracts/errors.js';
import type { Logger } from '../../../../../common/log.js';
import type { Metrics } from '../../../../../common/metrics.js';
import { isRadosError, RBD_FEATURES, type Image, type RbdFeature } from '../../../../../native/lib/rados.js';
import type { Attachment, Backend, SaveProgress, VolumeRecord } from '../../backend.js';
import { formatSize } from '../../options.js';
import { growBeforeMount, growFs, loopRefreshCapacity, mkfs, mount, tryGrowOnline, umount, umountDead, withFrozen } from '../../system.js';
import type { SnapshotInfo, VolumeSpec } from '../../types.js';
import { applyRoot } from '../local.js';
import { chooseAttachMethod, methodFor, type AttachMethod, type AttachPreference, type CephClientSettings } from './attach.js';
import { CephConnection, type CephSettings } from './connection.js';
import { attachOid, Exclusive, type ExclusiveSettings } from './exclusive.js';
import { Registry, type RbdRecord } from './registry.js';

interface RbdSettings extends CephSettings, ExclusiveSettings {
  dataDir: string;
  features: string[];
  defaultSizeBytes: number;
  attach: AttachPreference;
  dataPathTimeoutSeconds: number;
}

export class RbdBackend implements Backend {
  readonly name = 'rbd' as const;
  readonly scope = 'global' as const;
  readonly conn: CephConnection;
  private readonly registry: Registry;
  private readonly exclusive: Exclusive;
  private readonly method: AttachMethod;
  private readonly client: CephClientSettings;
  private readonly knownPools = new Set<string>();

  constructor(
    private readonly s: RbdSettings,
    private readonly log: Logger,
    metrics?: Metrics,
  ) {
    this.conn = new CephConnection(s, log);
    this.registry = new Registry(this.conn);
    const fencings = metrics?.counter('rbd_fenced_clients_total', 'Ceph clients blocklisted to take over a volume');
    this.exclusive = new Exclusive(this.conn, s, log, (addrs) => fencings?.inc(addrs.length));
    this.client = { confFile: s.confFile, keyring: s.keyring, clientName: s.clientName, dataPathTimeoutSeconds: s.dataPathTimeoutSeconds };
    this.method = chooseAttachMethod(s.attach, this.client);
    mkdirSync(join(s.dataDir, 'rbd'), { recursive: true, mode: 0o700 });
  }

  get attachMethod(): string {
    return this.method.name;
  }

  /** Start the liveness beacon (retried in the background while Ceph is away). */
  start(): void {
    this.conn.startBeacon();
  }

  private workDir(name: string): string {
    return join(this.s.dataDir, 'rbd', name);
  }

  mountpoint(rec: VolumeRecord): string {
    return join(this.workDir(rec.name), 'mnt');
  }

  private asRbd(rec: VolumeRecord): RbdRecord {
    const r = rec as RbdRecord;
    return { ...r, pool: r.pool ?? this.s.pool, image: r.image ?? r.name };
  }

  async lookup(name: string): Promise<VolumeRecord | undefined> {
    return (await this.registry.get(name))?.rec;
  }

  list(): Promise<VolumeRecord[]> {
    return this.registry.list();
  }

  private async ensurePool(pool: string): Promise<void> {
    if (this.knownPools.has(pool)) return;
    const cluster = await this.conn.cluster();
    try {
      await this.conn.call(`looking up pool ${pool}`, () => cluster.poolLookup(pool));
    } catch (err) {
      if (!isRadosError(err, 'ENOENT')) throw err;
      await this.conn
        .call(`creating pool ${pool}`, () => cluster.poolCreate(pool))
        .catch((e) => {
          if (!isRadosError(e, 'EEXIST')) throw e;
        });
      await this.conn.call(`enabling rbd on pool ${pool}`, () => cluster.monCommand(JSON.stringify({ prefix: 'osd pool application enable', pool, app: 'rbd' })));
    }
    this.knownPools.add(pool);
  }

  async create(spec: VolumeSpec): Promise<VolumeRecord> {
    const pool = spec.pool ?? this.s.pool;
    const sizeBytes = spec.sizeBytes ?? this.s.defaultSizeBytes;
    if (spec.fsType === 'xfs' && spec.sizeBytes === undefined && sizeBytes < 300 * 1024 * 1024) {
      throw new CorralError('INVALID_ARGUMENT', `option fs=xfs needs a size of at least 300M; this driver's default size is smaller: give option size`);
    }
    const features = spec.features ?? this.s.features;
    await this.ensurePool(this.s.pool);
    if (pool !== this.s.pool) await this.ensurePool(pool);
    const rec: RbdRecord = {
      name: spec.name,
      backend: 'rbd',
      pool,
      image: spec.name,
      sizeBytes,
      fsType: spec.fsType,
      features,
      createdAt: new Date().toISOString(),
      createdBy: this.s.hostId,
      initialized: false,
      state: 'creating',
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
      ...(spec.mode !== undefined ? { mode: spec.mode } : {}),
    };
    await this.registry.create(rec);
    try {
      await this.createImage(rec);
    } catch (err) {
      if (!isRadosError(err, 'EEXIST')) {
        await this.registry.remove(spec.name).catch(() => undefined);
        throw err;
      }
      throw conflict(`an rbd image ${pool}/${spec.name} already exists outside corral's registry; remove it or pick another name`);
    }
    return this.registry.update(spec.name, (r) => ({ ...r, state: 'ready' }));
  }

  async finishCreate(vol: VolumeRecord): Promise<VolumeRecord> {
    const rec = this.asRbd(vol);
    if (rec.state !== 'creating') return rec;
    try {
      await this.createImage(rec);
    } catch (err) {
      // The registry says corral is making this image: an image already there is the earlier attempt's.
      if (!isRadosError(err, 'EEXIST')) throw err;
    }
    this.log.info({ volume: rec.name }, 'finished a creation that had been cut short');
    return this.registry.update(rec.name, (r) => ({ ...r, state: 'ready' }));
  }

  private async createImage(rec: RbdRecord): Promise<void> {
    const io = await this.conn.io(rec.pool);
    const mask = (rec.features ?? this.s.features).reduce((m, f) => m | (RBD_FEATURES[f as RbdFeature] ?? 0), 0);
    const size = rec.sizeBytes ?? this.s.defaultSizeBytes;
    await this.conn.call(`creating image ${rec.pool}/${rec.image}`, () => io.rbdCreate(rec.image, size, { features: mask }));
  }

  async remove(vol: VolumeRecord): Promise<void> {
    const rec = this.asRbd(vol);
    const cookie = await this.exclusive.acquire(rec.name, rec);
    const io = await this.conn.io(rec.pool);
    await this.conn
      .call(`removing image ${rec.pool}/${rec.image}`, () => io.rbdRemove(rec.image))
      .catch((err) => {
        if (!isRadosError(err, 'ENOENT')) throw err;
      });
    await this.registry.remove(rec.name);
    const reg = await this.conn.io();
    // Removing the lock object drops our lock with it.
    await this.conn
      .call(`removing the attachment object of ${rec.name}`, () => reg.remove(attachOid(rec.name)))
      .catch((err) => {
        if (!isRadosError(err, 'ENOENT')) throw err;
      });
    this.log.debug({ volume: rec.name, cookie }, 'rbd volume removed');
  }

  async holder(rec: VolumeRecord): Promise<string | undefined> {
    return (await this.exclusive.holder(rec.name))?.host;
  }

  async stillHolds(rec: VolumeRecord, att: Attachment): Promise<boolean> {
    if (typeof att.cookie !== 'string') return false;
    return (await this.exclusive.holder(rec.name))?.cookie === att.cookie;
  }

  async attach(vol: VolumeRecord, save: SaveProgress): Promise<Attachment> {
    const rec = this.asRbd(vol);
    if (rec.state !== 'ready') throw new CorralError('UNAVAILABLE', `volume ${rec.name} is still being created (or its creation failed: remove it and create it again)`);
    const mp = this.mountpoint(rec);
    mkdirSync(mp, { recursive: true });
    const cookie = await this.exclusive.acquire(rec.name, rec);
    let att: Attachment = { cookie, method: this.method.name };
    try {
      await save(att);
      const dev = await this.method.attach(rec.pool, rec.image, this.workDir(rec.name), (state) => save({ ...att, ...state }));
      att = { ...att, ...dev.state, device: dev.device };
      if (!rec.initialized) await mkfs(dev.device, rec.fsType);
      const grow = rec.initialized === true && rec.needsGrow === true;
      const grownOffline = grow ? await growBeforeMount(dev.device, rec.fsType) : false;
      await mount(dev.device, mp, rec.fsType);
      if (grow && !grownOffline) await growFs(dev.device, mp, rec.fsType);
      if (!rec.initialized) applyRoot(mp, rec);
      if (!rec.initialized || grow) await this.registry.update(rec.name, (r) => ({ ...r, initialized: true, needsGrow: false }));
      await this.exclusive.recordDataPath(rec.name, await this.exclusive.imageClients(rec));
      return att;
    } catch (err) {
      await this.detach(rec, att).catch((e) => this.log.warn({ err: e, volume: rec.name }, 'rollback of a failed attach failed'));
      throw err;
    }
  }

  async detach(vol: VolumeRecord, att: Attachment): Promise<void> {
    const rec = this.asRbd(vol);
    const method = methodFor(att, this.client, this.method);
    if (await this.fenced(rec, att)) {
      // Another host owns the image: nothing here can be flushed to it any more. Cut the data path
      // first so that writers blocked on it fail and leave, instead of pinning the mount forever.
      this.log.warn({ volume: rec.name }, 'tearing down an attachment another host took over: pending writes on this host fail');
      await method.cut(att);
      att.cut = true;
      await umountDead(this.mountpoint(rec));
    } else {
      await umount(this.mountpoint(rec));
    }
    await method.detach(att);
    if (typeof att.cookie === 'string') await this.exclusive.release(rec.name, att.cookie);
  }

  /** Positively taken over by another host; an unreachable cluster means "don't know" (the normal path then reports it). */
  private async fenced(rec: RbdRecord, att: Attachment): Promise<boolean> {
    if (typeof att.cookie !== 'string') return false;
    return !(await this.stillHolds(rec, att).catch(() => true));
  }

  private async withImage<T>(rec: RbdRecord, what: string, fn: (img: Image) => Promise<T>): Promise<T> {
    const io = await this.conn.io(rec.pool);
    const img = await this.conn.call(`opening image ${rec.pool}/${rec.image}`, () => io.rbdOpen(rec.image));
    try {
      return await this.conn.call(what, () => fn(img));
    } finally {
      await img.close().catch(() => undefined);
    }
  }

  async snapshot(vol: VolumeRecord, snap: string, mountpoint: string | undefined): Promise<SnapshotInfo> {
    const rec = this.asRbd(vol);
    await withFrozen(mountpoint, () =>
      this.withImage(rec, `snapshotting ${rec.name}`, (img) =>
        img.snapCreate(snap).catch((err) => {
          if (isRadosError(err, 'EEXIST')) throw conflict(`snapshot ${snap} of volume ${rec.name} already exists`);
          throw err;
        }),
      ),
    );
    return { name: snap, sizeBytes: rec.sizeBytes ?? 0, createdAt: new Date().toISOString() };
  }

  async listSnapshots(vol: VolumeRecord): Promise<SnapshotInfo[]> {
    const rec = this.asRbd(vol);
    const snaps = await this.withImage(rec, `listing snapshots of ${rec.name}`, (img) => img.snapList());
    return snaps.map((s) => ({ name: s.name, sizeBytes: s.size }));
  }

  async rollback(vol: VolumeRecord, snap: string): Promise<void> {
    const rec = this.asRbd(vol);
    // Hold the attachment so no host has the filesystem mounted while its blocks change underneath.
    const cookie = await this.exclusive.acquire(rec.name, rec);
    try {
      const regrow = await this.withImage(rec, `rolling ${rec.name} back to ${snap}`, async (img) => {
        await img.snapRollback(snap).catch((err) => {
          if (isRadosError(err, 'ENOENT')) throw notFound(`snapshot ${snap} of volume ${rec.name} not found`);
          throw err;
        });
        // A rollback also returns the image to the snapshot's size; a volume grown since keeps its size (as a local one
        // does): the image is grown back at once and the filesystem at the next attach.
        const size = rec.sizeBytes ?? 0;
        if ((await img.info()).size >= size) return false;
        await img.resize(size);
        return true;
      });
      if (regrow) await this.registry.update(rec.name, (r) => ({ ...r, needsGrow: true }));
    } finally {
      await this.exclusive.release(rec.name, cookie);
    }
  }

  async removeSnapshot(vol: VolumeRecord, snap: string): Promise<void> {
    const rec = this.asRbd(vol);
    await this.withImage(rec, `removing snapshot ${snap} of ${rec.name}`, (img) =>
      img.snapRemove(snap).catch((err) => {
        if (isRadosError(err, 'ENOENT')) throw notFound(`snapshot ${snap} of volume ${rec.name} not found`);
        throw err;
      }),
    );
  }

  async resize(vol: VolumeRecord, sizeBytes: number, att: Attachment | undefined): Promise<VolumeRecord> {
    const rec = this.asRbd(vol);
    const cur = rec.sizeBytes ?? 0;
    if (sizeBytes < cur) throw invalid(`volume ${rec.name} is ${formatSize(cur)}; shrinking is not supported`);
    if (sizeBytes === cur) return rec;
    await this.withImage(rec, `resizing ${rec.name}`, (img) => img.resize(sizeBytes));
    if (att && typeof att.device === 'string') {
      if (typeof att.loop === 'string') await loopRefreshCapacity(att.loop);
      const grown = await tryGrowOnline(att.device, this.mountpoint(rec), rec.fsType);
      return this.registry.update(rec.name, (r) => ({ ...r, sizeBytes, ...(grown ? {} : { needsGrow: true }) }));
    }
    // Not attached here: the filesystem grows at the next attach (it may be mounted on another host).
    return this.registry.update(rec.name, (r) => ({ ...r, sizeBytes, needsGrow: true }));
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
