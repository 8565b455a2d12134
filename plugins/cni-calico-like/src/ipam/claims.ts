/**
 * Block ownership in the cluster Store. A claim is a create-only transaction
 * on the block's key, so two hosts can never hold one block: the loser of a
 * race sees the compare fail and tries another block. Releases compare the
 * key's revision and owner, so a host never deletes a block it lost.
 */
import { createHash } from 'node:crypto';
import { CorralError } from '../../../../contracts/errors.js';
import { getJson, rangeJson } from '../../../../common/store/index.js';
import type { Store } from '../../../../common/store/index.js';
import { cidrKey, formatCidr, parseCidr, sizeOf, subBlock, type Cidr } from '../../../../common/netkit/ipv4.js';
import { blockDocSchema, keys, type BlockDoc, type Pool } from './types.js';

export interface ClaimedBlock {
  pool: string;
  cidr: Cidr;
  key: string;
  doc: BlockDoc;
  modRevision: number;
}

export class BlockClaims {
  private readonly k;

  constructor(
    private readonly store: Store,
    private readonly host: string,
    prefix: string,
  ) {
    this.k = keys(prefix);
  }

  /** Records the pool's shape once; a host configured differently from the cluster refuses to use it. */
  async registerPool(pool: Pool): Promise<void> {
    const key = this.k.pool(pool.name);
    const shape = { cidr: pool.cidr, blockSize: pool.blockSize };
    const res = await this.store.txn({
      compare: [{ key, target: 'createRevision', op: '=', value: 0 }],
      success: [{ type: 'put', key, value: JSON.stringify(shape) }],
      failure: [{ type: 'get', key }],
    });
    if (res.succeeded) return;
    const got = res.results[0];
    const existing = got?.type === 'get' && got.kv ? (JSON.parse(got.kv.value.toString('utf8')) as { cidr: string; blockSize: number }) : undefined;
    if (existing && (existing.cidr !== shape.cidr || existing.blockSize !== shape.blockSize)) {
      throw new CorralError('FAILED_PRECONDITION', `pool ${pool.name} is ${existing.cidr} with /${existing.blockSize} blocks in the cluster, but ${shape.cidr} with /${shape.blockSize} here`);
    }
  }

  async blocksOf(pool: string): Promise<ClaimedBlock[]> {
    const { entries } = await rangeJson(this.store, this.k.blocks(pool), { schema: blockDocSchema });
    return entries.map((e) => ({ pool, cidr: parseCidr(e.value.cidr), key: e.key, doc: e.value, modRevision: e.modRevision }));
  }

  async hostBlocks(pool: string): Promise<ClaimedBlock[]> {
    return (await this.blocksOf(pool)).filter((b) => b.doc.host === this.host);
  }

  /**
   * Claims a free block of `pool` for this host. Hosts start their search at
   * different offsets (a hash of the host name) so concurrent claims rarely
   * collide; on a collision the next free block is tried. Undefined when
   * every block of the pool is taken.
   */
  async claim(pool: Pool): Promise<ClaimedBlock | undefined> {
    const poolCidr = parseCidr(pool.cidr);
    const count = sizeOf(poolCidr.prefix) / sizeOf(pool.blockSize);
    const start = createHash('sha1').update(this.host).digest().readUInt32BE(0) % count;
    for (let attempt = 0; attempt < 16; attempt++) {
      const taken = new Set((await this.blocksOf(pool.name)).map((b) => b.doc.cidr));
      let chosen: Cidr | undefined;
      for (let i = 0; i < count && !chosen; i++) {
        const c = subBlock(poolCidr, pool.blockSize, (start + i) % count);
        if (!taken.has(formatCidr(c))) chosen = c;
      }
      if (!chosen) return undefined;
      const key = this.k.block(pool.name, cidrKey(chosen));
      const doc: BlockDoc = { pool: pool.name, cidr: formatCidr(chosen), host: this.host, claimedAt: Date.now(), used: 0 };
      const res = await this.store.txn({
        compare: [{ key, target: 'createRevision', op: '=', value: 0 }],
        success: [{ type: 'put', key, value: JSON.stringify(doc) }],
      });
      if (res.succeeded) return { pool: pool.name, cidr: chosen, key, doc, modRevision: res.revision };
    }
    throw new CorralError('UNAVAILABLE', `could not claim a block of pool ${pool.name}: too many concurrent claims`);
  }

  /** Releases a block this host owns; false if it was not ours (any more). */
  async release(block: ClaimedBlock): Promise<boolean> {
    const current = await getJson(this.store, block.key, blockDocSchema);
    if (!current || current.value.host !== this.host) return false;
    const res = await this.store.txn({
      compare: [{ key: block.key, target: 'modRevision', op: '=', value: current.modRevision }],
      success: [
        { type: 'delete', key: block.key },
        { type: 'deletePrefix', prefix: this.k.blockLoans(block.pool, cidrKey(block.cidr)) },
      ],
    });
    return res.succeeded;
  }

  /** Publishes how many addresses are in use (advisory, for borrowers and operators). */
  async publishUsage(block: ClaimedBlock, used: number): Promise<void> {
    const current = await getJson(this.store, block.key, blockDocSchema);
    if (!current || current.value.host !== this.host || current.value.used === used) return;
    await this.store.txn({
      compare: [{ key: block.key, target: 'modRevision', op: '=', value: current.modRevision }],
      success: [{ type: 'put', key: block.key, value: JSON.stringify({ ...current.value, used }) }],
    });
  }
}
