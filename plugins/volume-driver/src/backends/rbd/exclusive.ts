/**
 * Exclusive attachment of rbd volumes, enforced in Ceph: one host at a time.
 *
 * A host attaches a volume only while holding the exclusive RADOS lock
 * "corral-attach" on corral_attach.<name>, with the cookie "<hostId>/<nonce>".
 * When another host holds it:
 *  - if that host answers a liveness probe (a notify on its beacon object),
 *    the attach is refused: never two writers;
 *  - if it does not (dead, or cut off from Ceph), it is fenced first — its
 *    plugin client and every data-path client it recorded are blocklisted,
 *    and librados waits for the osdmap that carries the entries — and only
 *    then is its lock broken and taken.
 * After taking the lock, any client still holding the image open (a data path
 * whose owner crashed before recording it, say) is fenced too, so the new
 * data path is the only writer whatever happened before.
 */
import { randomBytes } from 'node:crypto';
import { conflict, errorMessage } from '../../../../../contracts/errors.js';
import type { Logger } from '../../../../../common/log.js';
import { isRadosError } from '../../../../../native/lib/rados.js';
import { bareAddr, hostOid, type CephConnection } from './connection.js';

const LOCK_NAME = 'corral-attach';
export const attachOid = (name: string): string => `corral_attach.${name}`;

interface Holder {
  host: string;
  /** RADOS entity holding the lock, e.g. client.4123. */
  client: string;
  cookie: string;
  addr: string;
}

/** What the holder wrote about itself, for whoever must fence it. */
interface HolderRecord {
  host: string;
  pluginAddr: string;
  /** Clients of the data path (rbd-fuse, kernel rbd) with the image open. */
  dataAddrs: string[];
  since: string;
}

export interface ExclusiveSettings {
  hostId: string;
  /** How long a holder has to answer the liveness probe (Ceph rounds to whole seconds, minimum 1). */
  livenessTimeoutMs: number;
  /** A holder with no beacon watch gets this long to re-register before it is presumed dead. */
  livenessGraceMs: number;
  blocklistExpireSeconds: number;
}

interface ImageRef {
  pool: string;
  image: string;
}

export class Exclusive {
  constructor(
    private readonly conn: CephConnection,
    private readonly settings: ExclusiveSettings,
    private readonly log: Logger,
    private readonly onFence: (addrs: string[]) => void = () => undefined,
  ) {}

  async holder(name: string): Promise<Holder | undefined> {
    const io = await this.conn.io();
    const info = await this.conn.call(`reading the attachment of ${name}`, () => io.listLockers(attachOid(name), LOCK_NAME));
    const l = info.lockers[0];
    if (!l) return undefined;
    return { host: l.cookie.split('/')[0] ?? '', client: l.client, cookie: l.cookie, addr: bareAddr(l.addr) };
  }

  /**
   * Does `host` answer its beacon? "alive": it acknowledged. "silent": it has
   * a watch but did not answer in time (dead, hung or cut off). "absent": no
   * watch at all — long dead, never registered, or its watch lapsed during a
   * cluster outage and it has not re-registered yet.
   */
  async probe(host: string): Promise<'alive' | 'silent' | 'absent'> {
    const io = await this.conn.io();
    try {
      const res = await this.conn.call(`probing host ${host}`, () => io.notify(hostOid(host), 'probe', this.settings.livenessTimeoutMs));
      const answered = res.acks.some((a) => {
        try {
          return (JSON.parse(a.payload.toString('utf8')) as { host?: string }).host === host;
        } catch {
          return false;
        }
      });
      if (answered) return 'alive';
      return res.timeouts.length > 0 ? 'silent' : 'absent';
    } catch (err) {
      if (isRadosError(err, 'ENOENT')) return 'absent';
      throw err;
    }
  }

  /** Alive unless it stays silent, or stays absent through a grace period (time to re-register after an outage). */
  async isAlive(host: string): Promise<boolean> {
    const first = await this.probe(host);
    if (first !== 'absent') return first === 'alive';
    await new Promise((r) => setTimeout(r, this.settings.livenessGraceMs));
    return (await this.probe(host)) === 'alive';
  }

  /** Take the attachment for this host (fencing a dead holder); returns the lock cookie. */
  async acquire(name: string, image: ImageRef): Promise<string> {
    const io = await this.conn.io();
    // Others must be able to see we are alive before we hold anything they would probe.
    await this.conn.ensureBeacon();
    const cookie = `${this.settings.hostId}/${randomBytes(6).toString('hex')}`;
    const since = new Date().toISOString();
    for (let attempt = 0; attempt < 4; attempt++) {
      let locked = false;
      try {
        await this.conn.call(`locking volume ${name}`, () => io.lockExclusive(attachOid(name), LOCK_NAME, cookie, { description: JSON.stringify({ host: this.settings.hostId, since }) }));
        locked = true;
      } catch (err) {
        if (!isRadosError(err, 'EBUSY') && !isRadosError(err, 'EEXIST')) throw err;
      }
      if (locked) {
        try {
          await this.writeHolder(name, { host: this.settings.hostId, pluginAddr: await this.conn.addr(), dataAddrs: [], since });
          await this.fenceImageClients(image);
          return cookie;
        } catch (err) {
          await this.release(name, cookie).catch(() => undefined);
          throw err;
        }
      }
      const holder = await this.holder(name);
      if (!holder) continue;
      const ownClient = holder.client === `client.${(await this.conn.cluster()).instanceId()}`;
      if (ownClient) {
        // Left by this very process (an unlock that failed while Ceph was away): nothing to fence.
        await this.breakLock(name, holder);
        continue;
      }
      if (holder.host !== this.settings.hostId && (await this.isAlive(holder.host))) {
        throw conflict(`volume ${name} is attached on host ${holder.host}, which is alive; unmount it there first`);
      }
      await this.fenceHolder(name, holder);
    }
    throw conflict(`volume ${name} could not be locked: other hosts kept taking it; retry`);
  }

