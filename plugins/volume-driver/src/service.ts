/**
 * VolumeService: the one code path for volumes on a host. The Docker plugin,
 * the admin API (`corral volume …`) and the isolator all call it. It validates
 * names and options, serialises operations per volume, counts mount
 * references by id, persists them (so a restart forgets nothing) and
 * delegates storage to the backends (local, rbd). Detaching converges: a
 * detach that fails, or an attachment nothing holds any more, is retried by
 * the reconciler (reconcile.ts) until it is gone.
 *
 * Volume names are cluster-wide: a name is looked up in every configured
 * backend, and when the rbd backend is configured but unreachable the
 * service refuses rather than guess (it never creates a local volume that
 * shadows an rbd volume it could not see).
 */
import { CorralError, conflict, errorMessage, invalid, notFound } from '../../../contracts/errors.js';
import { logger, type Logger } from '../../../common/log.js';
import type { Metrics } from '../../../common/metrics.js';
import type { Store } from '../../../common/store/index.js';
import type { Backend, VolumeRecord } from './backend.js';
import { KeyedMutex } from '../../../common/mutex.js';
import { checkName, parseOptions, parseResize } from './options.js';
import { currentBootId, MountState, type MountRecord } from './state.js';
import type { BackendName, SnapshotInfo, VolumeInfo, VolumeSpec, Volumes } from './types.js';
import { DetachReconciler, type LiveContainers, type ReconcileSettings } from './reconcile.js';
import { namespaceHolders, namespacesMounting } from './holders.js';

interface VolumeServiceOptions {
  hostId: string;
  store: Store;
  backends: { local: Backend; rbd?: Backend };
  /** Why rbd cannot be used, when it is configured but not usable (addon missing…). */
  rbdUnavailable?: string;
  /** rbd is configured at all (then names must be checked against it). */
  rbdConfigured: boolean;
  defaultBackend: BackendName;
  log?: Logger;
  metrics?: Metrics;
  /** How often and how patiently detaches are retried and orphaned references released. */
  reconcile?: Partial<ReconcileSettings>;
  /** The agent's live containers: task references whose container it no longer runs are released. Unset: never on the agent's word. */
  liveContainers?: LiveContainers;
}

const ID_MAX = 256;

export class VolumeService implements Volumes {
  readonly hostId: string;
  private readonly mutex = new KeyedMutex();
  private readonly mounts: MountState;
  private readonly log: Logger;
  private readonly opCounter;
  private readonly opSeconds;
  readonly reconciler: DetachReconciler;

  constructor(private readonly opts: VolumeServiceOptions) {
    this.hostId = opts.hostId;
    this.mounts = new MountState(opts.store);
    this.log = opts.log ?? logger('volume-driver');
    this.opCounter = opts.metrics?.counter('volume_operations_total', 'Volume operations by result', ['op', 'result']);
    this.opSeconds = opts.metrics?.histogram('volume_operation_seconds', 'Volume operation latency', [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15], ['op']);
    this.reconciler = new DetachReconciler({
      mounts: this.mounts,
      backend: (n) => this.backend(n),
      mutex: this.mutex,
      log: this.log,
      ...(opts.reconcile ? { settings: opts.reconcile } : {}),
      ...(opts.liveContainers ? { live: opts.liveContainers } : {}),
      holders: (m) => namespaceHolders(m.mountpoint).map((h) => `pid ${h.pid} at ${h.target}`),
      mountedBy: (device) => namespacesMounting(device).map((h) => `${h.comm} (pid ${h.pid}) at ${h.target}`),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    });
    opts.metrics?.gauge(
      'volumes_mounted',
      'Volumes mounted on this host',
      [],
      (g) =>
        void this.mounts.all().then(
          (all) => g.set(all.length),
          () => undefined,
        ),
    );
  }

  get defaultBackend(): BackendName {
    return this.opts.defaultBackend;
  }

  /** Scope Docker should see: global when the default backend is shared by every host. */
  get scope(): 'local' | 'global' {
    return this.opts.defaultBackend === 'rbd' ? 'global' : 'local';
  }

  /** Recover from a crash or reboot (roll back half attaches, drop mounts a reboot ended), then keep detaches converging. */
  async start(): Promise<void> {
    await this.reconciler.start();
  }

  /** Stops background work and backends; mounts stay (containers keep running). */
  async close(): Promise<void> {
    this.reconciler.stop();
    await Promise.all(Object.values(this.opts.backends).map((b) => b?.close()));
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const end = this.opSeconds?.startTimer({ op });
    try {
      const out = await fn();
      this.opCounter?.inc({ op, result: 'ok' });
      return out;
    } catch (err) {
      this.opCounter?.inc({ op, result: err instanceof CorralError ? err.code : 'INTERNAL' });
      throw err;
    } finally {
      end?.();
    }
  }

