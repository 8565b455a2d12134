/**
 * Framework lifecycle: SUBSCRIBE (new and failover), disconnection with
 * `failover_timeout`, TEARDOWN, and recovery of frameworks after a master restart.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { Master } from './master.js';
import type { FrameworkRecord, Outbox } from './records.js';
import type { PersistedFramework } from './registry.js';
import type { SchedulerEvent, V1FrameworkInfo } from '../../../contracts/v1/v1.js';
import { hasCapability, nanos } from '../../../contracts/v1/v1.js';

/** Recovered frameworks get at least this long to re-subscribe after a master restart. */
const RECOVERY_GRACE_MS = 60_000;
/** The longest delay a timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function frameworkRoles(info: V1FrameworkInfo): string[] {
  if (info.roles && info.role) throw new CorralError('INVALID_ARGUMENT', 'set either framework_info.roles or the deprecated framework_info.role, not both');
  const roles = info.roles ?? [info.role ?? '*'];
  if (roles.length === 0) throw new CorralError('INVALID_ARGUMENT', 'framework_info.roles must not be empty');
  if (new Set(roles).size !== roles.length) throw new CorralError('INVALID_ARGUMENT', 'framework_info.roles has duplicates');
  return roles;
}

export class FrameworkManager {
  /** Ids torn down in this master's lifetime: re-subscribing with one is refused, not treated as unknown. */
  private readonly removed = new Set<string>();

  constructor(private readonly m: Master) {}

  /** Torn down or removed (remembered in the registry across restarts and failovers): an agent reporting its tasks shuts it down instead. */
  isRemoved(id: string): boolean {
    return this.removed.has(id);
  }

  /** The removed frameworks the registry remembers, at recovery. */
  recoverRemoved(ids: Iterable<string>): void {
    for (const id of ids) this.removed.add(id);
  }

  /**
   * Validate and record a subscription; the caller then opens the stream and
   * calls `attach`. Re-subscribing with a known id is a failover: tasks stay.
   */
  async subscribe(info: V1FrameworkInfo, callFrameworkId: string | undefined, suppressedRoles: string[] | undefined, principal: string | undefined): Promise<FrameworkRecord> {
    const roles = frameworkRoles(info);
    if (info.principal !== undefined && principal !== undefined && info.principal !== principal) {
      throw new CorralError('FORBIDDEN', `framework principal "${info.principal}" does not match the authenticated principal "${principal}"`);
    }
    if (this.m.auth.enabled && principal === undefined) throw new CorralError('UNAUTHENTICATED', 'authentication required');
    this.m.auth.authorizeRoles(principal ?? info.principal, roles);
    for (const r of suppressedRoles ?? []) if (!roles.includes(r)) throw new CorralError('INVALID_ARGUMENT', `suppressed role "${r}" is not one of the framework's roles`);
    const id = info.id?.value;
    if (callFrameworkId !== undefined && id !== undefined && callFrameworkId !== id) {
      throw new CorralError('INVALID_ARGUMENT', `framework_id "${callFrameworkId}" does not match framework_info.id "${id}"`);
    }
    const wantId = id ?? callFrameworkId;
    const now = this.m.clock.now();
    const normalized: V1FrameworkInfo = { ...info, principal: info.principal ?? principal, ...(info.roles ? { roles } : { role: roles[0] }) };

    if (wantId === undefined) {
      const fwId = this.m.registry.nextFrameworkId();
      const full = { ...normalized, id: { value: fwId } };
      await this.m.registry.putFramework({ id: fwId, info: full, registeredAt: now });
      const f = this.newRecord(full, roles, now, false);
      this.m.frameworks.set(fwId, f);
      this.m.allocator.addFramework(fwId, { roles, active: false, revocable: f.revocable, suppressedRoles: suppressedRoles ?? [] });
      this.m.events.frameworkAdded(f);
      this.m.log.info({ framework: fwId, name: info.name, roles }, 'framework registered');
      return f;
    }

    if (this.removed.has(wantId)) throw new CorralError('FORBIDDEN', `framework ${wantId} has been removed; subscribe without an id to register anew`);
    const f = this.m.frameworks.get(wantId);
    if (!f) throw new CorralError('NOT_FOUND', `unknown framework ${wantId}; subscribe without an id to register anew`);
    if (f.principal !== undefined && principal !== undefined && f.principal !== principal) {
      throw new CorralError('FORBIDDEN', `framework ${wantId} belongs to principal "${f.principal}"`);
    }
    const full = { ...normalized, id: { value: wantId } };
    await this.m.registry.putFramework({ id: wantId, info: full, registeredAt: f.registeredAt });
    // The previous scheduler instance, if still connected, learns it was replaced.
    if (f.outbox?.isOpen) f.outbox.close({ type: 'ERROR', error: { message: 'Framework failed over' } } satisfies SchedulerEvent);
    f.outbox = undefined;
    this.m.offerManager.rescindFrameworkOffers(f.id);
    f.info = full;
    f.roles = roles;
    f.principal = full.principal;
    f.partitionAware = hasCapability(full, 'PARTITION_AWARE');
    f.revocable = hasCapability(full, 'REVOCABLE_RESOURCES');
    f.recovered = false;
    f.reregisteredAt = now;
    this.m.clock.clearTimeout(f.failoverTimer);
    f.failoverTimer = undefined;
    this.m.allocator.updateFramework(f.id, { roles, revocable: f.revocable, suppressedRoles: suppressedRoles ?? [] });
    this.m.events.frameworkUpdated(f);
    this.m.log.info({ framework: f.id, name: info.name }, 'framework re-subscribed (failover)');
    return f;
  }

  /**
   * UPDATE_FRAMEWORK: a subscribed framework changes its FrameworkInfo (roles,
   * capabilities, failover_timeout, name, labels…) and suppressed roles
   * without re-subscribing. As in Mesos, the principal, user and checkpoint
   * cannot change.
   */
  async update(f: FrameworkRecord, info: V1FrameworkInfo, suppressedRoles: string[] | undefined, principal: string | undefined): Promise<void> {
    const roles = frameworkRoles(info);
    const newPrincipal = info.principal ?? principal;
    if (newPrincipal !== f.principal) throw new CorralError('INVALID_ARGUMENT', "FrameworkInfo update is not valid: changing framework's principal is not allowed");
    if ((info.user ?? '') !== (f.info.user ?? ''))
      throw new CorralError('INVALID_ARGUMENT', `FrameworkInfo update is not valid: updating 'FrameworkInfo.user' is unsupported; attempted to update from '${f.info.user}' to '${info.user}'`);
    if ((info.checkpoint ?? false) !== (f.info.checkpoint ?? false)) throw new CorralError('INVALID_ARGUMENT', "FrameworkInfo update is not valid: updating 'FrameworkInfo.checkpoint' is unsupported");
    this.m.auth.authorizeRoles(newPrincipal, roles);
    for (const r of suppressedRoles ?? []) if (!roles.includes(r)) throw new CorralError('INVALID_ARGUMENT', `suppressed role "${r}" is not one of the framework's roles`);
    const full = { ...info, principal: newPrincipal, ...(info.roles ? { roles } : { role: roles[0] }), id: { value: f.id } };
    await this.m.registry.putFramework({ id: f.id, info: full, registeredAt: f.registeredAt });
    f.info = full;
    f.roles = roles;
    f.partitionAware = hasCapability(full, 'PARTITION_AWARE');
    f.revocable = hasCapability(full, 'REVOCABLE_RESOURCES');
    this.m.allocator.updateFramework(f.id, { roles, revocable: f.revocable, suppressedRoles: suppressedRoles ?? [] });
    // Offers made to a role the framework left go back, as Mesos rescinds them.
    for (const id of [...f.offers]) {
      const o = this.m.offers.get(id);
      if (o && !roles.includes(o.role)) this.m.offerManager.rescind(o);
    }
    this.m.events.frameworkUpdated(f);
    this.m.offerManager.requestAllocation();
    this.m.log.info({ framework: f.id, roles }, 'framework updated');
  }

  /** The stream is open: greet the scheduler, resend unacknowledged updates, offer resources. */
  attach(f: FrameworkRecord, outbox: Outbox<SchedulerEvent>, streamId: string): void {
    f.outbox = outbox as Outbox<unknown>;
    f.streamId = streamId;
    f.connected = true;
    f.disconnectedAt = undefined;
    outbox.send({
      type: 'SUBSCRIBED',
      subscribed: { framework_id: { value: f.id }, heartbeat_interval_seconds: this.m.config.frameworks.heartbeatIntervalSeconds, master_info: this.m.info },
    });
    const pending: SchedulerEvent[] = [];
    for (const t of f.tasks.values()) if (t.pending) pending.push({ type: 'UPDATE', update: { status: t.pending } });
    if (pending.length) outbox.sendAll ? outbox.sendAll(pending) : pending.forEach((e) => outbox.send(e));
    this.m.allocator.setFrameworkActive(f.id, true);
    this.m.offerManager.requestAllocation();
  }

  /** The scheduler's stream closed: stop offering, and remove it if it does not come back in time. */
  disconnected(f: FrameworkRecord, outbox: Outbox<unknown>): void {
    if (f.outbox !== outbox) return; // already replaced by a newer subscription
    f.outbox = undefined;
    f.connected = false;
    f.streamId = undefined;
    f.disconnectedAt = this.m.clock.now();
    if (this.m.isStopped) return;
    this.m.allocator.setFrameworkActive(f.id, false);
    this.m.offerManager.rescindFrameworkOffers(f.id);
    const timeoutMs = (f.info.failover_timeout ?? 0) * 1000;
    this.m.log.info({ framework: f.id, failoverTimeoutMs: timeoutMs }, 'framework disconnected');
    this.m.events.frameworkUpdated(f);
    this.scheduleRemoval(f, timeoutMs, 'failover timeout expired');
  }

  /**
   * Remove the framework after `ms` unless it comes back. A timer fires at
   * once when asked for more than ~24.8 days (2^31 - 1 ms), and Mesos's docs
   * recommend weeks of failover_timeout: a long wait is taken in steps.
   */
  private scheduleRemoval(f: FrameworkRecord, ms: number, why: string): void {
    this.m.clock.clearTimeout(f.failoverTimer);
    const deadline = this.m.clock.now() + ms;
    const arm = (): void => {
      const left = deadline - this.m.clock.now();
      if (left > MAX_TIMER_MS) {
        f.failoverTimer = this.m.clock.setTimeout(arm, MAX_TIMER_MS);
        return;
      }
      f.failoverTimer = this.m.clock.setTimeout(
        () => {
          f.failoverTimer = undefined;
          // A registry write that fails is logged; left unhandled it would end the master.
          if (!f.connected && this.m.frameworks.has(f.id)) this.remove(f, why).catch((err: unknown) => this.m.log.error({ err, framework: f.id }, 'removing the framework failed'));
        },
        Math.max(0, left),
      );
    };
    arm();
  }

  /** TEARDOWN, failover timeout or operator: kill its tasks, free its resources, forget it. */
  async remove(f: FrameworkRecord, why: string): Promise<void> {
    if (!this.m.frameworks.has(f.id)) return;
    this.m.log.info({ framework: f.id, why }, 'removing framework');
    this.m.clock.clearTimeout(f.failoverTimer);
    this.m.offerManager.rescindFrameworkOffers(f.id);
    this.m.taskManager.removeFrameworkTasks(f, why);
    this.m.allocator.removeFramework(f.id);
    this.m.frameworks.delete(f.id);
    this.removed.add(f.id);
    f.outbox?.close();
    f.outbox = undefined;
    f.connected = false;
    f.streamId = undefined;
    f.disconnectedAt = this.m.clock.now();
    this.keepCompleted(f);
    this.m.events.frameworkRemoved(f);
    await this.m.registry.removeFramework(f.id);
  }

  /** The operator API lists removed frameworks (completed_frameworks), the oldest dropped past the bound, as Mesos does. */
  private keepCompleted(f: FrameworkRecord): void {
    const max = this.m.config.frameworks.maxCompletedFrameworks;
    if (max === 0) return;
    const list = this.m.completedFrameworks;
    list.push(f);
    if (list.length > max) list.splice(0, list.length - max);
  }

  heartbeat(): void {
    for (const f of this.m.frameworks.values()) if (f.connected) this.m.deliver(f.outbox, { type: 'HEARTBEAT' });
  }

  /** After a master restart: known, inactive, waiting to re-subscribe. */
  recoverFromRegistry(p: PersistedFramework): void {
    const info = { ...p.info, id: { value: p.id } };
    const roles = frameworkRoles(info);
    const f = this.newRecord(info, roles, p.registeredAt, true);
    this.m.frameworks.set(p.id, f);
    this.m.allocator.addFramework(p.id, { roles, active: false, revocable: f.revocable });
    this.scheduleRemoval(f, Math.max((info.failover_timeout ?? 0) * 1000, RECOVERY_GRACE_MS), 'did not re-subscribe after master recovery');
  }

  /** An agent reports tasks of a framework the master does not know (registry lost): adopt it. */
  async adopt(info: V1FrameworkInfo & { id: { value: string } }): Promise<FrameworkRecord> {
    const existing = this.m.frameworks.get(info.id.value);
    if (existing) return existing;
    const roles = frameworkRoles(info);
    const now = this.m.clock.now();
    const f = this.newRecord(info, roles, now, true);
    this.m.frameworks.set(f.id, f);
    this.m.allocator.addFramework(f.id, { roles, active: false, revocable: f.revocable });
    this.scheduleRemoval(f, Math.max((info.failover_timeout ?? 0) * 1000, RECOVERY_GRACE_MS), 'did not re-subscribe after being reported by an agent');
    await this.m.registry.putFramework({ id: f.id, info, registeredAt: now });
    return f;
  }

  private newRecord(info: V1FrameworkInfo & { id: { value: string } }, roles: string[], registeredAt: number, recovered: boolean): FrameworkRecord {
    return {
      id: info.id.value,
      info,
      roles,
      principal: info.principal,
      partitionAware: hasCapability(info, 'PARTITION_AWARE'),
      revocable: hasCapability(info, 'REVOCABLE_RESOURCES'),
      connected: false,
      recovered,
      outbox: undefined,
      streamId: undefined,
      registeredAt,
      reregisteredAt: undefined,
      disconnectedAt: recovered ? this.m.clock.now() : undefined,
      failoverTimer: undefined,
      tasks: new Map(),
      completed: [],
      offers: new Set(),
    };
  }

  registeredTime(f: FrameworkRecord): { nanoseconds: number } {
    return nanos(f.registeredAt);
  }
}
