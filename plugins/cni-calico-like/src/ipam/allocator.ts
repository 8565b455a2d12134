/**
 * The host's IPAM: hands out addresses from the blocks this host owns with
 * no network round trip (the decision is in memory; the record goes to the
 * host's local store before the answer), claims a new block through the
 * cluster Store only when its blocks are full (and claims the next one ahead
 * of need), borrows single addresses from other hosts' blocks when the pool
 * has no free block left (unless strict affinity), and gives back empty blocks.
 *
 * Handles are (container id, interface name): a repeated assign returns the
 * same address, and release frees exactly that one.
 */
import { CorralError } from '../../../../contracts/errors.js';
import { rangeJson, type Store } from '../../../../common/store/index.js';
import type { Logger } from '../../../../common/log.js';
import { formatCidr, parseIp } from '../../../../common/netkit/ipv4.js';
import { KeyedMutex } from '../../../../common/mutex.js';
import { BlockMap } from './block.js';
import { BlockClaims, type ClaimedBlock } from './claims.js';
import { Loans } from './loans.js';
import { allocationSchema, handleOf, type Allocation, type Pool } from './types.js';

interface IpamOptions {
  host: string;
  pools: Pool[];
  cluster: Store;
  local: Store;
  /** Key prefix in the cluster store. */
  prefix: string;
  loanTimeoutMs: number;
  log: Logger;
}

export interface AssignRequest {
  containerId: string;
  ifname: string;
  network: string;
  netns: string;
  netnsInode: number;
  /** Pool names in order of preference. */
  pools: string[];
  hostIfname: string;
}

interface OwnedBlock {
  claim: ClaimedBlock;
  map: BlockMap;
  /** When the block last became empty (for delayed release). */
  emptySince: number | undefined;
}

const ALLOC_PREFIX = 'alloc/';
const PRECLAIM_BELOW = 0.25;

export class Ipam {
  readonly pools: Map<string, Pool>;
  private readonly blocks = new Map<string, OwnedBlock>();
  private readonly allocs = new Map<string, Allocation>();
  private readonly claims: BlockClaims;
  private readonly loans: Loans;
  private readonly claimLock = new KeyedMutex();
  private readonly listeners = new Set<() => void>();
  private publishTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set when an assign found no address anywhere; cleared when one is freed or a block claimed. */
  exhausted = false;

  private constructor(private readonly o: IpamOptions) {
    this.pools = new Map(o.pools.map((p) => [p.name, p]));
    this.claims = new BlockClaims(o.cluster, o.host, o.prefix);
    this.loans = new Loans({
      store: o.cluster,
      host: o.host,
      prefix: o.prefix,
      timeoutMs: o.loanTimeoutMs,
      log: o.log,
      lend: (pool, blockCidr) => this.lend(pool, blockCidr),
      giveBack: (blockCidr, ordinal) => this.giveBack(blockCidr, ordinal),
      restore: (blockCidr, ordinal) => void this.blocks.get(blockCidr)?.map.mark(ordinal),
    });
  }

  static async open(o: IpamOptions): Promise<Ipam> {
    const ipam = new Ipam(o);
    await ipam.load();
    return ipam;
  }

  private async load(): Promise<void> {
    for (const pool of this.pools.values()) {
      await this.claims.registerPool(pool);
      for (const claim of await this.claims.hostBlocks(pool.name)) this.adopt(claim);
    }
    const { entries } = await rangeJson(this.o.local, ALLOC_PREFIX, { schema: allocationSchema });
    for (const { value: a } of entries) {
      this.allocs.set(a.handle, a);
      if (a.loanKey) continue;
      const owned = this.blocks.get(a.block);
      const ordinal = owned?.map.ordinalOf(parseIp(a.ip));
      if (!owned || ordinal === undefined) {
        this.o.log.warn({ handle: a.handle, ip: a.ip, block: a.block }, 'allocation in a block this host no longer owns; kept until released');
        continue;
      }
      owned.map.mark(ordinal);
    }
    await this.loans.start([...this.pools.keys()], (pool, cidr) => this.blocks.get(cidr)?.claim.pool === pool);
    for (const b of this.blocks.values()) b.emptySince = b.map.usedCount === 0 ? Date.now() : undefined;
  }

  private adopt(claim: ClaimedBlock): OwnedBlock {
    const owned: OwnedBlock = { claim, map: new BlockMap(claim.pool, claim.cidr), emptySince: Date.now() };
    this.blocks.set(formatCidr(claim.cidr), owned);
    return owned;
  }

