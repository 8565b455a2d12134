/**
 * Terminations as the agent sees them: from the native supervisor's status
 * file and from Docker's inspect state — exit codes, signals, OOM kills and
 * the memory-limit reason.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lostTermination, readStatus, toTermination } from '../../../plugins/isolator/src/native/termination.js';
import { dockerTermination } from '../../../plugins/isolator/src/docker/containerizer.js';
import { tempDirsRemovedAfterAll } from '../../harness/temp-dirs.js';

const tempDir = tempDirsRemovedAfterAll();

const status = (o: object) => ({ exitCode: null, signal: null, oomKills: 0, finishedAt: 1, pid: 10, error: null, ...o });

describe('native terminations', () => {
  it('exit status, signal, OOM and launch errors', () => {
    expect(toTermination(status({ exitCode: 3 }))).toEqual({ exitCode: 3, signal: null, oomKilled: false, message: 'the task exited with status 3' });
    expect(toTermination(status({ signal: 'SIGTERM' }))).toEqual({ exitCode: null, signal: 'SIGTERM', oomKilled: false, message: 'the task killed by SIGTERM' });
    expect(toTermination(status({ signal: 'SIGKILL', oomKills: 1 }), 32)).toMatchObject({
      oomKilled: true,
      reason: 'REASON_CONTAINER_LIMITATION_MEMORY',
      message: expect.stringMatching(/memory limit of 32 MB/),
    });
    expect(toTermination(status({ exitCode: 127, error: 'exec x: No such file or directory' })).message).toBe('the task did not start: exec x: No such file or directory');
    // -1: the OOM counter was unreadable; that is not an OOM kill.
    expect(toTermination(status({ exitCode: 0, oomKills: -1 })).oomKilled).toBe(false);
    expect(lostTermination('gone')).toMatchObject({ reason: 'REASON_EXECUTOR_TERMINATED', message: 'gone' });
  });

  it('a missing, half-written or foreign status file reads as no status', () => {
    const dir = tempDir('corral-status-');
    expect(readStatus(join(dir, 'none'))).toBeUndefined();
    writeFileSync(join(dir, 'half'), '{"exitCode":');
    expect(readStatus(join(dir, 'half'))).toBeUndefined();
    writeFileSync(join(dir, 'other'), '{"foo":1}');
    expect(readStatus(join(dir, 'other'))).toBeUndefined();
    writeFileSync(join(dir, 'ok'), JSON.stringify(status({ exitCode: 0 })));
    expect(readStatus(join(dir, 'ok'))).toMatchObject({ exitCode: 0 });
  });
});

describe('Docker terminations', () => {
  it('tells a signal corral sent from an exit code', () => {
    expect(dockerTermination({ ExitCode: 143, OOMKilled: false }, 'SIGTERM')).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(dockerTermination({ ExitCode: 137, OOMKilled: false }, 'SIGKILL')).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    expect(dockerTermination({ ExitCode: 143, OOMKilled: false }, undefined)).toMatchObject({ exitCode: 143, signal: null });
    expect(dockerTermination({ ExitCode: 0, OOMKilled: false }, 'SIGTERM')).toMatchObject({ exitCode: 0, signal: null, message: 'the task exited with status 0' });
  });

  it('OOMKilled from inspect is a memory limitation', () => {
    expect(dockerTermination({ ExitCode: 137, OOMKilled: true }, undefined, 64)).toMatchObject({
      exitCode: null,
      signal: 'SIGKILL',
      oomKilled: true,
      reason: 'REASON_CONTAINER_LIMITATION_MEMORY',
      message: expect.stringMatching(/64 MB/),
    });
  });
});
