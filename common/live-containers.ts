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
import { Agent as UndiciAgent, request } from 'undici';
import { z } from './validate.js';
import { CorralError, errorMessage } from '../contracts/errors.js';
import { netnsAlive } from './netkit/netns.js';

export interface LiveContainers {
  readonly name: string;
  /** Ids of the containers alive on this host. Throws when it cannot tell. */
  list(): Promise<Set<string>>;
}

/** What the netns source needs of an address allocation. */
interface NetnsAttachment {
  containerId: string;
  netns: string;
  netnsInode: number;
}

export class NetnsLiveContainers implements LiveContainers {
  readonly name = 'netns';

  constructor(private readonly allocations: () => NetnsAttachment[]) {}

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
  private readonly dispatcher: UndiciAgent | undefined;

  constructor(
    private readonly url: string,
    private readonly timeoutMs = 5_000,
    socketPath?: string,
  ) {
    this.name = socketPath ? `http ${url} via ${socketPath}` : `http ${url}`;
    this.dispatcher = socketPath ? new UndiciAgent({ connect: { socketPath } }) : undefined;
  }

  async list(): Promise<Set<string>> {
    let body: unknown;
    try {
      const res = await request(this.url, {
        headers: { accept: 'application/json' },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new CorralError('UNAVAILABLE', `live containers from ${this.name}: HTTP ${res.statusCode}`);
      }
      body = await res.body.json().catch(() => undefined);
    } catch (err) {
      if (err instanceof CorralError) throw err;
      throw new CorralError('UNAVAILABLE', `live containers from ${this.name}: ${errorMessage(err)}`);
    }
    const parsed = liveReply.safeParse(body);
    if (!parsed.success) throw new CorralError('UNAVAILABLE', `live containers from ${this.name}: unexpected reply`);
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
