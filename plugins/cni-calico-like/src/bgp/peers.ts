/**
 * Who this host peers with:
 *  - route reflectors when configured (then no mesh),
 *  - otherwise a full iBGP mesh: static peers plus every agent the master
 *    lists (an agent's hostname is its underlay address), minus ourselves;
 *  - plus external (eBGP) peers such as a top-of-rack router.
 * The master is polled; a change of the set is reported to the speaker.
 */
import type { Logger } from '../../../../common/log.js';
import { errorMessage } from '../../../../contracts/errors.js';
import { OperatorClient } from '../../../../contracts/client/operator-client.js';
import type { ClientTls } from '../../../../contracts/client/tls.js';
import { isIp, parseIp } from '../../../../common/netkit/ipv4.js';
import type { BgpConfig } from '../daemon/config.js';
import type { Neighbor } from './exabgp.js';

export function desiredNeighbors(c: BgpConfig, meshFromMaster: string[]): Neighbor[] {
  const self = c.localAddress;
  const ibgp = c.routeReflectors.length ? c.routeReflectors : [...c.peers, ...meshFromMaster];
  const out = new Map<string, Neighbor>();
  // In the mesh only the lower address connects out: two speakers dialling each other at once can
  // keep colliding and backing off (exabgp's backoff grows to 60 s).
  const passiveTowards = (a: string): boolean => !c.routeReflectors.length && self !== undefined && parseIp(self) > parseIp(a);
  for (const a of ibgp) if (a !== self) out.set(a, { address: a, peerAs: c.asn, ...(passiveTowards(a) ? { passive: true } : {}) });
  for (const e of c.externalPeers) if (e.address !== self) out.set(e.address, { address: e.address, peerAs: e.asn });
  return [...out.values()].sort((a, b) => a.address.localeCompare(b.address));
}

interface AgentsReply {
  get_agents?: { agents?: Array<{ agent_info?: { hostname?: unknown } }> };
}

export class MasterMesh {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private client: OperatorClient | undefined;
  private last = '';
  private stopped = false;

  constructor(
    private readonly master: NonNullable<BgpConfig['master']>,
    private readonly log: Logger,
    private readonly onChange: (addresses: string[]) => void,
    private readonly tls?: ClientTls,
  ) {}

  private connect(): OperatorClient {
    this.client ??= new OperatorClient({ master: this.master.url, principal: this.master.principal, secret: this.master.secret, tls: this.tls });
    return this.client;
  }

  /** One attempt to learn the mesh before exabgp starts; undefined when the master does not answer in time. */
  async initial(timeoutMs: number): Promise<string[] | undefined> {
    this.connect();
    const hosts = await Promise.race([this.fetch().catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs).unref())]);
    if (hosts) this.last = hosts.join(',');
    return hosts;
  }

  start(): void {
    this.connect();
    void this.poll();
  }

  /** Agent hostnames that are IPv4 addresses, sorted. Throws when the master cannot be asked. */
  async fetch(): Promise<string[]> {
    const reply = await this.client!.call<AgentsReply>('GET_AGENTS');
    const hosts = (reply.get_agents?.agents ?? []).map((a) => a.agent_info?.hostname).filter((h): h is string => typeof h === 'string' && isIp(h));
    return [...new Set(hosts)].sort();
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      const hosts = await this.fetch();
      const key = hosts.join(',');
      if (key !== this.last) {
        this.last = key;
        this.onChange(hosts);
      }
    } catch (err) {
      // Keep the last known mesh: a master outage must not tear down routing.
      this.log.warn({ err: errorMessage(err) }, 'cannot list agents from the master; keeping the current peers');
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.poll(), this.master.pollMs);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client?.close();
  }
}
