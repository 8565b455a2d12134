/**
 * Periodic leak reclaim: an address whose container is no longer alive
 * (according to every configured LiveContainers source) is unwired and freed.
 * Safety first — an address is kept when:
 *  - any source cannot answer (the pass frees nothing),
 *  - any source reports its container alive,
 *  - it was assigned less than `graceMs` ago (the ADD may still be running
 *    in a runtime that has not created its bookkeeping yet),
 *  - a CNI operation on its handle is in progress, or it was re-assigned
 *    since the pass began.
 * The same pass gives back blocks that stayed empty long enough.
 */
import type { Logger } from '../../../../common/log.js';
import { errorMessage } from '../../../../contracts/errors.js';
import type { Ipam } from '../ipam/allocator.js';
import { liveUnion, type LiveContainers } from '../../../../common/live-containers.js';
import { netnsAlive } from '../../../../common/netkit/netns.js';
import type { CniService } from '../cni/service.js';

interface ReconcilerOptions {
  ipam: Ipam;
  service: CniService;
  sources: LiveContainers[];
  intervalMs: number;
  graceMs: number;
  releaseEmptyBlocksAfterMs: number;
  keepEmptyBlocks: number;
  log: Logger;
  onFreed?(count: number): void;
}

interface ReconcileReport {
  freed: string[];
  releasedBlocks: string[];
  /** Set when the sources could not tell who is alive (nothing was freed). */
  skipped?: string;
}

export class LeakReconciler {
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<ReconcileReport> | undefined;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    if (this.timer || this.o.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.runOnce().catch((err: unknown) => this.o.log.error({ err }, 'reconcile pass failed')), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass; concurrent callers share the pass in progress. */
  runOnce(): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { freed: [], releasedBlocks: [] };
    let live: Set<string> | undefined;
    try {
      live = await liveUnion(this.o.sources);
    } catch (err) {
      report.skipped = errorMessage(err);
      this.o.log.warn({ err: report.skipped }, 'cannot tell which containers are alive; freeing nothing this pass');
    }
    if (live) {
      const now = Date.now();
      const netnsSource = this.o.sources.some((s) => s.name === 'netns');
      for (const a of this.o.ipam.allocations()) {
        if (live.has(a.containerId) || now - a.createdAt < this.o.graceMs || this.o.service.busy(a.containerId, a.ifname)) continue;
        const stillDead = (): boolean => {
          const current = this.o.ipam.get(a.containerId, a.ifname);
          // Re-assigned since the pass began, or its namespace came back: leave it.
          if (current?.createdAt !== a.createdAt) return false;
          return !(netnsSource && netnsAlive(current.netns, current.netnsInode || undefined));
        };
        if (await this.o.service.reclaim(a.containerId, a.ifname, stillDead)) {
          report.freed.push(`${a.handle} ${a.ip}`);
        }
      }
      if (report.freed.length) {
        this.o.log.warn({ freed: report.freed }, 'reclaimed addresses of containers that are gone');
        this.o.onFreed?.(report.freed.length);
      }
    }
    report.releasedBlocks = await this.o.ipam.releaseEmptyBlocks(this.o.releaseEmptyBlocksAfterMs, this.o.keepEmptyBlocks);
    await this.o.ipam.retryPending();
    return report;
  }
}
