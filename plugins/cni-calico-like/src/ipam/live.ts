/**
 * Where the leak reconciler learns which containers are alive. A source must
 * answer completely or throw: a partial answer would look like dead
 * containers and free live addresses, the one thing IPAM must never do.
 *
 *  - NetnsLiveContainers: a container is alive while the network namespace
 *    recorded at ADD time still exists (and is the same namespace).
 *  - HttpLiveContainers: the node agent's list of the containers it runs,
 *    as JSON (`["id", …]` or `{"containers": ["id", …]}`).
 */
import { z } from '../../../../common/validate.js';
import { CorralError, errorMessage } from '../../../../common/errors.js';
import { netnsAlive } from '../netkit/netns.js';
import type { Allocation } from './types.js';

export interface LiveContainers {
  readonly name: string;
  /** Ids of the containers alive on this host. Throws when it cannot tell. */
  list(): Promise<Set<string>>;
}

export class NetnsLiveContainers implements LiveContainers {
  readonly name = 'netns';

  constructor(private readonly allocations: () => Allocation[]) {}

  async list(): Promise<Set<string>> {
    const live = new Set<string>();
    for (const a of this.allocations()) {
      if (netnsAlive(a.netns, a.netnsInode || undefined)) live.add(a.containerId);
    }
    return live;
  }
}

const CONTAINER_ID = z.string().min(1).max(1024);
const liveReply = z.union([z.array(CONTAINER_ID), z.object({ containers: z.array(CONTAINER_ID) })]);

export class HttpLiveContainers implements LiveContainers {
  readonly name: string;

  constructor(private readonly url: string, private readonly timeoutMs = 5_000) {
    this.name = `http ${url}`;
  }

  async list(): Promise<Set<string>> {
    let res: Response;
    try {
      res = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/json' } });
    } catch (err) {
      throw new CorralError('UNAVAILABLE', `live containers from ${this.url}: ${errorMessage(err)}`);
    }
    if (!res.ok) throw new CorralError('UNAVAILABLE', `live containers from ${this.url}: HTTP ${res.status}`);
    const parsed = liveReply.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success) throw new CorralError('UNAVAILABLE', `live containers from ${this.url}: unexpected reply`);
    return new Set(Array.isArray(parsed.data) ? parsed.data : parsed.data.containers);
  }
}

/** Union of several sources: alive if any says so; fails if any fails (never guess). */
export async function liveUnion(sources: LiveContainers[]): Promise<Set<string>> {
  const all = await Promise.all(sources.map((s) => s.list()));
  const out = new Set<string>();
  for (const set of all) for (const id of set) out.add(id);
  return out;
}
