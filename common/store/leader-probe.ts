/**
 * A follower's watch on the leader's process (a master, a service framework
 * daemon: any group elected in etcd, etcd-leadership.ts), so a crashed leader
 * is replaced in well under a second instead of after its etcd lease runs out.
 *
 * The follower asks the leader's advertised URL for /health every
 * `intervalMs`. Only proof that no leader process listens there counts as a
 * crash: the connection refused (the host answers, nothing listens on the
 * port), or another process of the group answering on it (the leader's
 * supervisor started a fresh one there: its /health names another id). Seen twice in a row, `confirmAfterMs` apart, after
 * the leader had once answered this follower at that URL as itself (so a URL
 * that never reached it from here cannot look like a crash), the crash is
 * reported once per leader.
 *
 * A timeout, a reset or a hang proves nothing (the leader may be slow,
 * frozen or cut off): that is left to the lease TTL. And acting on a wrong
 * verdict costs availability, never safety: the registry writes of a leader
 * whose lease was revoked fail inside etcd (see etcd-election.ts).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** alive: the leader answered as itself; refused / other-master: no leader process at its URL; no-answer: anything else. */
export type ProbeResult = 'alive' | 'refused' | 'other-master' | 'no-answer';

export interface ProbeTarget {
  /** The leader's id (a fresh one on every start of the process). */
  id: string;
  /** Its advertised base URL. */
  url: string;
}

export interface LeaderProbeOptions {
  /** The field of a /health answer that holds the process's id (masters: "master"). */
  idField?: string;
  /** What the group's processes are, for the evidence logged (default "master"). */
  role?: string;
  intervalMs?: number;
  confirmAfterMs?: number;
  timeoutMs?: number;
  /** PEM of the CA an https leader's certificate is checked against (the cluster's). */
  ca?: string | undefined;
  /**
   * The leader's crash is confirmed: act on it (revoke its lease). Resolves
   * true when done with this leader, false to be asked again after the next
   * confirmed probe (etcd could not be reached).
   */
  onCrash(target: ProbeTarget, evidence: string): Promise<boolean>;
}

const MAX_HEALTH_BYTES = 64 * 1024;

/** One look at `target`: what answers at its URL. */
export function probeOnce(target: ProbeTarget, timeoutMs: number, idField = 'master', ca?: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL('/health', target.url);
    } catch {
      resolve('no-answer');
      return;
    }
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    // A fresh connection every time (no keep-alive): it is the listening socket that is probed.
    const req = request(url, { method: 'GET', agent: false, headers: { accept: 'application/json' }, ...(ca !== undefined && { ca }) }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_HEALTH_BYTES) done('no-answer');
        else chunks.push(c);
      });
      res.on('end', () => done(res.statusCode === 200 ? identify(Buffer.concat(chunks).toString('utf8'), target.id, idField) : 'no-answer'));
      res.on('error', () => done('no-answer'));
    });
    const timer = setTimeout(() => done('no-answer'), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'no-answer'));
    req.end();
  });
}

function identify(body: string, id: string, idField: string): ProbeResult {
  try {
    const answered = (JSON.parse(body) as Record<string, unknown>)[idField];
    if (typeof answered !== 'string' || answered === '') return 'no-answer';
    return answered === id ? 'alive' : 'other-master';
  } catch {
    return 'no-answer';
  }
}

export class LeaderProbe {
  private readonly intervalMs: number;
  private readonly confirmAfterMs: number;
  private readonly timeoutMs: number;
  private target: ProbeTarget | undefined;
  /** The leader answered as itself at its URL since it became the target. */
  private identified = false;
  /** Crash evidence seen in a row for the target. */
  private streak = 0;
  /** A leader already reported: not reported again. */
  private reported: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private stopped = false;
  /** The last probe's result (for /health). */
  last: ProbeResult | undefined;
  /** Probes made so far. */
  probes = 0;

  constructor(private readonly opts: LeaderProbeOptions) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.confirmAfterMs = opts.confirmAfterMs ?? 100;
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  /** Probe `target` from now on (undefined: nobody). */
  watch(target: ProbeTarget | undefined): void {
    if (this.stopped) return;
    if (target?.id === this.target?.id && target?.url === this.target?.url) return;
    this.target = target;
    this.identified = false;
    this.streak = 0;
    this.last = undefined;
    // A probe under way schedules the next one itself.
    if (target && !this.running && !this.timer) this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    this.target = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.running = true;
    let next = this.intervalMs;
    try {
      next = await this.step();
    } catch {
      // onCrash failed: look again at the usual pace.
      this.streak = 0;
    } finally {
      this.running = false;
    }
    // Nothing to watch, or this leader is reported: wait for watch() to name the next one.
    if (this.target && this.reported !== this.target.id) this.schedule(next);
  }

  /** One probe and what follows from it; returns when to probe next. */
  private async step(): Promise<number> {
    const target = this.target;
    if (this.stopped || !target || this.reported === target.id) return this.intervalMs;
    const result = await probeOnce(target, this.timeoutMs, this.opts.idField, this.opts.ca);
    this.probes++;
    // The leader changed while the probe ran: its answer is about somebody else.
    if (this.target !== target) return 0;
    this.last = result;
    if (result === 'alive') {
      this.identified = true;
      this.streak = 0;
      return this.intervalMs;
    }
    if ((result !== 'refused' && result !== 'other-master') || !this.identified) {
      this.streak = 0;
      return this.intervalMs;
    }
    // One refusal is seen twice, a moment apart, before anything is done.
    if (++this.streak < 2) return this.confirmAfterMs;
    this.streak = 0;
    const evidence = result === 'refused' ? 'the connection to its URL was refused twice' : `another ${this.opts.role ?? 'master'} answers at its URL`;
    if (await this.opts.onCrash(target, evidence)) this.reported = target.id;
    return this.intervalMs;
  }
}
