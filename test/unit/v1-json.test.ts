import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { mayHoldNull, stripNulls } from '../../contracts/v1/v1-json.js';
import { operatorCallSchema, schedulerCallSchema } from '../../contracts/v1/v1-schema.js';
import { agentCallSchema } from '../../contracts/v1/agent-schema.js';
import { isQuickAgentCall, isQuickSchedulerCall } from '../../contracts/v1/v1-fast.js';
import { readCall } from '../../core-scheduler/src/master/http/calls.js';
import { SCHEDULER_CALL_TYPES } from '../../contracts/v1/v1-schema.js';
import { isCorralError } from '../../contracts/errors.js';
import type { RequestContext } from '../../common/http/server.js';

const require = createRequire(import.meta.url);
/** The calls of the mesos-framework npm package, built by its own protobuf.js code as it builds them. */
const helpers = require('mesos-framework/lib/helpers') as { stringifyEnumsRecursive(m: unknown): unknown };
// The package's protobuf.js builder: message classes by name, built positionally as the package builds them (untyped).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const mesos = (require('mesos-framework/lib/mesos') as () => { getMesos(): any })().getMesos();

const wire = (call: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(helpers.stringifyEnumsRecursive(call))) as Record<string, unknown>;

function packageSubscribe(): Record<string, unknown> {
  const info = new mesos.FrameworkInfo('root', 'fw', null, 604800, null, null, null, null, null, null, null);
  return wire(new mesos.scheduler.Call(null, 'SUBSCRIBE', new mesos.scheduler.Call.Subscribe(info)));
}

function packageAccept(): Record<string, unknown> {
  const resources = [
    helpers.stringifyEnumsRecursive(new mesos.Resource('cpus', mesos.Value.Type.SCALAR, new mesos.Value.Scalar(0.5))),
    helpers.stringifyEnumsRecursive(new mesos.Resource('ports', mesos.Value.Type.RANGES, null, new mesos.Value.Ranges([new mesos.Value.Range(31000, 31000)]))),
  ];
  const command = helpers.stringifyEnumsRecursive(new mesos.CommandInfo(null, new mesos.Environment([new mesos.Environment.Variable('HOST', '10.0.0.1')]), true, 'sleep 60'));
  const task = new mesos.TaskInfo('t', new mesos.TaskID('t1'), { value: 'a1' }, resources, null, command, null, null, null, null, null, null);
  const launch = helpers.stringifyEnumsRecursive(new mesos.Offer.Operation(mesos.Offer.Operation.Type.LAUNCH, new mesos.Offer.Operation.Launch([task])));
  return wire(new mesos.scheduler.Call(new mesos.FrameworkID('f1'), 'ACCEPT', null, new mesos.scheduler.Call.Accept([{ value: 'o1' }], launch, null)));
}

function packageDecline(): Record<string, unknown> {
  return wire(new mesos.scheduler.Call(new mesos.FrameworkID('f1'), 'DECLINE', null, null, new mesos.scheduler.Call.Decline([{ value: 'o1' }], null)));
}

