/**
 * The volume library's contract. `Volumes` is what every caller sees: the
 * Docker plugin adapter, the admin API behind `corral volume`, and the
 * isolator mounting external volumes for native tasks. `VolumeService`
 * implements it over pluggable backends; `VolumeClient` implements it by
 * calling a running volume-driver daemon, so a second process on the host
 * never opens the state or Ceph itself.
 */

export type BackendName = 'local' | 'rbd';
export type FsType = 'ext4' | 'xfs';

/** A validated create request (see options.ts for how Docker's string options become this). */
export interface VolumeSpec {
  name: string;
  backend: BackendName;
  /** Absent for a local volume = a plain directory without a size limit. */
  sizeBytes?: number;
  fsType: FsType;
  /** rbd: pool holding the image. */
  pool?: string;
  /** rbd: image features. */
  features?: string[];
  uid?: number;
  gid?: number;
  /** Octal permission bits of the volume's root, e.g. 0o755. */
  mode?: number;
}

export interface VolumeInfo {
  name: string;
  backend: BackendName;
  /** local: only this host sees it; global: every host of the cluster does. */
  scope: 'local' | 'global';
  sizeBytes?: number;
  fsType?: FsType;
  pool?: string;
  createdAt: string;
  /** Where the volume's files are on this host, when available here. */
  mountpoint?: string;
  /** Mount references held on this host. */
  refs: number;
  /** rbd: the host holding the exclusive attachment, if any. */
  attachedTo?: string;
  /** The device grew but the filesystem grows at the next attach (online growth was not possible). */
  pendingGrow?: boolean;
}

export interface SnapshotInfo {
  name: string;
  sizeBytes?: number;
  createdAt?: string;
}

export interface Volumes {
  /** Docker's option map (all strings) or null; validated and typed here. */
  create(name: string, opts?: Record<string, string> | null): Promise<VolumeInfo>;
  remove(name: string): Promise<void>;
  /** Attach (first reference) and return the mountpoint; `id` is the reference (a container or task id). */
  mount(name: string, id: string): Promise<string>;
  /** Drop one reference; the last one unmounts and detaches. Unknown ids are ignored. */
  unmount(name: string, id: string): Promise<void>;
  /** The mountpoint when the volume is available on this host, else undefined. */
  path(name: string): Promise<string | undefined>;
  get(name: string): Promise<VolumeInfo>;
  list(): Promise<VolumeInfo[]>;
  snapshot(name: string, snap: string): Promise<SnapshotInfo>;
  listSnapshots(name: string): Promise<SnapshotInfo[]>;
  rollback(name: string, snap: string): Promise<void>;
  removeSnapshot(name: string, snap: string): Promise<void>;
  /** Grow to `sizeBytes` (online when mounted here). Shrinking is refused. */
  resize(name: string, sizeBytes: number): Promise<VolumeInfo>;
}