  private backend(name: BackendName): Backend {
    const b = this.opts.backends[name];
    if (b) return b;
    // Not configured is the operator's choice (412); configured but unusable is an outage (503).
    const code = this.opts.rbdConfigured ? 'UNAVAILABLE' : 'FAILED_PRECONDITION';
    throw new CorralError(code, `backend ${name} is unavailable: ${this.opts.rbdUnavailable ?? 'it is not configured (set rbd.confFile)'}`);
  }

  /** The volume in whichever backend has it; undefined when no backend does. */
  private async lookup(name: string): Promise<{ rec: VolumeRecord; backend: Backend } | undefined> {
    const local = await this.opts.backends.local.lookup(name);
    if (local) return { rec: local, backend: this.opts.backends.local };
    if (!this.opts.rbdConfigured) return undefined;
    const rbd = this.opts.backends.rbd;
    if (!rbd) throw new CorralError('UNAVAILABLE', `cannot tell whether rbd volume ${name} exists: ${this.opts.rbdUnavailable ?? 'rbd backend unavailable'}`);
    const rec = await rbd.lookup(name);
    return rec ? { rec, backend: rbd } : undefined;
  }

  private async find(name: string): Promise<{ rec: VolumeRecord; backend: Backend }> {
    const found = await this.lookup(checkName(name));
    if (!found) throw notFound(`volume ${name} not found`);
    return found;
  }

  private async info(rec: VolumeRecord, backend: Backend, m?: MountRecord): Promise<VolumeInfo> {
    const mounted = m?.phase === 'mounted';
    const dirVolume = rec.backend === 'local' && rec.sizeBytes === undefined;
    const holder = backend.holder ? await backend.holder(rec) : undefined;
    return {
      name: rec.name,
      backend: rec.backend,
      scope: backend.scope,
      ...(rec.sizeBytes !== undefined ? { sizeBytes: rec.sizeBytes, fsType: rec.fsType } : {}),
      ...(rec.pool ? { pool: rec.pool } : {}),
      createdAt: rec.createdAt,
      ...(mounted || dirVolume ? { mountpoint: m?.mountpoint ?? backend.mountpoint(rec) } : {}),
      refs: m?.refs.length ?? 0,
      ...(holder ? { attachedTo: holder } : {}),
      ...(rec.needsGrow ? { pendingGrow: true } : {}),
    };
  }

  create(name: string, opts?: Record<string, string> | null): Promise<VolumeInfo> {
    return this.timed('create', async () => {
      const spec = parseOptions(name, opts, this.opts.defaultBackend);
      return this.mutex.run(name, async () => {
        const existing = await this.lookup(name);
        if (existing) {
          if (sameSpec(existing.rec, spec, opts)) {
            // A creation cut short (Ceph went away mid-way, or a timed-out request landed late): creating it again finishes it.
            const rec = existing.backend.finishCreate ? await existing.backend.finishCreate(existing.rec) : existing.rec;
            return this.info(rec, existing.backend, await this.mounts.get(name));
          }
          throw conflict(`volume ${name} already exists (backend ${existing.rec.backend}) with different options`);
        }
        const backend = this.backend(spec.backend);
        const rec = await backend.create(spec);
        this.log.info({ volume: name, backend: spec.backend, sizeBytes: spec.sizeBytes }, 'volume created');
        return this.info(rec, backend);
      });
    });
  }

  remove(name: string): Promise<void> {
    return this.timed('remove', () =>
      this.mutex.run(name, async () => {
        const { rec, backend } = await this.find(name);
        const m = await this.mounts.get(name);
        if (m && m.refs.length > 0) throw conflict(`volume ${name} is in use on this host (${m.refs.length} mount reference(s))`);
        if (m) {
          await this.reconciler.release(m).catch((err: unknown) => {
            throw new CorralError('UNAVAILABLE', `volume ${name} is still being detached from this host (${errorMessage(err)}); retrying in the background, try again shortly`);
          });
        }
        await backend.remove(rec);
        this.log.info({ volume: name }, 'volume removed');
      }),
    );
  }

  mount(name: string, id: string): Promise<string> {
    return this.timed('mount', async () => {
      checkName(name);
      if (typeof id !== 'string' || id.length > ID_MAX) throw invalid(`mount id must be a string of at most ${ID_MAX} characters`);
      return this.mutex.run(name, async () => {
        const m = await this.mounts.get(name);
        if (m?.phase === 'mounted') {
          if (!m.refs.includes(id)) await this.mounts.put({ ...m, refs: [...m.refs, id] });
          return m.mountpoint;
        }
        if (m) {
          // Left half-done by an earlier failure (the reconciler retries it): finish it now rather than make the caller wait.
          await this.reconciler.release(m).catch((err: unknown) => {
            throw new CorralError(
              'UNAVAILABLE',
              `volume ${name} is still being ${m.phase === 'attaching' ? 'attached' : 'detached'} after an earlier failure (${errorMessage(err)}); retrying in the background, try again shortly`,
            );
          });
        }
        const { rec, backend } = await this.find(name);
        const record: MountRecord = {
          name,
          backend: rec.backend,
          phase: 'attaching',
          refs: [id],
          mountpoint: backend.mountpoint(rec),
          attachment: {},
          volume: rec,
          since: new Date().toISOString(),
          bootId: currentBootId(),
        };
        await this.mounts.put(record);
        let attachment;
        try {
          attachment = await backend.attach(rec, (partial) => this.mounts.put({ ...record, attachment: partial }));
        } catch (err) {
          await this.mounts.delete(name);
          throw err;
        }
        await this.mounts.put({ ...record, phase: 'mounted', attachment });
        this.log.info({ volume: name, id, mountpoint: record.mountpoint }, 'volume mounted');
        return record.mountpoint;
      });
    });
  }