  /** Called whenever the set of owned blocks or borrowed addresses changes (routes and BGP follow it). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  get(containerId: string, ifname: string): Allocation | undefined {
    return this.allocs.get(handleOf(containerId, ifname));
  }

  allocations(): Allocation[] {
    return [...this.allocs.values()];
  }

  ownedBlocks(): Array<{ pool: string; cidr: string; used: number; size: number }> {
    return [...this.blocks.values()].map((b) => ({ pool: b.claim.pool, cidr: b.map.text, used: b.map.usedCount, size: b.map.size }));
  }

  /** Addresses this host uses from other hosts' blocks: announced as /32s. */
  borrowedAddresses(): string[] {
    return this.allocations()
      .filter((a) => a.loanKey)
      .map((a) => a.ip);
  }

  async assign(req: AssignRequest): Promise<Allocation> {
    const handle = handleOf(req.containerId, req.ifname);
    const existing = this.allocs.get(handle);
    if (existing) return existing;
    for (const name of req.pools) {
      const pool = this.pools.get(name);
      if (!pool) throw new CorralError('INVALID_ARGUMENT', `unknown pool "${name}"; this node knows ${[...this.pools.keys()].join(', ') || 'none'}`, { reason: 'unknown-pool' });
      const got = (await this.fromOwnBlocks(pool)) ?? (pool.strictAffinity ? undefined : await this.borrow(pool, handle));
      if (!got) continue;
      const a: Allocation = {
        handle,
        containerId: req.containerId,
        ifname: req.ifname,
        network: req.network,
        netns: req.netns,
        netnsInode: req.netnsInode,
        ip: got.ip,
        pool: pool.name,
        block: got.block,
        hostIfname: req.hostIfname,
        createdAt: Date.now(),
        ...(got.loanKey ? { loanKey: got.loanKey } : {}),
      };
      try {
        await this.o.local.put(ALLOC_PREFIX + handle, JSON.stringify(a));
      } catch (err) {
        await this.giveUp(a);
        throw err;
      }
      this.allocs.set(handle, a);
      this.afterUse(pool);
      if (got.loanKey) this.changed();
      return a;
    }
    this.exhausted = true;
    throw new CorralError('RESOURCE_EXHAUSTED', `no free address in pool${req.pools.length > 1 ? 's' : ''} ${req.pools.join(', ')}`, { reason: 'exhausted' });
  }

  /** Frees the handle's address; undefined when the handle holds none (DEL is idempotent). */
  async release(containerId: string, ifname: string): Promise<Allocation | undefined> {
    const handle = handleOf(containerId, ifname);
    const a = this.allocs.get(handle);
    if (!a) return undefined;
    await this.o.local.delete(ALLOC_PREFIX + handle);
    this.allocs.delete(handle);
    this.exhausted = false;
    await this.giveUp(a);
    const pool = this.pools.get(a.pool);
    if (pool) this.afterUse(pool);
    return a;
  }

  private async giveUp(a: Allocation): Promise<void> {
    if (a.loanKey) {
      await this.loans.returnLoan(a.loanKey);
      this.changed();
      return;
    }
    const owned = this.blocks.get(a.block);
    const ordinal = owned?.map.ordinalOf(parseIp(a.ip));
    if (owned && ordinal !== undefined) {
      owned.map.release(ordinal);
      if (owned.map.usedCount === 0) owned.emptySince = Date.now();
    }
  }

  private takeFrom(pool: Pool): { ip: string; block: string } | undefined {
    for (const b of this.blocks.values()) {
      if (b.claim.pool !== pool.name) continue;
      const o = b.map.take();
      if (o !== undefined) {
        b.emptySince = undefined;
        return { ip: b.map.ipOf(o), block: b.map.text };
      }
    }
    return undefined;
  }

  private async fromOwnBlocks(pool: Pool): Promise<{ ip: string; block: string; loanKey?: string } | undefined> {
    const quick = this.takeFrom(pool);
    if (quick) return quick;
    return this.claimLock.run(pool.name, async () => {
      const again = this.takeFrom(pool);
      if (again) return again;
      if (!(await this.claimBlock(pool))) return undefined;
      return this.takeFrom(pool);
    });
  }

  private async claimBlock(pool: Pool): Promise<boolean> {
    const claim = await this.claims.claim(pool);
    if (!claim) return false;
    this.adopt(claim);
    this.exhausted = false;
    this.o.log.info({ pool: pool.name, block: formatCidr(claim.cidr) }, 'claimed block');
    this.changed();
    return true;
  }

  private async borrow(pool: Pool, handle: string): Promise<{ ip: string; block: string; loanKey: string } | undefined> {
    const lenders = (await this.claims.blocksOf(pool.name)).filter((b) => b.doc.host !== this.o.host);
    return this.loans.borrow(pool.name, lenders, handle);
  }

