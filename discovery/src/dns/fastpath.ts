/**
 * The native UDP fast path (native/dns, corral_dns.node): a thread that reads
 * and writes the DNS socket with recvmmsg/sendmmsg, answers from a table this
 * process fills with the responder's templates, and hands every other
 * datagram up here in batches. Optional: when the addon is not built, fails
 * to load, or is switched off (`CORRAL_DNS_FAST_PATH=0`), node:dgram serves.
 */
import { createRequire } from 'node:module';
import { errorMessage } from '../../../contracts/errors.js';
import { findAddon } from '../../../native/lib/addon-path.js';

export interface NativeUdpServer {
  start(): void;
  stop(): void;
  /** key: lower-case wire name + the cache slot (qtype·2 + EDNS) as 4 bytes big-endian. */
  install(key: Buffer, rcode: number, variants: Buffer[], truncated: Buffer, rot: number): void;
  clear(): void;
  size(): number;
  /** One sendmmsg per 64 answers; addrs are the sockaddr bytes a batch brought. */
  send(answers: Buffer[], addrs: Buffer[]): void;
  stats(): { queries: number; noerror: number; nxdomain: number; refused: number; servfail: number; notimp: number; formerr: number; truncated: number };
}

export interface DnsAddon {
  UdpServer: new (fd: number, maxUdpPayload: number, onBatch: (msgs: Buffer[], addrs: Buffer[]) => void) => NativeUdpServer;
  addrInfo(addr: Buffer): [string, number];
}

let loaded: { addon: DnsAddon } | { reason: string } | undefined;

/** The addon, or why not. Looked up from the sources (discovery/src/dns) and from dist/ alike. */
export function loadDnsAddon(): { addon: DnsAddon } | { reason: string } {
  if (loaded) return loaded;
  const file = findAddon('native/dns/build/Release/corral_dns.node');
  if (!file) return (loaded = { reason: 'corral_dns.node is not built (scripts/setup.sh builds it)' });
  try {
    return (loaded = { addon: createRequire(import.meta.url)(file) as DnsAddon });
  } catch (err) {
    return (loaded = { reason: `corral_dns.node failed to load: ${errorMessage(err)}` });
  }
}

/** True unless switched off by option or by CORRAL_DNS_FAST_PATH=0. */
export function fastPathWanted(option: boolean | undefined): boolean {
  return option !== false && process.env.CORRAL_DNS_FAST_PATH !== '0';
}

/** The table key for a cache entry: the wire name (latin1) then the slot, 4 bytes big-endian. */
export function tableKey(nameKey: string, slot: number): Buffer {
  const key = Buffer.allocUnsafe(nameKey.length + 4);
  key.write(nameKey, 0, 'latin1');
  key.writeUInt32BE(slot, nameKey.length);
  return key;
}
