/**
 * Framework lifecycle: SUBSCRIBE (new and failover), disconnection with
 * `failover_timeout`, TEARDOWN, and recovery of frameworks after a master restart.
 */
import { CorralError } from '../../../contracts/errors.js';
import type { Master } from './master.js';
import type { FrameworkRecord } from './records.js';
import type { PersistedFramework } from './registry.js';
import type { SchedulerEvent, V1FrameworkInfo } from '../../../contracts/v1/v1.js';
import { hasCapability, nanos } from '../../../contracts/v1/v1.js';

/** Recovered frameworks get at least this long to re-subscribe after a master restart. */
const RECOVERY_GRACE_MS = 60_000;

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
  subscribe(info: V1FrameworkInfo, callFrameworkId: string | undefined, suppressedRoles: string[] | undefined, principal: string | undefined): FrameworkRecord {
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
      const fwId = this.m.nextFrameworkId();
      const full = { ...normalized, id: { value: fwId } };
      this.m.persist({ type: 'put-framework', framework: { id: fwId, info: full, registeredAt: now }, cluster: this.m.clusterRecord() });
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
    this.m.persist({ type: 'put-framework', framework: { id: wantId, info: full, registeredAt: f.registeredAt }, cluster: this.m.clusterRecord() });
    // The previous scheduler instance, if still connected, learns it was replaced.
    this.m.close(f.conn, { type: 'ERROR', error: { message: 'Framework failed over' } } satisfies SchedulerEvent);
    f.conn = undefined;
    this.m.offerManager.rescindFrameworkOffers(f.id);
    f.info = full;
    f.roles = roles;
    f.principal = full.principal;
    f.partitionAware = hasCapability(full, 'PARTITION_AWARE');
    f.revocable = hasCapability(full, 'REVOCABLE_RESOURCES');
    f.recovered = false;
    f.reregisteredAt = now;
    this.m.cancelTimer(`framework-failover:${f.id}`);
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
  update(f: FrameworkRecord, info: V1FrameworkInfo, suppressedRoles: string[] | undefined, principal: string | undefined): void {
    const roles = frameworkRoles(info);
    const newPrincipal = info.principal ?? principal;
    if (newPrincipal !== f.principal) throw new CorralError('INVALID_ARGUMENT', "FrameworkInfo update is not valid: changing framework's principal is not allowed");
    if ((info.user ?? '') !== (f.info.user ?? ''))
      throw new CorralError('INVALID_ARGUMENT', `FrameworkInfo update is not valid: updating 'FrameworkInfo.user' is unsupported; attempted to update from '${f.info.user}' to '${info.user}'`);
    if ((info.checkpoint ?? false) !== (f.info.checkpoint ?? false)) throw new CorralError('INVALID_ARGUMENT', "FrameworkInfo update is not valid: updating 'FrameworkInfo.checkpoint' is unsupported");
    this.m.auth.authorizeRoles(newPrincipal, roles);
    for (const r of suppressedRoles ?? []) if (!roles.includes(r)) throw new CorralError('INVALID_ARGUMENT', `suppressed role "${r}" is not one of the framework's roles`);
    const full = { ...info, principal: newPrincipal, ...(info.roles ? { roles } : { role: roles[0] }), id: { value: f.id } };
    this.m.persist({ type: 'put-framework', framework: { id: f.id, info: full, registeredAt: f.registeredAt }, cluster: this.m.clusterRecord() });
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
  attach(f: FrameworkRecord, conn: string, streamId: string): void {
    f.conn = conn;
    f.streamId = streamId;
    f.connected = true;
    f.disconnectedAt = undefined;
    this.m.send(conn, {
      type: 'SUBSCRIBED',
      subscribed: { framework_id: { value: f.id }, heartbeat_interval_seconds: this.m.config.frameworks.heartbeatIntervalSeconds, master_info: this.m.info },
    } satisfies SchedulerEvent);
    const pending: SchedulerEvent[] = [];
    for (const t of f.tasks.values()) if (t.pending) pending.push({ type: 'UPDATE', update: { status: t.pending } });
    this.m.sendAll(conn, pending);
    this.m.allocator.setFrameworkActive(f.id, true);
    this.m.offerManager.requestAllocation();
  }

  /** The scheduler's stream closed: stop offering, and remove it if it does not come back in time. */
  disconnected(f: FrameworkRecord, conn: string): void {
    if (f.conn !== conn) return; // already replaced by a newer subscription
    f.conn = undefined;
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

  /** Remove the framework after `ms` unless it comes back (the shell takes delays longer than a Node timer can in steps). */
  private scheduleRemoval(f: FrameworkRecord, ms: number, why: string): void {
    this.removalReasons.set(f.id, why);
    this.m.startTimer(`framework-failover:${f.id}`, ms);
  }

  /** Why each framework waiting for its failover timer would be removed. */
  private readonly removalReasons = new Map<string, string>();

  /** The framework's failover timer fired. */
  failoverTimeout(id: string): void {
    const f = this.m.frameworks.get(id);
    const why = this.removalReasons.get(id) ?? 'failover timeout expired';
    this.removalReasons.delete(id);
    if (f && !f.connected) this.remove(f, why);
  }

  /** TEARDOWN, failover timeout or operator: kill its tasks, free its resources, forget it. */
  remove(f: FrameworkRecord, why: string): void {
    if (!this.m.frameworks.has(f.id)) return;
    this.m.log.info({ framework: f.id, why }, 'removing framework');
    this.m.cancelTimer(`framework-failover:${f.id}`);
    this.removalReasons.delete(f.id);
    this.m.offerManager.rescindFrameworkOffers(f.id);
    this.m.taskManager.removeFrameworkTasks(f, why);
    this.m.allocator.removeFramework(f.id);
    this.m.frameworks.delete(f.id);
    this.removed.add(f.id);
    this.m.close(f.conn);
    f.conn = undefined;
    f.connected = false;
    f.streamId = undefined;
    f.disconnectedAt = this.m.clock.now();
    this.keepCompleted(f);
    this.m.events.frameworkRemoved(f);
    this.m.persist({ type: 'remove-framework', id: f.id, removedAt: this.m.clock.now() });
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
    for (const f of this.m.frameworks.values()) if (f.connected) this.m.send(f.conn, { type: 'HEARTBEAT' } satisfies SchedulerEvent);
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
  adopt(info: V1FrameworkInfo & { id: { value: string } }): FrameworkRecord {
    const existing = this.m.frameworks.get(info.id.value);
    if (existing) return existing;
    const roles = frameworkRoles(info);
    const now = this.m.clock.now();
    const f = this.newRecord(info, roles, now, true);
    this.m.frameworks.set(f.id, f);
    this.m.allocator.addFramework(f.id, { roles, active: false, revocable: f.revocable });
    this.scheduleRemoval(f, Math.max((info.failover_timeout ?? 0) * 1000, RECOVERY_GRACE_MS), 'did not re-subscribe after being reported by an agent');
    this.m.persist({ type: 'put-framework', framework: { id: f.id, info, registeredAt: now }, cluster: this.m.clusterRecord() });
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
      conn: undefined,
      streamId: undefined,
      registeredAt,
      reregisteredAt: undefined,
      disconnectedAt: recovered ? this.m.clock.now() : undefined,
      tasks: new Map(),
      completed: [],
      offers: new Set(),
    };
  }

  registeredTime(f: FrameworkRecord): { nanoseconds: number } {
    return nanos(f.registeredAt);
  }
}