  /** Lender side: reserve an ordinal of an owned block for another host. */
  private lend(pool: string, blockCidr: string): { ordinal: number; ip: string } | undefined {
    const owned = this.blocks.get(blockCidr);
    if (!owned || owned.claim.pool !== pool) return undefined;
    const o = owned.map.take();
    if (o === undefined) return undefined;
    owned.emptySince = undefined;
    this.schedulePublish();
    return { ordinal: o, ip: owned.map.ipOf(o) };
  }

  private giveBack(blockCidr: string, ordinal: number): void {
    const owned = this.blocks.get(blockCidr);
    if (owned?.map.release(ordinal) && owned.map.usedCount === 0) owned.emptySince = Date.now();
    this.schedulePublish();
  }

  private afterUse(pool: Pool): void {
    this.schedulePublish();
    let free = 0;
    let size = 0;
    for (const b of this.blocks.values()) {
      if (b.claim.pool !== pool.name) continue;
      free += b.map.free;
      size = b.map.size;
    }
    // Claim the next block before this one runs out, so ADDs keep finding a local address.
    if (size > 0 && free < size * PRECLAIM_BELOW && !this.claimLock.busy(pool.name)) {
      void this.claimLock
        .run(pool.name, async () => {
          if ([...this.blocks.values()].some((b) => b.claim.pool === pool.name && b.map.free >= size * PRECLAIM_BELOW)) return;
          await this.claimBlock(pool);
        })
        .catch((err: unknown) => this.o.log.warn({ err, pool: pool.name }, 'could not claim a block ahead of need'));
    }
  }

  private schedulePublish(): void {
    if (this.publishTimer) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      void this.publishUsage().catch((err: unknown) => this.o.log.debug({ err }, 'publishing block usage failed'));
    }, 1000);
    this.publishTimer.unref();
  }

  private async publishUsage(): Promise<void> {
    for (const b of this.blocks.values()) await this.claims.publishUsage(b.claim, b.map.usedCount);
  }

  /**
   * Gives back blocks that have been empty for `afterMs` (keeping `keep` per
   * pool so the next ADD stays local). Returns the blocks released.
   */
  async releaseEmptyBlocks(afterMs: number, keep = 0): Promise<string[]> {
    const released: string[] = [];
    const now = Date.now();
    for (const pool of this.pools.values()) {
      await this.claimLock.run(pool.name, async () => {
        const mine = [...this.blocks.values()].filter((b) => b.claim.pool === pool.name);
        let kept = mine.filter((b) => b.map.usedCount > 0).length;
        for (const b of mine) {
          if (b.map.usedCount > 0 || b.emptySince === undefined || now - b.emptySince < afterMs) continue;
          if (kept < keep) {
            kept++;
            continue;
          }
          if (this.loans.pendingFor(b.map.text)) continue;
          await this.claims.release(b.claim);
          this.blocks.delete(b.map.text);
          released.push(b.map.text);
          this.o.log.info({ pool: pool.name, block: b.map.text }, 'released empty block');
        }
      });
    }
    if (released.length) this.changed();
    return released;
  }

  /** Claims a first block for each of `pools` that has none, so the first ADD is served locally. */
  async warmUp(pools: string[]): Promise<void> {
    for (const name of pools) {
      const pool = this.pools.get(name);
      if (!pool || [...this.blocks.values()].some((b) => b.claim.pool === name)) continue;
      await this.claimLock.run(name, async () => {
        if (![...this.blocks.values()].some((b) => b.claim.pool === name)) await this.claimBlock(pool);
      });
    }
  }

  /** Retries loan returns that failed earlier (cluster store was unreachable). */
  retryPending(): Promise<void> {
    return this.loans.retryReturns();
  }

  stats(): Array<{ pool: string; cidr: string; blocks: number; used: number; capacity: number; borrowed: number }> {
    return [...this.pools.values()].map((p) => {
      const mine = [...this.blocks.values()].filter((b) => b.claim.pool === p.name);
      return {
        pool: p.name,
        cidr: p.cidr,
        blocks: mine.length,
        used: mine.reduce((s, b) => s + b.map.usedCount, 0),
        capacity: mine.reduce((s, b) => s + b.map.size, 0),
        borrowed: this.allocations().filter((a) => a.pool === p.name && a.loanKey).length,
      };
    });
  }

  /** Cluster-wide view of a pool's blocks (for operators). */
  clusterBlocks(pool: string): Promise<ClaimedBlock[]> {
    return this.claims.blocksOf(pool);
  }

  async close(): Promise<void> {
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
    await this.publishUsage().catch(() => undefined);
    this.loans.stop();
  }
}
