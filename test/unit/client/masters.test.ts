import { describe, expect, it } from 'vitest';
import { LeaderRedirect, LeaderTracker, MasterUnreachable, masterList, masterSpecProblem, redirectTarget, transportFailure, viaLeader } from '../../../contracts/client/masters.js';
import { CallError } from '../../../contracts/client/connection.js';
import { CorralError } from '../../../contracts/errors.js';

const A = 'http://127.0.0.1:5050';
const B = 'http://127.0.0.2:5050';
const C = 'http://127.0.0.3:5050';

/** A transport error as node raises it for a refused connection. */
function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
}

describe('masterList', () => {
  it('keeps a single URL exactly as given and splits lists on commas', () => {
    expect(masterList('http://m:5050/')).toEqual(['http://m:5050/']);
    expect(masterList(` ${A}, ${B} ,,${C}`)).toEqual([A, B, C]);
    expect(masterList([A, B])).toEqual([A, B]);
  });

  it('refuses an empty list and entries that are not http(s) URLs', () => {
    expect(() => masterList([])).toThrow(/no master given/);
    expect(() => masterList(' , ')).toThrow(/no master given/);
    expect(() => masterList(`${A},not a url`)).toThrow(/"not a url" is not a URL/);
    expect(() => masterList(`${A},ftp://x:1`)).toThrow(/not an http/);
    expect(masterSpecProblem('nonsense')).toMatch(/not a URL/);
    expect(masterSpecProblem(`${A},${B}`)).toBeUndefined();
  });
});

describe('redirectTarget and transportFailure', () => {
  it('takes the origin of a 307/308 Location, relative ones against the asked master', () => {
    expect(redirectTarget(307, `${B}/api/v1/scheduler`, A)).toBe(B);
    expect(redirectTarget(308, ['http://leader:5050/master/state'], A)).toBe('http://leader:5050');
    expect(redirectTarget(307, '/api/v1', A)).toBe(A);
    expect(redirectTarget(302, `${B}/x`, A)).toBeUndefined();
    expect(redirectTarget(307, undefined, A)).toBeUndefined();
    expect(redirectTarget(307, 'ftp://x/y', A)).toBeUndefined();
  });

  it('tells a refused connection from a broken one, and ignores answers', () => {
    expect(transportFailure(refused())).toBe('refused');
    expect(transportFailure(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }))).toBe('broken');
    expect(transportFailure(new Error('wrapped', { cause: refused() }))).toBe('refused');
    expect(transportFailure(new MasterUnreachable('x', true, undefined))).toBe('broken');
    expect(transportFailure(new CallError(503, 'no leader'))).toBeUndefined();
    expect(transportFailure(new Error('plain'))).toBeUndefined();
  });
});

describe('viaLeader', () => {
  it('follows a redirect, skips a refusing master and a 503, and then starts at the leader it found', async () => {
    const tracker = new LeaderTracker([A, B, C]);
    const asked: string[] = [];
    const attempt = (url: string): Promise<string> => {
      asked.push(url);
      if (url === A) return Promise.reject(refused());
      if (url === B) return Promise.reject(new CallError(503, 'no leading master is known'));
      if (url === C) return Promise.reject(new LeaderRedirect(307, 'http://leader:5050', 'http://leader:5050/api/v1'));
      return Promise.resolve(`answered by ${url}`);
    };
    await expect(viaLeader(tracker, attempt)).resolves.toBe('answered by http://leader:5050');
    expect(asked).toEqual([A, B, C, 'http://leader:5050']);
    expect(tracker.url).toBe('http://leader:5050');
    await viaLeader(tracker, attempt);
    expect(asked.slice(4)).toEqual(['http://leader:5050']);
  });

  it('gives up with UNAVAILABLE naming the masters tried, after bounded rounds', async () => {
    const tracker = new LeaderTracker([A, B]);
    let attempts = 0;
    const err = await viaLeader(
      tracker,
      () => {
        attempts++;
        return Promise.reject(refused());
      },
      { rounds: 3 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorralError);
    expect((err as CorralError).code).toBe('UNAVAILABLE');
    expect((err as CorralError).message).toContain(A);
    expect((err as CorralError).message).toContain(B);
    expect((err as CorralError).details).toEqual({ masters: [A, B] });
    expect(attempts).toBe(6);
  });

  it('stops following followers that redirect to each other', async () => {
    const tracker = new LeaderTracker([A, B]);
    let attempts = 0;
    const attempt = (url: string): Promise<never> => {
      attempts++;
      const other = url === A ? B : A;
      return Promise.reject(new LeaderRedirect(307, other, `${other}/api/v1`));
    };
    const err = await viaLeader(tracker, attempt, { rounds: 2 }).catch((e: unknown) => e);
    expect((err as CorralError).code).toBe('UNAVAILABLE');
    expect(attempts).toBeLessThan(30);
  });

  it('a single master keeps its own errors (no retry), but still follows a redirect', async () => {
    const single = new LeaderTracker(A);
    let attempts = 0;
    const original = refused();
    await expect(
      viaLeader(single, () => {
        attempts++;
        return Promise.reject(original);
      }),
    ).rejects.toBe(original);
    expect(attempts).toBe(1);
    const answer503 = new CallError(503, 'shutting down');
    await expect(viaLeader(single, () => Promise.reject(answer503))).rejects.toBe(answer503);

    const redirected = await viaLeader(single, (url) => (url === A ? Promise.reject(new LeaderRedirect(307, B, `${B}/api/v1`)) : Promise.resolve(url)));
    expect(redirected).toBe(B);
    // The leader it was sent to goes away: back to the configured master, which redirects again.
    const asked: string[] = [];
    const again = await viaLeader(single, (url) => {
      asked.push(url);
      if (url === B && asked.length === 1) return Promise.reject(refused());
      return url === A ? Promise.reject(new LeaderRedirect(307, C, `${C}/api/v1`)) : Promise.resolve(url);
    });
    expect(asked).toEqual([B, A, C]);
    expect(again).toBe(C);
  });

  it('does not resend a write after the connection broke under it when told so', async () => {
    const tracker = new LeaderTracker([A, B]);
    const broken = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    let attempts = 0;
    await expect(
      viaLeader(
        tracker,
        () => {
          attempts++;
          return Promise.reject(broken);
        },
        { retryBroken: false },
      ),
    ).rejects.toBe(broken);
    expect(attempts).toBe(1);
  });
});
