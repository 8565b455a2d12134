/**
 * A Mesos v1 HTTP scheduler client: subscribe, react to events, call.
 * Framework authors (and corral's own service framework) build on it.
 */
import { groupAcknowledgementsByAgent, hasCapability, type GroupableAck, type SchedulerEvent, type V1FrameworkInfo, type V1Operation, type V1TaskStatus } from '../v1/v1.js';
import { acceptBatchBody } from '../v1/task-defaults.js';
import { expandUpdateBatch, UPDATE_BATCHES_HEADER } from '../v1/update-batch.js';
import { CallError, V1Connection, type ConnectionOptions } from './connection.js';
import { ErrorCodes, type ErrorCode } from '../errors.js';
import { MAX_ACCEPTS, MAX_ACKNOWLEDGEMENTS, type V1Accept, type V1AcceptResult } from '../v1/v1-schema.js';

interface SchedulerClientOptions extends Omit<ConnectionOptions, 'path'> {
  framework: V1FrameworkInfo;
  onEvent?: (event: SchedulerEvent, client: SchedulerClient) => void;
  /**
   * Acknowledgements made in the same event-loop turn travel in one
   * ACKNOWLEDGE_BATCH call (a corral extension; default on), grouped by agent
   * to a master that announces GROUPED_ACKNOWLEDGEMENTS. Off: one
   * ACKNOWLEDGE per update, as against a Mesos master.
   */
  batchAcknowledgements?: boolean;
  /**
   * ACCEPTs made in the same event-loop turn travel in ACCEPT_BATCH calls of
   * up to `acceptBatchSize` (a corral extension; default on, 64). Each still
   * resolves or fails on its own. Off, or against a master that does not
   * know the call: one ACCEPT each.
   */
  batchAccepts?: boolean;
  acceptBatchSize?: number;
  /**
   * What the tasks of an ACCEPT_BATCH share (resources, command) is sent once,
   * as its task_defaults (see v1/task-defaults.ts), to a master that announces
   * TASK_DEFAULTS; and to one that announces IMPLIED_TASK_FIELDS, each ACCEPT
   * names its agent once and its tasks leave out a name equal to their id
   * (default on).
   */
  taskDefaults?: boolean;
  /**
   * Ask the master for the updates of one agent call as one UPDATE_BATCH
   * record (a corral extension, see v1/update-batch.ts; default on). The
   * client hands on each update as its own UPDATE event either way; a master
   * that does not know the request header sends plain UPDATEs.
   */
  updateBatches?: boolean;
}

