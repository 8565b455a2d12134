/**
 * `corral app show`'s INFO column: an instance that failed and is waiting
 * again for offers still shows its last error — the wait alone does not say
 * why it is not running.
 */
import { describe, expect, it } from 'vitest';
import { instanceDetail } from '../../../cli/commands/app.js';
import type { InstanceView } from '../../../core-scheduler/src/index.js';

const base: InstanceView = { index: 0, phase: 'waiting', ips: [], ports: [], volumes: [], failures: 0 };
const lastError = { taskId: 'bad-image.0.1', state: 'TASK_FAILED', message: 'the DOCKER containerizer is not enabled on this agent', at: '2026-12-07T19:54:41.182Z' };

describe('the INFO column of app show', () => {
  it('says why a never-failed instance waits', () => {
    expect(instanceDetail({ ...base, waiting: 'waiting for offers' })).toBe('waiting for offers');
  });

  it('keeps the last error in view once the instance waits again after a failure', () => {
    expect(instanceDetail({ ...base, failures: 1, waiting: 'waiting for offers', lastError })).toBe(
      'waiting for offers; last error: TASK_FAILED the DOCKER containerizer is not enabled on this agent',
    );
  });

  it('names the retry time during a backoff', () => {
    expect(instanceDetail({ ...base, phase: 'backoff', failures: 1, retryAt: '2026-12-07T19:55:00.000Z', lastError })).toBe(
      'retry at 2026-12-07T19:55:00.000Z: the DOCKER containerizer is not enabled on this agent',
    );
  });

  it("shows a running instance's last error, else its message", () => {
    expect(instanceDetail({ ...base, phase: 'running', failures: 1, lastError, message: 'up' })).toBe('last error: TASK_FAILED the DOCKER containerizer is not enabled on this agent');
    expect(instanceDetail({ ...base, phase: 'running', message: 'up' })).toBe('up');
    expect(instanceDetail({ ...base, phase: 'running' })).toBe('');
  });
});
