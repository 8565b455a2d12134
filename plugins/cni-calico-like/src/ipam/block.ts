/**
 * One block's address map, in memory: which ordinals are taken. Allocation is
 * next-fit from a moving cursor so a just-freed address is not handed out
 * again at once (stale ARP and conntrack entries of the previous owner).
 * Pure data; persistence lives in the allocator.
 */
import { formatCidr, formatIp, sizeOf, type Cidr } from '../../../../common/netkit/ipv4.js';

export class BlockMap {
  readonly size: number;
  private readonly used: Uint8Array;
  private count = 0;
  private cursor = 0;

  constructor(
    readonly pool: string,
    readonly cidr: Cidr,
  ) {
    this.size = sizeOf(cidr.prefix);
    this.used = new Uint8Array(this.size);
  }

  get text(): string {
    return formatCidr(this.cidr);
  }

  get usedCount(): number {
    return this.count;
  }

  get free(): number {
    return this.size - this.count;
  }

  ordinalOf(ip: number): number | undefined {
    const o = (ip - this.cidr.base) >>> 0;
    return o < this.size ? o : undefined;
  }

  ipOf(ordinal: number): string {
    return formatIp((this.cidr.base + ordinal) >>> 0);
  }

  isUsed(ordinal: number): boolean {
    return this.used[ordinal] === 1;
  }

  /** Marks `ordinal` taken (restoring state); false if it already was. */
  mark(ordinal: number): boolean {
    if (ordinal < 0 || ordinal >= this.size || this.used[ordinal]) return false;
    this.used[ordinal] = 1;
    this.count++;
    return true;
  }

  /** Takes the next free ordinal, or undefined when the block is full. */
  take(): number | undefined {
    if (this.count >= this.size) return undefined;
    for (let i = 0; i < this.size; i++) {
      const o = (this.cursor + i) % this.size;
      if (!this.used[o]) {
        this.used[o] = 1;
        this.count++;
        this.cursor = (o + 1) % this.size;
        return o;
      }
    }
    return undefined;
  }

  release(ordinal: number): boolean {
    if (ordinal < 0 || ordinal >= this.size || !this.used[ordinal]) return false;
    this.used[ordinal] = 0;
    this.count--;
    return true;
  }
}