type Ack = { agent_id: V1TaskStatus['agent_id']; task_id: V1TaskStatus['task_id']; uuid: V1TaskStatus['uuid'] };
interface PendingAccept {
  accept: V1Accept;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface PendingAck {
  ack: Ack;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class SchedulerClient {
  readonly conn: V1Connection;
  frameworkId: string | undefined;
  private listeners = new Set<(e: SchedulerEvent) => void>();
  done: Promise<void> | undefined;

  constructor(private readonly opts: SchedulerClientOptions) {
    this.conn = new V1Connection({ ...opts, path: '/api/v1/scheduler' });
    this.frameworkId = opts.framework.id?.value;
  }

  /** Subscribe (or re-subscribe with the known framework id, i.e. fail over). */
  async subscribe(extra: { suppressedRoles?: string[] } = {}): Promise<string> {
    let resolveSubscribed!: (id: string) => void;
    let rejectSubscribed!: (e: unknown) => void;
    const subscribed = new Promise<string>((res, rej) => ((resolveSubscribed = res), (rejectSubscribed = rej)));
    const info = { ...this.opts.framework, ...(this.frameworkId ? { id: { value: this.frameworkId } } : {}) };
    const call = {
      type: 'SUBSCRIBE',
      ...(this.frameworkId ? { framework_id: { value: this.frameworkId } } : {}),
      subscribe: { framework_info: info, ...(extra.suppressedRoles ? { suppressed_roles: extra.suppressedRoles } : {}) },
    };
    const deliver = (e: SchedulerEvent): void => {
      this.opts.onEvent?.(e, this);
      for (const l of this.listeners) l(e);
    };
    const onRecord = (raw: Record<string, unknown>): void => {
      const updates = expandUpdateBatch(raw);
      if (updates) {
        for (const u of updates) deliver(u);
        return;
      }
      const e = raw as unknown as SchedulerEvent;
      if (e.type === 'SUBSCRIBED') {
        this.frameworkId = e.subscribed.framework_id.value;
        this.masterTakesDefaults = hasCapability(e.subscribed.master_info, 'TASK_DEFAULTS');
        this.masterImpliesFields = hasCapability(e.subscribed.master_info, 'IMPLIED_TASK_FIELDS');
        this.masterGroupsAcks = hasCapability(e.subscribed.master_info, 'GROUPED_ACKNOWLEDGEMENTS');
        resolveSubscribed(this.frameworkId);
      }
      deliver(e);
    };
    const { done } = await this.conn.subscribe(call, onRecord, this.opts.updateBatches === false ? undefined : { [UPDATE_BATCHES_HEADER]: '1' });
    this.done = done;
    done.catch(rejectSubscribed);
    return subscribed;
  }

  on(listener: (e: SchedulerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolve with the first event matching `pred` (tests and simple frameworks). */
  next<T extends SchedulerEvent>(pred: (e: SchedulerEvent) => e is T, timeoutMs?: number): Promise<T>;
  next(pred: (e: SchedulerEvent) => boolean, timeoutMs?: number): Promise<SchedulerEvent>;
  next(pred: (e: SchedulerEvent) => boolean, timeoutMs = 10_000): Promise<SchedulerEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no matching scheduler event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((e) => {
        if (pred(e)) {
          clearTimeout(timer);
          off();
          resolve(e);
        }
      });
    });
  }

  private call(type: string, field: string | undefined, body: unknown): Promise<unknown> {
    const lane = type === 'ACKNOWLEDGE' || type === 'ACKNOWLEDGE_BATCH' ? 'acknowledgements' : 'calls';
    return this.conn.call({ type, framework_id: { value: this.frameworkId }, ...(field ? { [field]: body } : {}) }, lane);
  }

  accept(offerIds: string[], operations: V1Operation[], refuseSeconds?: number): Promise<unknown> {
    const accept = { offer_ids: offerIds.map((value) => ({ value })), operations, ...(refuseSeconds !== undefined ? { filters: { refuse_seconds: refuseSeconds } } : {}) };
    if (this.opts.batchAccepts === false || this.acceptBatchUnknown) return this.call('ACCEPT', 'accept', accept);
    return new Promise((resolve, reject) => {
      if (this.accepts.length === 0) setImmediate(() => this.flushAccepts());
      this.accepts.push({ accept, resolve, reject });
    });
  }

  private accepts: PendingAccept[] = [];
  /** The master of the current subscription announced TASK_DEFAULTS. */
  private masterTakesDefaults = false;
  /** The master of the current subscription announced IMPLIED_TASK_FIELDS. */
  private masterImpliesFields = false;
  /** The master of the current subscription announced GROUPED_ACKNOWLEDGEMENTS. */
  private masterGroupsAcks = false;
  /** The master answered ACCEPT_BATCH with "unknown call type": it is not a corral master. */
  private acceptBatchUnknown = false;

  private flushAccepts(): void {
    const all = this.accepts;
    this.accepts = [];
    const wanted = this.opts.acceptBatchSize ?? 64;
    const size = Number.isInteger(wanted) && wanted >= 1 ? Math.min(wanted, MAX_ACCEPTS) : 64;
    for (let i = 0; i < all.length; i += size) {
      const batch = all.slice(i, i + size);
      if (batch.length === 1 || this.acceptBatchUnknown) {
        for (const p of batch) this.call('ACCEPT', 'accept', p.accept).then(p.resolve, p.reject);
        continue;
      }
      let body: ReturnType<typeof acceptBatchBody>;
      try {
        body = this.acceptBatch(batch.map((p) => p.accept));
      } catch {
        // An ACCEPT malformed by an untyped caller: each goes on its own, for the master to answer.
        for (const p of batch) this.call('ACCEPT', 'accept', p.accept).then(p.resolve, p.reject);
        continue;
      }
      this.call('ACCEPT_BATCH', 'accept_batch', body).then(
        (answer) => {
          const results = (answer as { accept_batch?: { results?: V1AcceptResult[] } } | undefined)?.accept_batch?.results ?? [];
          batch.forEach((p, k) => {
            const r = results[k];
            if (r && 'accepted' in r) p.resolve(undefined);
            else if (r && 'error' in r) p.reject(new CallError(ErrorCodes[r.error.code as ErrorCode] ?? 400, r.error.message));
            else p.reject(new CallError(502, `ACCEPT_BATCH answer has no result for entry ${k}`));
          });
        },
        (err: unknown) => {
          if (err instanceof CallError && err.status === 400 && /unknown call type "ACCEPT_BATCH"/.test(err.message)) {
            // A plain Mesos master: send these, and every later ACCEPT, one by one.
            this.acceptBatchUnknown = true;
            for (const p of batch) this.call('ACCEPT', 'accept', p.accept).then(p.resolve, p.reject);
            return;
          }
          for (const p of batch) p.reject(err);
        },
      );
    }
  }

  /** An ACCEPT_BATCH body: what its tasks share, or imply, sent once, when the master takes it. */
  private acceptBatch(given: V1Accept[]): ReturnType<typeof acceptBatchBody> {
    const on = this.opts.taskDefaults !== false;
    return acceptBatchBody(given, { impliedFields: on && this.masterImpliesFields, taskDefaults: on && this.masterTakesDefaults });
  }

  decline(offerIds: string[], refuseSeconds?: number): Promise<unknown> {
    return this.call('DECLINE', 'decline', { offer_ids: offerIds.map((value) => ({ value })), ...(refuseSeconds !== undefined ? { filters: { refuse_seconds: refuseSeconds } } : {}) });
  }

  acknowledge(status: V1TaskStatus): Promise<unknown> {
    const ack: Ack = { agent_id: status.agent_id, task_id: status.task_id, uuid: status.uuid };
    if (this.opts.batchAcknowledgements === false) return this.call('ACKNOWLEDGE', 'acknowledge', ack);
    return new Promise((resolve, reject) => {
      if (this.acks.length === 0) setImmediate(() => this.flushAcks());
      this.acks.push({ ack, resolve, reject });
    });
  }

  private acks: PendingAck[] = [];

  private flushAcks(): void {
    const all = this.acks;
    this.acks = [];
    for (let i = 0; i < all.length; i += MAX_ACKNOWLEDGEMENTS) {
      const batch = all.slice(i, i + MAX_ACKNOWLEDGEMENTS);
      if (batch.length === 1) {
        const [one] = batch;
        this.call('ACKNOWLEDGE', 'acknowledge', one!.ack).then(one!.resolve, one!.reject);
        continue;
      }
      const acks = batch.map((p) => p.ack);
      // An acknowledgement without its agent or uuid cannot be grouped; sent as given, the master words what is wrong.
      const grouped = this.masterGroupsAcks && acks.every((a) => a.agent_id !== undefined && a.uuid !== undefined);
      this.call('ACKNOWLEDGE_BATCH', 'acknowledge_batch', grouped ? { agents: groupAcknowledgementsByAgent(acks as GroupableAck[]) } : { acknowledgements: acks }).then(
        (v) => batch.forEach((p) => p.resolve(v)),
        // The batch is all or nothing: one by one, each acknowledgement gets its own answer.
        () => batch.forEach((p) => this.call('ACKNOWLEDGE', 'acknowledge', p.ack).then(p.resolve, p.reject)),
      );
    }
  }

  reconcile(tasks: Array<{ task_id: { value: string }; agent_id?: { value: string } }> = []): Promise<unknown> {
    return this.call('RECONCILE', 'reconcile', { tasks });
  }

  kill(taskId: string, agentId?: string): Promise<unknown> {
    return this.call('KILL', 'kill', { task_id: { value: taskId }, ...(agentId ? { agent_id: { value: agentId } } : {}) });
  }

  revive(roles?: string[]): Promise<unknown> {
    return this.call('REVIVE', 'revive', roles ? { roles } : {});
  }

  suppress(roles?: string[]): Promise<unknown> {
    return this.call('SUPPRESS', 'suppress', roles ? { roles } : {});
  }

  teardown(): Promise<unknown> {
    return this.call('TEARDOWN', undefined, undefined);
  }

  disconnect(): void {
    this.conn.disconnect();
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}

export const isUpdate = (e: SchedulerEvent): e is Extract<SchedulerEvent, { type: 'UPDATE' }> => e.type === 'UPDATE';