  unmount(name: string, id: string): Promise<void> {
    return this.timed('unmount', () =>
      this.mutex.run(checkName(name), async () => {
        const m = await this.mounts.get(name);
        if (!m || !m.refs.includes(id)) {
          this.log.warn({ volume: name, id }, 'unmount of a reference this host does not hold; ignored');
          return;
        }
        const refs = m.refs.filter((r) => r !== id);
        if (refs.length > 0) {
          await this.mounts.put({ ...m, refs });
          return;
        }
        // The reference is gone for good; should the detach fail, the reconciler retries it until it goes through.
        const detaching: MountRecord = { ...m, refs, phase: 'detaching' };
        await this.mounts.put(detaching);
        await this.reconciler.release(detaching);
        this.log.info({ volume: name }, 'volume unmounted and detached');
      }),
    );
  }

  path(name: string): Promise<string | undefined> {
    return this.timed('path', async () => {
      const m = await this.mounts.get(checkName(name));
      if (m?.phase === 'mounted') return m.mountpoint;
      const { rec, backend } = await this.find(name);
      return rec.backend === 'local' && rec.sizeBytes === undefined ? backend.mountpoint(rec) : undefined;
    });
  }

  get(name: string): Promise<VolumeInfo> {
    return this.timed('get', async () => {
      const { rec, backend } = await this.find(name);
      return this.info(rec, backend, await this.mounts.get(name));
    });
  }

  list(): Promise<VolumeInfo[]> {
    return this.timed('list', async () => {
      const mounts = new Map((await this.mounts.all()).map((m) => [m.name, m]));
      const out: VolumeInfo[] = [];
      for (const backend of [this.opts.backends.local, ...(this.opts.rbdConfigured ? [this.backend('rbd')] : [])]) {
        for (const rec of await backend.list()) out.push(await this.info(rec, backend, mounts.get(rec.name)));
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  snapshot(name: string, snap: string): Promise<SnapshotInfo> {
    return this.timed('snapshot', () =>
      this.mutex.run(name, async () => {
        checkName(snap, 'snapshot name');
        const { rec, backend } = await this.find(name);
        const m = await this.mounts.get(name);
        return backend.snapshot(rec, snap, m?.phase === 'mounted' ? m.mountpoint : undefined);
      }),
    );
  }

  listSnapshots(name: string): Promise<SnapshotInfo[]> {
    return this.timed('snapshots', async () => {
      const { rec, backend } = await this.find(name);
      return backend.listSnapshots(rec);
    });
  }

  rollback(name: string, snap: string): Promise<void> {
    return this.timed('rollback', () =>
      this.mutex.run(name, async () => {
        checkName(snap, 'snapshot name');
        const { rec, backend } = await this.find(name);
        if (await this.mounts.get(name)) throw conflict(`volume ${name} is mounted on this host; unmount it before a rollback`);
        await backend.rollback(rec, snap);
      }),
    );
  }

  removeSnapshot(name: string, snap: string): Promise<void> {
    return this.timed('snapshot_remove', () =>
      this.mutex.run(name, async () => {
        checkName(snap, 'snapshot name');
        const { rec, backend } = await this.find(name);
        await backend.removeSnapshot(rec, snap);
      }),
    );
  }

  resize(name: string, size: number | string): Promise<VolumeInfo> {
    return this.timed('resize', () =>
      this.mutex.run(name, async () => {
        const sizeBytes = parseResize(size);
        const { rec, backend } = await this.find(name);
        const m = await this.mounts.get(name);
        const next = await backend.resize(rec, sizeBytes, m?.phase === 'mounted' ? m.attachment : undefined);
        if (m) await this.mounts.put({ ...m, volume: next });
        return this.info(next, backend, m);
      }),
    );
  }
}

/** A repeated create is fine when it asks for nothing different (Docker re-creates freely). */
function sameSpec(rec: VolumeRecord, spec: VolumeSpec, opts: Record<string, string> | null | undefined): boolean {
  if (!opts || Object.keys(opts).length === 0) return true;
  return rec.backend === spec.backend && rec.sizeBytes === spec.sizeBytes && (spec.sizeBytes === undefined || rec.fsType === spec.fsType) && (spec.pool === undefined || rec.pool === spec.pool);
}
