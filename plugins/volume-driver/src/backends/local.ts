/**
 * Backend "local", the embedded default: a volume is a directory under the
 * data dir, or — with a size — an ext4/xfs image file attached through a loop
 * device, so the limit is enforced by the filesystem itself (writes past it
 * fail with ENOSPC). Records live in this host's Store; scope local.
 *
 * Layout: <root>/<name>/_data (the files, or the mountpoint of disk.img),
 * <root>/<name>/disk.img, <root>/<name>/snapshots/.
 */
import { mkdirSync, renameSync, rmSync, statfsSync, statSync, existsSync, readdirSync, openSync, ftruncateSync, closeSync, chownSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { conflict, invalid, isCorralError, notFound } from '../../../../contracts/errors.js';
import { getJson, putJson, rangeJson, type Store } from '../../../../common/store/index.js';
import type { Attachment, Backend, SaveProgress, VolumeRecord } from '../backend.js';
import { growBeforeMount, growFs, growOfflineExt4, loopAttach, loopDetach, loopRefreshCapacity, mkfs, mount, tryGrowOnline, umount, withFrozen } from '../system.js';
import { exec } from '../../../../common/sys/exec.js';
import { isMountpoint } from '../../../../common/sys/mounts.js';
import type { SnapshotInfo, VolumeSpec } from '../types.js';
import { formatSize } from '../options.js';

const PREFIX = 'volume-driver/local/';

export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  readonly scope = 'local' as const;

  constructor(
    private readonly store: Store,
    private readonly root: string,
  ) {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  private dir(name: string): string {
    return join(this.root, name);
  }

  private image(name: string): string {
    return join(this.dir(name), 'disk.img');
  }

  mountpoint(rec: VolumeRecord): string {
    return join(this.dir(rec.name), '_data');
  }

  async lookup(name: string): Promise<VolumeRecord | undefined> {
    return (await getJson<VolumeRecord>(this.store, PREFIX + name))?.value;
  }

  async list(): Promise<VolumeRecord[]> {
    return (await rangeJson<VolumeRecord>(this.store, PREFIX)).entries.map((e) => e.value);
  }

  private async save(rec: VolumeRecord): Promise<void> {
    await putJson(this.store, PREFIX + rec.name, rec);
  }

  async create(spec: VolumeSpec): Promise<VolumeRecord> {
    if (await this.lookup(spec.name)) throw conflict(`volume ${spec.name} already exists`);
    if (spec.sizeBytes !== undefined) {
      const fs = statfsSync(this.root);
      const total = fs.blocks * fs.bsize;
      if (spec.sizeBytes > total) {
        throw invalid(`size ${formatSize(spec.sizeBytes)} is larger than the filesystem holding local volumes (${formatSize(Math.floor(total / 1048576) * 1048576)})`);
      }
    }
    // Build under a temporary name and rename: a crash leaves only a .tmp dir, never half a volume.
    const tmp = join(this.root, `.tmp-${spec.name}-${randomBytes(4).toString('hex')}`);
    mkdirSync(join(tmp, '_data'), { recursive: true });
    mkdirSync(join(tmp, 'snapshots'));
    try {
      if (spec.sizeBytes !== undefined) {
        const fd = openSync(join(tmp, 'disk.img'), 'wx', 0o600);
        try {
          ftruncateSync(fd, spec.sizeBytes);
        } finally {
          closeSync(fd);
        }
        await mkfs(join(tmp, 'disk.img'), spec.fsType);
      } else {
        applyRoot(join(tmp, '_data'), spec);
      }
      // A directory without a record is the leftover of a create that crashed after the rename.
      if (existsSync(this.dir(spec.name))) rmSync(this.dir(spec.name), { recursive: true, force: true });
      renameSync(tmp, this.dir(spec.name));
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    const rec: VolumeRecord = {
      name: spec.name,
      backend: 'local',
      fsType: spec.fsType,
      createdAt: new Date().toISOString(),
      ...(spec.sizeBytes !== undefined ? { sizeBytes: spec.sizeBytes, initialized: false } : { initialized: true }),
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
      ...(spec.mode !== undefined ? { mode: spec.mode } : {}),
    };
    try {
      await putJson(this.store, PREFIX + spec.name, rec, { ifModRevision: 0 });
    } catch (err) {
      if (isCorralError(err, 'STORE_CONFLICT')) throw conflict(`volume ${spec.name} already exists`);
      throw err;
    }
    return rec;
  }

  async remove(rec: VolumeRecord): Promise<void> {
    if (isMountpoint(this.mountpoint(rec))) throw conflict(`volume ${rec.name} is still mounted at ${this.mountpoint(rec)}`);
    // Move aside first so a crash never leaves a record pointing at half-deleted files.
    const trash = join(this.root, `.trash-${rec.name}-${randomBytes(4).toString('hex')}`);
    if (existsSync(this.dir(rec.name))) renameSync(this.dir(rec.name), trash);
    await this.store.delete(PREFIX + rec.name);
    rmSync(trash, { recursive: true, force: true });
  }

  async attach(rec: VolumeRecord, save: SaveProgress): Promise<Attachment> {
    const mp = this.mountpoint(rec);
    if (rec.sizeBytes === undefined) return {};
    const file = this.image(rec.name);
    const loop = await loopAttach(file);
    const att: Attachment = { loop, file };
    try {
      await save(att);
      const grownOffline = rec.needsGrow ? await growBeforeMount(loop, rec.fsType) : false;
      await mount(loop, mp, rec.fsType);
      if (rec.needsGrow && !grownOffline) await growFs(loop, mp, rec.fsType);
      if (!rec.initialized) applyRoot(mp, rec);
      if (!rec.initialized || rec.needsGrow) await this.save({ ...rec, initialized: true, needsGrow: false });
      return att;
    } catch (err) {
      await this.detach(rec, att).catch(() => undefined);
      throw err;
    }
  }

  async detach(rec: VolumeRecord, att: Attachment): Promise<void> {
    if (rec.sizeBytes === undefined) return;
    await umount(this.mountpoint(rec));
    if (typeof att.loop === 'string') await loopDetach(att.loop, typeof att.file === 'string' ? att.file : undefined);
  }

  async snapshot(rec: VolumeRecord, snap: string, mountpoint: string | undefined): Promise<SnapshotInfo> {
    const target = this.snapPath(rec, snap);
    if (existsSync(target)) throw conflict(`snapshot ${snap} of volume ${rec.name} already exists`);
    const tmp = `${target}.tmp-${randomBytes(3).toString('hex')}`;
    try {
      await withFrozen(mountpoint, async () => {
        if (rec.sizeBytes !== undefined) await exec('cp', ['--sparse=always', this.image(rec.name), tmp], { timeoutMs: 600_000 });
        else await exec('cp', ['-a', this.mountpoint(rec), tmp], { timeoutMs: 600_000 });
      });
      renameSync(tmp, target);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    return this.snapInfo(rec, snap);
  }

  private snapPath(rec: VolumeRecord, snap: string): string {
    return join(this.dir(rec.name), 'snapshots', rec.sizeBytes !== undefined ? `${snap}.img` : snap);
  }

  private snapInfo(rec: VolumeRecord, snap: string): SnapshotInfo {
    const st = statSync(this.snapPath(rec, snap));
    return { name: snap, createdAt: st.mtime.toISOString(), ...(rec.sizeBytes !== undefined ? { sizeBytes: st.size } : {}) };
  }

  async listSnapshots(rec: VolumeRecord): Promise<SnapshotInfo[]> {
    const dir = join(this.dir(rec.name), 'snapshots');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => !f.includes('.tmp-'))
      .map((f) => (rec.sizeBytes !== undefined ? f.replace(/\.img$/, '') : f))
      .sort()
      .map((s) => this.snapInfo(rec, s));
  }

  async rollback(rec: VolumeRecord, snap: string): Promise<void> {
    const src = this.snapPath(rec, snap);
    if (!existsSync(src)) throw notFound(`snapshot ${snap} of volume ${rec.name} not found`);
    if (isMountpoint(this.mountpoint(rec))) throw conflict(`volume ${rec.name} is mounted; unmount it before a rollback`);
    const target = rec.sizeBytes !== undefined ? this.image(rec.name) : this.mountpoint(rec);
    const tmp = `${target}.rollback-${randomBytes(3).toString('hex')}`;
    await exec('cp', rec.sizeBytes !== undefined ? ['--sparse=always', src, tmp] : ['-a', src, tmp], { timeoutMs: 600_000 });
    if (rec.sizeBytes === undefined) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
    // The snapshot may predate a resize: keep the volume's current size, growing the filesystem at the next attach.
    if (rec.sizeBytes !== undefined && statSync(target).size < rec.sizeBytes) {
      const fd = openSync(target, 'r+');
      try {
        ftruncateSync(fd, rec.sizeBytes);
      } finally {
        closeSync(fd);
      }
      await this.save({ ...rec, needsGrow: true });
    }
  }

  async removeSnapshot(rec: VolumeRecord, snap: string): Promise<void> {
    const p = this.snapPath(rec, snap);
    if (!existsSync(p)) throw notFound(`snapshot ${snap} of volume ${rec.name} not found`);
    rmSync(p, { recursive: true, force: true });
  }

  async resize(rec: VolumeRecord, sizeBytes: number, att: Attachment | undefined): Promise<VolumeRecord> {
    if (rec.sizeBytes === undefined) throw invalid(`volume ${rec.name} is a plain directory without a size; only sized volumes can be resized`);
    if (sizeBytes < rec.sizeBytes) throw invalid(`volume ${rec.name} is ${formatSize(rec.sizeBytes)}; shrinking is not supported`);
    if (sizeBytes === rec.sizeBytes) return rec;
    const fd = openSync(this.image(rec.name), 'r+');
    try {
      ftruncateSync(fd, sizeBytes);
    } finally {
      closeSync(fd);
    }
    let next: VolumeRecord = { ...rec, sizeBytes };
    if (att && typeof att.loop === 'string') {
      await loopRefreshCapacity(att.loop);
      if (!(await tryGrowOnline(att.loop, this.mountpoint(rec), rec.fsType))) next = { ...next, needsGrow: true };
    } else if (rec.fsType === 'ext4') {
      await growOfflineExt4(this.image(rec.name));
    } else {
      next = { ...next, needsGrow: true };
    }
    await this.save(next);
    return next;
  }

  async close(): Promise<void> {}
}

/** Ownership and mode of a new volume's root directory. */
export function applyRoot(dir: string, spec: { uid?: number; gid?: number; mode?: number }): void {
  if (spec.uid !== undefined || spec.gid !== undefined) chownSync(dir, spec.uid ?? 0, spec.gid ?? 0);
  if (spec.mode !== undefined) chmodSync(dir, spec.mode);
}
