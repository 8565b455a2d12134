/**
 * IPv4 addresses and CIDRs as plain numbers: what IPAM (pools, blocks,
 * ordinals), the route tables and the netlink codec all need, in one place.
 */
import { invalid } from '../../contracts/errors.js';

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits zero). */
  base: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIp(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) throw invalid(`not an IPv4 address: "${text}"`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function isIp(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p));
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const maskOf = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export const sizeOf = (prefix: number): number => 2 ** (32 - prefix);

/** Parses "a.b.c.d/n"; host bits must be zero unless `loose` (then they are cleared). */
export function parseCidr(text: string, loose = false): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) throw invalid(`not an IPv4 CIDR: "${text}"`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw invalid(`prefix length out of range in "${text}"`);
  const ip = parseIp(m[1]!);
  const base = (ip & maskOf(prefix)) >>> 0;
  if (base !== ip && !loose) throw invalid(`"${text}" has host bits set; did you mean ${formatIp(base)}/${prefix}?`);
  return { base, prefix };
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.base)}/${c.prefix}`;

function contains(outer: Cidr, ip: number): boolean {
  return (ip & maskOf(outer.prefix)) >>> 0 === outer.base;
}

/** Whether `inner` lies entirely within `outer`. */
export function covers(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.base);
}

/** The `index`-th sub-block of size /`prefix` inside `outer`. */
export function subBlock(outer: Cidr, prefix: number, index: number): Cidr {
  return { base: (outer.base + index * sizeOf(prefix)) >>> 0, prefix };
}

/** Key-safe text for a CIDR ("100.96.0.64-26"), since "/" separates store key segments. */
export const cidrKey = (c: Cidr): string => `${formatIp(c.base)}-${c.prefix}`;

export function parseCidrKey(key: string): Cidr {
  return parseCidr(key.replace('-', '/'));
}