  /** Release our attachment; if it was broken meanwhile (we were fenced), say so. */
  async release(name: string, cookie: string): Promise<void> {
    const io = await this.conn.io();
    try {
      await this.conn.call(`unlocking volume ${name}`, () => io.unlock(attachOid(name), LOCK_NAME, cookie));
    } catch (err) {
      if (!isRadosError(err, 'ENOENT')) throw err;
      const holder = await this.holder(name);
      if (holder?.cookie === cookie) {
        // Held under our cookie by an earlier client of this plugin (before a restart): ours to drop.
        await this.breakLock(name, holder);
      } else {
        this.log.warn({ volume: name, holder: holder?.host }, 'our attachment had been taken over by another host (this host was fenced)');
      }
    }
  }

  /** Record the data path's clients so that a host taking over can fence them. */
  async recordDataPath(name: string, dataAddrs: string[]): Promise<void> {
    const io = await this.conn.io();
    const cur = await this.readHolder(name);
    const next: HolderRecord = { host: this.settings.hostId, pluginAddr: await this.conn.addr(), dataAddrs, since: cur?.since ?? new Date().toISOString() };
    await this.conn.call(`recording the attachment of ${name}`, () => io.setXattr(attachOid(name), 'holder', JSON.stringify(next)));
  }

  /** Clients other than this plugin that have the image open (its data path). */
  async imageClients(image: ImageRef): Promise<string[]> {
    const io = await this.conn.io(image.pool);
    const own = await this.conn.addr();
    const img = await this.conn.call(`opening image ${image.pool}/${image.image}`, () => io.rbdOpen(image.image));
    try {
      const watchers = await this.conn.call('listing image watchers', () => img.watchers());
      const lockers = await this.conn.call('listing image lockers', () => img.listLockers());
      const addrs = [...watchers.map((w) => bareAddr(w.addr)), ...lockers.lockers.map((l) => bareAddr(l.addr))];
      return [...new Set(addrs)].filter((a) => a && a !== own);
    } finally {
      await img.close().catch(() => undefined);
    }
  }

  /** Fence every client with the image open, then clear librbd's own lock so our data path gets it at once. */
  async fenceImageClients(image: ImageRef): Promise<string[]> {
    const addrs = await this.imageClients(image);
    if (addrs.length === 0) return [];
    await this.blocklist(addrs, `image ${image.pool}/${image.image}`);
    const io = await this.conn.io(image.pool);
    const img = await this.conn.call(`opening image ${image.pool}/${image.image}`, () => io.rbdOpen(image.image));
    try {
      for (const l of (await img.listLockers()).lockers) {
        await img.breakLock(l.client, l.cookie).catch((err) => {
          if (!isRadosError(err, 'ENOENT')) throw err;
        });
      }
    } finally {
      await img.close().catch(() => undefined);
    }
    return addrs;
  }

  private async fenceHolder(name: string, holder: Holder): Promise<void> {
    const rec = await this.readHolder(name);
    const addrs = new Set([holder.addr, ...(rec?.host === holder.host ? [rec.pluginAddr, ...rec.dataAddrs] : [])].filter(Boolean));
    addrs.delete(await this.conn.addr());
    this.log.warn({ volume: name, host: holder.host, addrs: [...addrs] }, 'holder does not answer: fencing it before taking over');
    await this.blocklist([...addrs], `host ${holder.host}`);
    await this.breakLock(name, holder);
  }

  private async blocklist(addrs: string[], whose: string): Promise<void> {
    const cluster = await this.conn.cluster();
    for (const addr of addrs) {
      await this.conn.call(`fencing ${whose} (blocklisting ${addr})`, () => cluster.blocklistAdd(addr, this.settings.blocklistExpireSeconds));
    }
    this.onFence(addrs);
  }

  private async breakLock(name: string, holder: Holder): Promise<void> {
    const io = await this.conn.io();
    await this.conn
      .call(`breaking the lock of ${name}`, () => io.breakLock(attachOid(name), LOCK_NAME, holder.client, holder.cookie))
      .catch((err) => {
        if (!isRadosError(err, 'ENOENT')) throw err;
      });
  }

  private async writeHolder(name: string, rec: HolderRecord): Promise<void> {
    const io = await this.conn.io();
    await this.conn.call(`recording the attachment of ${name}`, () => io.setXattr(attachOid(name), 'holder', JSON.stringify(rec)));
  }

  private async readHolder(name: string): Promise<HolderRecord | undefined> {
    const io = await this.conn.io();
    try {
      return JSON.parse((await io.getXattr(attachOid(name), 'holder')).toString('utf8')) as HolderRecord;
    } catch (err) {
      if (isRadosError(err, 'ENOENT') || isRadosError(err, 'ENODATA') || err instanceof SyntaxError) return undefined;
      this.log.warn({ volume: name, err: errorMessage(err) }, 'cannot read the holder record');
      return undefined;
    }
  }
}
