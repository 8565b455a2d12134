/**
 * What a storage backend provides to the VolumeService. The service owns
 * reference counting, serialisation and the local mount records; a backend
 * owns where volumes live (a local directory, a Ceph pool) and how one is
 * attached to this host and mounted at a mountpoint.
 */
import type { BackendName, FsType, SnapshotInfo, VolumeSpec } from './types.js';

/** A volume as its backend records it. */
export interface VolumeRecord {
  name: string;
  backend: BackendName;
  sizeBytes?: number;
  fsType: FsType;
  pool?: string;
  features?: string[];
  uid?: number;
  gid?: number;
  mode?: number;
  createdAt: string;
  /** Host that created it. */
  createdBy?: string;
  /** The filesystem exists and its root got uid/gid/mode (done once, at the first attach for rbd). */
  initialized?: boolean;
  /** The device grew while detached: grow the filesystem at the next attach. */
  needsGrow?: boolean;
}

/** Backend-specific facts about one attachment (device, helper pids, lock cookie), kept in the mount record. */
export type Attachment = Record<string, unknown>;

/** Saves partial progress of an attach so a crash midway can be rolled back after a restart. */
export type SaveProgress = (partial: Attachment) => Promise<void>;

export interface Backend {
  readonly name: BackendName;
  readonly scope: 'local' | 'global';
  create(spec: VolumeSpec): Promise<VolumeRecord>;
  /** Finish a creation that was cut short (its record exists but the volume is not ready); a ready volume is returned as it is. */
  finishCreate?(rec: VolumeRecord): Promise<VolumeRecord>;
  lookup(name: string): Promise<VolumeRecord | undefined>;
  list(): Promise<VolumeRecord[]>;
  /** Remove a volume nobody on this host has mounted. */
  remove(rec: VolumeRecord): Promise<void>;
  /** Where the volume's files appear on this host once attached (or always, for a directory). */
  mountpoint(rec: VolumeRecord): string;
  /** Make the filesystem available at mountpoint(rec). Undo everything on failure. */
  attach(rec: VolumeRecord, save: SaveProgress): Promise<Attachment>;
  /** Reverse of attach; also used to roll back a partial attach after a crash. */
  detach(rec: VolumeRecord, att: Attachment): Promise<void>;
  /** Host holding the attachment cluster-wide, for global backends. */
  holder?(rec: VolumeRecord): Promise<string | undefined>;
  /** Global backends: does this host still hold the attachment it made (false once another host fenced it)? */
  stillHolds?(rec: VolumeRecord, att: Attachment): Promise<boolean>;
  snapshot(rec: VolumeRecord, snap: string, mountpoint: string | undefined): Promise<SnapshotInfo>;
  listSnapshots(rec: VolumeRecord): Promise<SnapshotInfo[]>;
  /** Only while detached everywhere. */
  rollback(rec: VolumeRecord, snap: string): Promise<void>;
  removeSnapshot(rec: VolumeRecord, snap: string): Promise<void>;
  /** Grow; `att` is set when attached on this host (grow online). */
  resize(rec: VolumeRecord, sizeBytes: number, att: Attachment | undefined): Promise<VolumeRecord>;
  close(): Promise<void>;
}
