/**
 * Finding the leading master among several, as Mesos clients do: a follower
 * answers every API call with 307 and `Location: <leader><same path>` (or 503
 * while no leader is known), so a client keeps one list of masters, follows
 * redirects to the leader, and moves on to the next master of the list when
 * one refuses connections, drops them, times out or has no leader. The search
 * is bounded (rounds over the list and a total time), then fails with
 * UNAVAILABLE naming the masters tried.
 *
 * With a single master nothing changes but the redirect: its errors reach the
 * caller as they always did.
 */
import { CorralError, errorMessage } from '../errors.js';

/** One master URL, several in an array, or several in one comma-separated string. */
export type MasterSpec = string | readonly string[];

/** The masters of `spec`, in order; INVALID_ARGUMENT for an empty list or an entry that is not an http(s) URL. */
export function masterList(spec: MasterSpec): string[] {
  const entries = typeof spec === 'string' ? (spec.includes(',') ? spec.split(',') : [spec]) : [...spec];
  // A single URL is kept exactly as given (the clients pass it on untouched, as before lists existed).
  if (entries.length === 1 && typeof spec === 'string') return [spec];
  const list = entries.map((e) => e.trim()).filter((e) => e !== '');
  if (list.length === 0) throw new CorralError('INVALID_ARGUMENT', 'no master given: expected a URL such as http://master:5050, or several separated by commas');
  for (const m of list) {
    let url: URL;
    try {
      url = new URL(m);
    } catch {
      throw new CorralError('INVALID_ARGUMENT', `master ${JSON.stringify(m)} is not a URL such as http://master:5050`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CorralError('INVALID_ARGUMENT', `master ${JSON.stringify(m)} is not an http:// or https:// URL`);
  }
  return list;
}

/** What is wrong with `spec` as a list of masters (every entry an http(s) URL), or undefined; for config checks. */
export function masterSpecProblem(spec: MasterSpec): string | undefined {
  try {
    const list = typeof spec === 'string' && !spec.includes(',') ? [spec, spec] : spec;
    masterList(list);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

/** A follower's answer: the leader is elsewhere. */
export class LeaderRedirect extends CorralError {
  constructor(
    readonly status: number,
    /** The leader's base URL (origin of the Location header). */
    readonly leader: string,
    location: string,
  ) {
    super('UNAVAILABLE', `redirected to the leading master at ${location}`, { status, location });
  }
}

/**
 * The leader `location` names, as a base URL; undefined for a 3xx that is not
 * a usable redirect (no or bad Location, not http).
 */
export function redirectTarget(status: number, location: string | string[] | undefined, from: string): string | undefined {
  if ((status !== 307 && status !== 308) || location === undefined) return undefined;
  const loc = Array.isArray(location) ? location[0] : location;
  if (!loc) return undefined;
  try {
    const url = new URL(loc, from);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

/** A master that could not be reached. `maybeSent`: the request may have reached it (reset, timeout) rather than surely not (refused). */
export class MasterUnreachable extends CorralError {
  constructor(
    message: string,
    readonly maybeSent: boolean,
    cause: unknown,
  ) {
    super('UNAVAILABLE', message, undefined, { cause });
  }
}

/** Transport errors that mean the request never left: the connection was not made. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Transport errors after connecting: the master went away under the request. */
const BROKEN = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** 'refused' (never reached the master), 'broken' (may have), undefined (not a transport failure). */
export function transportFailure(err: unknown): 'refused' | 'broken' | undefined {
  if (err instanceof MasterUnreachable) return err.maybeSent ? 'broken' : 'refused';
  if (err instanceof CorralError || !(err instanceof Error)) return undefined;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (NOT_CONNECTED.has(code)) return 'refused';
    if (BROKEN.has(code)) return 'broken';
  }
  return undefined;
}

function statusOf(err: unknown): number | undefined {
  if (!(err instanceof CorralError)) return undefined;
  const s = (err as { status?: unknown }).status ?? err.details?.status;
  return typeof s === 'number' ? s : undefined;
}

/**
 * Where a client sends its requests: the last known leader, else the next
 * master of the list. Share one among clients of the same cluster so they
 * all start at the leader one of them found.
 */
export class LeaderTracker {
  readonly masters: readonly string[];
  private index = 0;
  private learned: string | undefined;

  constructor(spec: MasterSpec) {
    this.masters = masterList(spec);
  }

  /** The URL to use now. */
  get url(): string {
    return this.learned ?? this.masters[this.index]!;
  }

  get several(): boolean {
    return this.masters.length > 1;
  }

  /** A follower named the leader. */
  follow(leader: string): void {
    // A leader that is one of the list is used as it is written there.
    const i = this.masters.findIndex((m) => sameOrigin(m, leader));
    if (i >= 0) {
      this.index = i;
      this.learned = undefined;
    } else this.learned = leader;
  }

  /** `url` failed: move on (a learned leader is forgotten, back to the list). */
  failed(url: string): void {
    if (url !== this.url) return;
    if (this.learned !== undefined) this.learned = undefined;
    else this.index = (this.index + 1) % this.masters.length;
  }

  /** Whether `url` is one of the list as given (not a leader learned from a redirect). */
  listed(url: string): boolean {
    return this.learned !== url && this.masters.includes(url);
  }
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** `master` as given, or the shared tracker it already is. */
export function trackerFor(master: MasterSpec | LeaderTracker): LeaderTracker {
  return master instanceof LeaderTracker ? master : new LeaderTracker(master);
}

export interface FollowOptions {
  /** Total time to look for the leader before giving up (default 15 s). */
  budgetMs?: number;
  /** Full rounds over the list before giving up (default 12: about 4–8.5 s of pauses, time for an election even when a lease must expire). */
  rounds?: number;
  /** Retry on another master after the connection broke mid-request (default true; false for writes that must not apply twice). */
  retryBroken?: boolean;
  /** Where the calls go, for the final error ("to /api/v1", "to the store API"). */
  what?: string;
}

/** Redirects followed in a row before the redirecting master counts as failed (followers pointing at each other). */
const MAX_REDIRECTS = 5;
const FIRST_BACKOFF_MS = 100;
/**
 * A crashed leader is replaced within about a second (its followers revoke its
 * lease), so the pause between rounds stays short enough to find the new
 * leader soon after; the jitter (50–100% of the pause) spreads the many
 * agents and frameworks that lost the same leader.
 */
const MAX_BACKOFF_MS = 1_000;

/**
 * Runs `attempt` against the leader: from `tracker.url`, following redirects
 * and moving along the list on failures as described above. `first`: an
 * attempt already made (and failed) by a caller's fast path, taken as the
 * search's first.
 */
export async function viaLeader<T>(tracker: LeaderTracker, attempt: (url: string) => Promise<T>, opts: FollowOptions = {}, first?: { url: string; error: unknown }): Promise<T> {
  const budgetMs = opts.budgetMs ?? 15_000;
  const maxFailures = (opts.rounds ?? 12) * tracker.masters.length;
  const started = Date.now();
  const tried = new Set<string>();
  let failures = 0;
  let redirects = 0;
  let lastError: unknown;
  let pending = first;
  for (;;) {
    let url: string;
    let err: unknown;
    if (pending) {
      ({ url, error: err } = pending);
      pending = undefined;
    } else {
      url = tracker.url;
      try {
        return await attempt(url);
      } catch (e) {
        err = e;
      }
    }
    if (err instanceof LeaderRedirect && redirects < MAX_REDIRECTS) {
      redirects++;
      tracker.follow(err.leader);
      continue;
    }
    const transport = transportFailure(err);
    const status = statusOf(err);
    const retryable = err instanceof LeaderRedirect || transport === 'refused' || (transport === 'broken' && opts.retryBroken !== false) || status === 503;
    // A single master keeps its errors, unless the failure was at a leader it had been redirected to.
    if (!retryable || (!tracker.several && tracker.listed(url))) throw err;
    tried.add(url);
    lastError = err;
    failures++;
    redirects = 0;
    // Too many redirects in a row: the master they lead to is skipped.
    tracker.failed(err instanceof LeaderRedirect ? tracker.url : url);
    const elapsed = Date.now() - started;
    if (failures >= maxFailures || elapsed >= budgetMs) {
      const names = [...tried].join(', ');
      throw new CorralError(
        'UNAVAILABLE',
        `no leading master answered${opts.what ? ` ${opts.what}` : ''} after ${failures} attempts in ${elapsed} ms (tried ${names}): ${errorMessage(lastError)}`,
        { masters: [...tried] },
        { cause: lastError },
      );
    }
    // Every master of the list had its turn: wait before the next round (an election takes a moment).
    if (failures % tracker.masters.length === 0) {
      const round = failures / tracker.masters.length;
      const pause = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (round - 1)) * (0.5 + Math.random() / 2);
      const delay = Math.min(pause, Math.max(0, budgetMs - elapsed));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
