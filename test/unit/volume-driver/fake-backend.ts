/**
 * A storage backend for the volume service's unit tests (the storage boundary):
 * volumes in a map, attachments as plain records, detaches that can be made to
 * fail a given number of times, and a switch for whether it still holds a volume.
 */
import type { Attachment, Backend, VolumeRecord } from '../../../plugins/volume-driver/src/backend.js';
import type { VolumeSpec } from '../../../plugins/volume-driver/src/types.js';

export class FakeBackend implements Backend {
  readonly name = 'local' as const;
  readonly scope = 'local' as const;
  readonly vols = new Map<string, VolumeRecord>();
  attaches = 0;
  detaches: Attachment[] = [];
  /** Names of the volumes detached, in order. */
  detachedNames: string[] = [];
  failDetach = 0;
  holds = true;

  async create(spec: VolumeSpec): Promise<VolumeRecord> {
    // A size makes recovery treat the volume as needing a kernel mount; the fake has none, so keep it a directory.
    const rec: VolumeRecord = { name: spec.name, backend: 'local', fsType: spec.fsType, createdAt: new Date(0).toISOString() };
    this.vols.set(spec.name, rec);
    return rec;
  }
  async lookup(name: string) {
    return this.vols.get(name);
  }
  async list() {
    return [...this.vols.values()];
  }
  async remove(rec: VolumeRecord) {
    this.vols.delete(rec.name);
  }
  mountpoint(rec: VolumeRecord) {
    return `/fake/${rec.name}`;
  }
  async attach(_rec: VolumeRecord, save: (a: Attachment) => Promise<void>) {
    this.attaches++;
    await save({ step: 1 });
    return { device: `/dev/fake${this.attaches}` };
  }
  async detach(rec: VolumeRecord, att: Attachment) {
    if (this.failDetach > 0) {
      this.failDetach--;
      throw new Error('umount: target is busy');
    }
    this.detaches.push(att);
    this.detachedNames.push(rec.name);
  }
  async stillHolds() {
    return this.holds;
  }
  async snapshot() {
    return { name: 's' };
  }
  async listSnapshots() {
    return [];
  }
  async rollback() {}
  async removeSnapshot() {}
  async resize(rec: VolumeRecord) {
    return rec;
  }
  async close() {}
}
