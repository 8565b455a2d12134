/**
 * IPAM data: pools (what the operator configures), blocks (a pool's slices,
 * each affine to one host, claimed through the cluster Store) and
 * allocations (one address per handle = container id + interface name, kept
 * in the host's local store so ADD needs no network round trip).
 */
import { z } from '../../../../common/validate.js';
import { isIp, parseCidr } from '../../../../common/netkit/ipv4.js';

const POOL_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const poolSchema = z
  .object({
    name: z.string().regex(POOL_NAME, 'lower-case letters, digits and dashes'),
    cidr: z.string().refine((s) => {
      try {
        parseCidr(s);
        return true;
      } catch {
        return false;
      }
    }, 'an IPv4 CIDR with host bits zero, e.g. 100.96.0.0/16'),
    /** Prefix length of a block (default /26 = 64 addresses, as Calico). */
    blockSize: z.number().int().min(20).max(32).default(26),
    /** Never hand out addresses from another host's block. */
    strictAffinity: z.boolean().default(false),
  })
  .strict()
  .refine((p) => p.blockSize >= parseCidr(p.cidr).prefix, { message: 'blockSize must not be larger than the pool', path: ['blockSize'] });

export type Pool = z.output<typeof poolSchema>;
export type PoolInput = z.input<typeof poolSchema>;

/** The cluster-wide record of one claimed block. */
export const blockDocSchema = z.object({
  pool: z.string(),
  cidr: z.string(),
  host: z.string(),
  claimedAt: z.number(),
  /** Addresses in use, as last published by the owner (advisory: borrowers pick lenders by it). */
  used: z.number().int().min(0).default(0),
});
export type BlockDoc = z.output<typeof blockDocSchema>;

/** A borrower's request for one address in another host's block, answered by the owner. */
export const loanDocSchema = z.object({
  borrower: z.string(),
  handle: z.string(),
  requestedAt: z.number(),
  ordinal: z.number().int().min(0).optional(),
  refused: z.string().optional(),
});
export type LoanDoc = z.output<typeof loanDocSchema>;

export const allocationSchema = z.object({
  handle: z.string(),
  containerId: z.string(),
  ifname: z.string(),
  network: z.string(),
  netns: z.string(),
  /** nsfs inode of the namespace at ADD time (0 when unknown). */
  netnsInode: z.number().int().min(0).default(0),
  ip: z.string().refine(isIp),
  pool: z.string(),
  /** The block the address came from (own or borrowed), as "a.b.c.d/n". */
  block: z.string(),
  hostIfname: z.string(),
  createdAt: z.number(),
  /** Set when the address is borrowed: the store key of the loan. */
  loanKey: z.string().optional(),
});
export type Allocation = z.output<typeof allocationSchema>;

export const handleOf = (containerId: string, ifname: string): string => `${containerId}/${ifname}`;

/** Store key layout (under a configurable prefix). */
export const keys = (prefix: string) => ({
  pool: (name: string) => `${prefix}pools/${name}`,
  blocks: (pool: string) => `${prefix}blocks/${pool}/`,
  block: (pool: string, blockKey: string) => `${prefix}blocks/${pool}/${blockKey}`,
  loans: (pool: string) => `${prefix}loans/${pool}/`,
  blockLoans: (pool: string, blockKey: string) => `${prefix}loans/${pool}/${blockKey}/`,
  loan: (pool: string, blockKey: string, borrower: string, handle: string) => `${prefix}loans/${pool}/${blockKey}/${borrower}|${encodeURIComponent(handle)}`,
});
