/**
 * Agent host names to IP addresses, for host-networked tasks and node names.
 * In order: the name is already an IP literal; the operator's mapping
 * (`agentAddresses` in the config); the system resolver, looked up once per
 * name in the background (a name that does not resolve publishes nothing
 * and is retried on the next agent event).
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';

export class AddressBook {
  private readonly resolved = new Map<string, string>();
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly mapping: Record<string, string>,
    private readonly onResolved: (hostname: string) => void,
  ) {}

  /** The address now if known; otherwise undefined, and `onResolved` fires once it is. */
  get(hostname: string): string | undefined {
    if (isIP(hostname)) return hostname;
    const mapped = this.mapping[hostname] ?? this.resolved.get(hostname);
    if (mapped) return mapped;
    if (!this.inFlight.has(hostname)) {
      this.inFlight.add(hostname);
      lookup(hostname)
        .then((r) => {
          this.resolved.set(hostname, r.address);
          this.onResolved(hostname);
        })
        .catch(() => undefined)
        .finally(() => this.inFlight.delete(hostname));
    }
    return undefined;
  }
}
