import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { limitOption, limitOptionFor } from '../../../cli/parse.js';
import { MASTER_LIMIT_KEYS } from '../../../core-scheduler/src/index.js';

describe('--limit', () => {
  it("gathers the server's limits, repeated, into one limits section", () => {
    const first = limitOption('maxConnections=2048', undefined);
    expect(limitOption('headersTimeoutMs=5000', first)).toEqual({ maxConnections: 2048, headersTimeoutMs: 5000 });
  });

  it("takes the master's own limits on the master, and only there", () => {
    const master = limitOptionFor(MASTER_LIMIT_KEYS);
    expect(master('maxSchedulerSubscriptionsPerPrincipal=4', master('maxOperatorSubscriptionsPerPrincipal=2', undefined))).toEqual({
      maxSchedulerSubscriptionsPerPrincipal: 4,
      maxOperatorSubscriptionsPerPrincipal: 2,
    });
    expect(master('maxConnections=10', undefined)).toEqual({ maxConnections: 10 });
    expect(() => limitOption('maxSchedulerSubscriptionsPerPrincipal=4', undefined)).toThrow(/unknown limit "maxSchedulerSubscriptionsPerPrincipal"; one of headersTimeoutMs, /);
  });

  it('names the expected form for a malformed value', () => {
    expect(() => limitOption('maxConnections', undefined)).toThrow(InvalidArgumentError);
    expect(() => limitOption('maxConnections=-1', undefined)).toThrow(/expected name=integer/);
  });
});
