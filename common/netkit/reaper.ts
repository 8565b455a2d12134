/**
 * Deleting a veth costs the kernel an RCU grace period under the RTNL lock
 * (~10–20 ms here) — most of a reference plugin's DEL. The reaper takes a
 * link out of service at once (down, which also drops its routes; moved to a
 * graveyard group and renamed, so its name is free for a new container) and
 * deletes the whole graveyard group in one batch shortly after: one grace
 * period for many links, and none on the caller's path.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { errorMessage } from '../../contracts/errors.js';
import { NetlinkError, type Rtnl } from './rtnl.js';

/** Link group of retired links ("crlz" in ASCII). */
const GRAVEYARD_GROUP = 0x63726c7a;

export class LinkReaper {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private pending = 0;

  constructor(
    private readonly host: Rtnl,
    private readonly graveyardPrefix: string,
    private readonly log: Logger,
    private readonly delayMs = 500,
  ) {}

  /** Takes the link named `name` out of service; false when there is no such link. */
  async retire(name: string): Promise<boolean> {
    const link = await this.host.link(name);
    if (!link) return false;
    const grave =
      this.graveyardPrefix +
      randomBytes(8)
        .toString('hex')
        .slice(0, 15 - this.graveyardPrefix.length);
    try {
      // Down first (a link must be down to be renamed); it joins the graveyard group only once renamed,
      // so a batch delete running meanwhile cannot take it from under us.
      await this.host.setLink(link.index, { up: false });
      await this.host.setLink(link.index, { name: grave, group: GRAVEYARD_GROUP });
    } catch (err) {
      // Gone meanwhile (its namespace was deleted): nothing left to retire.
      if (err instanceof NetlinkError && err.errno === 'ENODEV') return true;
      throw err;
    }
    this.pending++;
    this.schedule();
    return true;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Deletes everything retired so far (also what a previous run left behind). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const n = this.pending;
      this.pending = 0;
      try {
        await this.host.deleteLinkGroup(GRAVEYARD_GROUP);
      } catch (err) {
        this.log.warn({ err: errorMessage(err), links: n }, 'could not delete retired links; will retry');
        this.pending += n;
        this.schedule();
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
