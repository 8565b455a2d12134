/**
 * Borrowing an address from another host's block, without ever letting two
 * hosts hand out the same address: only a block's owner picks its ordinals.
 * The borrower writes a loan request into the cluster Store; the owner, which
 * watches requests for its blocks, reserves an ordinal locally and writes it
 * into the request (compare-and-set); the borrower waits for that answer (a
 * dead owner simply never answers, and the borrower tries another block).
 * Deleting the loan key gives the address back. Borrowing happens only when
 * the pool has no unclaimed block left, so it is off the common ADD path.
 */
import { CorralError, errorMessage } from '../../../../contracts/errors.js';
import { getJson, rangeJson, type Store, type Watch } from '../../../../common/store/index.js';
import type { Logger } from '../../../../common/log.js';
import { cidrKey, formatCidr, formatIp, parseCidrKey, sizeOf } from '../../../../common/netkit/ipv4.js';
import type { ClaimedBlock } from './claims.js';
import { keys, loanDocSchema, type LoanDoc } from './types.js';

interface LoansOptions {
  store: Store;
  host: string;
  prefix: string;
  timeoutMs: number;
  log: Logger;
  /** Owner side: reserve an ordinal of the block (undefined when full). */
  lend(pool: string, blockCidr: string): { ordinal: number } | undefined;
  /** Owner side: the borrower gave the ordinal back. */
  giveBack(blockCidr: string, ordinal: number): void;
  /** Owner side, at start-up: an ordinal lent before a restart. */
  restore(blockCidr: string, ordinal: number): void;
}

interface Lent {
  block: string;
  ordinal: number;
}

export class Loans {
  private readonly k;
  private readonly watches: Watch[] = [];
  private readonly lent = new Map<string, Lent>();
  private readonly failedReturns = new Set<string>();
  private isMine: (pool: string, cidr: string) => boolean = () => false;

  constructor(private readonly o: LoansOptions) {
    this.k = keys(o.prefix);
  }

  /** Owner side: restore what was lent, answer pending requests, and watch for new ones. */
  async start(pools: string[], isMine: (pool: string, cidr: string) => boolean): Promise<void> {
    this.isMine = isMine;
    for (const pool of pools) {
      const prefix = this.k.loans(pool);
      const { entries, revision } = await rangeJson(this.o.store, prefix, { schema: loanDocSchema });
      for (const e of entries) {
        const block = this.blockOf(pool, e.key);
        if (!block) continue;
        if (e.value.ordinal !== undefined) {
          this.lent.set(e.key, { block, ordinal: e.value.ordinal });
          this.o.restore(block, e.value.ordinal);
        } else if (!e.value.refused) {
          await this.answer(pool, block, e.key, e.value, e.modRevision);
        }
      }
      this.watches.push(
        this.o.store.watch({
          prefix,
          fromRevision: revision + 1,
          onEvents: (events) => {
            for (const ev of events) {
              const block = this.blockOf(pool, ev.kv.key);
              if (!block) continue;
              if (ev.type === 'delete') {
                const l = this.lent.get(ev.kv.key);
                if (l) {
                  this.lent.delete(ev.kv.key);
                  this.o.giveBack(l.block, l.ordinal);
                }
                continue;
              }
              const doc = loanDocSchema.safeParse(JSON.parse(ev.kv.value.toString('utf8')));
              if (doc.success && doc.data.ordinal === undefined && !doc.data.refused) {
                void this.answer(pool, block, ev.kv.key, doc.data, ev.kv.modRevision);
              }
            }
          },
          onError: (err) => this.o.log.error({ err }, 'loan watch ended; loan requests for this host go unanswered until restart'),
        }),
      );
    }
  }

  /** The block (as "a.b.c.d/n") a loan key belongs to, if this host owns it. */
  private blockOf(pool: string, key: string): string | undefined {
    const rest = key.slice(this.k.loans(pool).length);
    const blockKey = rest.split('/')[0];
    if (!blockKey) return undefined;
    try {
      const cidr = formatCidr(parseCidrKey(blockKey));
      return this.isMine(pool, cidr) ? cidr : undefined;
    } catch {
      return undefined;
    }
  }

