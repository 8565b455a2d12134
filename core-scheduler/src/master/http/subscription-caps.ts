/**
 * Caps on the event streams one principal may hold: scheduler SUBSCRIBEs
 * (one per framework it runs) and operator SUBSCRIBEs. The server's own caps
 * (common/http/limits.ts) count per remote address; these count per
 * authenticated principal, so one tenant cannot take every stream slot from
 * behind many addresses, nor register frameworks without bound.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CorralError } from '../../../../contracts/errors.js';
import type { Metrics } from '../../../../common/metrics.js';

export type SubscriptionKind = 'scheduler' | 'operator';

const LIMIT_OF = {
  scheduler: 'maxSchedulerSubscriptionsPerPrincipal',
  operator: 'maxOperatorSubscriptionsPerPrincipal',
} as const;

const REASON_OF = {
  scheduler: 'max_scheduler_subscriptions_per_principal',
  operator: 'max_operator_subscriptions_per_principal',
} as const;

interface Refusals {
  inc(labels: { reason: string }): void;
}

export class SubscriptionCaps {
  private readonly open = new Map<string, number>();
  private readonly refused: Refusals;

  constructor(
    private readonly kind: SubscriptionKind,
    private readonly cap: number,
    metrics: Metrics,
  ) {
    // Counted with the server's own refusals (http_refused_total{reason}), which the kit registers.
    const name = `${metrics.prefix}_http_refused_total`;
    this.refused =
      (metrics.registry.getSingleMetric(name) as Refusals | undefined) ?? metrics.counter('http_refused_total', 'HTTP connections and requests refused or cut by a server limit', ['reason']);
  }

  /**
   * Count one stream of `principal` until the response closes; throws
   * RESOURCE_EXHAUSTED (429) over the cap. `replacing`: the subscription takes
   * over a stream the principal already holds (a framework re-subscribing), so
   * it is not refused for the one it is about to close. No principal
   * (authentication off): not counted. Returns the release, also run on close.
   */
  admit(req: IncomingMessage, res: ServerResponse, principal: string | undefined, replacing = false): () => void {
    if (principal === undefined || res.destroyed || req.socket.destroyed) return () => {};
    const mine = this.open.get(principal) ?? 0;
    if (mine >= this.cap && !replacing) {
      this.refused.inc({ reason: REASON_OF[this.kind] });
      const limit = LIMIT_OF[this.kind];
      const env = `CORRAL_MASTER_LIMITS__${limit.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
      throw new CorralError(
        'RESOURCE_EXHAUSTED',
        `principal "${principal}" has ${mine} ${this.kind} subscriptions open, the limit per principal (${limit} = ${this.cap}); close one, or raise limits.${limit} (env ${env}) on the master`,
        { limit, value: this.cap, config: `limits.${limit}`, env },
      );
    }
    this.open.set(principal, mine + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (this.open.get(principal) ?? 1) - 1;
      if (n <= 0) this.open.delete(principal);
      else this.open.set(principal, n);
    };
    res.once('close', release);
    return release;
  }

  /** Streams open per principal (tests, status). */
  count(principal: string): number {
    return this.open.get(principal) ?? 0;
  }
}