/** A deep copy of `v` with every null member and null array element left out, written independently of stripNulls. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => x !== null).map(withoutNulls);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== null)
        .map(([k, x]) => [k, withoutNulls(x)]),
    );
  return v;
}

describe('JSON null is an unset field in v1 input', () => {
  it('strips null members and null array elements at every depth, in place', () => {
    const body = { a: null, b: { c: null, d: [null, 1, null, { e: null, f: 'null' }], g: [] }, h: [[null], null] };
    const same = stripNulls(body);
    expect(same).toBe(body);
    expect(body).toEqual({ b: { d: [1, { f: 'null' }], g: [] }, h: [[]] });
    expect(stripNulls(null)).toBeNull();
    expect(stripNulls('x')).toBe('x');
    const proto = JSON.parse('{"__proto__": null, "x": {"__proto__": {"y": null}}}') as Record<string, unknown>;
    stripNulls(proto);
    expect(Object.keys(proto)).toEqual(['x']);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });

  it('finds the token cheaply in the raw body; a body without it is left alone', () => {
    expect(mayHoldNull('{"a":null}')).toBe(true);
    expect(mayHoldNull('{"a":"nul","b":1}')).toBe(false);
  });

  it("accepts the mesos-framework package's SUBSCRIBE, ACCEPT and DECLINE exactly as it sends them", () => {
    for (const body of [packageSubscribe(), packageAccept(), packageDecline()]) {
      expect(JSON.stringify(body)).toContain('null');
      const expected = schedulerCallSchema.parse(withoutNulls(body));
      const parsed = schedulerCallSchema.safeParse(body);
      expect(parsed.success, parsed.error?.message).toBe(true);
      expect(parsed.data).toEqual(expected);
    }
    const subscribe = schedulerCallSchema.parse(packageSubscribe()) as { subscribe: { framework_info: Record<string, unknown> }; framework_id?: unknown };
    expect(subscribe.framework_id).toBeUndefined();
    expect(subscribe.subscribe.framework_info).toEqual({ user: 'root', name: 'fw', failover_timeout: 604800 });
  });

  it('treats null as unset in operator and agent calls too', () => {
    expect(operatorCallSchema.parse({ type: 'GET_HEALTH', get_health: null })).toEqual({ type: 'GET_HEALTH' });
    const teardown = operatorCallSchema.parse({ type: 'TEARDOWN', teardown: { framework_id: { value: 'f' } }, reserve_resources: null });
    expect(teardown).toEqual({ type: 'TEARDOWN', teardown: { framework_id: { value: 'f' } } });
    const register = agentCallSchema.parse({
      type: 'REGISTER',
      register: {
        agent_info: { hostname: 'h', port: null, id: null, resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 }, role: null, ranges: null }], attributes: null },
        version: null,
        capabilities: null,
      },
    });
    expect(register).toMatchObject({ type: 'REGISTER', register: { agent_info: { hostname: 'h', resources: [{ name: 'cpus', type: 'SCALAR', scalar: { value: 1 } }], attributes: [] } } });
  });

  it('reads doubles and booleans sent as strings, as Mesos does', () => {
    const decline = schedulerCallSchema.parse({ type: 'DECLINE', framework_id: { value: 'f' }, decline: { offer_ids: [{ value: 'o' }], filters: { refuse_seconds: '2.5' } } });
    expect(decline).toMatchObject({ decline: { filters: { refuse_seconds: 2.5 } } });
    const subscribe = schedulerCallSchema.parse({ type: 'SUBSCRIBE', subscribe: { framework_info: { user: 'u', name: 'n', failover_timeout: '3600', checkpoint: 'true' } } });
    expect(subscribe).toMatchObject({ subscribe: { framework_info: { failover_timeout: 3600, checkpoint: true } } });
    const weights = operatorCallSchema.parse({ type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'r', weight: '2' }] } });
    expect(weights).toMatchObject({ update_weights: { weight_infos: [{ weight: 2 }] } });
    // What the string holds is checked as the value would be.
    expect(schedulerCallSchema.safeParse({ type: 'DECLINE', framework_id: { value: 'f' }, decline: { offer_ids: [{ value: 'o' }], filters: { refuse_seconds: 'soon' } } }).success).toBe(false);
    expect(operatorCallSchema.safeParse({ type: 'UPDATE_WEIGHTS', update_weights: { weight_infos: [{ role: 'r', weight: '-2' }] } }).success).toBe(false);
  });

  it('a required field sent as null is missing, not an error of type', () => {
    const r = schedulerCallSchema.safeParse({ type: 'KILL', framework_id: { value: 'f' }, kill: { task_id: null } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['kill', 'task_id']);
  });

  it('the quick validator vouches for a hot call once its nulls are gone, and zod returns the same', () => {
    const update = {
      type: 'UPDATE',
      agent_id: { value: 'a' },
      update: {
        updates: [
          { framework_id: { value: 'f' }, status: { task_id: { value: 't' }, state: 'TASK_RUNNING', source: null, message: null, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==', healthy: null, labels: null } },
        ],
      },
    };
    const ack = {
      type: 'ACKNOWLEDGE_BATCH',
      framework_id: { value: 'f' },
      acknowledge_batch: { acknowledgements: [{ agent_id: { value: 'a' }, task_id: { value: 't' }, uuid: 'AAAAAAAAAAAAAAAAAAAAAA==' }, null] },
    };
    for (const [quick, schema, body] of [
      [isQuickAgentCall, agentCallSchema, update],
      [isQuickSchedulerCall, schedulerCallSchema, ack],
    ] as const) {
      const stripped = stripNulls(JSON.parse(JSON.stringify(body)) as Record<string, unknown>);
      expect(quick(String(stripped.type), stripped)).toBe(true);
      expect(schema.parse(JSON.parse(JSON.stringify(body)))).toEqual(stripped);
    }
  });

  it('a deeply nested body holding a null reaches validation: the walk does not run out of stack', async () => {
    const depth = 20_000;
    const raw = `{"type":"DECLINE","framework_id":{"value":"f"},"decline":{"offer_ids":[{"value":"o"}]},"x":${'['.repeat(depth)}null${']'.repeat(depth)}}`;
    // The request boundary faked: headers and the body readCall reads.
    const ctx = { req: { headers: { 'content-type': 'application/json' } }, text: async () => raw, json: async () => JSON.parse(raw) as unknown } as unknown as RequestContext;
    const call = (await readCall(ctx, schedulerCallSchema, SCHEDULER_CALL_TYPES, 'scheduler API', { nullIsUnset: true }).catch((err: unknown) => err)) as Record<string, unknown>;
    expect(call instanceof RangeError).toBe(false);
    // An unknown member is dropped by validation; the call itself is whole.
    expect(isCorralError(call)).toBe(false);
    expect(call.type).toBe('DECLINE');
    // The walk itself reaches the bottom: the null inside is gone.
    let node: unknown = stripNulls(JSON.parse(`[${'['.repeat(depth)}null${']'.repeat(depth)}]`));
    let levels = 0;
    while (Array.isArray(node) && node.length === 1) {
      node = node[0];
      levels++;
    }
    expect(levels).toBe(depth);
    expect(node).toEqual([]);
  });
});
