/**
 * What this host must remember across plugin restarts: which volumes are
 * mounted here, by which references, and how each was attached. Kept in the
 * embedded Store (SQLite, crash-safe), never in a hand-written file.
 *
 * A record is written before an attach starts (phase "attaching", updated
 * with each step's progress) so that a crash midway is rolled back at the next
 * start instead of leaking a device or a lock.
 */
import { getJson, putJson, rangeJson, type Store } from '../../../common/store/index.js';
import { readFileSync } from 'node:fs';
import type { Attachment, VolumeRecord } from './backend.js';
import type { BackendName } from './types.js';

export interface MountRecord {
  name: string;
  backend: BackendName;
  phase: 'attaching' | 'mounted' | 'detaching';
  /** Reference ids (Docker's Mount ID, a task id…) in arrival order. */
  refs: string[];
  mountpoint: string;
  attachment: Attachment;
  /** The volume as it was when attached: enough to detach even if its registry is unreachable. */
  volume: VolumeRecord;
  since: string;
  /** Kernel boot the mount belongs to: after a reboot the record is stale. */
  bootId: string;
}

export function currentBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

const PREFIX = 'volume-driver/mounts/';

export class MountState {
  constructor(private readonly store: Store) {}

  async get(name: string): Promise<MountRecord | undefined> {
    return (await getJson<MountRecord>(this.store, PREFIX + name))?.value;
  }

  async put(rec: MountRecord): Promise<void> {
    await putJson(this.store, PREFIX + rec.name, rec);
  }

  async delete(name: string): Promise<void> {
    await this.store.delete(PREFIX + name);
  }

  async all(): Promise<MountRecord[]> {
    return (await rangeJson<MountRecord>(this.store, PREFIX)).entries.map((e) => e.value);
  }
}
