/**
 * What the master core asks the outside world to do. The core (master.ts and
 * its managers) never touches a socket, the Store or a timer: a handler
 * changes the state and records effects here; the shell (shell.ts) performs
 * them. A handler's effects come out in the order they were recorded, and
 * the shell keeps one rule the core relies on: a message is never sent, and a
 * stream never closed, before every registry write recorded ahead of it is
 * durable — nobody outside can see state the registry could still lose.
 */
import type { ClusterInfo, PersistedAgent, PersistedFramework } from './registry.js';
import type { V1QuotaConfig } from '../../../contracts/v1/v1.js';

/** A change to the registry (the part of the state that survives a master restart). */
export type RegistryWrite =
  | { type: 'put-agent'; agent: PersistedAgent; cluster: ClusterInfo }
  | { type: 'remove-agent'; id: string }
  | { type: 'put-framework'; framework: PersistedFramework; cluster: ClusterInfo }
  /** Forgets the framework and remembers that it was removed, in one commit. */
  | { type: 'remove-framework'; id: string; removedAt: number }
  | { type: 'set-weights'; weights: Array<{ role: string; weight: number }> }
  | { type: 'set-quota'; configs: V1QuotaConfig[] };

/**
 * The core's timers, by name. Starting a timer of a name that is running
 * replaces it; when it fires the shell calls `Master.timerFired(name)`.
 */
export type TimerName = 'allocation-batch' | 'ack-batch' | `framework-failover:${string}`;

export type Effect =
  | { kind: 'persist'; write: RegistryWrite }
  /** Events for one connection (an agent's, a framework's or an operator's stream), in order. */
  | { kind: 'send'; conn: string; events: unknown[] }
  /** End a stream, with a last event if given. */
  | { kind: 'close'; conn: string; last?: unknown }
  | { kind: 'start-timer'; name: TimerName; delayMs: number }
  | { kind: 'cancel-timer'; name: TimerName };

/** Where handlers record effects; the outermost caller takes them with `drain()`. */
export class EffectLog {
  private effects: Effect[] = [];

  persist(write: RegistryWrite): void {
    this.effects.push({ kind: 'persist', write });
  }

  send(conn: string, events: unknown[]): void {
    if (events.length > 0) this.effects.push({ kind: 'send', conn, events });
  }

  close(conn: string, last?: unknown): void {
    this.effects.push(last === undefined ? { kind: 'close', conn } : { kind: 'close', conn, last });
  }

  startTimer(name: TimerName, delayMs: number): void {
    this.effects.push({ kind: 'start-timer', name, delayMs: Math.max(0, delayMs) });
  }

  cancelTimer(name: TimerName): void {
    this.effects.push({ kind: 'cancel-timer', name });
  }

  drain(): Effect[] {
    const out = this.effects;
    this.effects = [];
    return out;
  }
}