  private async answer(pool: string, block: string, key: string, doc: LoanDoc, modRevision: number): Promise<void> {
    if (this.lent.has(key)) return;
    const got = this.o.lend(pool, block);
    const reply: LoanDoc = got ? { ...doc, ordinal: got.ordinal } : { ...doc, refused: 'block full' };
    try {
      await this.o.store.put(key, JSON.stringify(reply), { ifModRevision: modRevision });
      if (got) {
        this.lent.set(key, { block, ordinal: got.ordinal });
        this.o.log.info({ block, ordinal: got.ordinal, borrower: doc.borrower }, 'lent an address');
      }
    } catch (err) {
      if (got) this.o.giveBack(block, got.ordinal);
      this.o.log.warn({ err: errorMessage(err), key }, 'could not answer a loan request');
    }
  }

  /**
   * Borrower side: asks the owners of `lenders` (least used first) for one
   * address. Returns the address and the loan key, or undefined when nobody lends.
   */
  async borrow(pool: string, lenders: ClaimedBlock[], handle: string): Promise<{ ip: string; block: string; loanKey: string } | undefined> {
    const candidates = lenders.filter((b) => b.doc.used < sizeOf(b.cidr.prefix)).sort((a, b) => a.doc.used - b.doc.used);
    for (const b of candidates.slice(0, 4)) {
      const key = this.k.loan(pool, cidrKey(b.cidr), this.o.host, handle);
      const ordinal = await this.request(key, handle);
      if (ordinal === undefined || ordinal >= sizeOf(b.cidr.prefix)) continue;
      this.o.log.info({ block: formatCidr(b.cidr), owner: b.doc.host, ordinal }, 'borrowed an address');
      return { ip: formatIp((b.cidr.base + ordinal) >>> 0), block: formatCidr(b.cidr), loanKey: key };
    }
    return undefined;
  }

  private async request(key: string, handle: string): Promise<number | undefined> {
    const doc: LoanDoc = { borrower: this.o.host, handle, requestedAt: Date.now() };
    let fromRevision: number;
    try {
      fromRevision = (await this.o.store.put(key, JSON.stringify(doc), { ifModRevision: 0 })).revision + 1;
    } catch (err) {
      if (!(err instanceof CorralError && err.code === 'STORE_CONFLICT')) throw err;
      // Asked before (a retried ADD): use the answer if there is one.
      const prior = await getJson(this.o.store, key, loanDocSchema);
      if (prior?.value.ordinal !== undefined) return prior.value.ordinal;
      fromRevision = (prior?.modRevision ?? 0) + 1;
    }
    const answer = await new Promise<LoanDoc | undefined>((resolve) => {
      let watch: Watch | undefined = undefined;
      const timer = setTimeout(() => finish(undefined), this.o.timeoutMs);
      const finish = (v: LoanDoc | undefined): void => {
        clearTimeout(timer);
        watch?.cancel();
        resolve(v);
      };
      watch = this.o.store.watch({
        prefix: key,
        fromRevision,
        onEvents: (events) => {
          for (const ev of events) {
            if (ev.kv.key !== key) continue;
            if (ev.type === 'delete') return finish(undefined);
            const parsed = loanDocSchema.safeParse(JSON.parse(ev.kv.value.toString('utf8')));
            if (parsed.success && (parsed.data.ordinal !== undefined || parsed.data.refused)) return finish(parsed.data);
          }
        },
        onError: () => finish(undefined),
      });
    });
    if (answer?.ordinal !== undefined) return answer.ordinal;
    await this.returnLoan(key);
    return undefined;
  }

  /** Borrower side: give the address back (retried later if the store is unreachable). */
  async returnLoan(key: string): Promise<void> {
    try {
      await this.o.store.delete(key);
      this.failedReturns.delete(key);
    } catch (err) {
      this.failedReturns.add(key);
      this.o.log.warn({ err: errorMessage(err), key }, 'could not return a borrowed address; will retry');
    }
  }

  async retryReturns(): Promise<void> {
    for (const key of [...this.failedReturns]) await this.returnLoan(key);
  }

  /** Whether any address of the block is lent out. */
  pendingFor(block: string): boolean {
    for (const l of this.lent.values()) if (l.block === block) return true;
    return false;
  }

  stop(): void {
    for (const w of this.watches) w.cancel();
    this.watches.length = 0;
  }
}
