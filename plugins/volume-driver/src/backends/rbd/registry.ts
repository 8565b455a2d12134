/**
 * The cluster-wide list of rbd volumes: one omap entry per volume on the
 * object corral_volumes in the registry pool, so every host sees the same
 * list. Updates are compare-and-swap (omapCmp + omapSet in one atomic write
 * op), so concurrent hosts never overwrite each other's changes.
 */
import { conflict, CorralError } from '../../../../../contracts/errors.js';
import { isRadosError } from '../../../../../native/lib/rados.js';
import type { VolumeRecord } from '../../backend.js';
import type { CephConnection } from './connection.js';

const REGISTRY_OID = 'corral_volumes';

export interface RbdRecord extends VolumeRecord {
  pool: string;
  image: string;
  /** "creating" until the image exists; a crash leaves it so, and remove cleans it up. */
  state: 'creating' | 'ready';
}

interface Entry {
  rec: RbdRecord;
  raw: string;
}

export class Registry {
  constructor(private readonly conn: CephConnection) {}

  private parse(key: string, value: Buffer): Entry {
    const raw = value.toString('utf8');
    try {
      return { rec: JSON.parse(raw) as RbdRecord, raw };
    } catch {
      throw new CorralError('INTERNAL', `registry entry ${key} is not valid JSON`);
    }
  }

  async get(name: string): Promise<Entry | undefined> {
    const io = await this.conn.io();
    try {
      const [e] = await this.conn.call(`looking up volume ${name}`, () => io.omapGetKeys(REGISTRY_OID, [name]));
      return e ? this.parse(e.key, e.value) : undefined;
    } catch (err) {
      if (isRadosError(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async list(): Promise<RbdRecord[]> {
    const io = await this.conn.io();
    const out: RbdRecord[] = [];
    let startAfter: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.conn.call('listing volumes', () => io.omapGet(REGISTRY_OID, { max: 500, ...(startAfter ? { startAfter } : {}) }));
      } catch (err) {
        if (isRadosError(err, 'ENOENT')) return out;
        throw err;
      }
      for (const e of page.entries) out.push(this.parse(e.key, e.value).rec);
      if (!page.more || page.entries.length === 0) return out;
      startAfter = page.entries.at(-1)!.key;
    }
  }

  /** Insert; CONFLICT when the name is taken (a missing key compares equal to ""). */
  async create(rec: RbdRecord): Promise<string> {
    const io = await this.conn.io();
    const raw = JSON.stringify(rec);
    try {
      await this.conn.call(`registering volume ${rec.name}`, () =>
        io.writeOp(REGISTRY_OID, [{ op: 'create' }, { op: 'omapCmp', key: rec.name, value: '' }, { op: 'omapSet', entries: { [rec.name]: raw } }]),
      );
    } catch (err) {
      if (isRadosError(err, 'ECANCELED')) throw conflict(`volume ${rec.name} already exists`);
      throw err;
    }
    return raw;
  }

  /** Read-modify-write with CAS, retried on concurrent changes. */
  async update(name: string, change: (rec: RbdRecord) => RbdRecord): Promise<RbdRecord> {
    const io = await this.conn.io();
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.get(name);
      if (!cur) throw new CorralError('NOT_FOUND', `volume ${name} not found`);
      const next = change(cur.rec);
      const raw = JSON.stringify(next);
      try {
        await this.conn.call(`updating volume ${name}`, () =>
          io.writeOp(REGISTRY_OID, [
            { op: 'omapCmp', key: name, value: cur.raw },
            { op: 'omapSet', entries: { [name]: raw } },
          ]),
        );
        return next;
      } catch (err) {
        if (!isRadosError(err, 'ECANCELED')) throw err;
      }
    }
    throw conflict(`volume ${name} changed concurrently too often; retry`);
  }

  async remove(name: string): Promise<void> {
    const io = await this.conn.io();
    await this.conn.call(`unregistering volume ${name}`, () => io.writeOp(REGISTRY_OID, [{ op: 'create' }, { op: 'omapRm', keys: [name] }]));
  }
}
